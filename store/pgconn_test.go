package store_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// pgURL returns the URL of a fresh PostgreSQL schema, or skips.
func pgURL(t *testing.T) string {
	t.Helper()
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("set %s to run on PostgreSQL", storetest.EnvPostgresURL)
	}
	return storetest.URL(t, store.Postgres)
}

// withParam returns rawURL with one more query parameter.
func withParam(t *testing.T, rawURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func openMigrated(t *testing.T, rawURL string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestStatementTimeout: each connection of the store has the
// statement_timeout of its URL (DefaultStatementTimeout without one; 0
// leaves the server's), and a statement stuck on a lock ends there, even
// for a caller without a deadline.
func TestStatementTimeout(t *testing.T) {
	base := pgURL(t)
	for param, want := range map[string]string{"": "9s", "1500ms": "1500ms", "0": "0"} {
		rawURL := base
		if param != "" {
			rawURL = withParam(t, base, "statement_timeout", param)
		}
		db, err := store.Open(context.Background(), rawURL)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := db.SQL().Get(&got, `SHOW statement_timeout`); err != nil || got != want {
			t.Errorf("statement_timeout=%q: SHOW statement_timeout = %q, %v; want %q", param, got, err, want)
		}
		db.Close()
	}

	db := openMigrated(t, withParam(t, base, "statement_timeout", "300ms"))
	id := lockClaimedMessage(t, db)
	done := make(chan error, 1)
	go func() { done <- db.MarkMessageSent(context.Background(), store.Claim{ID: id, Seq: 1}, t0) }() // waits for the row lock
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("a statement past its statement_timeout = %v, want ErrUnavailable", err)
		}
		t.Logf("error: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("a statement waiting for a lock was not ended by statement_timeout")
	}
}

// TestBlackHoleEndsCalls: with the path to PostgreSQL swallowing every
// byte, a call left waiting when it comes back is ended by the reaper, not
// its deadline; calls end with their context as ErrUnavailable, in a
// transaction too; the connections they hung are not reused once the path
// is back.
func TestBlackHoleEndsCalls(t *testing.T) {
	base := pgURL(t)
	hole := storetest.StartBlackHole(t, base)
	db := openMigrated(t, hole.URL(base))
	newUser(t, db.Queries, "a@example.com")

	// A call that waits long on an established connection: the reaper, not
	// its deadline, ends it once the path is back.
	hole.Swallow(true)
	waiting := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		waiting <- db.CheckWrites(ctx) // one statement, on the pool's idle connection
	}()
	time.Sleep(4 * time.Second) // longer than the reaper lets a read wait
	hole.Swallow(false)
	select {
	case err := <-waiting:
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "was not running the statement") {
			t.Errorf("a call whose statement the path lost = %v, want ErrUnavailable from the reaper", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a call whose statement the path lost was not ended once the path came back")
	}

	hole.Swallow(true)
	short := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return f(ctx)
	}
	calls := map[string]func(ctx context.Context) error{
		"ping": db.Ping,
		"get":  func(ctx context.Context) error { _, err := db.UserByLoginKey(ctx, "a@example.com"); return err },
		"transaction": func(ctx context.Context) error {
			return db.WithTx(ctx, func(q *store.Queries) error {
				_, err := q.UserByLoginKey(ctx, "a@example.com")
				return err
			})
		},
	}
	for name, call := range calls {
		done := make(chan error, 1)
		go func() { done <- short(call) }()
		select {
		case err := <-done:
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with the path black-holed = %v, want ErrUnavailable", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s with the path black-holed did not end with its context", name)
		}
	}

	// No connection that hung is handed out again.
	hole.Swallow(false)
	for i := range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := db.UserByLoginKey(ctx, "a@example.com")
		cancel()
		if err != nil {
			t.Fatalf("call %d after the path came back: %v", i, err)
		}
	}
}

// TestCheckWritesReadOnly: on a database whose sessions are read-only,
// CheckWrites fails; a write answers ErrUnavailable, and CheckWrites
// names it; on a writable one CheckWrites passes.
func TestCheckWritesReadOnly(t *testing.T) {
	base := pgURL(t)
	ctx := context.Background()
	if err := openMigrated(t, base).CheckWrites(ctx); err != nil {
		t.Errorf("CheckWrites on a writable database: %v", err)
	}
	db, err := store.Open(ctx, withParam(t, base, "default_transaction_read_only", "on"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CheckWrites(ctx); !errors.Is(err, store.ErrCannotWrite) {
		t.Errorf("CheckWrites on a read-only database = %v, want ErrCannotWrite", err)
	}
	_, _, err = db.CreateUser(ctx, store.NewUser{Email: "b@example.com", Key: "b@example.com", PasswordHash: "h"}, t0)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("a write on a read-only database = %v, want ErrUnavailable", err)
	}
	if err := db.CheckWrites(ctx); !errors.Is(err, store.ErrCannotWrite) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("CheckWrites after a refused write = %v, want ErrCannotWrite naming it", err)
	}
}
