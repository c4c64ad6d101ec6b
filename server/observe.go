package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/ratelimit"
)

// observe logs one line for the answered request and reports it to the
// metrics.
func (s *Server) observe(c echo.Context, f requestFacts) {
	req := c.Request()
	status := c.Response().Status
	elapsed := time.Since(f.start)
	route := f.routeName()
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ObserveRequest(req.Method, route, status, elapsed)
	}
	// 503 is the documented answer while the database is away: a warning;
	// any other 5xx is a bug.
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	s.log.LogAttrs(req.Context(), level, "request",
		slog.String("request_id", f.id),
		slog.String("method", req.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", c.Response().Size),
		slog.Duration("elapsed", elapsed),
		slog.String("ip", f.ip),
	)
}

// countRefusal reports a request that a limit refused to the metrics, by
// the limit's name; a full hashing queue (password.ErrBusy) is "hashing".
func (s *Server) countRefusal(err error) {
	var exceeded *ratelimit.Exceeded
	switch {
	case s.cfg.Metrics == nil:
	case errors.As(err, &exceeded):
		s.cfg.Metrics.RateLimited(exceeded.Rule)
	case errors.Is(err, password.ErrBusy):
		s.cfg.Metrics.RateLimited("hashing")
	}
}

// LogHandler wraps h so that every record logged with a request's context
// (the handlers' and the error handler's XxxContext calls) carries that
// request's request_id, unless the record names one itself. Records logged
// outside a request (the dispatcher, the janitor) pass unchanged.
func LogHandler(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := factsFrom(ctx).id; id != "" {
		named := false
		r.Attrs(func(a slog.Attr) bool {
			named = a.Key == "request_id"
			return !named
		})
		if !named {
			r = r.Clone()
			r.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
