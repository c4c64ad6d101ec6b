package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/store"
)

// requestInfo is what the middleware learns about a request and the
// handlers need: it travels in the request's context, so strict handlers
// never see echo.Context.
type requestInfo struct {
	id        string
	ip        string
	userAgent string
	accept    string
	mediaType string // of the request body, parameters stripped
	route     string // the spec's path template, once the validator found it

	sessionResolved bool
	session         session.Session
	sessionErr      error

	// Set on the response by the strict middleware responseExtras: a
	// strict response can carry only the headers its spec declares.
	cookies []*http.Cookie
	header  http.Header
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// sessionFrom returns the session that the validator authenticated. Only
// handlers of operations with a session security requirement call it.
func sessionFrom(ctx context.Context) (session.Session, error) {
	info := infoFrom(ctx)
	if !info.sessionResolved || info.sessionErr != nil {
		return session.Session{}, errNotAuthenticated
	}
	return info.session, nil
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

func requestID(c echo.Context) string { return infoFrom(c.Request().Context()).id }

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:/+=-]{1,128}$`)

// begin creates the request's requestInfo and its request id (honouring a
// sane incoming X-Request-ID), gives the request its deadline (see
// deadline), sets the headers every answer carries, and logs one line per
// request.
func (s *Server) begin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		info := &requestInfo{
			ip:        c.RealIP(),
			userAgent: req.UserAgent(),
			accept:    req.Header.Get("Accept"),
		}
		if id := req.Header.Get(echo.HeaderXRequestID); requestIDPattern.MatchString(id) {
			info.id = id
		} else {
			info.id = newRequestID()
		}
		if mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); err == nil {
			info.mediaType = mt
		}
		// One context and one copy of the request for both: the requestInfo
		// and the deadline.
		ctx, cancel := context.WithTimeout(context.WithValue(req.Context(), infoKey{}, info), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(req.WithContext(ctx))

		h := c.Response().Header()
		h.Set(echo.HeaderXRequestID, info.id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Link URLs carry their token in the path: never leak it onwards.
		h.Set("Referrer-Policy", "no-referrer")
		// JSON answers need no capabilities; HTML pages set their own policy.
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		// Answers carry sessions, CSRF tokens, addresses or link results:
		// no cache keeps them. Static assets (Swagger UI) say otherwise.
		h.Set("Cache-Control", "no-store")

		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.observe(c, info, time.Since(start))
		return nil
	}
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// limitBody caps how much of a body is ever read; the validator refuses a
// declared Content-Length over the limit before reading anything.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit)
		}
		return next(c)
	}
}

// isAPIPath tells the routes of the spec from those served beside it
// (Swagger UI and its assets).
func isAPIPath(path string) bool {
	return path != "/docs" && !strings.HasPrefix(path, "/docs/")
}

// validate checks every API request against openapi.yaml before a handler
// runs: the route must be in the spec exactly (Echo's router alone would
// let the last path parameter swallow a trailing slash; routeIndex answers
// for the routes where Echo's match provably is the spec's, FindRoute for
// the rest), then the security
// requirements (session, CSRF, and that {id} is the session's user), the
// media type, the parameters and the body.
func (s *Server) validate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if !isAPIPath(req.URL.Path) {
			return next(c)
		}
		route, params, found := s.routes.find(c, req)
		if !found {
			var err error
			if route, params, err = s.router.FindRoute(req); err != nil {
				if errors.Is(err, routers.ErrMethodNotAllowed) {
					c.Response().Header().Set("Allow", s.allowedMethods(req))
					return errMethod
				}
				return errRouteNotFound
			}
		}
		if route.Operation.RequestBody == nil {
			// An operation without a body ignores one: it is never read.
			req.Body = http.NoBody
		} else if req.ContentLength > s.cfg.BodyLimit {
			return errBodyTooLarge(s.cfg.BodyLimit)
		}
		ctx := req.Context()
		info := infoFrom(ctx)
		info.route = route.Path
		input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: &s.authOptions}

		if sec := route.Operation.Security; sec != nil && len(*sec) > 0 {
			if err := openapi3filter.ValidateSecurityRequirements(ctx, input, *sec); err != nil {
				return err // carries the session's or the CSRF check's apiError
			}
			if raw, ok := params["id"]; ok {
				// An id the spec refuses (below 1) is a validation error below.
				if id, err := strconv.ParseInt(raw, 10, 64); err == nil && id >= 1 && id != info.session.UserID {
					return errForbidden
				}
			}
		}
		if body := route.Operation.RequestBody; body != nil && body.Value.Content.Get(req.Header.Get(echo.HeaderContentType)) == nil {
			if req.ContentLength != 0 || req.Header.Get(echo.HeaderContentType) != "" {
				return errMediaType
			}
		}
		if route.Operation.RequestBody != nil && req.Body != nil && req.Body != http.NoBody {
			if err := checkJSONText(req); err != nil {
				return err
			}
		}
		input.Options = &s.validateOptions
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			return requestError(err)
		}
		return next(c)
	}
}

// checkJSONText refuses a body that is not one JSON text in UTF-8 (RFC
// 8259). The decoders behind it are lenient: they turn invalid bytes into
// U+FFFD silently (an address would be stored other than sent) and ignore
// whatever follows the first value. It reads the body (within the limit)
// and puts it back for the validator and the handler; an empty body is left
// to the validator, which knows whether one is required.
func checkJSONText(req *http.Request) error {
	data, err := io.ReadAll(req.Body)
	if err != nil {
		return requestError(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	switch {
	case len(data) == 0:
		return nil
	case !utf8.Valid(data):
		return errValidation("The request body is not valid UTF-8.", []gen.FieldError{
			{Field: "body", Code: "malformed_json", Message: "the body is not valid UTF-8"},
		})
	case !json.Valid(data):
		return errValidation("The request body is not valid JSON.", []gen.FieldError{
			{Field: "body", Code: "malformed_json", Message: "the body is not valid JSON"},
		})
	}
	return nil
}

// allowedMethods lists the methods the spec has for the request's path.
func (s *Server) allowedMethods(req *http.Request) string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r := req.Clone(req.Context())
		r.Method = m
		if _, _, err := s.router.FindRoute(r); err == nil {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

// authenticate is the validator's AuthenticationFunc: it decides the
// security schemes of openapi.yaml. The session is resolved once per
// request, whichever scheme asks first.
func (s *Server) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	info := infoFrom(ctx)
	if !info.sessionResolved {
		info.session, info.sessionErr = s.resolveSession(ctx, req)
		info.sessionResolved = true
	}
	if info.sessionErr != nil {
		return info.sessionErr
	}
	switch in.SecuritySchemeName {
	case "sessionCookie", "osessionCookie":
		return nil
	case "csrfHeader":
		if !info.session.CSRFMatches(req.Header.Get(in.SecurityScheme.Name)) {
			return errCSRF
		}
		return s.checkOrigin(req)
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

// responseExtras is a strict middleware that sets the cookies and headers a
// handler asked for (a strict response can carry only one Set-Cookie, and
// only the headers its spec declares).
func responseExtras(f gen.StrictHandlerFunc, _ string) gen.StrictHandlerFunc {
	return func(c echo.Context, req any) (any, error) {
		resp, err := f(c, req)
		if err == nil {
			info := infoFrom(c.Request().Context())
			for _, ck := range info.cookies {
				c.SetCookie(ck)
			}
			for name, values := range info.header {
				c.Response().Header()[name] = values
			}
		}
		return resp, err
	}
}

// requestError maps the validator's findings to problems: a validation_error
// with one entry per field, or invalid_email when the only findings are on
// address fields, or link_invalid for the path of a link.
func requestError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(tooLarge.Limit)
	}
	var fields []gen.FieldError
	allEmail, link := true, false
	for _, re := range requestErrors(err) {
		switch {
		case re.Parameter != nil:
			name := re.Parameter.Name
			if name == "signed_email" || name == "user_id_key" {
				link = true
			}
			allEmail = false
			fields = append(fields, gen.FieldError{Field: re.Parameter.In + "." + name, Code: "invalid", Message: paramMessage(re)})
		case re.RequestBody != nil:
			for _, fe := range bodyFieldErrors(re) {
				if !fe.email {
					allEmail = false
				}
				fields = append(fields, fe.FieldError)
			}
		default:
			allEmail = false
			fields = append(fields, gen.FieldError{Field: "request", Code: "invalid", Message: re.Error()})
		}
	}
	switch {
	case link:
		return errLinkInvalid
	case len(fields) > 0 && allEmail:
		e := errInvalidEmail(fields[0].Message)
		e.fields = fields
		return e
	}
	return errValidation("The request does not match the API specification.", fields)
}

// requestErrors flattens the validator's MultiError into its RequestErrors.
func requestErrors(err error) []*openapi3filter.RequestError {
	// Only a MultiError at this level is flattened: errors.As would also
	// find the MultiError inside a RequestError (its schema findings) and
	// lose the parameter or body they belong to.
	if me, ok := err.(openapi3.MultiError); ok {
		var out []*openapi3filter.RequestError
		for _, e := range me {
			out = append(out, requestErrors(e)...)
		}
		return out
	}
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		return []*openapi3filter.RequestError{re}
	}
	return []*openapi3filter.RequestError{{Err: err}}
}

func paramMessage(re *openapi3filter.RequestError) string {
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		return se.Reason
	}
	if re.Reason != "" {
		return re.Reason
	}
	return "invalid value"
}

type fieldError struct {
	gen.FieldError
	email bool // the field is an email address (schema format email)
}

var propertyInReason = regexp.MustCompile(`property "([^"]*)"`)

// bodyFieldErrors turns a body's RequestError into field errors.
func bodyFieldErrors(re *openapi3filter.RequestError) []fieldError {
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return []fieldError{{FieldError: gen.FieldError{Field: "body", Code: "required", Message: "a JSON body is required"}}}
	}
	var schemaErrs []*openapi3.SchemaError
	var me openapi3.MultiError
	var se *openapi3.SchemaError
	switch {
	case errors.As(re.Err, &me):
		for _, e := range me {
			if errors.As(e, &se) {
				schemaErrs = append(schemaErrs, se)
			}
		}
	case errors.As(re.Err, &se):
		schemaErrs = append(schemaErrs, se)
	}
	if len(schemaErrs) == 0 {
		var pe *openapi3filter.ParseError
		if errors.As(re.Err, &pe) {
			return []fieldError{{FieldError: gen.FieldError{Field: "body", Code: "malformed_json", Message: "the body is not valid JSON"}}}
		}
		return []fieldError{{FieldError: gen.FieldError{Field: "body", Code: "invalid", Message: re.Error()}}}
	}
	out := make([]fieldError, 0, len(schemaErrs))
	for _, se := range schemaErrs {
		path := se.JSONPointer()
		code := snake(se.SchemaField)
		// kin-openapi reports a property that additionalProperties: false
		// refuses under the keyword "properties".
		unknown := se.SchemaField == "additionalProperties" || se.SchemaField == "properties"
		if se.SchemaField == "required" || unknown {
			if m := propertyInReason.FindStringSubmatch(se.Reason); m != nil {
				path = append(path, m[1])
			}
			if unknown {
				code = "unknown_field"
			}
		}
		field := "body"
		if len(path) > 0 {
			field += "." + strings.Join(path, ".")
		}
		email := se.Schema != nil && se.Schema.Format == "email" && se.SchemaField != "type"
		out = append(out, fieldError{FieldError: gen.FieldError{Field: field, Code: code, Message: se.Reason}, email: email})
	}
	return out
}

// snake turns a JSON Schema keyword into a field error code: maxLength → max_length.
func snake(keyword string) string {
	var b strings.Builder
	for i, r := range keyword {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "invalid"
	}
	return b.String()
}

// isUnavailable reports a store that cannot be reached.
func isUnavailable(err error) bool { return errors.Is(err, store.ErrUnavailable) }
