package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/store"
)

// The admin API (tag admin in openapi.yaml): the operator's backend looks
// users up, creates them, changes their addresses and sessions, and reads
// the outbox and the audit trail. authenticate has checked the bearer
// token and its kind; every write is audited with actor admin:<name>
// (actorOf).

// The audit events only the admin API records.
const (
	eventUserCreated = "user_created"
	eventMailRetried = "mail_retried"
)

var (
	errNoSuchUser      = problem(http.StatusNotFound, gen.ErrorCodeNotFound, "No such user.")
	errNoSuchMessage   = problem(http.StatusNotFound, gen.ErrorCodeNotFound, "No such outbox message.")
	errEmailUnverified = problem(http.StatusBadRequest, gen.ErrorCodeEmailNotVerified, "Only a verified address can become primary.")
	errNotRetryable    = errValidation("Only a failed mail can be queued again.", []gen.FieldError{
		{Field: "path.id", Code: "not_failed", Message: "the mail is not failed"},
	})
)

// DefaultPageLimit is the page length of the admin lists without ?limit.
const DefaultPageLimit = 50

// pageOf returns the keyset page that a list's ?after= and ?limit= ask
// for; the spec bounds both.
func pageOf(after *gen.After, limit *gen.Limit) store.Page {
	p := store.Page{Limit: DefaultPageLimit}
	if after != nil {
		p.After = *after
	}
	if limit != nil {
		p.Limit = *limit
	}
	return p
}

// nextAfter is a page's next_after: null on the last page.
func nextAfter(next int64) *int64 {
	if next == 0 {
		return nil
	}
	return &next
}

// toAdminUser converts a user and its addresses (the primary first).
func toAdminUser(u store.User, emails []store.Email) gen.AdminUser {
	out := gen.AdminUser{Id: u.ID, DateJoined: u.DateJoined, Emails: make([]gen.Email, len(emails))}
	for i, e := range emails {
		out.Emails[i] = toAPIEmail(e)
		if e.Primary {
			out.Email = e.Email
		}
	}
	return out
}

// AdminListUsers answers a page of users, of those holding ?email= when
// it is given.
func (s *Server) AdminListUsers(ctx context.Context, req gen.AdminListUsersRequestObject) (gen.AdminListUsersResponseObject, error) {
	p := pageOf(req.Params.After, req.Params.Limit)
	var users []store.User
	var next int64
	var err error
	if req.Params.Email != nil {
		addr, nerr := normalize(*req.Params.Email)
		if nerr != nil {
			return nil, nerr
		}
		users, next, err = s.cfg.DB.UsersByEmailKey(ctx, addr.Key, p)
	} else {
		users, next, err = s.cfg.DB.ListUsers(ctx, p)
	}
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	emails, err := s.cfg.DB.EmailsOfUsers(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := gen.AdminListUsers200JSONResponse{Items: make([]gen.AdminUser, len(users)), NextAfter: nextAfter(next)}
	for i, u := range users {
		out.Items[i] = toAdminUser(u, emails[u.ID])
	}
	return out, nil
}

// AdminGetUser answers one user with its addresses.
func (s *Server) AdminGetUser(ctx context.Context, req gen.AdminGetUserRequestObject) (gen.AdminGetUserResponseObject, error) {
	u, err := s.cfg.DB.UserByID(ctx, req.Id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSuchUser
	}
	if err != nil {
		return nil, err
	}
	emails, err := s.cfg.DB.EmailsByUser(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return gen.AdminGetUser200JSONResponse(toAdminUser(u, emails)), nil
}

// AdminCreateUser creates a user with a primary address, verified or with
// its verification mail queued, and with a password or none (an empty
// password_hash: it logs in only after a reset).
func (s *Server) AdminCreateUser(ctx context.Context, req gen.AdminCreateUserRequestObject) (gen.AdminCreateUserResponseObject, error) {
	body := req.Body
	invite := body.SendPasswordReset != nil && *body.SendPasswordReset
	addr, err := normalize(body.Email)
	if err != nil {
		return nil, err
	}
	if body.Password != nil {
		if err := policyError("body.password", password.CheckPolicy(*body.Password, body.Email, addr.Email, addr.Key)); err != nil {
			return nil, err
		}
	}
	if _, err := s.cfg.DB.ClaimedBy(ctx, addr.Key); err == nil {
		return nil, errEmailTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hash := ""
	if body.Password != nil {
		if hash, err = s.cfg.Hasher.Hash(ctx, *body.Password); err != nil {
			return nil, err
		}
	}
	verified := body.Verified != nil && *body.Verified
	var user store.User
	var primary store.Email
	err = s.withTx(ctx, func(q *store.Queries) error {
		var err error
		user, primary, err = q.CreateUser(ctx, store.NewUser{Email: addr.Email, Key: addr.Key, PasswordHash: hash}, s.now())
		if err != nil {
			return taken(err)
		}
		if err := s.audit(ctx, q, user.ID, eventUserCreated, primary.Email); err != nil {
			return err
		}
		if verified {
			if primary, err = q.VerifyEmail(ctx, user.ID, primary.ID, s.now()); err != nil {
				return err
			}
			if err := s.audit(ctx, q, user.ID, eventEmailVerified, primary.Email); err != nil {
				return err
			}
		}
		if err := s.emit(ctx, q, user.ID, userCreated(actorOf(ctx), primary)); err != nil {
			return err
		}
		// An invitation's reset link proves the address when it is used,
		// so it stands in for the verification mail.
		if invite {
			return s.QueuePasswordReset(ctx, q, user.ID)
		}
		if verified {
			return nil
		}
		_, err = q.EnqueueMessage(ctx, mail.Verify(user.ID, primary.Email, primary.ID), s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return gen.AdminCreateUser201JSONResponse(toAdminUser(user, []store.Email{primary})), nil
}

// AdminDeleteUser deletes a user as self-deletion does, without the
// password.
func (s *Server) AdminDeleteUser(ctx context.Context, req gen.AdminDeleteUserRequestObject) (gen.AdminDeleteUserResponseObject, error) {
	err := s.withTx(ctx, func(q *store.Queries) error { return s.DeleteUser(ctx, q, req.Id) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSuchUser
	}
	if err != nil {
		return nil, err
	}
	return gen.AdminDeleteUser204Response{}, nil
}

// adminUserTx runs fn in a transaction that holds user id's lock (userTx),
// answering not_found for an unknown user.
func (s *Server) adminUserTx(ctx context.Context, id int64, fn func(q *store.Queries) error) error {
	err := s.userTx(ctx, id, func(q *store.Queries, _ store.User) error { return fn(q) })
	var ae *apiError
	if errors.Is(err, store.ErrNotFound) && !errors.As(err, &ae) {
		return errNoSuchUser
	}
	return err
}

// AdminAddEmail adds a secondary address, verified or with its
// verification mail queued, and notifies the primary address.
func (s *Server) AdminAddEmail(ctx context.Context, req gen.AdminAddEmailRequestObject) (gen.AdminAddEmailResponseObject, error) {
	addr, err := normalize(req.Body.Email)
	if err != nil {
		return nil, err
	}
	verified := req.Body.Verified != nil && *req.Body.Verified
	var added store.Email
	err = s.adminUserTx(ctx, req.Id, func(q *store.Queries) error {
		check, err := q.CheckAddress(ctx, req.Id, addr.Key)
		if err != nil {
			return err
		}
		if check.OwnID != 0 || check.Claimed {
			return errEmailTaken
		}
		if err := s.checkRoom(check.Count); err != nil {
			return err
		}
		added, err = q.InsertEmailAudited(ctx, store.NewEmail{UserID: req.Id, Email: addr.Email, Key: addr.Key, Verified: verified},
			s.event(ctx, req.Id, eventEmailAdded, addr.Email), s.now())
		if err != nil {
			return taken(err)
		}
		events := []store.NewEvent{emailAdded(actorOf(ctx), added)}
		if verified {
			events = append(events, emailVerified(actorOf(ctx), added))
		}
		if err := s.emit(ctx, q, req.Id, events...); err != nil {
			return err
		}
		var msgs []store.NewMessage
		if verified {
			if err := s.audit(ctx, q, req.Id, eventEmailVerified, added.Email); err != nil {
				return err
			}
		} else {
			msgs = append(msgs, mail.Verify(req.Id, added.Email, added.ID))
		}
		if s.cfg.Notices {
			msgs = append(msgs, mail.EmailAdded(req.Id, check.PrimaryEmail, added.Email))
		}
		if len(msgs) == 0 {
			return nil
		}
		_, err = q.EnqueueMessages(ctx, msgs, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return gen.AdminAddEmail201JSONResponse(toAPIEmail(added)), nil
}

// AdminDeleteEmail removes a secondary address and notifies the primary one.
func (s *Server) AdminDeleteEmail(ctx context.Context, req gen.AdminDeleteEmailRequestObject) (gen.AdminDeleteEmailResponseObject, error) {
	err := s.adminUserTx(ctx, req.Id, func(q *store.Queries) error {
		e, err := q.EmailByID(ctx, req.Id, req.EmailId)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if e.Primary {
			return errUndeletable
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
	if errors.Is(err, store.ErrPrimaryUndeletable) {
		return nil, errUndeletable
	}
	if err != nil {
		return nil, err
	}
	return gen.AdminDeleteEmail204Response{}, nil
}

// AdminMakePrimary makes a verified address primary and notifies the old
// primary address. Outstanding set-primary links die: the primary they
// would replace is no longer the one the user saw.
func (s *Server) AdminMakePrimary(ctx context.Context, req gen.AdminMakePrimaryRequestObject) (gen.AdminMakePrimaryResponseObject, error) {
	var primary store.Email
	err := s.adminUserTx(ctx, req.Id, func(q *store.Queries) error {
		e, err := q.EmailByID(ctx, req.Id, req.EmailId)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if e.Primary {
			primary = e
			return nil
		}
		if !e.Verified {
			return errEmailUnverified
		}
		old, err := q.PrimaryEmail(ctx, req.Id)
		if err != nil {
			return err
		}
		if primary, err = q.MakePrimary(ctx, req.Id, e.ID, s.now()); err != nil {
			return taken(err)
		}
		if _, err := q.NextChangeSeq(ctx, req.Id); err != nil {
			return err
		}
		old.Primary = false
		if err := s.emit(ctx, q, req.Id, primaryChanged(actorOf(ctx), primary, old)); err != nil {
			return err
		}
		if s.cfg.Notices {
			if _, err := q.EnqueueMessage(ctx, mail.PrimaryChanged(req.Id, old.Email, primary.Email), s.now()); err != nil {
				return err
			}
		}
		return s.audit(ctx, q, req.Id, eventPrimaryChanged, primary.Email)
	})
	if err != nil {
		return nil, err
	}
	return gen.AdminMakePrimary200JSONResponse(toAPIEmail(primary)), nil
}

// AdminDeleteSessions ends every session of a user.
func (s *Server) AdminDeleteSessions(ctx context.Context, req gen.AdminDeleteSessionsRequestObject) (gen.AdminDeleteSessionsResponseObject, error) {
	err := s.adminUserTx(ctx, req.Id, func(q *store.Queries) error { return s.EndUserSessions(ctx, q, req.Id) })
	if err != nil {
		return nil, err
	}
	return gen.AdminDeleteSessions204Response{}, nil
}

// AdminListOutbox answers a page of the outbox, never a link or a body.
func (s *Server) AdminListOutbox(ctx context.Context, req gen.AdminListOutboxRequestObject) (gen.AdminListOutboxResponseObject, error) {
	var f store.OutboxFilter
	if r := req.Params.Recipient; r != nil {
		addr, err := normalize(*r)
		if err != nil {
			return nil, err
		}
		f.Recipient = addr.Email
	}
	if st := req.Params.Status; st != nil {
		f.Status = string(*st)
	}
	if k := req.Params.Kind; k != nil {
		f.Kind = *k
	}
	msgs, next, err := s.cfg.DB.ListOutbox(ctx, f, pageOf(req.Params.After, req.Params.Limit))
	if err != nil {
		return nil, err
	}
	out := gen.AdminListOutbox200JSONResponse{Items: make([]gen.OutboxMessage, len(msgs)), NextAfter: nextAfter(next)}
	for i, m := range msgs {
		out.Items[i] = toOutboxMessage(m)
	}
	return out, nil
}

func toOutboxMessage(m store.Message) gen.OutboxMessage {
	out := gen.OutboxMessage{
		Id: m.ID, Kind: m.Kind, Recipient: m.Recipient, UserId: m.UserID, Status: gen.OutboxStatus(m.Status),
		Attempts: m.Attempts, LastError: m.LastError, CreatedAt: m.CreatedAt.UTC(), SentAt: m.SentAt,
	}
	if m.Status == store.StatusQueued || m.Status == store.StatusSending {
		next := m.NextAttemptAt.UTC()
		out.NextAttemptAt = &next
	}
	if out.SentAt != nil {
		sent := out.SentAt.UTC()
		out.SentAt = &sent
	}
	return out
}

// AdminRetryOutbox queues a failed mail again.
func (s *Server) AdminRetryOutbox(ctx context.Context, req gen.AdminRetryOutboxRequestObject) (gen.AdminRetryOutboxResponseObject, error) {
	err := s.withTx(ctx, func(q *store.Queries) error {
		m, err := q.MessageByID(ctx, req.Id)
		if errors.Is(err, store.ErrNotFound) {
			return errNoSuchMessage
		}
		if err != nil {
			return err
		}
		if err := q.RetryFailedMessage(ctx, m.ID, s.now()); errors.Is(err, store.ErrNotFound) {
			return errNotRetryable
		} else if err != nil {
			return err
		}
		return s.audit(ctx, q, m.UserID, eventMailRetried, m.Recipient)
	})
	if err != nil {
		return nil, err
	}
	s.cfg.MailQueued()
	return gen.AdminRetryOutbox202Response{}, nil
}

// AdminListAudit answers a page of the audit trail.
func (s *Server) AdminListAudit(ctx context.Context, req gen.AdminListAuditRequestObject) (gen.AdminListAuditResponseObject, error) {
	var userID int64
	if req.Params.UserId != nil {
		userID = *req.Params.UserId
	}
	events, next, err := s.cfg.DB.ListAudit(ctx, userID, pageOf(req.Params.After, req.Params.Limit))
	if err != nil {
		return nil, err
	}
	out := gen.AdminListAudit200JSONResponse{Items: make([]gen.AuditEntry, len(events)), NextAfter: nextAfter(next)}
	for i, e := range events {
		out.Items[i] = gen.AuditEntry{
			Id: e.ID, CreatedAt: e.CreatedAt.UTC(), Action: e.Event, Actor: e.Actor,
			Ip: e.IP, UserAgent: e.UserAgent, Email: e.Email,
		}
		if e.UserID != 0 {
			id := e.UserID
			out.Items[i].UserId = &id
		}
	}
	return out, nil
}
