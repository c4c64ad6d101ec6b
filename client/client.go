// Package client is the Go client of the useremail API, as a module of its
// own (github.com/useremail/useremail/client) that needs only the standard
// library and the oapi-codegen runtime: an application takes it without
// the server, Echo or kin-openapi.
//
// client.gen.go is generated from openapi.yaml (`make generate` at the
// repository's root; never edited by hand): the types and
// ClientWithResponses, one method per operation. This file adds what every
// application needs around them:
//
//   - NewSession: a client of the user API that keeps the session's
//     cookies (sessionid, osessionid, csrftoken) and sends the CSRF token
//     as X-CSRFToken on every unsafe request;
//
//   - NewAdmin: a client of the admin API under a bearer token;
//
//   - Check and ProblemError: every 4xx and 5xx answer as a typed error
//     with the problem's stable Code.
//
//     s, _ := client.NewSession("https://accounts.example.com", nil)
//     login, err := s.LoginWithResponse(ctx, client.LoginJSONRequestBody{Email: e, Password: p})
//     if err := client.Check(login, err); err != nil {
//     if client.HasCode(err, client.ErrorCodeInvalidCredentials) { … }
//     }
//     added, err := s.AddEmailWithResponse(ctx, login.JSON200.UserId, client.AddEmailJSONRequestBody{Email: a})
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds each request of a client made without an
// http.Client of the caller's.
const DefaultTimeout = 30 * time.Second

// The contract's cookie and header names.
const (
	SessionCookie = "sessionid"
	CSRFCookie    = "csrftoken"
	CSRFHeader    = "X-CSRFToken"
)

// SessionClient is a client of the user API with a session: its cookie jar keeps
// the cookies POST /auth/login/ sets and sends them back, and every unsafe
// request carries the csrftoken cookie's value as X-CSRFToken.
type SessionClient struct {
	*ClientWithResponses
	jar  http.CookieJar
	base *url.URL
}

// NewSession returns a SessionClient for the service at baseURL
// (https://host[:port]). hc is the http.Client to send with, nil for one
// with DefaultTimeout; a copy of it gets a cookie jar of its own when it has
// none. opts are further options of the generated client.
func NewSession(baseURL string, hc *http.Client, opts ...ClientOption) (*SessionClient, error) {
	base, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	c := httpClient(hc)
	if c.Jar == nil {
		if c.Jar, err = cookiejar.New(nil); err != nil {
			return nil, err
		}
	}
	s := &SessionClient{jar: c.Jar, base: base}
	opts = append([]ClientOption{WithHTTPClient(c), WithRequestEditorFn(s.sendCSRF)}, opts...)
	if s.ClientWithResponses, err = NewClientWithResponses(base.String(), opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// sendCSRF sets X-CSRFToken on an unsafe request from the csrftoken cookie.
func (s *SessionClient) sendCSRF(_ context.Context, req *http.Request) error {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if token := s.CSRFToken(); token != "" && req.Header.Get(CSRFHeader) == "" {
		req.Header.Set(CSRFHeader, token)
	}
	return nil
}

// CSRFToken returns the session's CSRF token (the csrftoken cookie), or ""
// before login.
func (s *SessionClient) CSRFToken() string { return s.cookie(CSRFCookie) }

// LoggedIn reports whether the jar holds a session cookie.
func (s *SessionClient) LoggedIn() bool { return s.cookie(SessionCookie) != "" }

func (s *SessionClient) cookie(name string) string {
	for _, c := range s.jar.Cookies(s.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// NewAdmin returns a client of the admin API (/admin/) that sends token as
// Authorization: Bearer. hc is as for NewSession; an admin client keeps no
// cookies (the admin API ignores them).
func NewAdmin(baseURL, token string, hc *http.Client, opts ...ClientOption) (*ClientWithResponses, error) {
	base, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("client: an admin token is required")
	}
	bearer := func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
	opts = append([]ClientOption{WithHTTPClient(httpClient(hc)), WithRequestEditorFn(bearer)}, opts...)
	return NewClientWithResponses(base.String(), opts...)
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port]", raw)
	}
	return u, nil
}

func httpClient(hc *http.Client) *http.Client {
	if hc == nil {
		return &http.Client{Timeout: DefaultTimeout}
	}
	c := *hc
	return &c
}

// ProblemError is an answer of the service that is a problem (RFC 9457):
// every 4xx and 5xx. Problem.Code is the stable machine-readable code.
type ProblemError struct {
	StatusCode int
	Problem    Problem
}

func (e *ProblemError) Error() string {
	msg := fmt.Sprintf("useremail: %d %s", e.StatusCode, e.Problem.Code)
	if e.Problem.Detail != nil && *e.Problem.Detail != "" {
		msg += ": " + *e.Problem.Detail
	}
	return msg
}

// Code is the problem's stable code, as ErrorCodeEmailTaken.
func (e *ProblemError) Code() ErrorCode { return e.Problem.Code }

// HasCode reports whether err is a ProblemError with code.
func HasCode(err error, code ErrorCode) bool {
	var pe *ProblemError
	return errors.As(err, &pe) && pe.Problem.Code == code
}

// Response is what every generated response offers.
type Response interface {
	StatusCode() int
	GetBody() []byte
	ContentType() string
}

// Check turns a generated method's results into one error: err itself when
// the request failed, nil for a 2xx answer, a *ProblemError for a problem,
// and an error naming the status for anything else.
func Check(res Response, err error) error {
	if err != nil {
		return err
	}
	status := res.StatusCode()
	if status >= 200 && status < 300 {
		return nil
	}
	if res.ContentType() == "application/problem+json" {
		var p Problem
		if json.Unmarshal(res.GetBody(), &p) == nil && p.Code != "" {
			return &ProblemError{StatusCode: status, Problem: p}
		}
	}
	return fmt.Errorf("useremail: unexpected answer %d %s", status, res.ContentType())
}
