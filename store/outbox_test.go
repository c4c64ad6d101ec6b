package store_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

func TestReleaseMessage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		id, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		claimed, err := db.ClaimMessages(ctx, t0, time.Minute, 10)
		if err != nil || len(claimed) != 1 || claimed[0].Attempts != 1 {
			t.Fatalf("claim = %+v, %v", claimed, err)
		}
		later := t0.Add(30 * time.Second)
		if err := db.ReleaseMessage(ctx, id, 1, later); err != nil {
			t.Fatal(err)
		}
		m, err := db.MessageByID(ctx, id)
		if err != nil || m.Status != store.StatusQueued || m.Attempts != 0 || !m.NextAttemptAt.Equal(later) {
			t.Fatalf("after release = %+v, %v", m, err)
		}
		// A release guarded by a stale claim changes nothing.
		if err := db.ReleaseMessage(ctx, id, 1, later); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release of a queued message: err = %v", err)
		}
		again, err := db.ClaimMessages(ctx, later, time.Minute, 10)
		if err != nil || len(again) != 1 || again[0].Attempts != 1 {
			t.Fatalf("claim after release = %+v, %v", again, err)
		}
		if err := db.ReleaseMessage(ctx, id, 2, later); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release with the wrong attempt: err = %v", err)
		}
	})
}

func TestEnqueueMessageNotifiesOnCommit(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("set %s to run on PostgreSQL", storetest.EnvPostgresURL)
	}
	ctx := context.Background()
	url := storetest.URL(t, store.Postgres)
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, _ := newUser(t, db.Queries, "a@example.com")

	l := pq.NewListener(url, time.Second, time.Second, nil)
	defer l.Close()
	if err := l.Listen(store.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	err = db.WithTx(ctx, func(q *store.Queries) error {
		for range 3 {
			if _, err := q.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, t0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may share the database and its channel: any notification
	// will do, and one must come.
	select {
	case n := <-l.Notify:
		if n == nil || n.Channel != store.NotifyChannel {
			t.Fatalf("notification = %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after the commit")
	}
}
