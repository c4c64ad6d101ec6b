package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/ratelimit"
)

// requestFacts are what the service knows about a request before any
// check runs. begin computes them once and puts them in the request's
// context as a value; nothing changes them afterwards. The log line, the
// metrics, LogHandler, the validator and the handlers read them.
type requestFacts struct {
	id        string // honours a sane X-Request-ID, else a random one
	ip        string // the client's: the peer, or as the trusted proxies forward it
	userAgent string
	accept    string
	// acceptLanguage is the Accept-Language header: the language of the
	// pages, and of a new user's mails.
	acceptLanguage string
	// page is the route of a request outside the spec, for the log.
	page      string
	mediaType string // of the request body, parameters stripped
	start     time.Time

	// api is false outside the spec (Swagger UI). For an API path, either
	// route and params are the spec's operation and path parameters, or
	// routeErr says why there is none (errRouteNotFound, errMethod).
	api      bool
	route    *routers.Route
	params   map[string]string
	routeErr error
}

type factsKey struct{}

// factsFrom returns the facts of the request whose context ctx is, or the
// zero facts outside a request.
func factsFrom(ctx context.Context) requestFacts {
	f, _ := ctx.Value(factsKey{}).(requestFacts)
	return f
}

// routeName is the spec's path template of the request, for the log and
// the metrics.
func (f requestFacts) routeName() string {
	switch {
	case f.route != nil:
		return f.route.Path
	case !f.api && f.page != "":
		return f.page
	case !f.api:
		return "/docs/"
	}
	return "unmatched"
}

// network is the client's network, the subject of the per-network limits.
func (f requestFacts) network() string { return ratelimit.Network(f.ip) }

// postedForm reports a POST from a link page's form, which wants an HTML
// answer; API clients get JSON.
func (f requestFacts) postedForm() bool {
	return f.mediaType == "application/x-www-form-urlencoded"
}

// commonHeaders are set on every answer. The slices are shared by all
// answers, and nothing changes them in place: Header.Set and Header.Add
// replace or grow a copy.
var commonHeaders = http.Header{
	"X-Content-Type-Options": {"nosniff"},
	"X-Frame-Options":        {"DENY"},
	// Link URLs carry their token in the path: never leak it onwards.
	"Referrer-Policy": {"no-referrer"},
	// JSON answers need no capabilities; HTML pages set their own policy.
	"Content-Security-Policy": {"default-src 'none'; frame-ancestors 'none'"},
	// Answers carry sessions, CSRF tokens, addresses or link results: no
	// cache keeps them. Static assets (Swagger UI) say otherwise.
	"Cache-Control": {"no-store"},
}

// begin is the first middleware: it computes the request's facts, gives the
// request its deadline (see deadline), sets the headers every answer
// carries, answers the error the rest of the chain returns, and logs one
// line per request.
func (s *Server) begin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		f := s.newFacts(c, req)
		// One context and one copy of the request for both the facts and
		// the deadline.
		ctx, cancel := context.WithTimeout(context.WithValue(req.Context(), factsKey{}, f), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(req.WithContext(ctx))

		h := c.Response().Header()
		for name, values := range commonHeaders {
			h[name] = values
		}
		h.Set(echo.HeaderXRequestID, f.id)

		if err := next(c); err != nil {
			s.countRefusal(err)
			c.Error(err)
		}
		s.observe(c, f)
		return nil
	}
}

// newFacts computes the facts of req, which Echo has routed in c.
func (s *Server) newFacts(c echo.Context, req *http.Request) requestFacts {
	f := requestFacts{
		start:     time.Now(),
		ip:        c.RealIP(),
		userAgent: req.UserAgent(),
		accept:    req.Header.Get(echo.HeaderAccept),
		api:       isAPIPath(req.URL.Path),

		acceptLanguage: req.Header.Get("Accept-Language"),
	}
	if !f.api && isPagePath(req.URL.Path) {
		f.page = cmp.Or(c.Path(), "unmatched")
	}
	if id := req.Header.Get(echo.HeaderXRequestID); requestIDPattern.MatchString(id) {
		f.id = id
	} else {
		f.id = newRequestID()
	}
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			f.mediaType = mt
		}
	}
	if f.api {
		f.route, f.params, f.routeErr = s.findRoute(req)
	}
	return f
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:/+=-]{1,128}$`)

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isAPIPath tells the routes of the spec from those served beside it
// (Swagger UI and its assets, the HTML pages).
func isAPIPath(path string) bool {
	return path != "/docs" && !strings.HasPrefix(path, "/docs/") && !isPagePath(path)
}

// findRoute returns the spec's operation for the request.
func (s *Server) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := s.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return nil, nil, errMethod
	case err != nil:
		return nil, nil, errRouteNotFound
	}
	return route, params, nil
}

// allowedMethods lists the methods the spec has for the request's path.
func (s *Server) allowedMethods(req *http.Request) string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r := *req // FindRoute reads the method, host and URL only
		r.Method = m
		if _, _, err := s.router.FindRoute(&r); err == nil {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}
