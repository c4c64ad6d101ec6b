package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// TestDueQueriesReadTheDueIndex checks the plans of the claim and of
// NextDueAt with a large deferred backlog in the outbox: both must walk
// the due-time index (outbox_due) in its order, never the status index
// with a sort of every queued row, before and after the planner has
// statistics.
func TestDueQueriesReadTheDueIndex(t *testing.T) {
	for _, dialect := range []Dialect{SQLite, Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			db := openFresh(t, dialect)
			ctx := context.Background()
			now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			u, _, err := db.CreateUser(ctx, NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "h"}, now)
			if err != nil {
				t.Fatal(err)
			}
			// 100,000 messages deferred to next year, and a few due now.
			const deferred, chunk = 100_000, 1000
			batch := make([]NewMessage, chunk)
			for i := range batch {
				batch[i] = NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}
			}
			err = db.WithTx(ctx, func(q *Queries) error {
				for range deferred / chunk {
					if _, err := q.EnqueueMessages(ctx, batch, now.AddDate(1, 0, 0)); err != nil {
						return err
					}
				}
				_, err := q.EnqueueMessages(ctx, batch[:3], now)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}

			for i, stats := range []string{"without statistics", "after ANALYZE"} {
				// Each claim takes the three due messages: the second after
				// the first one's lease ended.
				at := now.Add(time.Duration(i) * 2 * time.Minute)
				if stats == "after ANALYZE" {
					if _, err := db.db.ExecContext(ctx, "ANALYZE"); err != nil {
						t.Fatal(err)
					}
				}
				t.Run(stats, func(t *testing.T) {
					rec := &recordingExt{DB: db.db}
					q := &Queries{ext: rec, dialect: dialect}
					err := db.WithTx(ctx, func(tq *Queries) error {
						rec.ext = tq.ext // the claim runs in a transaction, as the dispatcher's does
						msgs, err := q.ClaimMessages(ctx, at, time.Minute, 50)
						if err == nil && len(msgs) != 3 {
							err = fmt.Errorf("claimed %d messages, want the 3 due", len(msgs))
						}
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					rec.ext = db.db
					if due, err := q.NextDueAt(ctx); err != nil || !due.Equal(at.Add(time.Minute)) {
						t.Fatalf("NextDueAt = %v, %v; want the claims' lease end", due, err)
					}
					if len(rec.queries) != 2 {
						t.Fatalf("recorded %d statements, want the claim and NextDueAt", len(rec.queries))
					}
					for i, name := range []string{"claim", "NextDueAt"} {
						plan := explain(t, db.db, dialect, rec.queries[i])
						t.Logf("%s:\n%s", name, plan)
						if !readsDueIndex(dialect, plan) {
							t.Errorf("%s plan does not walk outbox_due in order:\n%s", name, plan)
						}
					}
				})
			}
		})
	}
}

// readsDueIndex reports whether a plan reads the outbox only through
// outbox_due, in its order, and by primary key: no other index, no scan
// of the table, no sort of its rows. (PostgreSQL may sort the claimed ids
// to join them to the table: at most a batch.)
func readsDueIndex(dialect Dialect, plan string) bool {
	due, other := 0, 0
	for _, line := range strings.Split(plan, "\n") {
		switch {
		case dialect == SQLite && strings.Contains(line, "TEMP B-TREE"),
			strings.Contains(line, "Sort Key") && strings.Contains(line, "next_attempt_at"),
			strings.Contains(line, "Seq Scan"), strings.Contains(line, "Bitmap"):
			return false
		case strings.Contains(line, "USING INDEX outbox_due"), strings.Contains(line, "using outbox_due"):
			due++
		case strings.Contains(line, "USING INTEGER PRIMARY KEY"), strings.Contains(line, "using outbox_pkey"),
			strings.Contains(line, "Update on outbox"):
		case strings.Contains(line, "outbox"):
			other++
		}
	}
	return due == 1 && other == 0
}

// explain returns the plan of a recorded statement, one node a line.
func explain(t *testing.T, db *sqlx.DB, dialect Dialect, st recorded) string {
	t.Helper()
	prefix := "EXPLAIN "
	if dialect == SQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := db.Query(prefix+st.query, st.args...)
	if err != nil {
		t.Fatalf("%s%s: %v", prefix, st.query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprint(vals[len(vals)-1])) // SQLite: id, parent, notused, detail
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// recorded is one statement as the store sent it.
type recorded struct {
	query string
	args  []any
}

// recordingExt runs the store's statements on ext and records their
// queries (the statements the store builds are what the test explains).
type recordingExt struct {
	*sqlx.DB // for DriverName, Rebind and BindNamed
	ext      sqlx.ExtContext
	queries  []recorded
}

func (r *recordingExt) record(query string, args []any) {
	r.queries = append(r.queries, recorded{query: query, args: args})
}

func (r *recordingExt) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	r.record(query, args)
	return r.ext.QueryxContext(ctx, query, args...)
}

func (r *recordingExt) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	r.record(query, args)
	return r.ext.QueryRowxContext(ctx, query, args...)
}

// openFresh returns a fresh migrated store of dialect d, closed when t
// ends: an SQLite file, or a PostgreSQL schema of its own (skipped when
// USEREMAIL_TEST_DATABASE_URL is not set). The package's own tests
// cannot use storetest, which imports the package.
func openFresh(t *testing.T, d Dialect) *DB {
	t.Helper()
	ctx := context.Background()
	var db *DB
	if d == SQLite {
		var err error
		if db, err = Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "useremail.db")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	} else {
		_, admin := openPostgres(t, "")
		schema := fmt.Sprintf("store_test_%d", time.Now().UnixNano())
		if _, err := admin.db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE") })
		_, db = openPostgres(t, "search_path="+schema)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
