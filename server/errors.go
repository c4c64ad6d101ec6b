package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/ratelimit"
	"github.com/useremail/useremail/store"
)

// apiError is a failure the client should see: a status, a stable code and
// a sentence for people. Handlers return it as an error; the one
// HTTPErrorHandler renders it as application/problem+json.
type apiError struct {
	status     int
	code       gen.ErrorCode
	detail     string
	fields     []gen.FieldError
	retryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.detail) }

func problem(status int, code gen.ErrorCode, detail string) *apiError {
	return &apiError{status: status, code: code, detail: detail}
}

// The expected failures, one constructor each, so that every answer with a
// given code reads the same.
var (
	errNotAuthenticated = problem(http.StatusUnauthorized, gen.ErrorCodeNotAuthenticated, "Log in first: this needs a session.")
	errSessionInvalid   = problem(http.StatusUnauthorized, gen.ErrorCodeSessionInvalid, "The session cookies name no session, or two different ones. Log in again.")
	errCSRF             = problem(http.StatusForbidden, gen.ErrorCodeCsrfFailed, "Send the session's CSRF token in the X-CSRFToken header.")
	errForbidden        = problem(http.StatusForbidden, gen.ErrorCodeForbidden, "A session may only act on its own user.")
	errNotFound         = problem(http.StatusNotFound, gen.ErrorCodeNotFound, "No such email address.")
	errRouteNotFound    = problem(http.StatusNotFound, gen.ErrorCodeNotFound, "No such route.")
	errMethod           = problem(http.StatusMethodNotAllowed, gen.ErrorCodeMethodNotAllowed, "This route does not take that method.")
	errMediaType        = problem(http.StatusUnsupportedMediaType, gen.ErrorCodeUnsupportedMediaType, "Send the body as application/json.")
	errEmailTaken       = problem(http.StatusBadRequest, gen.ErrorCodeEmailTaken, "This address is already in use.")
	errSameAsCurrent    = problem(http.StatusBadRequest, gen.ErrorCodeEmailSameAsCurrent, "This is already your primary address.")
	errInvalidPassword  = problem(http.StatusBadRequest, gen.ErrorCodeInvalidPassword, "The password is not right.")
	errUndeletable      = problem(http.StatusBadRequest, gen.ErrorCodePrimaryEmailUndeletable, "The primary address cannot be removed. Make another address primary first.")
	errAlreadyVerified  = problem(http.StatusBadRequest, gen.ErrorCodeAlreadyVerified, "This address is verified already.")
	errCredentials      = problem(http.StatusBadRequest, gen.ErrorCodeInvalidCredentials, "The email address or the password is not right.")
	errLinkInvalid      = problem(http.StatusBadRequest, gen.ErrorCodeLinkInvalid, "This link is not valid. Copy the whole link from the mail, or ask for a new one.")
	errLinkExpired      = problem(http.StatusBadRequest, gen.ErrorCodeLinkExpired, "This link is too old. Ask for a new one.")
	errLinkUsed         = problem(http.StatusBadRequest, gen.ErrorCodeLinkUsed, "This link has been used already, or a newer one was sent.")
	errUnavailable      = problem(http.StatusServiceUnavailable, gen.ErrorCodeUnavailable, "The database cannot be reached. Try again shortly.")
	errInternal         = problem(http.StatusInternalServerError, gen.ErrorCodeInternal, "Something went wrong on our side.")
)

func errTooManyEmails(limit int) *apiError {
	return problem(http.StatusBadRequest, gen.ErrorCodeTooManyEmails, fmt.Sprintf("A user may have at most %d addresses. Remove one first.", limit))
}

func errInvalidEmail(reason string) *apiError {
	return problem(http.StatusBadRequest, gen.ErrorCodeInvalidEmail, "This is not a valid email address: "+reason+".")
}

func errBodyTooLarge(limit int64) *apiError {
	return problem(http.StatusRequestEntityTooLarge, gen.ErrorCodeBodyTooLarge, fmt.Sprintf("The body may be at most %d bytes.", limit))
}

// errPasswordTooWeak is a new password, in field (as body.password), that
// breaks the password policy.
func errPasswordTooWeak(field string, we *password.WeakError) *apiError {
	e := problem(http.StatusBadRequest, gen.ErrorCodePasswordTooWeak, "Choose another password: "+we.Error()+".")
	e.fields = []gen.FieldError{{Field: field, Code: string(we.Weakness), Message: we.Error()}}
	return e
}

func errValidation(detail string, fields []gen.FieldError) *apiError {
	e := problem(http.StatusBadRequest, gen.ErrorCodeValidationError, detail)
	e.fields = fields
	return e
}

// busyRetryAfter is the Retry-After of a request refused because too many
// password hashes wait already (password.ErrBusy): the queue moves fast.
const busyRetryAfter = time.Second

func errRateLimited(wait time.Duration) *apiError {
	secs := int(math.Ceil(wait.Seconds()))
	e := problem(http.StatusTooManyRequests, gen.ErrorCodeRateLimited, fmt.Sprintf("Too many requests. Try again in %d seconds.", secs))
	e.retryAfter = time.Duration(secs) * time.Second
	return e
}

// titles are the short, fixed summaries of each code (RFC 9457 "title").
var titles = map[gen.ErrorCode]string{
	gen.ErrorCodeValidationError:         "Invalid request",
	gen.ErrorCodeInvalidEmail:            "Invalid email address",
	gen.ErrorCodeEmailTaken:              "Email address is taken",
	gen.ErrorCodeEmailSameAsCurrent:      "Email address is the current one",
	gen.ErrorCodeInvalidPassword:         "Wrong password",
	gen.ErrorCodeTooManyEmails:           "Too many email addresses",
	gen.ErrorCodePrimaryEmailUndeletable: "Primary email address cannot be removed",
	gen.ErrorCodeAlreadyVerified:         "Email address already verified",
	gen.ErrorCodeLinkInvalid:             "Invalid link",
	gen.ErrorCodeLinkExpired:             "Link expired",
	gen.ErrorCodeLinkUsed:                "Link already used",
	gen.ErrorCodeInvalidCredentials:      "Invalid credentials",
	gen.ErrorCodeNotAuthenticated:        "Not authenticated",
	gen.ErrorCodeSessionInvalid:          "Invalid session",
	gen.ErrorCodeCsrfFailed:              "CSRF check failed",
	gen.ErrorCodeForbidden:               "Forbidden",
	gen.ErrorCodeNotFound:                "Not found",
	gen.ErrorCodeMethodNotAllowed:        "Method not allowed",
	gen.ErrorCodeBodyTooLarge:            "Request body too large",
	gen.ErrorCodeUnsupportedMediaType:    "Unsupported media type",
	gen.ErrorCodeRateLimited:             "Too many requests",
	gen.ErrorCodePasswordTooWeak:         "Password too weak",
	gen.ErrorCodeUnavailable:             "Service unavailable",
	gen.ErrorCodeInternal:                "Internal server error",
	gen.ErrorCodeEmailNotVerified:        "Email address not verified",
	gen.ErrorCodeTokenInvalid:            "Invalid token",
}

// toProblem renders e as the body of its answer.
func (e *apiError) toProblem() gen.Problem {
	p := gen.Problem{
		Type:   "urn:useremail:problem:" + string(e.code),
		Title:  titles[e.code],
		Status: e.status,
		Code:   e.code,
	}
	if e.detail != "" {
		p.Detail = &e.detail
	}
	if len(e.fields) > 0 {
		p.Errors = &e.fields
	}
	return p
}

// asAPIError turns any error a handler, the validator or Echo returns into
// the apiError the client gets. The bool is false for an unexpected error,
// which is answered as a bare 500 and logged.
func asAPIError(err error) (*apiError, bool) {
	var ae *apiError
	var he *echo.HTTPError
	var exceeded *ratelimit.Exceeded
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae, true
	case errors.As(err, &exceeded):
		return errRateLimited(exceeded.RetryAfter), true
	case errors.Is(err, password.ErrBusy):
		return errRateLimited(busyRetryAfter), true
	case errors.As(err, &tooLarge):
		return errBodyTooLarge(tooLarge.Limit), true
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return errUnavailable, true
	case errors.As(err, &he):
		return fromHTTPError(he), true
	}
	return errInternal, false
}

// fromHTTPError maps Echo's own errors (routing, the generated wrappers'
// parameter binding) to codes.
func fromHTTPError(he *echo.HTTPError) *apiError {
	switch he.Code {
	case http.StatusNotFound:
		return errRouteNotFound
	case http.StatusMethodNotAllowed:
		return errMethod
	case http.StatusRequestEntityTooLarge:
		return problem(he.Code, gen.ErrorCodeBodyTooLarge, "The body is too large.")
	case http.StatusUnsupportedMediaType:
		return errMediaType
	case http.StatusBadRequest:
		msg, _ := he.Message.(string)
		return errValidation(msg, nil)
	case http.StatusServiceUnavailable:
		return errUnavailable
	}
	if he.Code >= 400 && he.Code < 500 {
		return errValidation(http.StatusText(he.Code), nil)
	}
	return errInternal
}

// handleError is the Echo HTTPErrorHandler: every error of every route is
// answered here, as application/problem+json.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae, expected := asAPIError(err)
	ctx := c.Request().Context()
	id := factsFrom(ctx).id
	switch {
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		s.log.DebugContext(ctx, "request canceled", "request_id", id)
	case !expected:
		s.log.ErrorContext(ctx, "unexpected error", "request_id", id, "error", err)
	case ae.status >= 500:
		s.log.WarnContext(ctx, "request failed", "request_id", id, "code", ae.code, "error", err)
	}
	if isPagePath(c.Request().URL.Path) {
		// People read these: an HTML page in their language.
		s.errorPage(c, ae)
		return
	}
	writeProblem(c, ae)
}

func writeProblem(c echo.Context, ae *apiError) {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(ae.retryAfter/time.Second)))
	}
	var err error
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(ae.status)
	} else {
		err = c.JSON(ae.status, ae.toProblem())
	}
	if err != nil {
		slog.Default().Debug("writing a problem failed", "error", err)
	}
}
