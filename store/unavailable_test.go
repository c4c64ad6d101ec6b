package store_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestDeadlineOnBlockedStatementIsUnavailable: a statement that waits past
// the caller's deadline (here for a row lock another session holds) ends
// with it: the store closes its connection, lib/pq sends a cancel request
// (PostgreSQL answers 57014 query_canceled to it); the store reports it as
// ErrUnavailable, as it does a database that is down.
func TestDeadlineOnBlockedStatementIsUnavailable(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("set %s to run on PostgreSQL", storetest.EnvPostgresURL)
	}
	url := storetest.URL(t, store.Postgres)
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	id := lockClaimedMessage(t, db)

	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = db.MarkMessageSent(dctx, store.Claim{ID: id, Seq: 1}, t0) // waits for the row lock
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a statement cut by the deadline = %v, want ErrUnavailable", err)
	}
	t.Logf("error: %v", err)
}

// lockClaimedMessage queues and claims a message, and locks its row in a
// transaction of another session until t ends: a report of it then waits
// for the lock.
func lockClaimedMessage(t *testing.T, db *store.DB) int64 {
	t.Helper()
	ctx := context.Background()
	u, _ := newUser(t, db.Queries, "a@example.com")
	id, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := db.ClaimMessages(ctx, t0, time.Minute, 1); err != nil || len(msgs) != 1 {
		t.Fatalf("claim: %v, %v", msgs, err)
	}
	tx, err := db.SQL().Beginx()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.Exec(`SELECT id FROM outbox WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	return id
}
