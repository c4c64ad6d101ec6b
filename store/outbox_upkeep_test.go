package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// upkeepRows gives db's outbox, for one user, n rows of each of these
// (status, created, sent) kinds and returns the user's id.
func upkeepRows(t *testing.T, db *DB, now time.Time, kinds []upkeepKind) int64 {
	t.Helper()
	ctx := context.Background()
	u, _, err := db.CreateUser(ctx, NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "h"}, now)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]NewMessage, 1000)
	for i := range batch {
		batch[i] = NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}
	}
	for _, k := range kinds {
		var ids []int64
		for done := 0; done < k.n; done += len(batch) {
			more, err := db.EnqueueMessages(ctx, batch[:min(len(batch), k.n-done)], now)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, more...)
		}
		var sent any
		if !k.sent.IsZero() {
			sent = utc(k.sent)
		}
		const update = `UPDATE outbox SET status = ?, created_at = ?, sent_at = ? WHERE id BETWEEN ? AND ?`
		if _, err := db.db.ExecContext(ctx, db.db.Rebind(update), k.status, utc(k.created), sent, ids[0], ids[len(ids)-1]); err != nil {
			t.Fatal(err)
		}
	}
	return u.ID
}

type upkeepKind struct {
	n             int
	status        string
	created, sent time.Time
}

// statusCounts counts the whole outbox by status, the way the metrics no
// longer do.
func statusCounts(t *testing.T, db *DB) map[string]int64 {
	t.Helper()
	counts, err := db.CountMessages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for s, n := range counts {
		if n == 0 {
			delete(counts, s)
		}
	}
	return counts
}

// TestOutboxUpkeep: CountWaitingMessages counts queued, sending and failed
// mail and leaves sent mail out; DeleteFinishedMessages deletes, in batches
// of at most its limit, the sent mail sent before its time and nothing
// else; DeleteFailedMessages deletes failed mail queued before its time.
func TestOutboxUpkeep(t *testing.T) {
	for _, dialect := range []Dialect{SQLite, Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			db := openFresh(t, dialect, "")
			ctx := context.Background()
			now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			old, cutoff, recent := now.AddDate(0, 0, -40), now.AddDate(0, 0, -30), now.AddDate(0, 0, -1)
			upkeepRows(t, db, now, []upkeepKind{
				{n: 2500, status: StatusSent, created: old, sent: old},
				{n: 3, status: StatusSent, created: old, sent: recent},
				{n: 4, status: StatusSent, created: recent, sent: recent},
				{n: 5, status: StatusFailed, created: old},
				{n: 6, status: StatusFailed, created: recent},
				{n: 7, status: StatusQueued, created: old},
				{n: 8, status: StatusSending, created: old},
			})

			waiting, err := db.CountWaitingMessages(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]int64{StatusQueued: 7, StatusSending: 8, StatusFailed: 11}; !equalCounts(waiting, want) {
				t.Errorf("CountWaitingMessages = %v, want %v", waiting, want)
			}

			var batches []int64
			for {
				n, err := db.DeleteFinishedMessages(ctx, cutoff, 1000)
				if err != nil {
					t.Fatal(err)
				}
				batches = append(batches, n)
				if n < 1000 {
					break
				}
			}
			if len(batches) != 3 || batches[0] != 1000 || batches[1] != 1000 || batches[2] != 500 {
				t.Errorf("DeleteFinishedMessages deleted %v in turn, want [1000 1000 500]", batches)
			}
			if got, want := statusCounts(t, db), map[string]int64{StatusSent: 7, StatusFailed: 11, StatusQueued: 7, StatusSending: 8}; !equalCounts(got, want) {
				t.Errorf("after the retention the outbox holds %v, want %v", got, want)
			}

			if n, err := db.DeleteFailedMessages(ctx, cutoff, 1000); err != nil || n != 5 {
				t.Errorf("DeleteFailedMessages before the cut-off = %d, %v; want 5", n, err)
			}
			if n, err := db.DeleteFailedMessages(ctx, now, 4); err != nil || n != 4 {
				t.Errorf("DeleteFailedMessages of 4 = %d, %v; want 4", n, err)
			}
			if n, err := db.DeleteFailedMessages(ctx, now, 4); err != nil || n != 2 {
				t.Errorf("DeleteFailedMessages of the rest = %d, %v; want 2", n, err)
			}
			if got, want := statusCounts(t, db), map[string]int64{StatusSent: 7, StatusQueued: 7, StatusSending: 8}; !equalCounts(got, want) {
				t.Errorf("after the purge the outbox holds %v, want %v", got, want)
			}
		})
	}
}

// TestOutboxRetentionCancelled: cancelled mail (a status of issue 14)
// ages from when it was queued and goes with the sent mail. On PostgreSQL
// only, whose status check can be widened in a test; the statement is
// the same on SQLite.
func TestOutboxRetentionCancelled(t *testing.T) {
	db := openFresh(t, Postgres, "")
	ctx := context.Background()
	if _, err := db.db.ExecContext(ctx, `ALTER TABLE outbox DROP CONSTRAINT outbox_status_check`); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	upkeepRows(t, db, now, []upkeepKind{
		{n: 3, status: "cancelled", created: now.AddDate(0, 0, -40)},
		{n: 2, status: "cancelled", created: now.AddDate(0, 0, -1)},
	})
	if n, err := db.DeleteFinishedMessages(ctx, now.AddDate(0, 0, -30), 1000); err != nil || n != 3 {
		t.Errorf("DeleteFinishedMessages = %d, %v; want the 3 old cancelled mails", n, err)
	}
	if got := statusCounts(t, db); got["cancelled"] != 2 {
		t.Errorf("the outbox holds %v, want 2 cancelled", got)
	}
}

func equalCounts(got, want map[string]int64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if v != 0 && want[k] != v {
			return false
		}
	}
	return true
}

// TestOutboxUpkeepPlans checks the plans of the upkeep's statements with
// 100,000 sent rows, without and with statistics: the counts read the
// status index over the counted statuses alone, and a batch of the
// retention reads the finished index and reaches the rows by primary key;
// none reads the whole table. With statistics the batch walks the index
// from its oldest entry and stops at the batch, on both databases; without
// them PostgreSQL, which guesses a few hundred expired rows, may gather
// them all in a bitmap and sort them, which autovacuum's ANALYZE ends once
// the table has grown (SQLite, which has no such thing, is told its index).
func TestOutboxUpkeepPlans(t *testing.T) {
	for _, dialect := range []Dialect{SQLite, Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			db := openFresh(t, dialect, "")
			ctx := context.Background()
			now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			upkeepRows(t, db, now, []upkeepKind{
				{n: 100_000, status: StatusSent, created: now.AddDate(0, 0, -1), sent: now.AddDate(0, 0, -1)},
				{n: 10, status: StatusFailed, created: now},
				{n: 10, status: StatusQueued, created: now},
			})
			for _, stats := range []string{"without statistics", "after ANALYZE"} {
				if stats == "after ANALYZE" {
					if _, err := db.db.ExecContext(ctx, "ANALYZE"); err != nil {
						t.Fatal(err)
					}
				}
				t.Run(stats, func(t *testing.T) {
					rec := &recordingExt{DB: db.db, ext: db.db}
					q := &Queries{ext: rec, dialect: dialect}
					if _, err := q.CountWaitingMessages(ctx); err != nil {
						t.Fatal(err)
					}
					if _, err := q.DeleteFinishedMessages(ctx, now.AddDate(0, 0, -30), 1000); err != nil {
						t.Fatal(err)
					}
					if _, err := q.DeleteFailedMessages(ctx, now.AddDate(0, 0, -30), 1000); err != nil {
						t.Fatal(err)
					}
					checks := []struct {
						name string
						plan func(Dialect, string) bool
					}{
						{"CountWaitingMessages", readsStatusRanges},
						{"DeleteFinishedMessages", func(d Dialect, plan string) bool {
							return readsFinishedIndex(d, plan, d == Postgres && stats == "without statistics")
						}},
						{"DeleteFailedMessages", readsStatusRanges},
					}
					if len(rec.queries) != len(checks) {
						t.Fatalf("recorded %d statements, want %d", len(rec.queries), len(checks))
					}
					for i, c := range checks {
						plan := explain(t, db.db, dialect, rec.queries[i])
						t.Logf("%s:\n%s", c.name, plan)
						if !c.plan(dialect, plan) {
							t.Errorf("the %s plan reads more of the outbox than it needs:\n%s", c.name, plan)
						}
					}
				})
			}
		})
	}
}

// readsStatusRanges reports whether a plan reads the outbox only through
// a search of an index (by status, or by primary key), never a scan of the
// table or of a whole index.
func readsStatusRanges(dialect Dialect, plan string) bool {
	searches := 0
	for _, line := range strings.Split(plan, "\n") {
		switch {
		case strings.Contains(line, "Seq Scan"), strings.HasPrefix(strings.TrimSpace(line), "SCAN outbox"):
			return false
		case dialect == SQLite && strings.HasPrefix(line, "SEARCH outbox USING"),
			dialect == Postgres && strings.Contains(line, "Index Cond: (status ="):
			searches++
		}
	}
	return searches > 0
}

// readsFinishedIndex reports whether a plan finds its rows through
// outbox_finished and reaches them by primary key, with no scan of the
// table; unless orderless, in the index's order: no bitmap, no sort.
func readsFinishedIndex(dialect Dialect, plan string, orderless bool) bool {
	finished, byKey := false, false
	for _, line := range strings.Split(plan, "\n") {
		switch {
		case strings.Contains(line, "Seq Scan"), strings.HasPrefix(strings.TrimSpace(line), "SCAN outbox"):
			return false
		case !orderless && (strings.Contains(line, "Bitmap") || strings.Contains(line, "Sort") || strings.Contains(line, "TEMP B-TREE")):
			return false
		case strings.Contains(line, "outbox_finished"):
			finished = true
		case strings.Contains(line, "USING INTEGER PRIMARY KEY"), strings.Contains(line, "outbox_pkey"):
			byKey = true
		}
	}
	return finished && byKey
}
