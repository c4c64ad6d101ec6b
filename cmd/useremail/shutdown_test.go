package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestGracefulShutdown sends SIGTERM to `useremail serve` while sign-ups
// are in flight (slow ones: the default argon2 cost on a busy machine):
// every request the process accepted gets its whole answer, the process
// exits 0 within the grace period, and every mail that a committed request
// queued is delivered, once, by that process before it exits or by the
// next one.
func TestGracefulShutdown(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) { testGracefulShutdown(t, databaseURL(t, d)) })
	}
}

type shutdownAnswer struct {
	answer
	Email string
	Start time.Time
}

func testGracefulShutdown(t *testing.T, dbURL string) {
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(dbURL, sink)
	delete(env, "USEREMAIL_ARGON2") // the real cost: requests that take a while
	const grace = 10 * time.Second
	env["USEREMAIL_SHUTDOWN_GRACE"] = grace.String()
	p := startServe(t, "first", env)

	// A fresh connection per request: once the listener is closed, a new
	// request is refused at connect, and that is the only way a request may
	// fail.
	c := newClient(false)
	var (
		mu      sync.Mutex
		answers []shutdownAnswer
		refused atomic.Int64
		seq     atomic.Int64
		wg      sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for {
				sa := shutdownAnswer{Email: fmt.Sprintf("s%04d@example.com", seq.Add(1)), Start: time.Now()}
				_, sa.answer = c.signUp(p.base, sa.Email)
				if isRefused(sa.Err) {
					refused.Add(1)
					return // the listener is closed
				}
				mu.Lock()
				answers = append(answers, sa)
				mu.Unlock()
				if !p.running() {
					return
				}
			}
		})
	}

	// Every worker has had an answer, and is waiting for its next one.
	if !eventually(60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(answers) >= 16 }) {
		t.Fatal("fewer than 16 sign-ups answered in 60 s")
	}
	// The next few sends fail for now (451): their mails go back to the
	// queue with a backoff that outlasts this process, for the next one.
	sink.FailNext(4, 451)
	sigAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := p.waitExit(grace + 3*time.Second)
	exitAfter := time.Since(sigAt)
	wg.Wait()
	if !exited {
		t.Fatalf("still running %v after SIGTERM (grace %v)", exitAfter, grace)
	}
	if code := p.exitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0 (%v)", code, p.exitErr)
	}
	t.Logf("exited %v after SIGTERM", exitAfter.Round(time.Millisecond))

	// Every accepted request got its whole answer: the only failures are
	// requests that never reached the server (refused, or reset in the
	// listen backlog); those left no log line and no user behind.
	db := openDB(t, dbURL)
	handled := map[string]bool{}
	for _, rec := range p.logs.all() {
		if rec.Msg == "request" {
			if id, ok := rec.Attrs["request_id"].(string); ok {
				handled[id] = true
			}
		}
	}
	var inFlight, created int
	var signedUp []shutdownAnswer
	for _, a := range answers {
		if a.Start.Before(sigAt) && a.Start.Add(a.Elapsed).After(sigAt) {
			inFlight++
		}
		switch {
		case a.Err != nil:
			var n int
			if err := db.SQL().Get(&n, db.SQL().Rebind(`SELECT COUNT(*) FROM emails WHERE email = ?`), a.Email); err != nil {
				t.Fatal(err)
			}
			if handled[a.RequestID] || n > 0 {
				t.Errorf("request %s was handled (logged: %v, committed: %v) but its answer was cut off: %v", a.RequestID, handled[a.RequestID], n > 0, a)
			}
		case a.Status == http.StatusCreated:
			created++
			signedUp = append(signedUp, a)
		default:
			t.Errorf("unexpected answer: %v %s", a, a.Body)
		}
	}
	t.Logf("%d sign-ups answered 201, %d of them in flight at SIGTERM; %d refused after", created, inFlight, refused.Load())
	if inFlight == 0 {
		t.Error("no request was in flight at SIGTERM: the test proved nothing")
	}
	for _, msg := range []string{"shutting down", "stopped"} {
		if _, ok := p.logs.find(func(r logRecord) bool { return r.Msg == msg }); !ok {
			t.Errorf("no %q log line", msg)
		}
	}
	for _, rec := range p.logs.all() {
		if rec.Level == "ERROR" || (rec.Level == "WARN" && rec.Msg != "mail: temporary failure, will retry") {
			t.Errorf("%s", rec.Raw)
		}
	}

	// No mail lost: what the first process did not send, the next one does.
	var unsent int
	if err := db.SQL().Get(&unsent, `SELECT COUNT(*) FROM outbox WHERE status <> 'sent'`); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d outbox rows unsent when the first process exited", unsent)
	if unsent > 0 {
		sink.FailNext(0, 0)
		startServe(t, "second", env)
	}
	rows := waitOutboxSent(t, db, 60*time.Second)
	delivered := checkDeliveredOnce(t, rows, sink, nil)
	mailed := map[string]bool{}
	for _, r := range rows {
		if _, ok := delivered[r.ID]; ok && r.Kind == "verify" {
			mailed[r.Recipient] = true
		}
	}
	for _, a := range signedUp {
		if !mailed[a.Email] {
			t.Errorf("%s signed up (201) but its verification mail was not delivered", a.Email)
		}
	}
}

// isRefused reports a request that could not connect.
func isRefused(err error) bool {
	var op *net.OpError
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial"))
}

// TestShutdownGraceExpires: requests still running when the grace period
// ends are cut off rather than waited for; the process says so in its log
// and its exit code, and exits promptly.
func TestShutdownGraceExpires(t *testing.T) {
	env := serveEnv(databaseURL(t, store.SQLite), nil)
	delete(env, "USEREMAIL_ARGON2") // the real cost: requests that take a while
	env["USEREMAIL_SHUTDOWN_GRACE"] = "100ms"
	p := startServe(t, "useremail", env)
	c := newClient(false)
	var seq, answered atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for p.running() {
				if _, a := c.signUp(p.base, fmt.Sprintf("g%04d@example.com", seq.Add(1))); isRefused(a.Err) {
					return
				}
				answered.Add(1)
			}
		})
	}
	// Every worker has had an answer, and is waiting for its next one.
	if !eventually(60*time.Second, func() bool { return answered.Load() >= 16 }) {
		t.Fatal("fewer than 16 sign-ups answered in 60 s")
	}
	sigAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The grace, plus the least time the dispatcher gets, plus a margin.
	if !p.waitExit(100*time.Millisecond + backgroundDrainMin + 3*time.Second) {
		t.Fatalf("still running %v after SIGTERM", time.Since(sigAt))
	}
	wg.Wait()
	t.Logf("exited %v after SIGTERM with code %d", time.Since(sigAt).Round(time.Millisecond), p.exitCode())
	if code := p.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1: requests were cut off", code)
	}
	if _, ok := p.logs.find(func(r logRecord) bool {
		return r.Level == "WARN" && strings.Contains(r.Msg, "cut off")
	}); !ok {
		t.Errorf("no warning that requests were cut off:\n%s", p.logs.tail(10))
	}
}
