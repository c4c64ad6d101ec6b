package server

import (
	"context"
	"errors"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/ratelimit"
	"github.com/useremail/useremail/store"
)

// ListEmails answers all addresses of the user, the primary first.
func (s *Server) ListEmails(ctx context.Context, req gen.ListEmailsRequestObject) (gen.ListEmailsResponseObject, error) {
	if _, err := ownSession(ctx, req.Id); err != nil {
		return nil, err
	}
	emails, err := s.cfg.DB.EmailsByUser(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListEmails200JSONResponse, len(emails))
	for i, e := range emails {
		out[i] = toAPIEmail(e)
	}
	return out, nil
}

// GetEmail answers one address of the user.
func (s *Server) GetEmail(ctx context.Context, req gen.GetEmailRequestObject) (gen.GetEmailResponseObject, error) {
	if _, err := ownSession(ctx, req.Id); err != nil {
		return nil, err
	}
	e, err := s.cfg.DB.EmailByID(ctx, req.Id, req.EmailId)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return gen.GetEmail200JSONResponse(toAPIEmail(e)), nil
}

// GetPrimaryEmail answers the user's primary address.
func (s *Server) GetPrimaryEmail(ctx context.Context, req gen.GetPrimaryEmailRequestObject) (gen.GetPrimaryEmailResponseObject, error) {
	if _, err := ownSession(ctx, req.Id); err != nil {
		return nil, err
	}
	e, err := s.cfg.DB.PrimaryEmail(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return gen.GetPrimaryEmail200JSONResponse(toAPIEmail(e)), nil
}

// AddEmail adds an unverified secondary address, queues its verification
// mail, and notifies the primary address.
func (s *Server) AddEmail(ctx context.Context, req gen.AddEmailRequestObject) (gen.AddEmailResponseObject, error) {
	var addr address.Address
	var added store.Email
	err := s.changeAddresses(ctx, req.Id, s.rules.AddressNetwork, func() (err error) {
		addr, err = normalize(req.Body.Email)
		return err
	}, func(q *store.Queries) error {
		check, err := q.CheckAddress(ctx, req.Id, addr.Key)
		if err != nil {
			return err
		}
		// The user's own address, or another's verified or primary one.
		if check.OwnID != 0 || check.Claimed {
			return errEmailTaken
		}
		if err := s.checkRoom(check.Count); err != nil {
			return err
		}
		if err := s.takeMail(ctx, q, req.Id, addr.Key); err != nil {
			return err
		}
		added, err = q.InsertEmailAudited(ctx, store.NewEmail{UserID: req.Id, Email: addr.Email, Key: addr.Key},
			s.event(ctx, req.Id, eventEmailAdded, addr.Email), s.now())
		if err != nil {
			return taken(err)
		}
		if err := s.emit(ctx, q, req.Id, emailAdded(actorOf(ctx), added)); err != nil {
			return err
		}
		msgs := []store.NewMessage{mail.Verify(req.Id, added.Email, added.ID)}
		if s.cfg.Notices {
			msgs = append(msgs, mail.EmailAdded(req.Id, check.PrimaryEmail, added.Email))
		}
		_, err = q.EnqueueMessages(ctx, msgs, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return gen.AddEmail201JSONResponse(toAPIEmail(added)), nil
}

// DeleteEmail removes a secondary address and notifies the primary one.
func (s *Server) DeleteEmail(ctx context.Context, req gen.DeleteEmailRequestObject) (gen.DeleteEmailResponseObject, error) {
	err := s.changeAddresses(ctx, req.Id, ratelimit.Rule{}, nil, func(q *store.Queries) error {
		e, err := q.EmailByID(ctx, req.Id, req.EmailId)
		if err != nil {
			return err
		}
		if err := q.DeleteEmail(ctx, req.Id, e.ID); err != nil {
			return err
		}
		if err := s.emit(ctx, q, req.Id, emailRemoved(actorOf(ctx), e)); err != nil {
			return err
		}
		if err := s.notify(ctx, q, req.Id, func(primary string) store.NewMessage {
			return mail.EmailRemoved(req.Id, primary, e.Email)
		}); err != nil {
			return err
		}
		return s.audit(ctx, q, req.Id, eventEmailRemoved, e.Email)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errNotFound
	case errors.Is(err, store.ErrPrimaryUndeletable):
		return nil, errUndeletable
	case err != nil:
		return nil, err
	}
	return gen.DeleteEmail204Response{}, nil
}

// SendVerification queues a new verification mail for an unverified address.
func (s *Server) SendVerification(ctx context.Context, req gen.SendVerificationRequestObject) (gen.SendVerificationResponseObject, error) {
	err := s.changeAddresses(ctx, req.Id, ratelimit.Rule{}, nil, func(q *store.Queries) error {
		e, err := q.EmailByID(ctx, req.Id, req.EmailId)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if e.Verified {
			return errAlreadyVerified
		}
		if err := s.takeMail(ctx, q, req.Id, e.Key); err != nil {
			return err
		}
		_, err = q.EnqueueMessage(ctx, mail.Verify(req.Id, e.Email, e.ID), s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return gen.SendVerification202Response{}, nil
}

// changeAddresses runs a change to user id's addresses with the rules every
// such change keeps, in this order: the session acts on its own user; the
// change spends one event of the user's email-management limit, and one of
// the client network's under perNetwork (off for changes that name no new
// address); check (if any) runs outside the transaction; apply runs in one
// transaction, after the user's row is locked. The limits are spent outside
// it, so that a refusal such as email_taken counts too.
func (s *Server) changeAddresses(ctx context.Context, userID int64, perNetwork ratelimit.Rule, check func() error, apply func(q *store.Queries) error) error {
	if _, err := ownSession(ctx, userID); err != nil {
		return err
	}
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.Manage, idKey(userID)); err != nil {
		return err
	}
	if perNetwork.On() {
		if err := s.limiter.Take(ctx, s.cfg.DB.Queries, perNetwork, factsFrom(ctx).network()); err != nil {
			return err
		}
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	return s.userTx(ctx, userID, func(q *store.Queries, _ store.User) error { return apply(q) })
}

// takeMail spends the mail limits of one verification mail to the address
// of key for user userID: the resend interval per user and address, and the
// daily cap per address across all users. Call it in the transaction that
// queues the mail, so that a refusal, or a rollback, spends nothing.
func (s *Server) takeMail(ctx context.Context, q *store.Queries, userID int64, key string) error {
	if err := s.limiter.Take(ctx, q, s.rules.Resend, idKey(userID)+" "+key); err != nil {
		return err
	}
	return s.limiter.Take(ctx, q, s.rules.MailCap, key)
}

// checkRoom refuses a new address to a user who has count addresses, when
// that is the maximum already.
func (s *Server) checkRoom(count int) error {
	if count >= s.cfg.MaxEmails {
		return errTooManyEmails(s.cfg.MaxEmails)
	}
	return nil
}

// notify queues a security notice to the user's primary address, when
// notices are on.
func (s *Server) notify(ctx context.Context, q *store.Queries, userID int64, msg func(primary string) store.NewMessage) error {
	if !s.cfg.Notices {
		return nil
	}
	primary, err := q.PrimaryEmail(ctx, userID)
	if err != nil {
		return err
	}
	_, err = q.EnqueueMessage(ctx, msg(primary.Email), s.now())
	return err
}
