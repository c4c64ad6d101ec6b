package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// TestOutboxPlans checks the plans of the dispatcher's statements with a
// large deferred backlog in the outbox, before and after the planner has
// statistics: the claim and NextDueAt walk the due-time index (outbox_due)
// in its order, never the status index with a sort of every queued row;
// the reports of outcomes reach their rows by primary key.
func TestOutboxPlans(t *testing.T) {
	for _, dialect := range []Dialect{SQLite, Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			db := openFresh(t, dialect, "")
			ctx := context.Background()
			now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			u, _, err := db.CreateUser(ctx, NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "h"}, now)
			if err != nil {
				t.Fatal(err)
			}
			// 100,000 messages deferred to next year.
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
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			for i, stats := range []string{"without statistics", "after ANALYZE"} {
				if stats == "after ANALYZE" {
					if _, err := db.db.ExecContext(ctx, "ANALYZE"); err != nil {
						t.Fatal(err)
					}
				}
				t.Run(stats, func(t *testing.T) {
					// Four messages fall due and are claimed: one is
					// rescheduled, one fails, two are delivered.
					at := now.Add(time.Duration(i) * time.Hour)
					if _, err := db.EnqueueMessages(ctx, batch[:4], at); err != nil {
						t.Fatal(err)
					}
					rec := &recordingExt{DB: db.db}
					q := &Queries{ext: rec, dialect: dialect}
					var claims []Claim
					err := db.WithTx(ctx, func(tq *Queries) error {
						rec.ext = tq.ext // the claim runs in a transaction, as the dispatcher's does
						msgs, err := q.ClaimMessages(ctx, at, time.Minute, 50)
						for _, m := range msgs {
							claims = append(claims, m.Claim())
						}
						return err
					})
					if err != nil || len(claims) != 4 {
						t.Fatalf("claimed %d messages, %v; want the 4 due", len(claims), err)
					}
					rec.ext = db.db
					if due, err := q.NextDueAt(ctx); err != nil || !due.Equal(at.Add(time.Minute)) {
						t.Fatalf("NextDueAt = %v, %v; want the claims' lease end", due, err)
					}
					if err := q.RescheduleMessage(ctx, claims[0], at.AddDate(2, 0, 0), "451"); err != nil {
						t.Fatal(err)
					}
					if err := q.FailMessage(ctx, claims[1], "550"); err != nil {
						t.Fatal(err)
					}
					if ids, err := q.MarkMessagesSent(ctx, claims[2:], at); err != nil || len(ids) != 2 {
						t.Fatalf("MarkMessagesSent = %v, %v; want the 2 claimed", ids, err)
					}
					checks := []struct {
						name  string
						plan  func(Dialect, string) bool
						wants string
					}{
						{"claim", readsDueIndex, "walks outbox_due in order"},
						{"NextDueAt", readsDueIndex, "walks outbox_due in order"},
						{"RescheduleMessage", readsByKey, "reaches its row by primary key"},
						{"FailMessage", readsByKey, "reaches its row by primary key"},
						{"MarkMessagesSent", readsByKey, "reaches its rows by primary key"},
					}
					if len(rec.queries) != len(checks) {
						t.Fatalf("recorded %d statements, want %d", len(rec.queries), len(checks))
					}
					for i, c := range checks {
						plan := explain(t, db.db, dialect, rec.queries[i])
						t.Logf("%s:\n%s", c.name, plan)
						if !c.plan(dialect, plan) {
							t.Errorf("the %s plan is not one that %s:\n%s", c.name, c.wants, plan)
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

// readsByKey reports whether a plan reaches the outbox by primary key only.
func readsByKey(dialect Dialect, plan string) bool {
	key := 0
	for _, line := range strings.Split(plan, "\n") {
		switch {
		case dialect == SQLite && strings.Contains(line, "TEMP B-TREE"),
			strings.Contains(line, "Seq Scan"), strings.Contains(line, "Bitmap"):
			return false
		case strings.Contains(line, "USING INTEGER PRIMARY KEY"), strings.Contains(line, "using outbox_pkey"):
			key++
		case strings.Contains(line, "Update on outbox"):
		case strings.Contains(line, "outbox"):
			return false
		}
	}
	return key > 0
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

func (r *recordingExt) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.record(query, args)
	return r.ext.ExecContext(ctx, query, args...)
}

func (r *recordingExt) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	r.record(query, args)
	return r.ext.QueryRowxContext(ctx, query, args...)
}
