package server

import (
	"context"
	"errors"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/pages"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/ratelimit"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// Password reset, after Django's PasswordResetTokenGenerator: the link's
// token carries the purpose, the user, the address it was mailed to and
// signer.PasswordState of the user's password hash, all under the MAC, so
// that any change of the password ends every outstanding link. The link
// is mailed only to a primary or verified address: following it proves the
// address, and through an unverified sign-up's primary it hands the
// account to the address's owner (takeOver).

// RequestPasswordReset mails a reset link to the address when it is a
// user's primary or verified one. Every well-formed address gets the same
// 202 after the same work: the limits, one lookup, one transaction with
// the reset mail's interval, an audit row and the mail's insert, which is
// kept only for a user's address within its interval (EnqueueMessageIf).
func (s *Server) RequestPasswordReset(ctx context.Context, req gen.RequestPasswordResetRequestObject) (gen.RequestPasswordResetResponseObject, error) {
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.ResetNetwork, factsFrom(ctx).network()); err != nil {
		return nil, err
	}
	addr, err := normalize(req.Body.Email)
	if err != nil {
		return nil, err
	}
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.ResetAddress, addr.Key); err != nil {
		return nil, err
	}
	target, err := s.cfg.DB.LoginAddressByKey(ctx, addr.Key)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	recipient := target.Email
	if !known {
		recipient = addr.Email
	}
	msg := mail.PasswordReset(target.ID, recipient, signer.PasswordState(target.PasswordHash))
	err = s.withTx(ctx, func(q *store.Queries) error {
		send := known
		var exceeded *ratelimit.Exceeded
		switch err := s.limiter.Take(ctx, q, s.rules.ResetMail, addr.Key); {
		case errors.As(err, &exceeded):
			send = false
		case err != nil:
			return err
		}
		if err := s.audit(ctx, q, target.ID, eventResetRequested, addr.Email); err != nil {
			return err
		}
		_, err := q.EnqueueMessageIf(ctx, msg, send, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return gen.RequestPasswordReset202Response{}, nil
}

// QueuePasswordReset queues a reset link to user userID's primary address
// in the transaction of q, for callers other than the request endpoint
// (the admin API's invitation): no limits apply, and no session is needed.
// It fails with store.ErrNotFound for no such user.
func (s *Server) QueuePasswordReset(ctx context.Context, q *store.Queries, userID int64) error {
	user, err := q.LockUser(ctx, userID)
	if err != nil {
		return err
	}
	primary, err := q.PrimaryEmail(ctx, userID)
	if err != nil {
		return err
	}
	_, err = q.EnqueueMessage(ctx, mail.PasswordReset(userID, primary.Email, signer.PasswordState(user.PasswordHash)), s.now())
	return err
}

// resetLink is a reset link whose token checked out against the user as
// it is now: its password state and the address it was mailed to.
type resetLink struct {
	link
	user  store.User
	email store.Email // the user's address the link was mailed to
}

// checkResetLink checks a reset link's token and user key, and that the
// user's password has not changed since it was mailed and the address it
// went to is still the user's primary or a verified one; on q, under the
// user's lock when q is a transaction's.
func (s *Server) checkResetLink(ctx context.Context, q *store.Queries, userKey, token string) (resetLink, error) {
	l, err := s.parseLink(token, userKey, signer.PurposePasswordReset, s.cfg.ResetTTL)
	if err != nil {
		return resetLink{}, err
	}
	user, err := q.LockUser(ctx, l.claims.UserID)
	if err != nil {
		return resetLink{}, usedIfNotFound(err)
	}
	if signer.PasswordState(user.PasswordHash) != l.claims.State {
		return resetLink{}, errLinkUsed
	}
	e, err := q.EmailByKey(ctx, user.ID, l.addr.Key)
	if err != nil {
		return resetLink{}, usedIfNotFound(err)
	}
	if !e.Verified && !e.Primary {
		return resetLink{}, errLinkUsed
	}
	return resetLink{link: l, user: user, email: e}, nil
}

// ShowPasswordReset answers a reset link opened with GET, never using it:
// the address and expiry for JSON, the form for a new password otherwise.
func (s *Server) ShowPasswordReset(ctx context.Context, req gen.ShowPasswordResetRequestObject) (gen.ShowPasswordResetResponseObject, error) {
	asJSON := wantsJSON(factsFrom(ctx).accept)
	rl, err := s.checkResetLink(ctx, s.cfg.DB.Queries, req.UserIdKey, req.Token)
	headers := gen.ShowPasswordReset200ResponseHeaders{CacheControl: &noStore}
	switch {
	case asJSON && err != nil:
		return nil, err
	case asJSON:
		return gen.ShowPasswordReset200JSONResponse{
			Body:    gen.PasswordResetLink{Email: rl.email.Email, ExpiresAt: rl.claims.IssuedAt.Add(s.cfg.ResetTTL).UTC()},
			Headers: headers,
		}, nil
	case err != nil:
		a, err := s.linkErrorPageHint(ctx, err, "page.reset.hint_new")
		if err != nil {
			return nil, err
		}
		return showResetResponse{gen.ShowPasswordReset400TexthtmlResponse{LinkErrorTexthtmlResponse: a.page.linkError()}, a.page.extras}, nil
	}
	b := s.resetPage(ctx, rl.email.Email, nil, false)
	return showResetResponse{gen.ShowPasswordReset200TexthtmlResponse{Body: b.r, ContentLength: b.n, Headers: headers}, b.extras}, nil
}

// resetPage renders a reset link's page in the request's language: its
// form for the new password, twice, with the last try's refusal (nil for
// none) next to its field, or, when done, what the reset did.
func (s *Server) resetPage(ctx context.Context, addr string, refused *apiError, done bool) pageBody {
	lz := s.catalog.Localizer(s.catalog.Match(factsFrom(ctx).acceptLanguage))
	title := lz.T("page.reset.title")
	if done {
		title = lz.T("page.reset.done_heading")
	}
	data := pages.Reset{Common: s.common(lz, title), Address: addr, Done: done}
	data.NoReferrer = true
	data.Password = pages.Field{ID: "password", Name: "password", Type: "password", Label: lz.T("page.field.new_password"),
		Autocomplete: "new-password", Required: true}
	data.Confirm = pages.Field{ID: "password2", Name: "password2", Type: "password", Label: lz.T("page.field.confirm_password"),
		Autocomplete: "new-password", Required: true}
	if refused != nil {
		for _, fe := range refused.fields {
			if fe.Field == "body.password2" {
				data.Confirm.Error = sayWeakness(lz, fe.Code)
			} else {
				data.Password.Error = sayWeakness(lz, fe.Code)
			}
		}
		if len(refused.fields) == 0 {
			data.Password.Error = lz.T("error.password_length")
		}
	}
	focusFirst(&data.Password, &data.Confirm)
	return s.pageBody(ctx, "reset", data)
}

// ConfirmPasswordReset follows a reset link: it sets the new password and
// answers 204 to JSON, or a page to the link page's form (the form again
// with the error when the password is refused).
func (s *Server) ConfirmPasswordReset(ctx context.Context, req gen.ConfirmPasswordResetRequestObject) (gen.ConfirmPasswordResetResponseObject, error) {
	var pw string
	var mismatch bool
	form := req.FormdataBody != nil
	switch {
	case form:
		pw, mismatch = req.FormdataBody.Password, req.FormdataBody.Password != req.FormdataBody.Password2
	case req.JSONBody != nil:
		pw = req.JSONBody.Password
	default:
		return nil, errValidation("The request body is missing.", nil)
	}
	addr, err := s.resetPassword(ctx, req.UserIdKey, req.Token, pw, mismatch)
	headers := gen.ConfirmPasswordReset200ResponseHeaders{CacheControl: &noStore}
	if !form {
		if err != nil {
			return nil, err
		}
		return gen.ConfirmPasswordReset204Response{Headers: gen.ConfirmPasswordReset204ResponseHeaders{CacheControl: &noStore}}, nil
	}
	var ae *apiError
	switch {
	case err == nil:
		b := s.resetPage(ctx, addr, nil, true)
		return confirmResetResponse{gen.ConfirmPasswordReset200TexthtmlResponse{Body: b.r, ContentLength: b.n, Headers: headers}, b.extras}, nil
	case errors.As(err, &ae) && (ae.code == gen.ErrorCodePasswordTooWeak || ae.code == gen.ErrorCodeValidationError):
		b := s.resetPage(ctx, addr, ae, false)
		return confirmResetResponse{gen.ConfirmPasswordReset400TexthtmlResponse{LinkErrorTexthtmlResponse: b.linkError()}, b.extras}, nil
	}
	a, err := s.linkErrorPageHint(ctx, err, "page.reset.hint_new")
	if err != nil {
		return nil, err
	}
	return confirmResetResponse{gen.ConfirmPasswordReset400TexthtmlResponse{LinkErrorTexthtmlResponse: a.page.linkError()}, a.page.extras}, nil
}

// errPasswordsDiffer answers a reset form whose two passwords differ.
var errPasswordsDiffer = errValidation("The two passwords differ. Type the same new password twice.",
	[]gen.FieldError{{Field: "body.password2", Code: "mismatch", Message: "the two passwords differ"}})

// resetPassword uses a reset link to set pw and returns the address the
// link was mailed to (also when only the password was refused). It
// checks the link and the policy before it spends a hash, and everything
// again under the user's lock before it writes.
func (s *Server) resetPassword(ctx context.Context, userKey, token, pw string, mismatch bool) (string, error) {
	rl, err := s.checkResetLink(ctx, s.cfg.DB.Queries, userKey, token)
	if err != nil {
		return "", err
	}
	if mismatch {
		return rl.email.Email, errPasswordsDiffer
	}
	emails, err := s.cfg.DB.EmailsByUser(ctx, rl.user.ID)
	if err != nil {
		return "", err
	}
	if err := checkNewPassword("body.password", pw, emails); err != nil {
		return rl.email.Email, err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", err
	}
	err = s.withTx(ctx, func(q *store.Queries) error {
		rl, err := s.checkResetLink(ctx, q, userKey, token)
		if err != nil {
			return err
		}
		return s.applyReset(ctx, q, rl, hash)
	})
	return rl.email.Email, err
}

// applyReset sets a reset link's new password hash, in the transaction
// that checked the link under the user's lock.
func (s *Server) applyReset(ctx context.Context, q *store.Queries, rl resetLink, hash string) error {
	uid, e := rl.user.ID, rl.email
	if err := q.SetNewPassword(ctx, uid, hash); err != nil {
		return err
	}
	// The events, in the contract's order: email.verified (when the link's
	// address was not), then user.password_changed; a takeover's removed
	// addresses come first.
	var events []store.NewEvent
	if !e.Verified {
		// The click proved the address. An unverified primary was never
		// proven by anyone: its owner takes the account over.
		removed, err := s.takeOver(ctx, q, uid, e)
		if err != nil {
			return err
		}
		for _, r := range removed {
			events = append(events, emailRemoved(ActorLink, r))
		}
		verified, err := q.VerifyEmail(ctx, uid, e.ID, s.now())
		if err != nil {
			return taken(err)
		}
		events = append(events, emailVerified(ActorLink, verified))
		if err := s.audit(ctx, q, uid, eventEmailVerified, e.Email); err != nil {
			return err
		}
	}
	if err := s.emit(ctx, q, uid, append(events, passwordChanged(ActorLink))...); err != nil {
		return err
	}
	if _, err := q.DeleteUserSessions(ctx, uid, nil); err != nil {
		return err
	}
	if err := s.notify(ctx, q, uid, func(primary string) store.NewMessage {
		return mail.PasswordChanged(uid, primary, e.Email)
	}); err != nil {
		return err
	}
	return s.audit(ctx, q, uid, eventPasswordReset, e.Email)
}

// takeOver hands an account whose primary address e was never verified to
// the owner of that address, who just proved it: whoever signed up with it
// (perhaps someone else) loses every other address they added, so that
// none of them can reset the password again. Their sessions end with the
// reset; their set-primary links died with the password. It returns the
// addresses removed.
func (s *Server) takeOver(ctx context.Context, q *store.Queries, uid int64, e store.Email) ([]store.Email, error) {
	if !e.Primary {
		return nil, nil
	}
	removed, err := q.DeleteOtherEmails(ctx, uid, e.ID)
	if err != nil {
		return nil, err
	}
	for _, r := range removed {
		if err := s.audit(ctx, q, uid, eventEmailRemoved, r.Email); err != nil {
			return nil, err
		}
	}
	return removed, nil
}

// checkNewPassword applies the password policy to pw, a new password of
// the user holding emails, answering password_too_weak on field.
func checkNewPassword(field, pw string, emails []store.Email) error {
	addrs := make([]string, 0, 2*len(emails))
	for _, e := range emails {
		addrs = append(addrs, e.Email, e.Key)
	}
	return policyError(field, password.CheckPolicy(pw, addrs...))
}

// policyError turns a policy refusal into password_too_weak on field.
func policyError(field string, err error) error {
	var we *password.WeakError
	if errors.As(err, &we) {
		return errPasswordTooWeak(field, we)
	}
	return err
}
