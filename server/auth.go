package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/store"
)

// Login checks the password of the user who holds the address (primary or
// verified) and starts a fresh session. Unknown addresses and wrong
// passwords get the same answer after the same work: the same two limits,
// one lookup, one verification and one audit row (with no user for an
// address no account holds).
func (s *Server) Login(ctx context.Context, req gen.LoginRequestObject) (gen.LoginResponseObject, error) {
	network := factsFrom(ctx).network()
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.LoginNetwork, network); err != nil {
		return nil, err
	}
	// Failures count per address and client network, so that nobody
	// elsewhere can lock the owner out: normalized when it parses, so that
	// case and Unicode variants share a count, and folded raw text
	// otherwise. Every try spends one and a success gives it back, so a
	// guesser over the limit is refused before any hash.
	key := strings.ToLower(strings.TrimSpace(req.Body.Email))
	addr, addrErr := normalize(req.Body.Email)
	if addrErr == nil {
		key = addr.Key
	}
	failures := key + " " + network
	if err := s.limiter.Take(ctx, s.cfg.DB.Queries, s.rules.LoginFailures, failures); err != nil {
		return nil, err
	}
	var user store.User
	err := addrErr
	if err == nil {
		user, err = s.cfg.DB.UserByLoginKey(ctx, addr.Key)
	}
	var ok, rehash bool
	switch {
	case err == nil && user.PasswordHash == "":
		// A user without a usable password (imported unusable, or made
		// without one) logs in only after a reset; until then the answer
		// and the work are an unknown address's.
		err = s.cfg.Hasher.VerifyDummy(ctx, req.Body.Password)
	case err == nil:
		ok, rehash, err = s.cfg.Hasher.Verify(ctx, req.Body.Password, user.PasswordHash)
	case addrErr != nil || errors.Is(err, store.ErrNotFound):
		err = s.cfg.Hasher.VerifyDummy(ctx, req.Body.Password)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := s.cfg.DB.RecordEvent(ctx, s.event(ctx, user.ID, eventLoginFailed, addr.Email)); err != nil {
			return nil, err
		}
		return nil, errCredentials
	}
	var sess session.New
	err = s.withTx(ctx, func(q *store.Queries) error {
		if err := s.limiter.Refund(ctx, q, s.rules.LoginFailures, failures); err != nil {
			return err
		}
		var err error
		if sess, err = s.sessions.Create(ctx, q, user.ID); err != nil {
			return err
		}
		return s.audit(ctx, q, user.ID, eventLogin, addr.Email)
	})
	if err != nil {
		return nil, err
	}
	if rehash {
		s.rehash(ctx, user, req.Body.Password)
	}
	return loginResponse{
		gen.Login200JSONResponse{Body: toAPISession(sess.Session)},
		responseExtras{cookies: s.sessionCookies(sess.ID, sess.CSRFToken, sess.Session.Session.ExpiresAt)},
	}, nil
}

// rehash stores a new hash of password for user, whose stored hash has
// other parameters or another scheme (an imported Django hash). It runs
// after the login committed: a failure is logged and the login stands, and
// the old hash keeps working until the next login tries again.
func (s *Server) rehash(ctx context.Context, user store.User, password string) {
	fresh, err := s.cfg.Hasher.Hash(ctx, password)
	if err == nil {
		err = s.cfg.DB.ReplacePasswordHash(ctx, user.ID, user.PasswordHash, fresh)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WarnContext(ctx, "password rehash failed; the old hash stays", "user_id", user.ID, "error", err)
	}
}

// Logout ends the session and expires its cookies.
func (s *Server) Logout(ctx context.Context, _ gen.LogoutRequestObject) (gen.LogoutResponseObject, error) {
	sess, err := sessionFrom(ctx)
	if err != nil {
		return nil, err
	}
	err = s.withTx(ctx, func(q *store.Queries) error {
		if err := q.DeleteSession(ctx, sess.IDHash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return s.audit(ctx, q, sess.UserID, eventLogout, "")
	})
	if err != nil {
		return nil, err
	}
	return logoutResponse{gen.Logout204Response{}, responseExtras{cookies: s.sessionCookies("", "", time.Time{})}}, nil
}

// GetSession answers the session of the request, with its CSRF token.
func (s *Server) GetSession(ctx context.Context, _ gen.GetSessionRequestObject) (gen.GetSessionResponseObject, error) {
	sess, err := sessionFrom(ctx)
	if err != nil {
		return nil, err
	}
	return gen.GetSession200JSONResponse(toAPISession(sess)), nil
}

func toAPISession(s session.Session) gen.Session {
	return gen.Session{UserId: s.UserID, CsrfToken: s.CSRFToken, ExpiresAt: s.ExpiresAt}
}

// sessionCookies are the contract's three cookies for a session; an empty
// id expires them.
func (s *Server) sessionCookies(id, csrf string, expires time.Time) []*http.Cookie {
	maxAge := int(expires.Sub(s.now()).Seconds())
	if id == "" {
		maxAge = -1
	}
	cookie := func(name, value string, httpOnly bool) *http.Cookie {
		return &http.Cookie{
			Name:     name,
			Value:    value,
			Path:     "/",
			Domain:   s.cfg.CookieDomain,
			MaxAge:   maxAge,
			Secure:   s.cfg.CookieSecure,
			HttpOnly: httpOnly,
			SameSite: http.SameSiteLaxMode,
		}
	}
	return []*http.Cookie{
		cookie(session.Cookie, id, true),
		cookie(session.OldCookie, id, true),
		// Readable by scripts: a browser app copies it into X-CSRFToken.
		cookie(session.CSRFCookie, csrf, false),
	}
}
