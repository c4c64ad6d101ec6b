package mail_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

var t0 = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

const publicURL = "https://accounts.example.com"

var testKey = []byte("dispatcher-test-key-not-a-secret")

// clock is a settable clock shared by the store calls, the signer and the
// dispatchers of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a store with one user, a clock, a signer and an SMTP sink.
type fixture struct {
	db      *store.DB
	clock   *clock
	signer  *signer.Signer
	sink    *smtptest.Server
	userID  int64
	emailID int64 // the user's primary address, alice@example.com
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	f := &fixture{db: db, clock: &clock{t: t0}, sink: smtptest.Start(t, smtptest.Options{})}
	var err error
	if f.signer, err = signer.New([][]byte{testKey}, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	u, e, err := db.CreateUser(context.Background(), store.NewUser{Email: "alice@example.com", Key: "alice@example.com", PasswordHash: "h"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	f.userID, f.emailID = u.ID, e.ID
	return f
}

// smtpSender returns an SMTPSender for the fixture's sink, closed when t ends.
func (f *fixture) smtpSender(t testing.TB) *mail.SMTPSender {
	t.Helper()
	return newSMTPSender(t, f.sink)
}

func newSMTPSender(t testing.TB, sink *smtptest.Server) *mail.SMTPSender {
	t.Helper()
	cfg, err := mail.ParseSMTPURL(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = sink.ClientTLSConfig()
	s, err := mail.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// config returns a dispatcher configuration on the fixture's store, clock
// and signer, sending to the sink.
func (f *fixture) config(t testing.TB) mail.Config {
	return mail.Config{
		DB:        f.db,
		Signer:    f.signer,
		Sender:    f.smtpSender(t),
		PublicURL: publicURL,
		From:      "useremail <noreply@accounts.example.com>",
		Now:       f.clock.Now,
		Logger:    quietLogger(),
	}
}

func newDispatcher(t testing.TB, cfg mail.Config) *mail.Dispatcher {
	t.Helper()
	d, err := mail.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// enqueue queues m in a transaction of its own, as a handler would.
func (f *fixture) enqueue(t testing.TB, m store.NewMessage) int64 {
	t.Helper()
	var id int64
	err := f.db.WithTx(context.Background(), func(q *store.Queries) error {
		var err error
		id, err = q.EnqueueMessage(context.Background(), m, f.clock.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) message(t testing.TB, id int64) store.Message {
	t.Helper()
	m, err := f.db.MessageByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runOnce(t testing.TB, d *mail.Dispatcher, want int) {
	t.Helper()
	n, err := d.RunOnce(context.Background())
	if err != nil || n != want {
		t.Fatalf("RunOnce = %d, %v; want %d", n, err, want)
	}
}

// counters counts the hook calls of one dispatcher.
type counters struct{ sent, retry, failed atomic.Int64 }

func (c *counters) hooks() mail.Hooks {
	return mail.Hooks{
		OnSent:   func(string) { c.sent.Add(1) },
		OnRetry:  func(string) { c.retry.Add(1) },
		OnFailed: func(string) { c.failed.Add(1) },
	}
}

// senderFunc adapts a function to mail.Sender.
type senderFunc func(ctx context.Context, m mail.Message) error

func (f senderFunc) Send(ctx context.Context, m mail.Message) error { return f(ctx, m) }

// listenSilently listens on addr and accepts connections without ever
// answering, as a hung server would.
func listenSilently(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln
}
