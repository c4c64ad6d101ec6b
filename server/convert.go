package server

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
)

// toAPIEmail converts a stored address into the API's Email.
func toAPIEmail(e store.Email) gen.Email {
	return gen.Email{Id: e.ID, Email: e.Email, Verified: e.Verified, Primary: e.Primary}
}

// normalize runs the one address normalization of the service, answering
// invalid_email with the reason.
func normalize(raw string) (address.Address, error) {
	a, err := address.Normalize(raw)
	if err != nil {
		return a, errInvalidEmail(strings.TrimPrefix(err.Error(), "address: "))
	}
	return a, nil
}

// The events of the audit trail.
const (
	eventSignup          = "signup"
	eventLogin           = "login"
	eventLoginFailed     = "login_failed"
	eventLogout          = "logout"
	eventEmailAdded      = "email_added"
	eventEmailRemoved    = "email_removed"
	eventEmailVerified   = "email_verified"
	eventChangeRequested = "email_change_requested"
	eventPasswordFailed  = "password_failed"
	eventPrimaryChanged  = "primary_changed"
	eventLanguageChanged = "language_changed"
	eventResetRequested  = "password_reset_requested"
	eventPasswordReset   = "password_reset"
	eventPasswordChanged = "password_changed"
	eventSessionsEnded   = "sessions_ended"
	eventAccountDeleted  = "account_deleted"
)

// audit records a security event of userID inside the caller's transaction,
// with the request's IP and user agent.
func (s *Server) audit(ctx context.Context, q *store.Queries, userID int64, event, email string) error {
	return q.RecordEvent(ctx, s.event(ctx, userID, event, email))
}

// event is the audit event of userID, with the request's IP and user agent.
func (s *Server) event(ctx context.Context, userID int64, event, email string) store.AuditEvent {
	f := factsFrom(ctx)
	return store.AuditEvent{
		UserID:    userID,
		Event:     event,
		Email:     email,
		IP:        f.ip,
		UserAgent: f.userAgent,
		Actor:     actorOf(ctx),
		CreatedAt: s.now(),
	}
}

// taken maps the store's refusal of a duplicate address to email_taken.
func taken(err error) error {
	if errors.Is(err, store.ErrEmailTaken) {
		return errEmailTaken
	}
	return err
}

// idKey is a user id as a rate-limit subject.
func idKey(id int64) string { return strconv.FormatInt(id, 10) }
