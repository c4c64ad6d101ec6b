package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/useremail/useremail/store"
)

// schemaError is a database without the schema, or with migrations
// pending, met by a command that does not migrate.
type schemaError struct {
	database string // as displayURL shows it
	noFile   bool   // an SQLite file that does not exist
}

func (e schemaError) Error() string {
	if e.noFile {
		return fmt.Sprintf("the database %s does not exist; run useremail migrate to create it", e.database)
	}
	return fmt.Sprintf("the database %s is not migrated (its schema is missing or out of date); run useremail migrate", e.database)
}

// dbRetryFor is how long serve and the admin commands keep trying to reach
// a PostgreSQL that does not answer: in a fresh deployment the database may
// start after the service.
const dbRetryFor = 30 * time.Second

// openStore opens the database. PostgreSQL is tried again for up to
// dbRetryFor while it is unreachable; an SQLite file is on this machine,
// so there is nothing to wait for, and a file that cannot be opened is an
// error at once that says why.
func openStore(ctx context.Context, databaseURL string, logger *slog.Logger) (*store.DB, error) {
	if path, ok := sqlitePath(databaseURL); ok {
		db, err := store.Open(ctx, databaseURL)
		if err != nil {
			return nil, sqliteOpenError(databaseURL, path, err)
		}
		return db, nil
	}
	name := displayURL(databaseURL)
	start := time.Now()
	deadline := start.Add(dbRetryFor)
	for tries, wait := 1, 250*time.Millisecond; ; tries, wait = tries+1, min(wait*2, 5*time.Second) {
		db, err := store.Open(ctx, databaseURL)
		if err == nil {
			if tries > 1 {
				logger.Info("database reachable", "database", name, "after", time.Since(start).Round(time.Millisecond).String())
			}
			return db, nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return nil, fmt.Errorf("database %s: %w", name, err)
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("database %s not reachable; gave up after %v: %w", name, time.Since(start).Round(time.Second), err)
		}
		if tries == 1 {
			logger.Warn("database not reachable yet; retrying for up to "+dbRetryFor.String(),
				"database", name, "error", err, "retry_in", wait.String())
		} else {
			logger.Warn("database still not reachable; retrying", "database", name, "error", err,
				"retry_in", wait.String(), "gives_up_in", time.Until(deadline).Round(time.Second).String())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("database %s not reachable; stopped waiting: %w", name, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// sqliteOpenError is the error of an SQLite file that could not be opened:
// it names the file and what is wrong with its place (a directory that is
// missing, or is not one, or that this process may not write), or else
// says what SQLite said.
func sqliteOpenError(databaseURL, path string, err error) error {
	why := ""
	dir := filepath.Dir(path)
	file, fileErr := os.Stat(path)
	dirInfo, dirErr := os.Stat(dir)
	switch {
	case fileErr == nil && file.IsDir():
		why = path + " is a directory"
	case errors.Is(dirErr, fs.ErrNotExist):
		why = "the directory " + dir + " does not exist"
	case dirErr == nil && !dirInfo.IsDir():
		why = dir + " is not a directory"
	case errors.Is(fileErr, fs.ErrNotExist):
		if probe, err := os.CreateTemp(dir, ".useremail-probe-*"); err != nil {
			why = "this process may not create files in " + dir
		} else {
			probe.Close()
			os.Remove(probe.Name())
		}
	case fileErr == nil:
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err != nil {
			why = "this process may not read and write " + path
		} else {
			f.Close()
		}
	}
	if why == "" {
		return fmt.Errorf("database %s: %w", databaseURL, err)
	}
	return fmt.Errorf("database %s: %s", databaseURL, why)
}

// openMigrated opens the database for a command that needs its schema and
// does not migrate: a database without it is a schemaError, and an SQLite
// file that does not exist is not created.
func openMigrated(ctx context.Context, databaseURL string, logger *slog.Logger) (*store.DB, error) {
	if path, ok := sqlitePath(databaseURL); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, schemaError{database: displayURL(databaseURL), noFile: true}
		}
	}
	db, err := openStore(ctx, databaseURL, logger)
	if err != nil {
		return nil, err
	}
	if err := requireSchema(ctx, db, databaseURL); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// requireSchema fails with a schemaError when a migration is pending.
func requireSchema(ctx context.Context, db *store.DB, databaseURL string) error {
	pending, err := db.PendingMigrations(ctx)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if pending {
		return schemaError{database: displayURL(databaseURL)}
	}
	return nil
}

// migrate applies the pending migrations, logging each.
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

// displayURL is a database URL fit for a message: no user or password, and
// of the options only the schema (search_path).
func displayURL(databaseURL string) string {
	if _, ok := sqlitePath(databaseURL); ok {
		return databaseURL
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "at USEREMAIL_DATABASE_URL"
	}
	q := url.Values{}
	if schema := u.Query().Get("search_path"); schema != "" {
		q.Set("search_path", schema)
	}
	u.User, u.RawQuery = nil, q.Encode()
	return u.String()
}

// adminStore opens the configured database for an admin command, which
// needs only the database settings: other problems of the configuration
// (a missing secret) do not stop it. Unless migrating, the database must
// have its schema.
func adminStore(ctx context.Context, e env, migrating bool) (*store.DB, *slog.Logger, error) {
	cfg, _ := loadConfig(e.Getenv)
	if _, _, err := store.ParseURL(cfg.DatabaseURL); err != nil {
		return nil, nil, fmt.Errorf("USEREMAIL_DATABASE_URL: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(e.Stderr, nil))
	open := openMigrated
	if migrating {
		open = openStore
	}
	db, err := open(ctx, cfg.DatabaseURL, logger)
	return db, logger, err
}
