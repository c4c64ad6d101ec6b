package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitPrepared waits until the background preparation of query is over
// and reports whether the statement is kept.
func waitPrepared(db *DB, query string) bool {
	db.stmts.wg.Wait()
	return db.stmts.prepared(query) != nil
}

// TestPreparedStatements checks on each dialect that a statement runs
// unprepared at first, is prepared in the background, and is then used
// prepared, inside a transaction too; and that prepared_statements=off
// keeps none. (The store's own tests and the rest of the suite run every
// statement through the cache; this one looks at the cache itself, and on
// PostgreSQL at the connection.)
func TestPreparedStatements(t *testing.T) {
	for _, d := range dialects() {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			db := openFresh(t, d, "")
			if db.stmts == nil {
				t.Fatal("no statement cache")
			}
			const query = `SELECT ? + 1` // unique to this test
			var n int
			if err := db.get(ctx, &n, query, 41); err != nil || n != 42 {
				t.Fatalf("first run: %d, %v", n, err)
			}
			if !waitPrepared(db, query) {
				t.Fatal("the statement was not prepared in the background")
			}
			err := db.WithTx(ctx, func(q *Queries) error {
				st := q.prepared(ctx, query)
				if st == nil {
					t.Fatal("the kept statement is not used in a transaction")
				}
				if err := st.GetContext(ctx, &n, 1); err != nil || n != 2 {
					t.Fatalf("in a transaction: %d, %v", n, err)
				}
				if d != Postgres {
					return nil
				}
				// It is prepared on the transaction's connection, which
				// then lists it among its prepared statements.
				var kept bool
				const listed = `SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement = $1)`
				if err := q.tx.GetContext(ctx, &kept, listed, q.rebind(query)); err != nil {
					return err
				}
				if !kept {
					t.Errorf("%q is not prepared on the transaction's connection", q.rebind(query))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			off := openFresh(t, d, "prepared_statements=off")
			if off.stmts != nil {
				t.Error("prepared_statements=off keeps a statement cache")
			}
			if err := off.get(ctx, &n, query, 2); err != nil || n != 3 {
				t.Fatalf("unprepared: %d, %v", n, err)
			}
		})
	}
}

// TestPreparedAcrossSchemaChanges checks that a kept statement answers
// from the schema of the moment: a statement that failed before its table
// existed is kept once it does (a store opened before Migrate), and a kept
// statement sees a column renamed and another added in its place, and a
// table dropped and created again.
func TestPreparedAcrossSchemaChanges(t *testing.T) {
	for _, d := range dialects() {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			db := openFresh(t, d, "")
			const query = `SELECT v FROM prepared_schema WHERE id = ?`
			var v string
			if err := db.get(ctx, &v, query, 1); err == nil {
				t.Fatal("a query of a table that does not exist succeeded")
			}
			if waitPrepared(db, query) {
				t.Fatal("a statement of a table that does not exist is kept")
			}
			steps := []struct {
				ddl  []string
				want string
			}{
				{[]string{`CREATE TABLE prepared_schema (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`, `INSERT INTO prepared_schema (id, v) VALUES (1, 'first')`}, "first"},
				{[]string{`ALTER TABLE prepared_schema RENAME COLUMN v TO old`, `ALTER TABLE prepared_schema ADD COLUMN v TEXT NOT NULL DEFAULT 'added'`}, "added"},
				{[]string{`DROP TABLE prepared_schema`, `CREATE TABLE prepared_schema (v TEXT NOT NULL, id INTEGER PRIMARY KEY)`, `INSERT INTO prepared_schema (v, id) VALUES ('again', 1)`}, "again"},
			}
			for i, step := range steps {
				for _, ddl := range step.ddl {
					if _, err := db.db.ExecContext(ctx, ddl); err != nil {
						t.Fatalf("step %d: %s: %v", i, ddl, err)
					}
				}
				if err := db.get(ctx, &v, query, 1); err != nil || v != step.want {
					t.Fatalf("step %d: %q, %v; want %q", i, v, err, step.want)
				}
				if !waitPrepared(db, query) {
					t.Fatalf("step %d: the statement is not kept", i)
				}
				if err := db.get(ctx, &v, query, 1); err != nil || v != step.want {
					t.Fatalf("step %d, prepared: %q, %v; want %q", i, v, err, step.want)
				}
			}
		})
	}
}

// TestPreparedClose checks that Close ends a preparation that waits for a
// connection (on SQLite the transaction holds the only one), closes the
// kept statements, and that the store then refuses work.
func TestPreparedClose(t *testing.T) {
	for _, d := range dialects() {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			db := openFresh(t, d, "")
			var n int
			if err := db.get(ctx, &n, `SELECT ? + 3`, 1); err != nil || !waitPrepared(db, `SELECT ? + 3`) {
				t.Fatalf("the first statement was not kept: %v", err)
			}
			err := db.WithTx(ctx, func(q *Queries) error {
				// Starts a preparation, which on SQLite waits for the
				// connection this transaction holds.
				if err := q.get(ctx, &n, `SELECT ? + 4`, 1); err != nil {
					return err
				}
				return db.Close()
			})
			if err != nil {
				t.Fatal(err)
			}
			db.stmts.mu.RLock()
			kept := len(db.stmts.m)
			db.stmts.mu.RUnlock()
			if kept != 0 {
				t.Errorf("%d statements kept after Close", kept)
			}
			if err := db.get(ctx, &n, `SELECT ? + 3`, 1); err == nil {
				t.Error("a query ran after Close")
			}
		})
	}
}

// TestSQLiteURLParameters checks the one parameter an SQLite URL takes.
func TestSQLiteURLParameters(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		prepared bool
	}{
		{"sqlite:a.db", true, true},
		{"sqlite:a.db?prepared_statements=on", true, true},
		{"sqlite:///tmp/a.db?prepared_statements=off", true, false},
		{"sqlite:a.db?prepared_statements=no", false, false},
		{"sqlite:a.db?mode=ro", false, false},
		{"sqlite:a.db?prepared_statements=off&mode=ro", false, false},
		{"sqlite:a#b.db", false, false},
	} {
		d, dsn, err := ParseURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseURL(%q) = %q, %q, %v", tc.in, d, dsn, err)
			continue
		}
		if tc.ok && (strings.Contains(dsn, preparedParam) || preparedStatements(tc.in) != tc.prepared) {
			t.Errorf("ParseURL(%q) = %q; prepared %v, want %v", tc.in, dsn, preparedStatements(tc.in), tc.prepared)
		}
	}
}

// TestOutboxClaimsStayUnprepared checks that the outbox's churning
// statements are never kept prepared (a plan made while the table was
// small would stay), while the INSERT that queues mail is.
func TestOutboxClaimsStayUnprepared(t *testing.T) {
	ctx := context.Background()
	_, _ = openPostgres(t, "") // PostgreSQL's plans are the concern
	db := openFresh(t, Postgres, "")
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
					err = q.MarkMessageSent(ctx, m.Claim(), time.Now())
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

// BenchmarkStatements measures the store's statements with the kept
// prepared statements on and off (prepared_statements=off), on 1,000 users
// with a session each: read is what a list request sends (SessionByHash,
// EmailsByUser), add the transaction of an add-email request (LockUser,
// CheckAddress, InsertEmailAudited, EnqueueMessages of two mails).
//
//	go test ./store -run '^$' -bench Statements -benchtime 3s
func BenchmarkStatements(b *testing.B) {
	ctx := context.Background()
	for _, d := range dialects() {
		modes := []string{"on", "off"}
		dbs := map[string]*DB{}
		sessions := map[string][]Session{}
		for _, mode := range modes {
			dbs[mode] = openFresh(b, d, "prepared_statements="+mode)
			sessions[mode] = seedBench(b, dbs[mode], 1000)
		}
		read := func(db *DB, s Session, _ int) error {
			if _, err := db.SessionByHash(ctx, s.IDHash); err != nil {
				return err
			}
			_, err := db.EmailsByUser(ctx, s.UserID)
			return err
		}
		add := func(db *DB, s Session, i int) error {
			addr := fmt.Sprintf("b%d.%d@bench.example", i, time.Now().UnixNano())
			return db.WithTx(ctx, func(q *Queries) error {
				if _, err := q.LockUser(ctx, s.UserID); err != nil {
					return err
				}
				c, err := q.CheckAddress(ctx, s.UserID, addr)
				if err != nil {
					return err
				}
				now := time.Now()
				e, err := q.InsertEmailAudited(ctx, NewEmail{UserID: s.UserID, Email: addr, Key: addr},
					AuditEvent{UserID: s.UserID, Event: "email_added", IP: "127.0.0.1", UserAgent: "bench", CreatedAt: now}, now)
				if err != nil {
					return err
				}
				_, err = q.EnqueueMessages(ctx, []NewMessage{
					{Kind: "verify", Recipient: e.Email, UserID: s.UserID, Payload: `{"email_id":1}`},
					{Kind: "email_added", Recipient: c.PrimaryEmail, UserID: s.UserID, Payload: `{"email_id":1}`},
				}, now)
				return err
			})
		}
		for _, op := range []struct {
			name string
			run  func(db *DB, s Session, i int) error
		}{{"read", read}, {"add", add}} {
			for _, mode := range modes {
				db, sessions := dbs[mode], sessions[mode]
				b.Run(fmt.Sprintf("%s/%s/prepared_statements=%s", d, op.name, mode), func(b *testing.B) {
					// The first runs start the preparations.
					for i := range 2 {
						if err := op.run(db, sessions[i], i); err != nil {
							b.Fatal(err)
						}
					}
					if db.stmts != nil {
						db.stmts.wg.Wait()
					}
					i := 0
					for b.Loop() {
						if err := op.run(db, sessions[i%len(sessions)], i); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
			}
		}
	}
}

// seedBench adds n users, each with a primary address and a session.
func seedBench(b *testing.B, db *DB, n int) []Session {
	ctx := context.Background()
	sessions := make([]Session, 0, n)
	now := time.Now()
	err := db.WithTx(ctx, func(q *Queries) error {
		for i := range n {
			addr := fmt.Sprintf("u%d@bench.example", i)
			u, _, err := q.CreateUser(ctx, NewUser{Email: addr, Key: addr, PasswordHash: "x"}, now)
			if err != nil {
				return err
			}
			s := Session{IDHash: make([]byte, 32), UserID: u.ID, CSRFToken: "csrf", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
			_, _ = rand.Read(s.IDHash)
			if err := q.CreateSession(ctx, s); err != nil {
				return err
			}
			sessions = append(sessions, s)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return sessions
}

// dialects are the dialects these tests run on: SQLite, and PostgreSQL
// when USEREMAIL_TEST_DATABASE_URL is set.
func dialects() []Dialect {
	if os.Getenv("USEREMAIL_TEST_DATABASE_URL") == "" {
		return []Dialect{SQLite}
	}
	return []Dialect{SQLite, Postgres}
}

// openPostgres opens the test PostgreSQL database, with param (name=value)
// added to its URL when not empty, and closes it when t ends; it skips t
// when USEREMAIL_TEST_DATABASE_URL is not set.
func openPostgres(t testing.TB, param string) (string, *DB) {
	t.Helper()
	url := os.Getenv("USEREMAIL_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("USEREMAIL_TEST_DATABASE_URL is not set")
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

// openFresh returns a fresh migrated store of dialect d, with param
// (name=value) added to its URL when not empty, closed when t ends: an
// SQLite file of its own, or a PostgreSQL schema of its own.
func openFresh(t testing.TB, d Dialect, param string) *DB {
	t.Helper()
	ctx := context.Background()
	var url string
	if d == SQLite {
		url = "sqlite:" + filepath.Join(t.TempDir(), "useremail.db")
		if param != "" {
			url += "?" + param
		}
	} else {
		_, admin := openPostgres(t, "")
		schema := fmt.Sprintf("prepared_test_%d", time.Now().UnixNano())
		if _, err := admin.db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE") })
		if param != "" {
			param = "&" + param
		}
		url, _ = openPostgres(t, "search_path="+schema+param)
	}
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
