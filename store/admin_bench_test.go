package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkAdminLists measures the admin API's list queries at 10,000 and
// at 1,000,000 users (each with an address, a mail and an audit event): a
// keyset page costs the same at the start and deep inside, and the same at
// both sizes, as every filter reads its index from the page's start.
func BenchmarkAdminLists(b *testing.B) {
	ctx := context.Background()
	for _, d := range storetest.Dialects() {
		for _, n := range []int{10_000, 1_000_000} {
			db := storetest.Open(b, d)
			seedAdminBench(b, db, n)
			mid := store.Page{After: int64(n / 2), Limit: 50}
			key := fmt.Sprintf("u%d@bench.example", n/2)
			cases := []struct {
				name string
				run  func() error
			}{
				{"users/first", func() error { _, _, err := db.ListUsers(ctx, store.Page{Limit: 50}); return err }},
				{"users/middle", func() error { _, _, err := db.ListUsers(ctx, mid); return err }},
				{"users/emails-of-page", func() error {
					users, _, err := db.ListUsers(ctx, mid)
					if err != nil {
						return err
					}
					ids := make([]int64, len(users))
					for i, u := range users {
						ids[i] = u.ID
					}
					_, err = db.EmailsOfUsers(ctx, ids)
					return err
				}},
				{"users/by-email", func() error { _, _, err := db.UsersByEmailKey(ctx, key, store.Page{Limit: 50}); return err }},
				{"outbox/middle", func() error { _, _, err := db.ListOutbox(ctx, store.OutboxFilter{}, mid); return err }},
				{"outbox/by-recipient", func() error {
					_, _, err := db.ListOutbox(ctx, store.OutboxFilter{Recipient: key}, store.Page{Limit: 50})
					return err
				}},
				{"outbox/by-status", func() error {
					_, _, err := db.ListOutbox(ctx, store.OutboxFilter{Status: store.StatusSent}, mid)
					return err
				}},
				{"audit/middle", func() error { _, _, err := db.ListAudit(ctx, 0, mid); return err }},
				{"audit/by-user", func() error { _, _, err := db.ListAudit(ctx, int64(n/2), store.Page{Limit: 50}); return err }},
			}
			for _, c := range cases {
				b.Run(fmt.Sprintf("%s/%dusers/%s", d, n, c.name), func(b *testing.B) {
					for b.Loop() {
						if err := c.run(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// seedAdminBench fills db with n users u1…un@bench.example, each with its
// primary address, a sent mail and an audit event, in a few statements.
func seedAdminBench(b *testing.B, db *store.DB, n int) {
	b.Helper()
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
	// One transaction, without the store's statement timeout on PostgreSQL:
	// a million rows take longer than any request may.
	tx, err := db.SQL().BeginTxx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	if db.Dialect() == store.Postgres {
		stmts = append([]string{`SET LOCAL statement_timeout = 0`}, stmts...)
	}
	for _, q := range stmts {
		var args []any
		if strings.Contains(q, "?") || strings.Contains(q, "$1") {
			args = []any{n}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
