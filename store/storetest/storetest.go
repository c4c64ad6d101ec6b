// Package storetest gives tests fresh, migrated databases: an SQLite file
// always, and a PostgreSQL schema of its own when USEREMAIL_TEST_DATABASE_URL
// is set. A set but unreachable PostgreSQL fails the test; it never skips.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/useremail/useremail/store"
)

// EnvPostgresURL names the variable that turns on the PostgreSQL runs.
const EnvPostgresURL = "USEREMAIL_TEST_DATABASE_URL"

// Dialects returns the dialects the tests run on here.
func Dialects() []store.Dialect {
	if os.Getenv(EnvPostgresURL) != "" {
		return []store.Dialect{store.SQLite, store.Postgres}
	}
	return []store.Dialect{store.SQLite}
}

// Run runs fn as one subtest per dialect, each on a fresh migrated store.
func Run(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns a fresh migrated store of dialect d, closed when t ends.
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	return OpenURL(t, URL(t, d))
}

// OpenURL opens and migrates the store at rawURL (a URL's, reached another
// way, such as through a proxy), closed when t ends.
func OpenURL(t testing.TB, rawURL string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, rawURL)
	if err != nil {
		t.Fatalf("storetest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return db
}

// URL returns the USEREMAIL_DATABASE_URL of a fresh, empty database of
// dialect d (not migrated), removed when t ends: an SQLite file in the test's
// temporary folder, or a new PostgreSQL schema reached through search_path.
func URL(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "useremail.db")
	}
	base := os.Getenv(EnvPostgresURL)
	if base == "" {
		t.Fatalf("storetest: %s is not set", EnvPostgresURL)
	}
	admin, err := sqlx.Open("postgres", base)
	if err != nil {
		t.Fatalf("storetest: %s: %v", EnvPostgresURL, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := "test_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("storetest: PostgreSQL at %s is required (it is set) but: %v", EnvPostgresURL, err)
	}
	t.Cleanup(func() {
		admin, err := sqlx.Open("postgres", base)
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Logf("storetest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: %s: %v", EnvPostgresURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
