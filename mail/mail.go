// Package mail owns the delivery of useremail's notifications: what an outbox
// row holds for each kind of mail (the constructors below, used by the HTTP
// handlers inside their transactions), how a row becomes a mail (embedded
// text and HTML templates, with links signed at send time), how a mail leaves
// (an SMTP sender on github.com/wneessen/go-mail, or the log in dev mode), and
// the Dispatcher that claims due rows, sends them, and records each outcome
// with retries, backoff and a cap.
//
// Those mails carry the only credential of the link flows, so a lost or a
// doubled mail is a product failure: rows are written in the transaction of
// the change that promises them, claimed under a lease, and every report of
// an outcome is guarded by the claim it belongs to.
//
// It imports store, signer and address of the project, go-mail for SMTP and
// lib/pq for LISTEN; it never imports gen or server. Its test helper,
// mail/smtptest, is an in-process SMTP server that other packages' tests may
// use too.
package mail

import (
	"encoding/json"

	"github.com/useremail/useremail/store"
)

// The kinds of mail, as stored in the outbox's kind column.
const (
	// KindVerify asks an address to prove it is the user's: a verify link.
	KindVerify = "verify"
	// KindChangeEmail asks the new address of an email-change request to
	// confirm it: a set-primary link.
	KindChangeEmail = "change_email"
	// KindEmailAdded tells the primary address that an address was added.
	KindEmailAdded = "email_added"
	// KindEmailRemoved tells the primary address that an address was removed.
	KindEmailRemoved = "email_removed"
	// KindPrimaryChanged tells the old primary address that another one is
	// now primary.
	KindPrimaryChanged = "primary_changed"
	// KindPasswordReset carries a password reset link to a primary or
	// verified address.
	KindPasswordReset = "password_reset"
	// KindPasswordChanged tells the primary address that the password was
	// changed or reset.
	KindPasswordChanged = "password_changed"
	// KindAccountDeleted tells the old primary address that the account is
	// gone; its row has no user.
	KindAccountDeleted = "account_deleted"
)

// Payload is the JSON an outbox row keeps: the inputs a mail is rendered and
// signed from at send time, never a link or a body, so that no usable link
// sits in the table.
type Payload struct {
	// Email is the address the mail is about: the one to verify, the new
	// primary of a change request, the address added or removed, or the new
	// primary after a change.
	Email string `json:"email"`
	// EmailID is the id of the address to verify (the verify link's state).
	EmailID int64 `json:"email_id,omitempty"`
	// Seq is the user's change sequence of an email-change request (the
	// set-primary link's state).
	Seq int64 `json:"seq,omitempty"`
	// Lang, when set, is the mail's language (a BCP 47 tag), for mails
	// that go out after their user is gone (account deletion). Without it
	// a mail is in its user's language at send time.
	Lang string `json:"lang,omitempty"`
	// State is a reset link's state: signer.PasswordState of the password
	// hash when it was asked for.
	State int64 `json:"state,omitempty"`
	// Via is, for a password_changed notice of a reset, the address the
	// reset link went to; empty for a change under a session.
	Via string `json:"via,omitempty"`
}

// Verify returns the outbox row of a verification mail to recipient, the
// address to verify, whose row id is emailID.
func Verify(userID int64, recipient string, emailID int64) store.NewMessage {
	return newMessage(KindVerify, userID, recipient, Payload{Email: recipient, EmailID: emailID})
}

// ChangeEmail returns the outbox row of the confirmation mail of an
// email-change request, sent to newEmail; seq is the change sequence that
// the request moved the user to.
func ChangeEmail(userID int64, newEmail string, seq int64) store.NewMessage {
	return newMessage(KindChangeEmail, userID, newEmail, Payload{Email: newEmail, Seq: seq})
}

// EmailAdded returns the outbox row of the notice, sent to the primary
// address, that added was added to the account.
func EmailAdded(userID int64, primary, added string) store.NewMessage {
	return newMessage(KindEmailAdded, userID, primary, Payload{Email: added})
}

// EmailRemoved returns the outbox row of the notice, sent to the primary
// address, that removed was removed from the account.
func EmailRemoved(userID int64, primary, removed string) store.NewMessage {
	return newMessage(KindEmailRemoved, userID, primary, Payload{Email: removed})
}

// PrimaryChanged returns the outbox row of the notice, sent to the old
// primary address, that newPrimary is now the primary address.
func PrimaryChanged(userID int64, oldPrimary, newPrimary string) store.NewMessage {
	return newMessage(KindPrimaryChanged, userID, oldPrimary, Payload{Email: newPrimary})
}

// PasswordReset returns the outbox row of a reset link mailed to
// recipient, a primary or verified address of the user, whose password
// hash has signer.PasswordState state.
func PasswordReset(userID int64, recipient string, state int64) store.NewMessage {
	return newMessage(KindPasswordReset, userID, recipient, Payload{Email: recipient, State: state})
}

// PasswordChanged returns the outbox row of the notice, sent to the
// primary address, that the password was changed: reset through a link
// mailed to via, or changed under a session when via is empty.
func PasswordChanged(userID int64, primary, via string) store.NewMessage {
	return newMessage(KindPasswordChanged, userID, primary, Payload{Email: primary, Via: via})
}

// AccountDeleted returns the outbox row of the notice, sent to the old
// primary address, that the account was deleted, in lang, the user's
// language. The row has no user: it is queued as the user goes.
func AccountDeleted(primary, lang string) store.NewMessage {
	return newMessage(KindAccountDeleted, 0, primary, Payload{Email: primary, Lang: lang})
}

func newMessage(kind string, userID int64, recipient string, p Payload) store.NewMessage {
	// Marshalling a struct of strings and integers cannot fail.
	b, _ := json.Marshal(p)
	return store.NewMessage{Kind: kind, Recipient: recipient, UserID: userID, Payload: string(b)}
}
