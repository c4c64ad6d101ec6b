package store_test

import (
	"context"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// outboxRow is every column of the outbox that migrations 1 to 6 made.
type outboxRow struct {
	ID            int64   `db:"id"`
	Kind          string  `db:"kind"`
	Recipient     string  `db:"recipient"`
	UserID        *int64  `db:"user_id"`
	Payload       string  `db:"payload"`
	Status        string  `db:"status"`
	Attempts      int     `db:"attempts"`
	NextAttemptAt string  `db:"next_attempt_at"`
	LastError     string  `db:"last_error"`
	CreatedAt     string  `db:"created_at"`
	SentAt        *string `db:"sent_at"`
	ClaimedBy     int64   `db:"claimed_by"`
	ClaimSeq      int64   `db:"claim_seq"`
}

// TestMigrateOutboxOutlivesUsers checks migration 6 on a database with
// outbox rows: every column and row is kept (on SQLite the table is made
// again) with the indexes of migrations 1 and 4, rows may then have no
// user, deleting a user leaves its rows without one, and 'cancelled' is a
// status; its Down drops the rows without a user, makes cancelled ones
// failed, and restores the schema of migration 5.
func TestMigrateOutboxOutlivesUsers(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, storetest.URL(t, d))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			dialect, dir := goose.DialectPostgres, "migrations/postgres"
			if d == store.SQLite {
				dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
			}
			p, err := goose.NewProvider(dialect, db.SQL().DB, os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 5); err != nil {
				t.Fatal(err)
			}
			exec := func(query string, args ...any) error {
				_, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(query), args...)
				return err
			}
			newUser := func() int64 {
				var uid int64
				if err := db.SQL().GetContext(ctx, &uid, `INSERT INTO users (password_hash, date_joined) VALUES ('h', CURRENT_TIMESTAMP) RETURNING id`); err != nil {
					t.Fatal(err)
				}
				return uid
			}
			kept, gone := newUser(), newUser()
			const insert = `INSERT INTO outbox (kind, recipient, user_id, payload, status, attempts, next_attempt_at, last_error, created_at, sent_at, claimed_by, claim_seq)
				VALUES (?, ?, ?, ?, ?, ?, '2026-11-28 09:30:00', ?, '2026-11-28 09:00:00', ?, ?, ?)`
			rows := [][]any{
				{"verify", "a@example.com", kept, `{"email":"a@example.com","email_id":1}`, "sent", 1, "", "2026-11-28 09:01:00", 7, 3},
				{"email_added", "a@example.com", kept, `{"email":"b@example.com"}`, "sending", 2, "timeout", nil, 9, 5},
				{"verify", "g@example.com", gone, `{"email":"g@example.com","email_id":2}`, "queued", 0, "", nil, 0, 0},
			}
			for _, r := range rows {
				if err := exec(insert, r...); err != nil {
					t.Fatal(err)
				}
			}
			if err := exec(`INSERT INTO outbox (kind, recipient, user_id, payload, next_attempt_at, created_at) VALUES ('x', 'x@example.com', NULL, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`); err == nil {
				t.Fatal("a row without a user was stored before migration 6")
			}
			read := func() []outboxRow {
				var got []outboxRow
				q := `SELECT id, kind, recipient, user_id, payload, status, attempts, CAST(next_attempt_at AS TEXT) AS next_attempt_at,
					last_error, CAST(created_at AS TEXT) AS created_at, CAST(sent_at AS TEXT) AS sent_at, claimed_by, claim_seq FROM outbox ORDER BY id`
				if err := db.SQL().SelectContext(ctx, &got, q); err != nil {
					t.Fatal(err)
				}
				return got
			}
			indexes := func() []string {
				q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox' AND name NOT LIKE 'sqlite_%' ORDER BY name`
				if d == store.Postgres {
					q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'outbox' AND indexname <> 'outbox_pkey' ORDER BY indexname`
				}
				var names []string
				if err := db.SQL().SelectContext(ctx, &names, q); err != nil {
					t.Fatal(err)
				}
				return names
			}
			before, beforeIndexes := read(), indexes()
			if !slices.Equal(beforeIndexes, []string{"outbox_due", "outbox_finished", "outbox_status"}) {
				t.Fatalf("indexes at migration 5: %v", beforeIndexes)
			}

			if _, err := p.UpTo(ctx, 6); err != nil {
				t.Fatal(err)
			}
			if got := read(); !reflect.DeepEqual(got, before) {
				t.Fatalf("rows after migration 6:\n got %+v\nwant %+v", got, before)
			}
			if got := indexes(); !slices.Equal(got, []string{"outbox_due", "outbox_finished", "outbox_status", "outbox_user"}) {
				t.Fatalf("indexes after migration 6: %v", got)
			}
			if err := exec(`DELETE FROM users WHERE id = ?`, gone); err != nil {
				t.Fatal(err)
			}
			if err := exec(`UPDATE outbox SET status = 'cancelled' WHERE id = ?`, before[2].ID); err != nil {
				t.Fatalf("a cancelled row after migration 6: %v", err)
			}
			after := read()
			if len(after) != 3 || after[2].UserID != nil || after[2].Status != "cancelled" || after[0].UserID == nil || *after[0].UserID != kept {
				t.Fatalf("rows after deleting a user: %+v", after)
			}
			if err := exec(`INSERT INTO outbox (kind, recipient, user_id, payload, next_attempt_at, created_at) VALUES ('account_deleted', 'g@example.com', NULL, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`); err != nil {
				t.Fatalf("a row without a user after migration 6: %v", err)
			}
			// The next id is above every kept one: AUTOINCREMENT's counter came along.
			var maxID int64
			if err := db.SQL().GetContext(ctx, &maxID, `SELECT MAX(id) FROM outbox`); err != nil || maxID <= before[2].ID {
				t.Fatalf("new row id %d, %v: want above %d", maxID, err, before[2].ID)
			}

			if _, err := p.DownTo(ctx, 5); err != nil {
				t.Fatal(err)
			}
			if got := read(); !reflect.DeepEqual(got, before[:2]) {
				t.Fatalf("rows after the Down:\n got %+v\nwant %+v", got, before[:2])
			}
			if got := indexes(); !slices.Equal(got, beforeIndexes) {
				t.Fatalf("indexes after the Down: %v", got)
			}
			if err := exec(`UPDATE outbox SET status = 'cancelled' WHERE id = ?`, before[0].ID); err == nil {
				t.Fatal("a cancelled row after the Down")
			}
			if err := exec(`DELETE FROM users WHERE id = ?`, kept); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.SQL().GetContext(ctx, &n, `SELECT COUNT(*) FROM outbox`); err != nil || n != 0 {
				t.Fatalf("after the Down, deleting a user left %d of its rows, %v", n, err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
		})
	}
}
