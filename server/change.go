package server

import (
	"context"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
)

// RequestEmailChange checks the user's password and mails a set-primary
// link to the new address. The link carries the user's new change sequence,
// so the links of older requests stop working.
func (s *Server) RequestEmailChange(ctx context.Context, req gen.RequestEmailChangeRequestObject) (gen.RequestEmailChangeResponseObject, error) {
	var addr address.Address
	err := s.changeAddresses(ctx, req.Id, s.rules.AddressNetwork, func() (err error) {
		if addr, err = normalize(req.Body.NewEmail); err != nil {
			return err
		}
		return s.checkPassword(ctx, req.Id, req.Body.Password)
	}, func(q *store.Queries) error {
		check, err := q.CheckAddress(ctx, req.Id, addr.Key)
		if err != nil {
			return err
		}
		if check.PrimaryKey == addr.Key {
			return errSameAsCurrent
		}
		if check.Claimed {
			return errEmailTaken
		}
		if check.OwnID == 0 {
			// The confirmation will add the address: there must be room.
			if err := s.checkRoom(check.Count); err != nil {
				return err
			}
		}
		if err := s.takeMail(ctx, q, req.Id, addr.Key); err != nil {
			return err
		}
		seq, err := q.NextChangeSeq(ctx, req.Id)
		if err != nil {
			return err
		}
		if _, err := q.EnqueueMessage(ctx, mail.ChangeEmail(req.Id, addr.Email, seq), s.now()); err != nil {
			return err
		}
		return s.audit(ctx, q, req.Id, eventChangeRequested, addr.Email)
	})
	if err != nil {
		return nil, err
	}
	return gen.RequestEmailChange204Response{}, nil
}

// checkPassword checks the user's current password under the wrong-password
// limit: every try spends an event, a right password gives it back, so only
// wrong ones count. The limit is checked before the hash, so a locked-out
// guesser learns nothing.
func (s *Server) checkPassword(ctx context.Context, userID int64, password string) error {
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.WrongPassword, idKey(userID)); err != nil {
		return err
	}
	user, err := s.cfg.DB.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	var ok bool
	if user.PasswordHash == "" {
		// No usable password: nothing is right, after the same work.
		err = s.cfg.Hasher.VerifyDummy(ctx, password)
	} else {
		ok, _, err = s.cfg.Hasher.Verify(ctx, password, user.PasswordHash)
	}
	if err != nil {
		return err
	}
	if !ok {
		if err := s.withTx(ctx, func(q *store.Queries) error {
			return s.audit(ctx, q, userID, eventPasswordFailed, "")
		}); err != nil {
			return err
		}
		return errInvalidPassword
	}
	return s.limiter.Refund(ctx, s.cfg.DB.Queries, s.rules.WrongPassword, idKey(userID))
}
