// Package servertest holds test helpers for anything that talks to a
// useremail server: an http.RoundTripper that validates every response
// against openapi.yaml, and a fake clock. It imports gen only.
package servertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/useremail/useremail/gen"
)

var (
	routerOnce sync.Once
	router     routers.Router
	routerErr  error
)

func specRouter() (routers.Router, error) {
	routerOnce.Do(func() {
		// The spec describes HTML bodies as strings: check them as text.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		var spec *openapi3.T
		spec, routerErr = gen.GetSpec()
		if routerErr != nil {
			return
		}
		spec.Servers = nil
		router, routerErr = gorillamux.NewRouter(spec)
	})
	return router, routerErr
}

// Validator is an http.RoundTripper that checks every response against
// openapi.yaml: the status must be declared for the operation, and the
// headers and body must match it. A response to a path outside the spec
// must be a problem+json 404 or 405. Violations fail the test.
type Validator struct {
	T    testing.TB
	Base http.RoundTripper // nil: http.DefaultTransport

	mu    sync.Mutex
	count int
}

// Count returns how many responses were validated.
func (v *Validator) Count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.count
}

// RoundTrip sends req and validates the response.
func (v *Validator) RoundTrip(req *http.Request) (*http.Response, error) {
	base := v.Base
	if base == nil {
		base = http.DefaultTransport
	}
	res, err := base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err := ValidateResponse(req, res, body); err != nil {
		v.T.Errorf("%s %s -> %d: response does not match openapi.yaml: %v\nbody: %.500s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
	v.mu.Lock()
	v.count++
	v.mu.Unlock()
	return res, nil
}

// ValidateResponse checks one response (with its body already read) against
// the spec.
func ValidateResponse(req *http.Request, res *http.Response, body []byte) error {
	r, err := specRouter()
	if err != nil {
		return err
	}
	// 503 (the database) is an answer; any other 5xx is a bug.
	if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
		return fmt.Errorf("server error %d", res.StatusCode)
	}
	route, params, err := r.FindRoute(req)
	if err != nil {
		// Outside the spec: the answer must still be a problem.
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Errorf("route not in spec (%v) but status %d", err, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			return fmt.Errorf("route not in spec: Content-Type %q, want application/problem+json", ct)
		}
		return nil
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// Clock is a settable clock for tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
