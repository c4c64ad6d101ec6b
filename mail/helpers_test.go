package mail_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
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

// fixture is a store with one user, a clock and a signer, and an SMTP sink
// when made by newFixture.
type fixture struct {
	db      *store.DB
	clock   *clock
	signer  *signer.Signer
	sink    *smtptest.Server // nil without one
	userID  int64
	emailID int64 // the user's primary address, alice@example.com
}

// newFixture returns a fixture on db with an SMTP sink.
func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	f := newStoreFixture(t, db)
	f.sink = smtptest.Start(t, smtptest.Options{})
	return f
}

// newStoreFixture returns a fixture on db without an SMTP sink: a test in a
// synctest bubble cannot use the network, whose waits the bubble cannot see.
func newStoreFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	f := &fixture{db: db, clock: &clock{t: t0}}
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
// and signer, sending to the sink if the fixture has one.
func (f *fixture) config(t testing.TB) mail.Config {
	cfg := mail.Config{
		DB:        f.db,
		Signer:    f.signer,
		PublicURL: publicURL,
		From:      "useremail <noreply@accounts.example.com>",
		Now:       f.clock.Now,
		Logger:    quietLogger(),
	}
	if f.sink != nil {
		cfg.Sender = f.smtpSender(t)
	}
	return cfg
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

// waitTimeout bounds a test's wait for an event. In a synctest bubble it is
// fake time, which passes at once when nothing else can happen.
const waitTimeout = 3 * time.Minute

// runTimed runs a test of the dispatcher's timing on a fresh database of
// each dialect (url, not migrated), in a synctest bubble on SQLite: time
// there is fake and moves only when every goroutine of the test waits, so
// the test may check exact times (fake is true). PostgreSQL's connections
// wait on the network, which a bubble cannot see: there it runs in real
// time, waiting on events.
func runTimed(t *testing.T, fn func(t *testing.T, url string, fake bool)) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			if d != store.SQLite {
				fn(t, storetest.URL(t, d), false)
				return
			}
			synctest.Test(t, func(t *testing.T) { fn(t, storetest.URL(t, d), true) })
		})
	}
}

// events lets a test wait for a condition that other goroutines make true;
// they call changed after each change.
type events struct {
	mu sync.Mutex
	ch chan struct{} // closed by the next change
}

func (e *events) changed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch != nil {
		close(e.ch)
		e.ch = nil
	}
}

// waitFor waits until cond holds, or fails after waitTimeout; it may be
// called from any goroutine.
func (e *events) waitFor(what string, cond func() bool) error {
	timeout := time.After(waitTimeout)
	for {
		e.mu.Lock()
		if e.ch == nil {
			e.ch = make(chan struct{})
		}
		ch := e.ch
		e.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-timeout:
			return fmt.Errorf("no %s after %v", what, waitTimeout)
		}
	}
}

// inbox is an in-process Sender that keeps every mail with the time it was
// sent, for the tests that run in a synctest bubble.
type inbox struct {
	events
	mu    sync.Mutex
	mails []sentMail
}

type sentMail struct {
	mail.Message
	At time.Time
}

func (b *inbox) Send(_ context.Context, m mail.Message) error {
	b.mu.Lock()
	b.mails = append(b.mails, sentMail{m, time.Now()})
	b.mu.Unlock()
	b.changed()
	return nil
}

func (b *inbox) all() []sentMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.mails)
}

// wait waits until the inbox holds n mails and returns them.
func (b *inbox) wait(t testing.TB, n int) []sentMail {
	t.Helper()
	if err := b.waitFor(fmt.Sprintf("%d mails", n), func() bool { return len(b.all()) >= n }); err != nil {
		t.Fatalf("inbox: %v; got %d", err, len(b.all()))
	}
	return b.all()
}

// logRecord is one record a logBook kept.
type logRecord struct {
	Seq   int // its place among the logger's records
	Level slog.Level
	Msg   string
	Attrs map[string]any
	At    time.Time
}

// logBook keeps every record of a logger, for tests of what a dispatcher
// logs and when.
type logBook struct {
	events
	mu      sync.Mutex
	records []logRecord
}

// newRecordingLogger returns a logger that writes into a new logBook, at
// every level.
func newRecordingLogger() (*slog.Logger, *logBook) {
	b := &logBook{}
	return slog.New(&recordingHandler{book: b}), b
}

func (b *logBook) all() []logRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.records)
}

// matching returns the records of level and msg.
func (b *logBook) matching(level slog.Level, msg string) []logRecord {
	var out []logRecord
	for _, r := range b.all() {
		if r.Level == level && r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// wait waits until there are n records of level and msg and returns them.
func (b *logBook) wait(t testing.TB, n int, level slog.Level, msg string) []logRecord {
	t.Helper()
	if err := b.waitErr(n, level, msg); err != nil {
		t.Fatal(err)
	}
	return b.matching(level, msg)
}

// next waits for the first record of level and msg that follows record r
// and returns it.
func (b *logBook) next(t testing.TB, r logRecord, level slog.Level, msg string) logRecord {
	t.Helper()
	var found logRecord
	err := b.waitFor(fmt.Sprintf("%v record %q after %q", level, msg, r.Msg), func() bool {
		for _, m := range b.matching(level, msg) {
			if m.Seq > r.Seq {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// waitErr is wait for goroutines other than the test's.
func (b *logBook) waitErr(n int, level slog.Level, msg string) error {
	return b.waitFor(fmt.Sprintf("%d %v records %q", n, level, msg), func() bool { return len(b.matching(level, msg)) >= n })
}

// recordingHandler is the slog.Handler of a logBook.
type recordingHandler struct {
	book  *logBook
	attrs []slog.Attr
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]any{}, At: time.Now()}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Any()
		return true
	})
	h.book.mu.Lock()
	rec.Seq = len(h.book.records)
	h.book.records = append(h.book.records, rec)
	h.book.mu.Unlock()
	h.book.changed()
	return nil
}

func (h *recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recordingHandler{book: h.book, attrs: append(slices.Clone(h.attrs), attrs...)}
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// duration parses a duration a record carries as text (as retry_in).
func duration(t testing.TB, r logRecord, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(fmt.Sprint(r.Attrs[key]))
	if err != nil {
		t.Fatalf("%q of %+v: %v", key, r, err)
	}
	return d
}
