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
	"time"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/store"
)

// cmdMigrate applies pending migrations and exits.
func cmdMigrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	db, logger, err := adminStore(ctx, getenv, stdout)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate(ctx, db, logger); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}

// cmdUser runs the user admin helpers.
func cmdUser(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"usage: useremail user create --email ADDRESS --password PASSWORD [--verified]"}
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stdout)
	email := fs.String("email", "", "the user's primary address")
	pw := fs.String("password", "", "the user's password (at least 8 characters)")
	verified := fs.Bool("verified", false, "mark the address verified instead of mailing a verification link")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	addr, err := address.Normalize(*email)
	if err != nil {
		return fmt.Errorf("--email: %w", err)
	}
	if len([]rune(*pw)) < 8 {
		return errors.New("--password: needs at least 8 characters")
	}
	db, logger, err := adminStore(ctx, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate(ctx, db, logger); err != nil {
		return err
	}
	cfg, _ := loadConfig(getenv)
	hash, err := password.NewHasher(cfg.Argon2, 1).Hash(ctx, *pw)
	if err != nil {
		return err
	}
	var user store.User
	err = db.WithTx(ctx, func(q *store.Queries) error {
		var primary store.Email
		var err error
		now := time.Now()
		user, primary, err = q.CreateUser(ctx, store.NewUser{Email: addr.Email, Key: addr.Key, PasswordHash: hash}, now)
		if err != nil {
			return err
		}
		if *verified {
			_, err = q.VerifyEmail(ctx, user.ID, primary.ID, now)
		} else {
			_, err = q.EnqueueMessage(ctx, mail.Verify(user.ID, primary.Email, primary.ID), now)
		}
		if err != nil {
			return err
		}
		return q.RecordEvent(ctx, store.AuditEvent{UserID: user.ID, Event: "signup", Email: primary.Email, UserAgent: "useremail user create", CreatedAt: now})
	})
	if errors.Is(err, store.ErrEmailTaken) {
		return fmt.Errorf("%s is already in use", addr.Email)
	}
	if err != nil {
		return err
	}
	if !*verified {
		// Running servers send the verification mail at once; if this
		// fails they still find it at their next poll.
		_ = db.NotifyMailQueued(ctx)
	}
	fmt.Fprintf(stdout, "created user %d <%s>\n", user.ID, addr.Email)
	return nil
}

// adminStore opens the configured database for an admin command. Admin
// commands need only the database settings, so other problems of the
// configuration (a missing secret) do not stop them.
func adminStore(ctx context.Context, getenv func(string) string, logOut io.Writer) (*store.DB, *slog.Logger, error) {
	cfg, _ := loadConfig(getenv)
	if _, _, err := store.ParseURL(cfg.DatabaseURL); err != nil {
		return nil, nil, err
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	db, err := openStore(ctx, cfg, logger)
	return db, logger, err
}

// cmdHealthcheck asks the server at USEREMAIL_ADDR whether it is ready, for
// container health checks in images without curl.
func cmdHealthcheck(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	addr := getenv("USEREMAIL_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s", res.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
