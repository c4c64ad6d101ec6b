package store_test

import (
	"context"
	"os"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestMigrateAuditWithoutUser checks migration 3 on a database with audit
// rows: they are kept (on SQLite the table is made again), new rows may
// have no user and get new ids, and its Down puts the NOT NULL back,
// dropping the rows without a user.
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
			u, _ := newUser(t, db.Queries, "a@example.com")
			if err := db.RecordEvent(ctx, store.AuditEvent{UserID: u.ID, Event: "signup", Email: "a@example.com", IP: "192.0.2.1", UserAgent: "test", CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			if err := db.RecordEvent(ctx, store.AuditEvent{Event: "login_failed", CreatedAt: t0}); err == nil {
				t.Fatal("an event without a user was stored before migration 3")
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.RecordEvent(ctx, store.AuditEvent{Event: "login_failed", Email: "nobody@example.com", CreatedAt: t0}); err != nil {
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
			if len(rows) != 2 || rows[0].UserID == nil || *rows[0].UserID != u.ID || rows[0].IP != "192.0.2.1" ||
				rows[1].UserID != nil || rows[1].ID <= rows[0].ID {
				t.Fatalf("audit rows after migration 3: %+v", rows)
			}
			if _, err := p.Down(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.SQL().GetContext(ctx, &n, `SELECT COUNT(*) FROM audit_events`); err != nil || n != 1 {
				t.Fatalf("after the Down: %d rows, %v; want 1", n, err)
			}
			if err := db.RecordEvent(ctx, store.AuditEvent{Event: "login_failed", CreatedAt: t0}); err == nil {
				t.Fatal("an event without a user was stored after the Down")
			}
			if events, err := db.EventsByUser(ctx, u.ID, 10); err != nil || len(events) != 1 {
				t.Fatalf("EventsByUser after the Down = %+v, %v", events, err)
			}
		})
	}
}
