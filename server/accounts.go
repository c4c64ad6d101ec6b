package server

import (
	"context"
	"errors"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
)

// SignUp creates a user with an unverified primary address and queues the
// verification mail to it.
func (s *Server) SignUp(ctx context.Context, req gen.SignUpRequestObject) (gen.SignUpResponseObject, error) {
	addr, err := normalize(req.Body.Email)
	if err != nil {
		return nil, err
	}
	// Refuse a claimed address before spending a password hash on it; the
	// unique index decides races inside the transaction below.
	if _, err := s.cfg.DB.ClaimedBy(ctx, addr.Key); err == nil {
		return nil, errEmailTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, req.Body.Password)
	if err != nil {
		return nil, err
	}
	var user store.User
	var primary store.Email
	err = s.withTx(ctx, func(q *store.Queries) error {
		var err error
		user, primary, err = q.CreateUser(ctx, store.NewUser{Email: addr.Email, Key: addr.Key, PasswordHash: hash}, s.now())
		if err != nil {
			return taken(err)
		}
		if err := s.limiter.Take(ctx, q, s.rules.Resend, addr.Key); err != nil {
			return err
		}
		if _, err := q.EnqueueMessage(ctx, mail.Verify(user.ID, primary.Email, primary.ID), s.now()); err != nil {
			return err
		}
		return s.audit(ctx, q, user.ID, eventSignup, primary.Email)
	})
	if err != nil {
		return nil, err
	}
	return gen.SignUp201JSONResponse{Id: user.ID, Email: primary.Email, DateJoined: user.DateJoined}, nil
}
