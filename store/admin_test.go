package store_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestAdminTokens: a name names one live token; a revoked token keeps its
// row and frees its name; the hash finds the token; last_used_at moves at
// most once per interval.
func TestAdminTokens(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
		first, err := db.CreateAdminToken(ctx, "ops", []byte("hash-1"), false, now)
		if err != nil || first.Name != "ops" || first.ReadOnly || first.RevokedAt != nil {
			t.Fatalf("create: %+v %v", first, err)
		}
		if _, err := db.CreateAdminToken(ctx, "ops", []byte("hash-2"), true, now); !errors.Is(err, store.ErrNameTaken) {
			t.Errorf("a second live ops: %v, want ErrNameTaken", err)
		}
		if _, err := db.CreateAdminToken(ctx, "other", []byte("hash-1"), true, now); err == nil || errors.Is(err, store.ErrNameTaken) {
			t.Errorf("a second token of one hash: %v", err)
		}
		if err := db.RevokeAdminToken(ctx, "ops", now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeAdminToken(ctx, "ops", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke twice: %v", err)
		}
		second, err := db.CreateAdminToken(ctx, "ops", []byte("hash-2"), true, now)
		if err != nil {
			t.Fatalf("ops again after the revoke: %v", err)
		}
		got, err := db.AdminTokenByHash(ctx, []byte("hash-1"))
		if err != nil || got.ID != first.ID || got.RevokedAt == nil {
			t.Errorf("the revoked token by hash: %+v %v", got, err)
		}
		if _, err := db.AdminTokenByHash(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an unknown hash: %v", err)
		}
		for _, at := range []time.Time{now, now.Add(30 * time.Second), now.Add(2 * time.Minute)} {
			if err := db.TouchAdminToken(ctx, second.ID, at, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		got, err = db.AdminTokenByHash(ctx, []byte("hash-2"))
		if err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(now.Add(2*time.Minute)) {
			t.Errorf("last used %v, %v; want %v", got.LastUsedAt, err, now.Add(2*time.Minute))
		}
		all, err := db.AdminTokens(ctx)
		if err != nil || len(all) != 2 || all[0].ID != first.ID || all[1].ID != second.ID {
			t.Errorf("tokens %+v %v", all, err)
		}
	})
}

// TestMigrateAdmin checks migration 7 on a database with audit rows: they
// are kept, with no actor; its Down removes the tokens and the actor
// column and keeps the rows; Up again works.
func TestMigrateAdmin(t *testing.T) {
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
			exec := func(query string) error {
				_, err := db.SQL().ExecContext(ctx, query)
				return err
			}
			if err := exec(`INSERT INTO audit_events (user_id, event, email, created_at) VALUES (NULL, 'login_failed', 'a@example.com', CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 7); err != nil {
				t.Fatal(err)
			}
			var actor string
			if err := db.SQL().GetContext(ctx, &actor, `SELECT actor FROM audit_events`); err != nil || actor != "" {
				t.Fatalf("the old row's actor %q, %v; want ''", actor, err)
			}
			if err := exec(`INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ('ops', 'h', CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(ctx, 5); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.SQL().GetContext(ctx, &n, `SELECT COUNT(*) FROM audit_events`); err != nil || n != 1 {
				t.Fatalf("after the Down: %d audit rows, %v; want 1", n, err)
			}
			if err := exec(`SELECT actor FROM audit_events`); err == nil {
				t.Error("the actor column survived the Down")
			}
			if err := exec(`SELECT 1 FROM admin_tokens`); err == nil {
				t.Error("admin_tokens survived the Down")
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
		})
	}
}
