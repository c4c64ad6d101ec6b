package server

import (
	"context"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
)

// ChangePassword sets a new password after checking the current one (under
// the wrong-password limit of an email change), ends every other session
// of the user, and notifies the primary address. The new password's
// change of hash ends every reset link, and SetNewPassword every
// set-primary link.
func (s *Server) ChangePassword(ctx context.Context, req gen.ChangePasswordRequestObject) (gen.ChangePasswordResponseObject, error) {
	sess, err := ownSession(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	emails, err := s.cfg.DB.EmailsByUser(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	if err := checkNewPassword("body.new_password", req.Body.NewPassword, emails); err != nil {
		return nil, err
	}
	if err := s.checkPassword(ctx, req.Id, req.Body.Password); err != nil {
		return nil, err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, req.Body.NewPassword)
	if err != nil {
		return nil, err
	}
	err = s.userTx(ctx, req.Id, func(q *store.Queries, _ store.User) error {
		if err := q.SetNewPassword(ctx, req.Id, hash); err != nil {
			return err
		}
		if _, err := q.DeleteUserSessions(ctx, req.Id, sess.IDHash); err != nil {
			return err
		}
		if err := s.emit(ctx, q, req.Id, passwordChanged(actorOf(ctx))); err != nil {
			return err
		}
		if err := s.notify(ctx, q, req.Id, func(primary string) store.NewMessage {
			return mail.PasswordChanged(req.Id, primary, "")
		}); err != nil {
			return err
		}
		return s.audit(ctx, q, req.Id, eventPasswordChanged, "")
	})
	if err != nil {
		return nil, err
	}
	return gen.ChangePassword204Response{}, nil
}

// EndSessions ends every session of the user, this one included, and
// expires the cookies.
func (s *Server) EndSessions(ctx context.Context, req gen.EndSessionsRequestObject) (gen.EndSessionsResponseObject, error) {
	if _, err := ownSession(ctx, req.Id); err != nil {
		return nil, err
	}
	if err := s.withTx(ctx, func(q *store.Queries) error { return s.EndUserSessions(ctx, q, req.Id) }); err != nil {
		return nil, err
	}
	return endSessionsResponse{gen.EndSessions204Response{}, responseExtras{cookies: s.sessionCookies("", "", time.Time{})}}, nil
}

// EndUserSessions ends every session of user userID in the transaction of
// q and audits it: the work of sign-out-everywhere, for any caller (the
// admin API too).
func (s *Server) EndUserSessions(ctx context.Context, q *store.Queries, userID int64) error {
	if _, err := q.DeleteUserSessions(ctx, userID, nil); err != nil {
		return err
	}
	return s.audit(ctx, q, userID, eventSessionsEnded, "")
}

// DeleteAccount deletes the user after checking its password (under the
// wrong-password limit) and expires the cookies.
func (s *Server) DeleteAccount(ctx context.Context, req gen.DeleteAccountRequestObject) (gen.DeleteAccountResponseObject, error) {
	if _, err := ownSession(ctx, req.Id); err != nil {
		return nil, err
	}
	if err := s.checkPassword(ctx, req.Id, req.Body.Password); err != nil {
		return nil, err
	}
	if err := s.withTx(ctx, func(q *store.Queries) error { return s.DeleteUser(ctx, q, req.Id) }); err != nil {
		return nil, err
	}
	return deleteAccountResponse{gen.DeleteAccount204Response{}, responseExtras{cookies: s.sessionCookies("", "", time.Time{})}}, nil
}

// DeleteUser deletes user userID in the transaction of q, for any caller
// (the admin API too): the user with every address and session, so that
// its addresses are free at once; its unsent mail is cancelled, an
// account_deleted notice goes to the old primary, and the audit trail
// keeps the deletion under the user's id; the event user.deleted names the
// actor of ctx (WithActor). It fails with store.ErrNotFound for no such
// user.
func (s *Server) DeleteUser(ctx context.Context, q *store.Queries, userID int64) error {
	user, err := q.LockUser(ctx, userID)
	if err != nil {
		return err
	}
	primary, err := q.PrimaryEmail(ctx, userID)
	if err != nil {
		return err
	}
	if err := q.DeleteUser(ctx, userID); err != nil {
		return err
	}
	// user.deleted alone: no email.removed for the addresses that go too.
	if err := s.emit(ctx, q, userID, userDeleted(actorOf(ctx))); err != nil {
		return err
	}
	if s.cfg.Notices {
		if _, err := q.EnqueueMessage(ctx, mail.AccountDeleted(primary.Email, user.Language), s.now()); err != nil {
			return err
		}
	}
	return s.audit(ctx, q, userID, eventAccountDeleted, primary.Email)
}
