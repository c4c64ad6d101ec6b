package store

import (
	"context"
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
	url := os.Getenv("USEREMAIL_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("USEREMAIL_TEST_DATABASE_URL is not set: prepared statements are PostgreSQL's")
	}
	ctx := context.Background()
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.stmts == nil {
		t.Fatal("no statement cache on PostgreSQL")
	}

	const query = `SELECT ? + 1` // unique to this test
	var n int
	if err := db.get(ctx, &n, query, 41); err != nil || n != 42 {
		t.Fatalf("first run: %d, %v", n, err)
	}
	rebound := db.rebind(query)
	for deadline := time.Now().Add(10 * time.Second); db.stmts.prepared(rebound) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the statement was not prepared in the background")
		}
	}

	// In a transaction: the statement runs prepared on the transaction's
	// connection, which then lists it among its prepared statements.
	err = db.WithTx(ctx, func(q *Queries) error {
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

	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	off, err := Open(ctx, url+sep+"prepared_statements=off")
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if off.stmts != nil {
		t.Error("prepared_statements=off keeps a statement cache")
	}
	if err := off.get(ctx, &n, query, 2); err != nil || n != 3 {
		t.Fatalf("unprepared: %d, %v", n, err)
	}
}
