package mail_test

import (
	"context"
	"fmt"
	netmail "net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// openURL opens (and migrates) the store at rawURL, closed when t ends.
func openURL(t testing.TB, rawURL string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// seed creates a user and queues n notices for it in one transaction; it
// returns the outbox ids.
func seed(t testing.TB, db *store.DB, n int) map[int64]bool {
	t.Helper()
	ctx := context.Background()
	ids := make(map[int64]bool, n)
	err := db.WithTx(ctx, func(q *store.Queries) error {
		u, _, err := q.CreateUser(ctx, store.NewUser{Email: "alice@example.com", Key: "alice@example.com", PasswordHash: "h"}, time.Now())
		if err != nil {
			return err
		}
		for i := range n {
			id, err := q.EnqueueMessage(ctx, mail.EmailAdded(u.ID, "alice@example.com", fmt.Sprintf("a%d@example.com", i)), time.Now())
			if err != nil {
				return err
			}
			ids[id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// messageIDs counts the mails of the sink by Message-ID.
func messageIDs(t testing.TB, mails []smtptest.Mail) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, m := range mails {
		msg, err := netmail.ReadMessage(strings.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		count[msg.Header.Get("Message-ID")]++
	}
	return count
}

func TestConcurrentDispatchersDeliverExactlyOnce(t *testing.T) {
	const n = 1000
	tests := []struct {
		dialect     store.Dialect
		dispatchers int
	}{
		{store.SQLite, 2},
		{store.Postgres, 2},
		{store.Postgres, 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.dialect, tt.dispatchers), func(t *testing.T) {
			if tt.dialect == store.Postgres && os.Getenv(storetest.EnvPostgresURL) == "" {
				t.Skipf("set %s to run on PostgreSQL", storetest.EnvPostgresURL)
			}
			url := storetest.URL(t, tt.dialect)
			db := openURL(t, url)
			ids := seed(t, db, n)
			sink := smtptest.Start(t, smtptest.Options{})
			s, err := signer.New([][]byte{testKey}, nil)
			if err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			sent := make([]counters, tt.dispatchers)
			for i := range tt.dispatchers {
				// Each dispatcher has its own connection pool, as the
				// replicas of a deployment would.
				d := newDispatcher(t, mail.Config{
					DB: openURL(t, url), Signer: s, Sender: newSMTPSender(t, sink),
					PublicURL: publicURL, From: "noreply@accounts.example.com",
					BatchSize: 25, PollInterval: 10 * time.Millisecond, Logger: quietLogger(),
					Hooks: sent[i].hooks(),
				})
				wg.Go(func() {
					if err := d.Run(ctx); err != nil {
						t.Errorf("Run: %v", err)
					}
				})
			}

			deadline := time.Now().Add(3 * time.Minute)
			for {
				counts, err := db.CountMessages(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if counts[store.StatusSent] == n {
					break
				}
				if counts[store.StatusFailed] > 0 || time.Now().After(deadline) {
					t.Fatalf("counts = %v", counts)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			wg.Wait()

			var split []int64
			for i := range sent {
				split = append(split, sent[i].sent.Load())
			}
			t.Logf("mails sent by each dispatcher: %v", split)

			byID := messageIDs(t, sink.Mails())
			if len(byID) != n {
				t.Fatalf("sink got %d distinct Message-IDs, want %d", len(byID), n)
			}
			for id, c := range byID {
				m := messageIDPattern.FindStringSubmatch(id)
				if c != 1 || m == nil || !ids[parseInt(t, m[1])] {
					t.Fatalf("Message-ID %s delivered %d times (outbox row known: %v)", id, c, m != nil && ids[parseInt(t, m[1])])
				}
			}
		})
	}
}

func parseInt(t testing.TB, s string) int64 {
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestListenNotify(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("set %s to run on PostgreSQL", storetest.EnvPostgresURL)
	}
	url := storetest.URL(t, store.Postgres)
	db := openURL(t, url)
	f := newFixture(t, db)
	cfg := f.config(t)
	cfg.Now = nil
	cfg.PollInterval = time.Minute // only a notification can make it quick
	cfg.ListenURL = url
	d := newDispatcher(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	// Another process's announcer: d is never woken directly.
	announcer := mail.NewAnnouncer(db, nil)
	announced := make(chan struct{})
	go func() { announcer.Run(ctx); close(announced) }()
	defer func() { cancel(); <-announced }()
	enqueue := func(added string) {
		err := db.WithTx(ctx, func(q *store.Queries) error {
			_, err := q.EnqueueMessage(ctx, mail.EmailAdded(f.userID, "alice@example.com", added), time.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		announcer.Announce()
	}
	// The first mail shows that Run is past its first batch, and so
	// listening; the second can then only come quickly through the
	// announcer's NOTIFY.
	enqueue("b@example.com")
	f.sink.Wait(t, 1, 20*time.Second)
	time.Sleep(100 * time.Millisecond) // let Run go to sleep
	start := time.Now()
	enqueue("c@example.com")
	f.sink.Wait(t, 2, 20*time.Second)
	t.Logf("delivered %v after the commit", time.Since(start).Round(time.Millisecond))
}

func TestRunPollsWhenListenFails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		cfg := f.config(t)
		cfg.Now = nil
		cfg.PollInterval = 20 * time.Millisecond
		cfg.ListenURL = "sqlite:cannot-listen.db"
		d := newDispatcher(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		defer func() { cancel(); <-done }()
		time.Sleep(50 * time.Millisecond)
		if _, err := db.EnqueueMessage(ctx, mail.EmailAdded(f.userID, "alice@example.com", "b@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		f.sink.Wait(t, 1, 10*time.Second)
	})
}

func TestListenPostgresErrors(t *testing.T) {
	if _, err := mail.ListenPostgres(context.Background(), "sqlite:x.db"); err == nil {
		t.Fatal("ListenPostgres accepted an SQLite URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := mail.ListenPostgres(ctx, "postgres://postgres:pw@127.0.0.1:1/none?sslmode=disable"); err == nil {
		t.Fatal("ListenPostgres succeeded on a closed port")
	}
}
