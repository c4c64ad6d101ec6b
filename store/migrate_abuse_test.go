package store_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestMigrateAuditWithoutUser checks migration 3 on a database with audit
// rows: they are kept (on SQLite the table is made again), new rows may
// have no user and get new ids, and its Down puts the NOT NULL back,
// dropping the rows without a user. Rows are written with plain SQL of the
// schema at hand: the store's statements follow the newest schema.
func TestMigrateAuditWithoutUser(t *testing.T) {
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
			if _, err := p.UpTo(ctx, 1); err != nil {
				t.Fatal(err)
			}
			exec := func(query string, args ...any) error {
				_, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(query), args...)
				return err
			}
			var uid int64
			if err := db.SQL().GetContext(ctx, &uid, `INSERT INTO users (password_hash, date_joined) VALUES ('h', CURRENT_TIMESTAMP) RETURNING id`); err != nil {
				t.Fatal(err)
			}
			const insertEvent = `INSERT INTO audit_events (user_id, event, email, ip, user_agent, created_at) VALUES (?, ?, ?, ?, ?, CURRENT_TIMESTAMP)`
			if err := exec(insertEvent, uid, "signup", "a@example.com", "192.0.2.1", "test"); err != nil {
				t.Fatal(err)
			}
			if err := exec(insertEvent, nil, "login_failed", "", "", ""); err == nil {
				t.Fatal("an event without a user was stored before migration 3")
			}
			if _, err := p.UpTo(ctx, 3); err != nil {
				t.Fatal(err)
			}
			if err := exec(insertEvent, nil, "login_failed", "nobody@example.com", "", ""); err != nil {
				t.Fatalf("an event without a user after migration 3: %v", err)
			}
			var rows []struct {
				ID     int64  `db:"id"`
				UserID *int64 `db:"user_id"`
				Event  string `db:"event"`
				IP     string `db:"ip"`
			}
			if err := db.SQL().SelectContext(ctx, &rows, `SELECT id, user_id, event, ip FROM audit_events ORDER BY id`); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].UserID == nil || *rows[0].UserID != uid || rows[0].IP != "192.0.2.1" ||
				rows[1].UserID != nil || rows[1].ID <= rows[0].ID {
				t.Fatalf("audit rows after migration 3: %+v", rows)
			}
			if _, err := p.DownTo(ctx, 1); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.SQL().GetContext(ctx, &n, `SELECT COUNT(*) FROM audit_events WHERE user_id = `+strconv.FormatInt(uid, 10)); err != nil || n != 1 {
				t.Fatalf("after the Down: %d rows of the user, %v; want 1", n, err)
			}
			if err := db.SQL().GetContext(ctx, &n, `SELECT COUNT(*) FROM audit_events`); err != nil || n != 1 {
				t.Fatalf("after the Down: %d rows, %v; want 1", n, err)
			}
			if err := exec(insertEvent, nil, "login_failed", "", "", ""); err == nil {
				t.Fatal("an event without a user was stored after the Down")
			}
		})
	}
}
