package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// openAt opens and migrates the store at url, closed when t ends.
func openAt(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// enqueueN queues n mails to a new user.
func enqueueN(t *testing.T, db *store.DB, n int) {
	t.Helper()
	u, _ := newUser(t, db.Queries, "owner@example.com")
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{Kind: "verify", Recipient: fmt.Sprintf("r%d@example.com", i), UserID: u.ID, Payload: "{}"}
	}
	if _, err := db.EnqueueMessages(context.Background(), msgs, t0); err != nil {
		t.Fatal(err)
	}
}

// messageIDs returns the ids of msgs, sorted.
func messageIDs(msgs []store.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	slices.Sort(out)
	return out
}

// claimsOf returns the claims msgs are under.
func claimsOf(msgs []store.Message) []store.Claim {
	out := make([]store.Claim, len(msgs))
	for i, m := range msgs {
		out[i] = m.Claim()
	}
	return out
}

// TestDeadClaims: two dispatcher identities, each with a pool of its own
// as two processes would have, claim on one PostgreSQL database. While both
// hold their locks no claim is dead. Once one's session ends, its claims
// are dead and taken back, but not a claim that changed meanwhile, nor
// one whose owner took its lock again; the other's claims, and claims
// without an owner, stay.
func TestDeadClaims(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("needs PostgreSQL: set %s", storetest.EnvPostgresURL)
	}
	ctx := context.Background()
	url := storetest.URL(t, store.Postgres)
	db, otherDB := openAt(t, url), openAt(t, url)
	enqueueN(t, db, 5)

	alive, err := db.NewOwner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	dying, err := otherDB.NewOwner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if alive.ID() <= 0 || dying.ID() <= 0 || alive.ID() == dying.ID() {
		t.Fatalf("owner ids %d and %d: want two positive ones", alive.ID(), dying.ID())
	}
	if _, err := db.LockOwner(ctx, alive.ID()); !errors.Is(err, store.ErrOwnerLocked) {
		t.Fatalf("LockOwner of a held owner: %v, want ErrOwnerLocked", err)
	}

	mine, err := alive.ClaimMessages(ctx, t0, time.Minute, 2)
	if err != nil || len(mine) != 2 {
		t.Fatalf("alive's claim = %+v, %v", mine, err)
	}
	theirs, err := dying.ClaimMessages(ctx, t0, time.Minute, 2)
	if err != nil || len(theirs) != 2 {
		t.Fatalf("dying's claim = %+v, %v", theirs, err)
	}
	for _, c := range []struct {
		msgs  []store.Message
		owner int64
	}{{mine, alive.ID()}, {theirs, dying.ID()}} {
		for _, m := range c.msgs {
			if m.Status != store.StatusSending || m.ClaimedBy != c.owner || m.ClaimSeq != 1 || m.Attempts != 1 {
				t.Errorf("claimed %+v, want sending, claimed by %d, claim 1", m, c.owner)
			}
		}
	}
	ownerless, err := db.ClaimMessages(ctx, t0, time.Minute, 10)
	if err != nil || len(ownerless) != 1 || ownerless[0].ClaimedBy != 0 {
		t.Fatalf("claim without an owner = %+v, %v", ownerless, err)
	}
	if dead, err := db.DeadClaims(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("DeadClaims while both hold their locks = %v, %v; want none", dead, err)
	}

	// The dying owner's session ends, as when its process dies.
	if _, err := db.SQL().ExecContext(ctx, `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = $1`, dying.ID()); err != nil {
		t.Fatal(err)
	}
	var dead []store.Claim
	deadline := time.Now().Add(30 * time.Second)
	for len(dead) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the backend ends soon after the signal
		if dead, err = db.DeadClaims(ctx); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(dead, func(a, b store.Claim) int { return int(a.ID - b.ID) })
	want := claimsOf(theirs)
	slices.SortFunc(want, func(a, b store.Claim) int { return int(a.ID - b.ID) })
	if !slices.Equal(dead, want) {
		t.Fatalf("DeadClaims after the session ended = %v, want the dying owner's %v", dead, want)
	}
	if err := dying.Check(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Check of the ended session: %v, want ErrUnavailable", err)
	}
	if got, err := dying.ClaimMessages(ctx, t0, time.Minute, 10); err == nil || len(got) != 0 {
		t.Errorf("a claim on the ended session = %+v, %v; want an error", got, err)
	}
	if err := dying.Close(); err == nil {
		t.Error("Close of the ended session: no error")
	}

	// Its id locked again (the same process, on a new session): its
	// claims are alive again.
	again, err := otherDB.LockOwner(ctx, dying.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.DeadClaims(ctx); err != nil || len(got) != 0 {
		t.Errorf("DeadClaims with the owner back = %v, %v; want none", got, err)
	}
	if got, err := db.TakeBackClaims(ctx, dead, t0); err != nil || len(got) != 0 {
		t.Errorf("TakeBackClaims with the owner back = %v, %v; want none", got, err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}

	// Between the look and the take-back, one of the dead claims was taken
	// back and claimed anew by the live owner: only the other goes back.
	if got, err := db.TakeBackClaims(ctx, dead[:1], t0); err != nil || !slices.Equal(got, []int64{dead[0].ID}) {
		t.Fatalf("TakeBackClaims(%v) = %v, %v", dead[:1], got, err)
	}
	reclaimed, err := alive.ClaimMessages(ctx, t0, time.Minute, 10)
	if err != nil || len(reclaimed) != 1 || reclaimed[0].ID != dead[0].ID || reclaimed[0].ClaimSeq != 2 {
		t.Fatalf("alive's second claim = %+v, %v", reclaimed, err)
	}
	later := t0.Add(5 * time.Second)
	got, err := db.TakeBackClaims(ctx, append(dead, claimsOf(mine)...), later)
	if err != nil || !slices.Equal(got, []int64{dead[1].ID}) {
		t.Fatalf("TakeBackClaims = %v, %v; want only %d", got, err, dead[1].ID)
	}
	m, err := db.MessageByID(ctx, dead[1].ID)
	if err != nil || m.Status != store.StatusQueued || !m.NextAttemptAt.Equal(later) || m.Attempts != 1 || m.ClaimSeq != 1 {
		t.Errorf("taken back: %+v, %v; want queued, due at %v, its attempt still counted", m, err, later)
	}
	if m, err := db.MessageByID(ctx, dead[0].ID); err != nil || m.Status != store.StatusSending || m.ClaimedBy != alive.ID() {
		t.Errorf("reclaimed by the live owner: %+v, %v; want it still claimed", m, err)
	}
	// The dead claim's late report matches nothing.
	if err := db.MarkMessageSent(ctx, dead[0], later); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the dead claim's report: %v, want ErrNotFound", err)
	}
	if got, err := db.DeadClaims(ctx); err != nil || len(got) != 0 {
		t.Errorf("DeadClaims at the end = %v, %v; want none (the owner-less claim is the lease's)", got, err)
	}

	all, err := db.TakeBackAllClaims(ctx, later)
	sending := messageIDs(append(append(slices.Clone(mine), reclaimed...), ownerless...))
	slices.Sort(all)
	if err != nil || !slices.Equal(all, sending) {
		t.Errorf("TakeBackAllClaims = %v, %v; want %v", all, err, sending)
	}
}

// TestOwnerSQLite: on SQLite an owner is an id: its claims name it, none
// is ever dead (one serve holds the file), and TakeBackAllClaims, which
// that serve runs at start, takes back every claim.
func TestOwnerSQLite(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite)
	enqueueN(t, db, 3)
	o, err := db.NewOwner(ctx)
	if err != nil || o.ID() <= 0 || o.Check(ctx) != nil {
		t.Fatalf("NewOwner = %v, %v", o, err)
	}
	claimed, err := o.ClaimMessages(ctx, t0, time.Minute, 2)
	if err != nil || len(claimed) != 2 || claimed[0].ClaimedBy != o.ID() || claimed[0].ClaimSeq != 1 {
		t.Fatalf("claim = %+v, %v", claimed, err)
	}
	if dead, err := db.DeadClaims(ctx); err != nil || len(dead) != 0 {
		t.Errorf("DeadClaims = %v, %v; want none", dead, err)
	}
	if got, err := db.TakeBackClaims(ctx, claimsOf(claimed), t0); err != nil || len(got) != 0 {
		t.Errorf("TakeBackClaims = %v, %v; want none", got, err)
	}
	later := t0.Add(time.Second)
	all, err := db.TakeBackAllClaims(ctx, later)
	slices.Sort(all)
	if err != nil || !slices.Equal(all, messageIDs(claimed)) {
		t.Fatalf("TakeBackAllClaims = %v, %v; want %v", all, err, messageIDs(claimed))
	}
	for _, c := range claimed {
		if m, err := db.MessageByID(ctx, c.ID); err != nil || m.Status != store.StatusQueued || !m.NextAttemptAt.Equal(later) || m.Attempts != 1 {
			t.Errorf("taken back: %+v, %v", m, err)
		}
	}
	if err := o.Close(); err != nil {
		t.Error(err)
	}
}

// TestLockSQLite: the lock file beside an SQLite database admits one
// holder at a time, which the others' error names; it is free again once
// released.
func TestLockSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "useremail.db")
	url := "sqlite:" + path
	first, err := store.LockSQLite(url)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to an open file, so a second open in the same
	// process is refused as another process would be.
	_, err = store.LockSQLite(url)
	var inUse *store.FileInUseError
	if !errors.As(err, &inUse) || inUse.LockFile != path+".lock" || inUse.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want a FileInUseError naming %s.lock and pid %d", err, path, os.Getpid())
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := store.LockSQLite(url)
	if err != nil {
		t.Fatalf("lock after Unlock: %v", err)
	}
	if err := again.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LockSQLite("postgres://localhost/x"); err == nil {
		t.Error("LockSQLite of a PostgreSQL URL: no error")
	}
}
