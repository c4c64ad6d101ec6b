package mail_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// The messages of Run's log records these tests wait for.
const (
	claimFailed   = "mail: dispatch failed"
	claimFailing  = "mail: dispatch still failing"
	claimsWork    = "mail: dispatch works again"
	runWaits      = "mail: waiting"
	listenFailed  = "mail: cannot LISTEN for new mail; polling only"
	reportWaits   = "mail: cannot record outcome yet; retrying until shortly before the lease ends"
	reportLanded  = "mail: outcome recorded after the database came back"
	reportMissing = "mail: cannot record outcome"
)

// running starts d.Run and returns a function that stops it and checks
// that it returned nil.
func running(t *testing.T, d *mail.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
}

// polling returns a dispatcher of f on the real clock (the bubble's in a
// synctest bubble) that polls every interval, sends into an inbox and logs
// into a logBook.
func (f *fixture) polling(t *testing.T, interval time.Duration, listenURL string) (*mail.Dispatcher, *inbox, *logBook) {
	t.Helper()
	sent := &inbox{}
	logger, book := newRecordingLogger()
	cfg := f.config(t)
	cfg.Sender, cfg.Logger, cfg.Now, cfg.PollInterval, cfg.ListenURL = sent, logger, nil, interval, listenURL
	return newDispatcher(t, cfg), sent, book
}

// TestRunBacksOffWhileClaimsFail: while claims fail, Run logs the first
// failure as an error and the repeats as warnings with a count, waiting
// twice as long each time; Wake still starts a claim at once; the first
// claim that works resets the backoff and is logged.
func TestRunBacksOffWhileClaimsFail(t *testing.T) {
	runTimed(t, func(t *testing.T, url string, fake bool) {
		db := openURL(t, url)
		f := newStoreFixture(t, db)
		// Claims fail while the outbox table is away.
		if _, err := db.SQL().Exec(`ALTER TABLE outbox RENAME TO outbox_away`); err != nil {
			t.Fatal(err)
		}
		d, sent, book := f.polling(t, 50*time.Millisecond, "")
		defer running(t, d)()

		// Six failures: each announces a wait of 50 ms doubled per failure
		// before it (less up to a fifth), and the next comes after it.
		failures := append(book.wait(t, 1, slog.LevelError, claimFailed), book.wait(t, 5, slog.LevelWarn, claimFailing)[:5]...)
		for i, r := range failures {
			if i > 0 && fmt.Sprint(r.Attrs["failures"]) != fmt.Sprint(i+1) {
				t.Errorf("failure %d logged failures=%v", i+1, r.Attrs["failures"])
			}
			ceiling := 50 * time.Millisecond << i
			if wait := duration(t, r, "retry_in"); wait < ceiling*4/5-time.Millisecond || wait > ceiling+time.Millisecond {
				t.Errorf("failure %d: retry in %v, want %v less up to a fifth", i+1, wait, ceiling)
			}
			if fake && i > 0 {
				if gap, want := r.At.Sub(failures[i-1].At), duration(t, failures[i-1], "retry_in"); (gap - want).Abs() > time.Millisecond {
					t.Errorf("failure %d came %v after failure %d, which said %v", i+1, gap, i, want)
				}
			}
		}

		// The sleep after the sixth is over a second; Wake cuts it short.
		d.Wake()
		woken := book.wait(t, 6, slog.LevelWarn, claimFailing)[5]
		if gap := woken.At.Sub(failures[5].At); fake && gap != mail.WakeDelay {
			t.Errorf("the claim after Wake came %v after the failure before, want %v", gap, mail.WakeDelay)
		}

		// The table comes back: the next claim works and delivers, and the
		// backoff is over.
		if _, err := db.SQL().Exec(`ALTER TABLE outbox_away RENAME TO outbox`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.EnqueueMessage(context.Background(), mail.EmailAdded(f.userID, "alice@example.com", "b@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		d.Wake()
		sent.wait(t, 1)
		recovered := book.wait(t, 1, slog.LevelInfo, claimsWork)[0]
		// Run sleeps the poll interval again; a mail queued meanwhile goes
		// out when it ends, without Wake.
		idle := book.next(t, recovered, slog.LevelDebug, runWaits)
		if idle.Attrs["up_to"] != "50ms" {
			t.Errorf("after the recovery Run waits up to %v, want the poll interval", idle.Attrs["up_to"])
		}
		if _, err := db.EnqueueMessage(context.Background(), mail.EmailAdded(f.userID, "alice@example.com", "c@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		if second := sent.wait(t, 2)[1]; fake && second.At.Sub(idle.At) != 50*time.Millisecond {
			t.Errorf("the next mail went out %v after Run went to sleep, want the poll interval", second.At.Sub(idle.At))
		}

		for _, r := range book.all() {
			if r.Level >= slog.LevelError && r.Msg != claimFailed {
				t.Errorf("unexpected error record: %+v", r)
			}
		}
		if n := len(book.matching(slog.LevelError, claimFailed)); n != 1 {
			t.Errorf("%d %q records, want 1", n, claimFailed)
		}
	})
}

// TestWake: Wake ends Run's sleep, and the claim follows WakeDelay later.
func TestWake(t *testing.T) {
	runTimed(t, func(t *testing.T, url string, fake bool) {
		db := openURL(t, url)
		f := newStoreFixture(t, db)
		d, sent, book := f.polling(t, time.Hour, "")
		defer running(t, d)()

		asleep := book.wait(t, 1, slog.LevelDebug, runWaits)[0]
		if asleep.Attrs["up_to"] != "1h0m0s" {
			t.Fatalf("Run with nothing due waits up to %v, want the poll interval", asleep.Attrs["up_to"])
		}
		if _, err := db.EnqueueMessage(context.Background(), mail.EmailAdded(f.userID, "alice@example.com", "b@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		d.Wake()
		if got := sent.wait(t, 1)[0]; fake && got.At.Sub(asleep.At) != mail.WakeDelay {
			t.Errorf("the mail went out %v after Wake, want %v", got.At.Sub(asleep.At), mail.WakeDelay)
		}
	})
}

// TestWakeGathersMail: the mail that requests queue within WakeDelay of a
// Wake goes out in the claim that Wake starts; their own Wakes are spent
// by it, so Run then sleeps a whole poll interval.
func TestWakeGathersMail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := storetest.Open(t, store.SQLite)
		f := newStoreFixture(t, db)
		d, sent, book := f.polling(t, time.Hour, "")
		defer running(t, d)()

		book.wait(t, 1, slog.LevelDebug, runWaits)
		start := time.Now()
		for i := range 3 {
			// A request commits its mail and wakes Run.
			if _, err := db.EnqueueMessage(context.Background(), mail.EmailAdded(f.userID, "alice@example.com", fmt.Sprintf("a%d@example.com", i)), time.Now()); err != nil {
				t.Fatal(err)
			}
			d.Wake()
			time.Sleep(mail.WakeDelay / 4)
		}
		for i, m := range sent.wait(t, 3) {
			if m.At.Sub(start) != mail.WakeDelay {
				t.Errorf("mail %d went out %v after the first Wake, want %v", i, m.At.Sub(start), mail.WakeDelay)
			}
		}
		time.Sleep(time.Minute)
		waits := book.matching(slog.LevelDebug, runWaits)
		if len(waits) != 2 || waits[1].Attrs["up_to"] != "1h0m0s" {
			t.Errorf("Run's waits after the batch: %+v, want one of the poll interval", waits[1:])
		}
		if n := len(sent.all()); n != 3 {
			t.Errorf("%d mails, want 3", n)
		}
	})
}

// TestRunFinishesInFlightSendOnShutdown: when its context ends, Run waits
// for the send in flight and records it, and hands the rest back.
func TestRunFinishesInFlightSendOnShutdown(t *testing.T) {
	runTimed(t, func(t *testing.T, url string, fake bool) {
		f := newStoreFixture(t, openURL(t, url))
		first := f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", "b@example.com"))
		second := f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", "c@example.com"))
		cfg := f.config(t)
		cfg.Workers = 1
		g := newGate(nil, nil)
		cfg.Sender = g
		d := newDispatcher(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		<-g.started
		cancel()
		if fake {
			synctest.Wait() // Run has done all it can before the send ends
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned (%v) with a send in flight", err)
		default:
		}
		close(g.release)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after its context was cancelled")
		}
		if m := f.message(t, first); m.Status != store.StatusSent {
			t.Fatalf("the mail in flight = %+v, want sent", m)
		}
		if m := f.message(t, second); m.Status != store.StatusQueued || m.Attempts != 0 {
			t.Fatalf("the mail not started = %+v, want handed back", m)
		}
		if n := len(g.started); n != 0 {
			t.Fatalf("%d more sends started, want none", n)
		}
	})
}

// TestRunPollsWhenListenFails: a dispatcher that cannot LISTEN says so and
// polls.
func TestRunPollsWhenListenFails(t *testing.T) {
	runTimed(t, func(t *testing.T, url string, fake bool) {
		db := openURL(t, url)
		f := newStoreFixture(t, db)
		d, sent, book := f.polling(t, 20*time.Millisecond, "sqlite:cannot-listen.db")
		defer running(t, d)()

		book.wait(t, 1, slog.LevelWarn, listenFailed)
		asleep := book.wait(t, 1, slog.LevelDebug, runWaits)[0]
		if _, err := db.EnqueueMessage(context.Background(), mail.EmailAdded(f.userID, "alice@example.com", "b@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := sent.wait(t, 1)[0]; fake && got.At.Sub(asleep.At) != 20*time.Millisecond {
			t.Errorf("the mail went out %v after Run went to sleep, want the poll interval", got.At.Sub(asleep.At))
		}
	})
}
