package mail_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// postgresFixture returns a fixture on a fresh PostgreSQL schema and its
// URL, or skips the test without PostgreSQL.
func postgresFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("set %s to run on PostgreSQL", storetest.EnvPostgresURL)
	}
	url := storetest.URL(t, store.Postgres)
	return newFixture(t, openURL(t, url)), url
}

// endSession ends the PostgreSQL session that holds owner's lock, as the
// server does when the connection breaks.
func endSession(t *testing.T, db *store.DB, owner int64) {
	t.Helper()
	var ended []bool
	if err := db.SQL().Select(&ended, `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = $1`, owner); err != nil || len(ended) != 1 {
		t.Fatalf("ending the session of owner %d: %v, %v", owner, ended, err)
	}
}

// TestRunTakesBackDeadClaims: the claims of an owner that holds no lock (a
// process that died, with a lease of an hour) are taken back by a running
// dispatcher and sent within seconds, their attempt still counted.
func TestRunTakesBackDeadClaims(t *testing.T) {
	f, url := postgresFixture(t)
	ids := map[int64]bool{}
	for i := range 3 {
		ids[f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", fmt.Sprintf("b%d@example.com", i)))] = true
	}
	ctx := context.Background()
	dead, err := openURL(t, url).NewOwner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := dead.ClaimMessages(ctx, time.Now(), time.Hour, 10)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("the dead owner's claim = %+v, %v", claimed, err)
	}
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}

	logger, book := newRecordingLogger()
	cfg := f.config(t)
	cfg.Now, cfg.Logger = nil, logger
	defer running(t, newDispatcher(t, cfg))()
	start := time.Now()
	f.sink.Wait(t, 3, waitTimeout)
	t.Logf("sent %v after Run started", time.Since(start).Round(time.Millisecond))
	if r := book.wait(t, 1, slog.LevelInfo, "mail: took back the claims of a dispatcher that is gone")[0]; r.Attrs["count"] != int64(3) {
		t.Errorf("took back %v claims, want 3", r.Attrs["count"])
	}
	book.wait(t, 3, slog.LevelInfo, "mail: sent")
	for id := range ids {
		if m := f.message(t, id); m.Status != store.StatusSent || m.Attempts != 2 || m.ClaimSeq != 2 || m.ClaimedBy == dead.ID() {
			t.Errorf("row %+v, want sent on the second attempt by another owner", m)
		}
	}
}

// TestRunKeepsItsClaimLock: when the database ends the session that holds
// Run's lock, Run takes the same owner's lock again: the send in flight is
// recorded under its claim, the rest of the batch is handed back rather
// than sent while others could take it back, and every mail goes once.
func TestRunKeepsItsClaimLock(t *testing.T) {
	f, _ := postgresFixture(t)
	first := f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", "b0@example.com"))
	second := f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", "b1@example.com"))
	logger, book := newRecordingLogger()
	cfg := f.config(t)
	g := newGate(nil, cfg.Sender)
	cfg.Now, cfg.Logger, cfg.Sender, cfg.Workers = nil, logger, g, 1
	defer running(t, newDispatcher(t, cfg))()
	release := sync.OnceFunc(func() { close(g.release) })
	defer release() // before Run's end, which waits for the send

	<-g.started
	owner := book.wait(t, 1, slog.LevelInfo, "mail: claiming as owner")[0].Attrs["owner"].(int64)
	endSession(t, f.db, owner)
	book.wait(t, 1, slog.LevelWarn, lostLock)
	if again := book.wait(t, 1, slog.LevelInfo, "mail: holds the claim lock again")[0]; again.Attrs["owner"] != owner || again.Attrs["same_owner"] != true {
		t.Errorf("took the lock again as %+v, want owner %d", again.Attrs, owner)
	}
	release()

	f.sink.Wait(t, 2, waitTimeout)
	if r := book.wait(t, 1, slog.LevelInfo, "mail: handed back unsent")[0]; r.Attrs["reason"] != "the claim lock was lost" || r.Attrs["outbox_id"] != second {
		t.Errorf("handed back %+v, want outbox row %d for the lost lock", r.Attrs, second)
	}
	book.wait(t, 2, slog.LevelInfo, "mail: sent")
	if m := f.message(t, first); m.Status != store.StatusSent || m.ClaimSeq != 1 {
		t.Errorf("the mail in flight: %+v, want sent under its first claim", m)
	}
	if m := f.message(t, second); m.Status != store.StatusSent || m.ClaimSeq != 2 || m.Attempts != 1 {
		t.Errorf("the mail handed back: %+v, want sent under a second claim, on its first attempt", m)
	}
	if n := len(f.sink.Mails()); n != 2 {
		t.Errorf("the sink got %d mails, want 2", n)
	}
	if n := len(book.matching(slog.LevelWarn, lostLock)); n != 1 {
		t.Errorf("%d records %q, want the one of the ended session", n, lostLock)
	}
}

const lostLock = "mail: lost the claim lock; no claims until it is taken again"
