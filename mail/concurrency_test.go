package mail_test

import (
	"context"
	"fmt"
	"log/slog"
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
			var outcomes events // told of every recorded outcome
			for i := range tt.dispatchers {
				hooks := sent[i].hooks()
				notify := func(hook func(string)) func(string) {
					return func(kind string) { hook(kind); outcomes.changed() }
				}
				hooks.OnSent, hooks.OnFailed = notify(hooks.OnSent), notify(hooks.OnFailed)
				// Each dispatcher has its own connection pool, as the
				// replicas of a deployment would.
				d := newDispatcher(t, mail.Config{
					DB: openURL(t, url), Signer: s, Sender: newSMTPSender(t, sink),
					PublicURL: publicURL, From: "noreply@accounts.example.com",
					BatchSize: 25, PollInterval: 10 * time.Millisecond, Logger: quietLogger(),
					Hooks: hooks,
				})
				wg.Go(func() {
					if err := d.Run(ctx); err != nil {
						t.Errorf("Run: %v", err)
					}
				})
			}

			total := func(pick func(c *counters) int64) (n int64) {
				for i := range sent {
					n += pick(&sent[i])
				}
				return n
			}
			err = outcomes.waitFor(fmt.Sprintf("%d recorded deliveries", n), func() bool {
				return total(func(c *counters) int64 { return c.sent.Load() }) == n || total(func(c *counters) int64 { return c.failed.Load() }) > 0
			})
			counts, cerr := db.CountMessages(context.Background())
			if err != nil || cerr != nil || counts[store.StatusSent] != n {
				t.Fatalf("counts = %v, %v (%v)", counts, cerr, err)
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
	logger, book := newRecordingLogger()
	cfg.Logger = logger
	defer running(t, newDispatcher(t, cfg))()

	// Another process's announcer: d is never woken directly.
	ctx, cancel := context.WithCancel(context.Background())
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
	delivered := book.wait(t, 1, slog.LevelInfo, "mail: sent")[0]
	if idle := book.next(t, delivered, slog.LevelDebug, runWaits); idle.Attrs["up_to"] != "1m0s" {
		t.Fatalf("Run waits up to %v after the first mail, want the poll interval", idle.Attrs["up_to"])
	}
	start := time.Now()
	enqueue("c@example.com")
	f.sink.Wait(t, 2, 20*time.Second)
	t.Logf("delivered %v after the commit", time.Since(start).Round(time.Millisecond))
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
