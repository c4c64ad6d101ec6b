package store

import (
	"context"
	"strings"
	"testing"
)

// TestAdminListPlans checks the plans of the admin API's lists on 20,000
// users with statistics: each page reads one index from its start, in id
// order (the primary key, or the filter's index whose second column is the
// id), never a scan of the table or a sort of its rows, which is what keeps
// them flat from 10,000 to 1,000,000 users (BenchmarkAdminLists). The
// lookup by address may sort the few holders of that address.
func TestAdminListPlans(t *testing.T) {
	for _, dialect := range dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			db := openFresh(t, dialect, "")
			ctx := context.Background()
			seedAdminPlans(t, db, 20_000)
			rec := &recordingExt{DB: db.db, ext: db.db}
			q := &Queries{ext: rec, dialect: dialect}
			mid := Page{After: 10_000, Limit: 50}
			calls := []struct {
				name      string
				call      func() error
				mayFilter bool // may sort the holders of one address
			}{
				{"users", func() error { _, _, err := q.ListUsers(ctx, mid); return err }, false},
				{"users by email", func() error { _, _, err := q.UsersByEmailKey(ctx, "u10000@bench.example", Page{Limit: 50}); return err }, true},
				{"outbox", func() error { _, _, err := q.ListOutbox(ctx, OutboxFilter{}, mid); return err }, false},
				{"outbox by recipient", func() error {
					_, _, err := q.ListOutbox(ctx, OutboxFilter{Recipient: "U10000@bench.example"}, Page{Limit: 50})
					return err
				}, false},
				{"outbox failed", func() error {
					_, _, err := q.ListOutbox(ctx, OutboxFilter{Status: StatusFailed}, Page{Limit: 50})
					return err
				}, false},
				{"outbox by kind", func() error {
					_, _, err := q.ListOutbox(ctx, OutboxFilter{Kind: "email_added"}, Page{Limit: 50})
					return err
				}, false},
				{"audit", func() error { _, _, err := q.ListAudit(ctx, 0, mid); return err }, false},
				{"audit by user", func() error { _, _, err := q.ListAudit(ctx, 10_000, Page{Limit: 50}); return err }, false},
			}
			for _, c := range calls {
				rec.queries = nil
				if err := c.call(); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				plan := explain(t, db.db, dialect, rec.queries[0])
				t.Logf("%s:\n%s", c.name, plan)
				for _, line := range strings.Split(plan, "\n") {
					bad := strings.Contains(line, "Seq Scan") || strings.HasPrefix(strings.TrimSpace(line), "SCAN ") ||
						(!c.mayFilter && (strings.Contains(line, "TEMP B-TREE") || strings.Contains(line, "Sort")))
					if bad {
						t.Errorf("the %s plan scans or sorts the table:\n%s", c.name, plan)
						break
					}
				}
			}
		})
	}
}

// seedAdminPlans makes n users with an address, a sent verification mail
// and an audit event each, and a few failed notices, then ANALYZE.
func seedAdminPlans(t *testing.T, db *DB, n int) {
	t.Helper()
	ctx := context.Background()
	users := `INSERT INTO users (password_hash, date_joined) SELECT '', CURRENT_TIMESTAMP FROM generate_series(1, $1)`
	if db.dialect == SQLite {
		users = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
			INSERT INTO users (password_hash, date_joined) SELECT '', CURRENT_TIMESTAMP FROM s`
	}
	for i, q := range []string{
		users,
		`INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at)
			SELECT id, 'u' || id || '@bench.example', 'u' || id || '@bench.example', FALSE, TRUE, date_joined FROM users`,
		`INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at, sent_at)
			SELECT 'verify', email, user_id, '{}', 'sent', created_at, created_at, created_at FROM emails`,
		`INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at)
			SELECT 'email_added', email, user_id, '{}', 'failed', created_at, created_at FROM emails WHERE user_id % 1000 = 0`,
		`INSERT INTO audit_events (user_id, event, email, actor, created_at)
			SELECT user_id, 'signup', email, 'user', created_at FROM emails`,
		`ANALYZE`,
	} {
		var args []any
		if i == 0 {
			args = []any{n}
		}
		if _, err := db.db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
}
