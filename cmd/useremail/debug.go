package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves the Go runtime's profiles (net/http/pprof, under
// /debug/pprof/) on their own listener at addr, apart from the API, until
// ctx is done. It is off unless USEREMAIL_DEBUG_ADDR is set: profiles tell
// a lot about the process and a CPU profile costs CPU, so keep the address
// private (loopback, or a port only operators reach).
func serveDebug(ctx context.Context, addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// A CPU profile or a trace takes as long as asked (?seconds=).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) {
		logger.Warn("USEREMAIL_DEBUG_ADDR is not a loopback address: keep the profiles away from the public", "addr", addr)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("debug listener stopped", "error", err)
		}
	}()
	logger.Info("serving profiles", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}

// isLoopback reports whether host (a name or an IP, as in a listen
// address) is only reachable from this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
