package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/metrics"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// cmdServe serves the API and runs the mail dispatcher until ctx ends, then
// drains both. ready, when set, receives the listening address.
func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noMigrate := fs.Bool("no-migrate", false, "do not apply pending migrations at start")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)

	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if !*noMigrate {
		if err := migrate(ctx, db, logger); err != nil {
			return err
		}
	}

	keys := cfg.SecretKeys
	if len(keys) == 0 {
		secret, path, err := devSecret(cfg.DatabaseURL)
		if err != nil {
			return err
		}
		logger.Warn("dev mode: signing links with a generated secret", "file", path)
		keys = [][]byte{secret}
	}
	sign, err := signer.New(keys, nil)
	if err != nil {
		return err
	}

	var sender mail.Sender
	if cfg.SMTPURL == "" {
		logger.Info("mail goes to the log (USEREMAIL_SMTP_URL is empty)")
		sender = mail.NewLogSender(logger)
	} else {
		smtpCfg, err := mail.ParseSMTPURL(cfg.SMTPURL)
		if err != nil {
			return err
		}
		smtpSender, err := mail.NewSMTPSender(smtpCfg)
		if err != nil {
			return err
		}
		// Runs when serve returns, after the dispatcher has finished (or the
		// grace period ran out; a send still running then closes its own
		// connection): it hangs up the SMTP connections kept between mails.
		defer smtpSender.Close()
		sender = smtpSender
	}
	m := metrics.New(metrics.Options{
		DB:        db,
		Version:   version,
		MailKinds: []string{mail.KindVerify, mail.KindChangeEmail, mail.KindEmailAdded, mail.KindEmailRemoved, mail.KindPrimaryChanged},
	})
	listenURL := ""
	if db.Dialect() == store.Postgres {
		listenURL = cfg.DatabaseURL
	}
	dispatcher, err := mail.NewDispatcher(mail.Config{
		DB:          db,
		Signer:      sign,
		Sender:      sender,
		PublicURL:   cfg.PublicURL,
		From:        cfg.MailFrom,
		ProductName: "useremail",
		VerifyTTL:   cfg.VerifyTTL,
		ChangeTTL:   cfg.ChangeTTL,
		ListenURL:   listenURL,
		Logger:      logger,
		Hooks:       mail.Hooks{OnSent: m.MailSent, OnRetry: m.MailRetried, OnFailed: m.MailFailed},
	})
	if err != nil {
		return err
	}

	// After a commit that queued mail: this process's dispatcher is woken
	// at once; on PostgreSQL the other processes' are told by an
	// announcement (gathered, outside the request's transaction).
	mailQueued := dispatcher.Wake
	var announcer *mail.Announcer
	if db.Dialect() == store.Postgres {
		announcer = mail.NewAnnouncer(db, logger)
		mailQueued = func() {
			dispatcher.Wake()
			announcer.Announce()
		}
	}

	srv, err := server.New(server.Config{
		DB:             db,
		Signer:         sign,
		Hasher:         password.NewHasher(cfg.Argon2, 0),
		PublicURL:      cfg.PublicURL,
		TrustedOrigins: cfg.TrustedOrigins,
		Sessions:       cfg.Sessions,
		CookieSecure:   cfg.CookieSecure,
		VerifyTTL:      cfg.VerifyTTL,
		ChangeTTL:      cfg.ChangeTTL,
		MaxEmails:      cfg.MaxEmails,
		ResendInterval: cfg.ResendInterval,
		RateLimits:     cfg.RateLimits,
		Notices:        cfg.Notices,
		Logger:         logger,
		MailQueued:     mailQueued,
		Metrics:        m,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		// Profiles stay available until serve returns, through shutdown.
		stopDebug, err := serveDebug(context.WithoutCancel(ctx), cfg.DebugAddr, logger)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("USEREMAIL_DEBUG_ADDR: %w", err)
		}
		defer stopDebug()
	}
	httpServer := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// The dispatcher and the janitor stop on their own context, after the
	// HTTP server has drained: requests still in flight may queue mail.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := dispatcher.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("mail dispatcher stopped", "error", err)
		}
	})
	wg.Go(func() { janitor(bgCtx, db, session.NewManager(db, cfg.Sessions, nil), logger) })
	if announcer != nil {
		wg.Go(func() { announcer.Run(bgCtx) })
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "database", string(db.Dialect()), "dev", cfg.Dev)
	if ready != nil {
		ready(ln.Addr().String())
	}

	// SIGTERM: stop accepting, let the requests in flight finish, give the
	// dispatcher a moment for the mail they queued, then stop it; all
	// within the grace period (the reports of sends in flight get at least
	// backgroundDrainMin).
	var deadline time.Time
	select {
	case err = <-serveErr:
		// The listener failed: nothing to drain.
		deadline = time.Now().Add(cfg.ShutdownGrace)
	case <-ctx.Done():
		deadline = time.Now().Add(cfg.ShutdownGrace)
		logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
		shutdownCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		err = httpServer.Shutdown(shutdownCtx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			_ = httpServer.Close()
			logger.Warn("requests still running after the grace period were cut off")
			err = errors.New("shutdown: requests still running after the grace period were cut off")
		} else {
			flushMail(db, dispatcher, deadline)
		}
	}
	stopBackground()
	if !waitUntil(&wg, max(time.Until(deadline), backgroundDrainMin)) {
		logger.Warn("mail sends still in flight at the end of the grace period; their messages are sent again once their lease ends")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	logger.Info("stopped")
	return err
}

// backgroundDrainMin is the least time the dispatcher gets at shutdown to
// finish the sends in flight and record them, even when the requests used
// up the grace period.
const backgroundDrainMin = 5 * time.Second

// flushMailMax bounds how long shutdown waits for the mail that the last
// requests queued.
const flushMailMax = 5 * time.Second

// flushMail waits, up to flushMailMax and never past deadline, until no
// queued mail is due, waking the dispatcher, so that a single node sends
// what its last requests queued before it exits. Nothing is lost without
// it (the outbox keeps the rows for the next dispatcher); with several
// replicas the others send it anyway.
func flushMail(db *store.DB, dispatcher *mail.Dispatcher, deadline time.Time) {
	until := time.Now().Add(flushMailMax)
	if deadline.Before(until) {
		until = deadline
	}
	for time.Now().Before(until) {
		ctx, cancel := context.WithDeadline(context.Background(), until)
		due, err := db.NextDueAt(ctx)
		cancel()
		if err != nil || due.After(time.Now()) {
			return // nothing due, or the database is away: the rows wait
		}
		dispatcher.Wake()
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUntil waits for wg for at most d and reports whether it finished.
func waitUntil(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// openStore opens the database, retrying for a while: in a fresh
// deployment the database may start after the service.
func openStore(ctx context.Context, cfg config, logger *slog.Logger) (*store.DB, error) {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 250 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		db, err := store.Open(ctx, cfg.DatabaseURL)
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("database: %w", err)
		}
		logger.Warn("database not reachable yet; retrying", "error", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func migrate(ctx context.Context, db *store.DB, logger *slog.Logger) error {
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, m := range applied {
		logger.Info("migration applied", "version", m.Version, "name", m.Name)
	}
	return nil
}

// janitor removes long-expired sessions and recovered rate limits.
func janitor(ctx context.Context, db *store.DB, sessions *session.Manager, logger *slog.Logger) {
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		// Expired sessions stay a week, so that their cookies answer
		// "expired" rather than "unknown" for a while.
		if n, err := sessions.DeleteExpired(ctx, 7*24*time.Hour); err != nil {
			logger.Warn("janitor: sessions", "error", err)
		} else if n > 0 {
			logger.Info("janitor: expired sessions removed", "count", n)
		}
		if _, err := db.DeleteIdleRateLimits(ctx, time.Now()); err != nil {
			logger.Warn("janitor: rate limits", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	// Records logged while answering a request carry its request_id.
	return slog.New(server.LogHandler(h))
}
