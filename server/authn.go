package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/store"
)

type sessionKey struct{}

// sessionFrom returns the session that authenticate put into the request's
// context. Only handlers of operations with a session security requirement
// call it.
func sessionFrom(ctx context.Context) (session.Session, error) {
	sess, ok := ctx.Value(sessionKey{}).(session.Session)
	if !ok {
		return session.Session{}, errNotAuthenticated
	}
	return sess, nil
}

// ownSession returns the session if it belongs to user id.
func ownSession(ctx context.Context, id int64) (session.Session, error) {
	sess, err := sessionFrom(ctx)
	if err != nil {
		return sess, err
	}
	if sess.UserID != id {
		return sess, errForbidden
	}
	return sess, nil
}

// authentication is one request's check of its security requirements: the
// session is resolved once, whichever scheme asks first.
type authentication struct {
	s        *Server
	req      *http.Request
	opts     openapi3filter.Options
	resolved bool
	sess     session.Session
	err      error

	admin      store.AdminToken // the admin API's token (adminToken scheme)
	adminFound bool
}

// authenticate checks the requirements sec of the request in input as the
// spec states them (openapi3filter.ValidateSecurityRequirements, deciding
// each scheme in scheme), and that a path's {id} is the session's user. It
// returns ctx with the session, when one was resolved.
func (s *Server) authenticate(ctx context.Context, input *openapi3filter.RequestValidationInput, sec openapi3.SecurityRequirements) (context.Context, error) {
	req := input.Request
	a := &authentication{s: s, req: req}
	a.opts.AuthenticationFunc = a.scheme
	input.Options = &a.opts
	// The schemes read cookies and headers only: without a body to hand
	// them, ValidateSecurityRequirements does not read and rebuild it for
	// every requirement.
	body := req.Body
	req.Body = http.NoBody
	err := openapi3filter.ValidateSecurityRequirements(ctx, input, sec)
	req.Body = body
	if err != nil {
		return ctx, err // carries the session's, the CSRF check's or the token's apiError
	}
	if a.adminFound {
		return context.WithValue(ctx, adminKey{}, a.admin), nil
	}
	if !a.resolved {
		return ctx, nil
	}
	if raw, ok := input.PathParams["id"]; ok {
		// An id the spec refuses (below 1) is a validation error later.
		if id, err := strconv.ParseInt(raw, 10, 64); err == nil && id >= 1 && id != a.sess.UserID {
			return ctx, errForbidden
		}
	}
	return context.WithValue(ctx, sessionKey{}, a.sess), nil
}

// scheme is the validator's AuthenticationFunc: it decides the security
// schemes of openapi.yaml.
func (a *authentication) scheme(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName == adminTokenScheme {
		var err error
		a.admin, err = a.s.resolveAdmin(ctx, a.req)
		a.adminFound = err == nil
		return err
	}
	if !a.resolved {
		a.sess, a.err = a.s.resolveSession(ctx, a.req)
		a.resolved = true
	}
	if a.err != nil {
		return a.err
	}
	switch in.SecuritySchemeName {
	case "sessionCookie", "osessionCookie":
		return nil
	case "csrfHeader":
		if !a.sess.CSRFMatches(a.req.Header.Get(in.SecurityScheme.Name)) {
			return errCSRF
		}
		return a.s.checkOrigin(a.req)
	}
	return errNotAuthenticated
}

// resolveSession finds the session of the request's cookies. Every value of
// sessionid and osessionid must name the same session.
func (s *Server) resolveSession(ctx context.Context, req *http.Request) (session.Session, error) {
	var id string
	for _, ck := range req.Cookies() {
		if ck.Name != session.Cookie && ck.Name != session.OldCookie {
			continue
		}
		if id != "" && ck.Value != id {
			return session.Session{}, errSessionInvalid
		}
		id = ck.Value
	}
	sess, err := s.sessions.Resolve(ctx, id, "")
	switch {
	case errors.Is(err, session.ErrNone), errors.Is(err, session.ErrExpired):
		return sess, errNotAuthenticated
	case errors.Is(err, session.ErrUnknown):
		return sess, errSessionInvalid
	}
	return sess, err
}

// checkOrigin refuses an unsafe request under a session whose Origin (or,
// without one, Referer) is neither the public URL's origin nor a trusted
// one. Requests without either header (API clients) pass: the CSRF token
// already proves that the client could read it.
func (s *Server) checkOrigin(req *http.Request) error {
	origin := req.Header.Get("Origin")
	if origin == "" {
		if ref := req.Header.Get("Referer"); ref != "" {
			origin = originOf(ref)
		}
	}
	if origin == "" || s.trustedOrigins[origin] || origin == requestOrigin(req) {
		return nil
	}
	return problem(http.StatusForbidden, gen.ErrorCodeCsrfFailed, "The request comes from an origin this service does not trust.")
}

// requestOrigin is the origin the request was sent to, for same-origin
// pages (Swagger UI) when no public URL is configured for that host.
func requestOrigin(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}
