package store

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

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
func (db *DB) provider(ctx context.Context) (*goose.Provider, error) {
	dialect, dir := goose.DialectPostgres, "migrations/postgres"
	var opts []goose.ProviderOption
	if db.dialect == SQLite {
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
	} else {
		var schema string
		if err := db.db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
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
	return goose.NewProvider(dialect, db.db.DB, sub, opts...)
}

// Migration is one applied migration.
type Migration struct {
	Version int64
	Name    string
}

// Migrate applies every pending migration and returns those it applied.
func (db *DB) Migrate(ctx context.Context) ([]Migration, error) {
	p, err := db.provider(ctx)
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
	p, err := db.provider(ctx)
	if err != nil {
		return false, err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return false, translate(err)
	}
	return current < target, nil
}
