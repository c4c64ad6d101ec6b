package server

import (
	"context"
	"errors"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/ratelimit"
	"github.com/useremail/useremail/store"
)

// SignUp creates a user with an unverified primary address and queues the
// verification mail to it, unless the address has had its day's share of
// verification mails (Rules.MailCap): the user is created all the same, and
// can ask for the mail again (SendVerification) once the cap allows.
func (s *Server) SignUp(ctx context.Context, req gen.SignUpRequestObject) (gen.SignUpResponseObject, error) {
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.SignUpNetwork, factsFrom(ctx).network()); err != nil {
		return nil, err
	}
	addr, err := normalize(req.Body.Email)
	if err != nil {
		return nil, err
	}
	if err := policyError("body.password", password.CheckPolicy(req.Body.Password, req.Body.Email, addr.Email, addr.Key)); err != nil {
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
	var capped error
	err = s.withTx(ctx, func(q *store.Queries) error {
		var err error
		user, primary, err = q.CreateUser(ctx, store.NewUser{Email: addr.Email, Key: addr.Key, PasswordHash: hash,
			Language: s.catalog.Match(factsFrom(ctx).acceptLanguage)}, s.now())
		if err != nil {
			return taken(err)
		}
		if err := s.emit(ctx, q, user.ID, userCreated(actorOf(ctx), primary)); err != nil {
			return err
		}
		var exceeded *ratelimit.Exceeded
		capped = s.takeMail(ctx, q, user.ID, addr.Key)
		switch {
		case capped == nil:
			if _, err := q.EnqueueMessage(ctx, mail.Verify(user.ID, primary.Email, primary.ID), s.now()); err != nil {
				return err
			}
		case !errors.As(capped, &exceeded):
			return capped
		}
		return s.audit(ctx, q, user.ID, eventSignup, primary.Email)
	})
	if err != nil {
		return nil, err
	}
	if capped != nil {
		s.countRefusal(capped)
		s.log.InfoContext(ctx, "verification mail not queued: the address had its day's share", "user_id", user.ID)
	}
	return gen.SignUp201JSONResponse{Id: user.ID, Email: primary.Email, DateJoined: user.DateJoined}, nil
}
