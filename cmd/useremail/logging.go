package main

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/useremail/useremail/server"
)

// newLogger returns serve's logger: JSON (or text) records on w, at the
// configured level, one line each.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	// Records logged while answering a request carry its request_id.
	return slog.New(server.LogHandler(oneLineHandler{h}))
}

// oneLine joins the lines of a message with "; ": errors.Join, the store's
// translated driver errors and the validator's reports run over several.
func oneLine(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "; ")
}

// oneLineHandler writes every message and every string or error value on
// one line, so that no log field holds a literal "\n" for the collector to
// keep or split.
type oneLineHandler struct{ slog.Handler }

func (h oneLineHandler) Handle(ctx context.Context, r slog.Record) error {
	multiline := strings.Contains(r.Message, "\n")
	if !multiline {
		r.Attrs(func(a slog.Attr) bool {
			_, multiline = flatAttr(a)
			return !multiline
		})
	}
	if !multiline {
		return h.Handler.Handle(ctx, r)
	}
	flat := slog.NewRecord(r.Time, r.Level, oneLine(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		a, _ = flatAttr(a)
		flat.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, flat)
}

func (h oneLineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	flat := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		flat[i], _ = flatAttr(a)
	}
	return oneLineHandler{h.Handler.WithAttrs(flat)}
}

func (h oneLineHandler) WithGroup(name string) slog.Handler {
	return oneLineHandler{h.Handler.WithGroup(name)}
}

// flatAttr returns a with its string or error values on one line, and
// whether it changed anything.
func flatAttr(a slog.Attr) (slog.Attr, bool) {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); strings.Contains(s, "\n") {
			return slog.String(a.Key, oneLine(s)), true
		}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			if s := err.Error(); strings.Contains(s, "\n") {
				return slog.String(a.Key, oneLine(s)), true
			}
		}
	case slog.KindGroup:
		group := v.Group()
		changed := false
		flat := make([]any, len(group))
		for i, g := range group {
			var c bool
			g, c = flatAttr(g)
			changed = changed || c
			flat[i] = g
		}
		if changed {
			return slog.Group(a.Key, flat...), true
		}
	}
	return a, false
}
