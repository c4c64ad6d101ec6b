package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// serveDebug serves the Go runtime's profiles (net/http/pprof, under
// /debug/pprof/) on their own listener at addr, apart from the API, until
// stop is called. It is off unless USEREMAIL_DEBUG_ADDR is set: profiles
// tell a lot about the process and a CPU profile costs CPU, so keep the
// address private (loopback, or a port only operators reach).
func serveDebug(ctx context.Context, addr string, logger *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) {
		logger.Warn("USEREMAIL_DEBUG_ADDR is not a loopback address: keep the profiles away from the public", "addr", addr)
	}
	return serveAside(ctx, addr, mux, logger, "serving profiles", "/debug/pprof/")
}

// serveMetrics serves h, the metrics, at /metrics on a listener of their
// own at addr (USEREMAIL_METRICS_ADDR) until stop is called, so that they
// need not be reachable by the API's clients.
func serveMetrics(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return serveAside(ctx, addr, mux, logger, "serving metrics", "/metrics")
}

// serveAside serves h on a listener of its own at addr, apart from the
// API's, and logs msg with the address bound and path.
func serveAside(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, msg, path string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		// No write timeout: a CPU profile or a trace takes as long as
		// asked (?seconds=).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("listener stopped", "addr", addr, "error", err)
		}
	}()
	logger.Info(msg, "addr", ln.Addr().String(), "path", path)
	return func() { _ = srv.Close() }, nil
}

// isLoopback reports whether host (a name or an IP, as in a listen
// address) is only reachable from this machine.
func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
