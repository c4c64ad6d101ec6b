package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPreparedStatements checks on PostgreSQL that a statement runs
// unprepared at first, is prepared in the background, and is then used
// prepared, inside a transaction too; and that prepared_statements=off
// keeps none. (The store's own tests and the rest of the suite run every
// statement through the cache; this one looks at the connection itself.)
func TestPreparedStatements(t *testing.T) {
	_, db := openPostgres(t, "")
	ctx := context.Background()
	if db.stmts == nil {
		t.Fatal("no statement cache on PostgreSQL")
	}

	const query = `SELECT ? + 1` // unique to this test
	var n int
	if err := db.get(ctx, &n, query, 41); err != nil || n != 42 {
		t.Fatalf("first run: %d, %v", n, err)
	}
	rebound := db.rebind(query)
	for deadline := time.Now().Add(10 * time.Second); db.stmts.prepared(query) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the statement was not prepared in the background")
		}
	}

	// In a transaction: the statement runs prepared on the transaction's
	// connection, which then lists it among its prepared statements.
	err := db.WithTx(ctx, func(q *Queries) error {
		if err := q.get(ctx, &n, query, 1); err != nil || n != 2 {
			t.Fatalf("in a transaction: %d, %v", n, err)
		}
		var kept bool
		const listed = `SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement = $1)`
		if err := q.tx.GetContext(ctx, &kept, listed, rebound); err != nil {
			return err
		}
		if !kept {
			t.Errorf("%q is not prepared on the transaction's connection", rebound)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	_, off := openPostgres(t, "prepared_statements=off")
	if off.stmts != nil {
		t.Error("prepared_statements=off keeps a statement cache")
	}
	if err := off.get(ctx, &n, query, 2); err != nil || n != 3 {
		t.Fatalf("unprepared: %d, %v", n, err)
	}
}

// TestOutboxClaimsStayUnprepared checks that the outbox's churning
// statements are never kept prepared (a plan made while the table was
// small would stay), while the INSERT that queues mail is.
func TestOutboxClaimsStayUnprepared(t *testing.T) {
	ctx := context.Background()
	_, admin := openPostgres(t, "")
	schema := fmt.Sprintf("prepared_test_%d", time.Now().UnixNano())
	if _, err := admin.db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE") })
	_, db := openPostgres(t, "search_path="+schema)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, _, err := db.CreateUser(ctx, NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "x"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := db.EnqueueMessage(ctx, NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		err := db.WithTx(ctx, func(q *Queries) error {
			msgs, err := q.ClaimMessages(ctx, time.Now(), time.Minute, 10)
			for _, m := range msgs {
				if err == nil {
					err = q.MarkMessageSent(ctx, m.ID, m.Attempts, time.Now())
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.NextDueAt(ctx); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	db.stmts.wg.Wait() // the background preparations
	db.stmts.mu.RLock()
	defer db.stmts.mu.RUnlock()
	var insert bool
	for query := range db.stmts.m {
		switch {
		case strings.Contains(query, "INSERT INTO outbox"):
			insert = true
		case strings.Contains(query, "outbox"):
			t.Errorf("kept prepared: %s", query)
		}
	}
	if !insert {
		t.Error("the outbox INSERT is not kept prepared")
	}
}

// openPostgres opens the test PostgreSQL database, with param (name=value)
// added to its URL when not empty, and closes it when t ends; it skips t
// when USEREMAIL_TEST_DATABASE_URL is not set.
func openPostgres(t *testing.T, param string) (string, *DB) {
	t.Helper()
	url := os.Getenv("USEREMAIL_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("USEREMAIL_TEST_DATABASE_URL is not set: prepared statements are PostgreSQL's")
	}
	if param != "" {
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + param
	}
	db, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return url, db
}
