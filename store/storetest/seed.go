package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/useremail/useremail/store"
)

// SeedUsers fills db with n users u1…un@bench.example (user i's address is
// u<i>@bench.example, unverified and primary), each with a sent
// verification mail and a signup audit event, in one transaction of a few
// statements: a million users take seconds. For benchmarks of the lists.
func SeedUsers(tb testing.TB, db *store.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	users := `INSERT INTO users (password_hash, date_joined) SELECT '', CURRENT_TIMESTAMP FROM generate_series(1, $1)`
	if db.Dialect() == store.SQLite {
		users = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
			INSERT INTO users (password_hash, date_joined) SELECT '', CURRENT_TIMESTAMP FROM s`
	}
	stmts := []string{
		users,
		`INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at)
			SELECT id, 'u' || id || '@bench.example', 'u' || id || '@bench.example', FALSE, TRUE, date_joined FROM users`,
		`INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at, sent_at)
			SELECT 'verify', email, user_id, '{}', 'sent', created_at, created_at, created_at FROM emails`,
		`INSERT INTO audit_events (user_id, event, email, actor, created_at)
			SELECT user_id, 'signup', email, 'user', created_at FROM emails`,
		`ANALYZE`,
	}
	// Without the store's statement timeout on PostgreSQL: a million rows
	// take longer than any request may.
	if db.Dialect() == store.Postgres {
		stmts = append([]string{`SET LOCAL statement_timeout = 0`}, stmts...)
	}
	tx, err := db.SQL().BeginTxx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range stmts {
		var args []any
		if strings.Contains(q, "?") || strings.Contains(q, "$1") {
			args = []any{n}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			tb.Fatalf("storetest: seed: %v\n%s", err, q)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}
