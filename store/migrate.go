package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations
var migrations embed.FS

// provider builds a goose provider over the dialect's embedded migrations. On
// PostgreSQL it takes an advisory lock, so several replicas that start at
// once apply each migration exactly once. The lock is per schema: stores in
// different schemas of one database (tests, several tenants) migrate
// independently.
func (db *DB) provider(ctx context.Context, handle *sql.DB) (*goose.Provider, error) {
	dialect, dir := goose.DialectPostgres, "migrations/postgres"
	var opts []goose.ProviderOption
	if db.dialect == SQLite {
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
	} else {
		var schema string
		if err := handle.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return nil, translate(err)
		}
		h := fnv.New64a()
		h.Write([]byte("useremail/migrate/" + schema))
		// Poll for the lock every second, for up to five minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, handle, sub, opts...)
}

// Migration is one applied migration.
type Migration struct {
	Version int64
	Name    string
}

// migrateTimeout bounds Migrate: the wait for the lock of other replicas'
// migrations (up to five minutes) and the migrations. On PostgreSQL it is
// also their statement_timeout: a migration may rewrite a large table, which
// the store's statement timeout would cut short.
const migrateTimeout = 10 * time.Minute

// Migrate applies every pending migration and returns those it applied,
// within migrateTimeout.
func (db *DB) Migrate(ctx context.Context) ([]Migration, error) {
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	handle := db.db.DB
	if db.pg != nil {
		// Connections of their own, with the migrations' statement timeout.
		handle = sql.OpenDB(db.pg.withStatementTimeout(migrateTimeout))
		handle.SetMaxOpenConns(4)
		defer handle.Close()
	}
	p, err := db.provider(ctx, handle)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", translate(err))
	}
	applied := make([]Migration, 0, len(results))
	for _, r := range results {
		applied = append(applied, Migration{Version: r.Source.Version, Name: r.Source.Path})
	}
	return applied, nil
}

// PendingMigrations reports whether some migration is not applied yet.
func (db *DB) PendingMigrations(ctx context.Context) (bool, error) {
	p, err := db.provider(ctx, db.db.DB)
	if err != nil {
		return false, err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return false, translate(err)
	}
	return current < target, nil
}
