package mail_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// logRecord is one record a recordingHandler kept.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]any
	At    time.Time
}

// recordingHandler keeps every record, for tests of what a dispatcher logs.
type recordingHandler struct {
	mu      *sync.Mutex
	records *[]logRecord
	attrs   []slog.Attr
}

func newRecordingLogger() (*slog.Logger, func() []logRecord) {
	h := &recordingHandler{mu: &sync.Mutex{}, records: &[]logRecord{}}
	return slog.New(h), func() []logRecord {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]logRecord(nil), *h.records...)
	}
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
	h.mu.Lock()
	*h.records = append(*h.records, rec)
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

func count(records []logRecord, level slog.Level, msg string) int {
	n := 0
	for _, r := range records {
		if r.Level == level && r.Msg == msg {
			n++
		}
	}
	return n
}

// TestReportRetriedWhileDatabaseBusy: the mail left, but the database does
// not take the report that records it for longer than one try (another
// session holds the row's write lock: on SQLite past the busy timeout, on
// PostgreSQL past the report's timeout, which cancels the statement with
// 57014). The report is tried again until it lands, so the row is sent once
// and is not claimed again.
func TestReportRetriedWhileDatabaseBusy(t *testing.T) {
	for _, dialect := range storetest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			url := storetest.URL(t, dialect)
			db := openURL(t, url)
			holder := openURL(t, url) // another session, as another process would be
			f := newFixture(t, db)
			id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))

			// Held longer than the first try of the report waits: SQLite's
			// busy_timeout is 5 s, the report's timeout 10 s.
			hold := 6 * time.Second
			if dialect == store.Postgres {
				hold = 11 * time.Second
			}
			var released sync.WaitGroup
			cfg := f.config(t)
			inner := cfg.Sender
			cfg.Sender = senderFunc(func(ctx context.Context, m mail.Message) error {
				if err := inner.Send(ctx, m); err != nil {
					return err
				}
				tx := lockRow(t, holder.SQL(), dialect, id)
				released.Go(func() {
					time.Sleep(hold)
					if err := tx.Commit(); err != nil {
						t.Errorf("releasing the lock: %v", err)
					}
				})
				return nil
			})
			logger, records := newRecordingLogger()
			var hooks counters
			cfg.Logger, cfg.Hooks = logger, hooks.hooks()
			d := newDispatcher(t, cfg)

			start := time.Now()
			runOnce(t, d, 1)
			released.Wait()
			t.Logf("recorded after %v", time.Since(start).Round(time.Millisecond))

			if m := f.message(t, id); m.Status != store.StatusSent || m.Attempts != 1 {
				t.Fatalf("row = %+v, want sent on the first attempt", m)
			}
			runOnce(t, d, 0) // nothing left to claim, now or after the lease
			f.clock.Advance(3 * time.Minute)
			runOnce(t, d, 0)
			if n := len(f.sink.Mails()); n != 1 || hooks.sent.Load() != 1 {
				t.Fatalf("sink got %d mails, OnSent %d; want 1 and 1", n, hooks.sent.Load())
			}
			recs := records()
			if count(recs, slog.LevelWarn, "mail: cannot record outcome yet; retrying until shortly before the lease ends") != 1 ||
				count(recs, slog.LevelInfo, "mail: outcome recorded after the database came back") != 1 ||
				count(recs, slog.LevelInfo, "mail: sent") != 1 {
				t.Fatalf("log records: %+v", recs)
			}
			for _, r := range recs {
				if r.Level >= slog.LevelError {
					t.Errorf("an error was logged: %+v", r)
				}
			}
		})
	}
}

// lockRow takes the write lock of the outbox row id in a transaction of
// db, as a long transaction of another session would, and returns it.
func lockRow(t testing.TB, db *sqlx.DB, dialect store.Dialect, id int64) *sqlx.Tx {
	t.Helper()
	tx, err := db.Beginx() // SQLite: BEGIN IMMEDIATE (see store.ParseURL), the write lock
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	q := `UPDATE outbox SET last_error = last_error WHERE id = ?`
	if dialect == store.Postgres {
		q = `SELECT id FROM outbox WHERE id = $1 FOR UPDATE`
	}
	if _, err := tx.Exec(q, id); err != nil {
		t.Fatalf("lock: %v", err)
	}
	return tx
}

// TestRunBacksOffWhileClaimsFail: while claims fail, Run logs the first
// failure as an error and the repeats as warnings with a count, sleeping
// longer each time; Wake still starts a claim at once; the first claim that
// works resets the backoff and is logged.
func TestRunBacksOffWhileClaimsFail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		// Claims fail while the outbox table is away.
		if _, err := db.SQL().Exec(`ALTER TABLE outbox RENAME TO outbox_away`); err != nil {
			t.Fatal(err)
		}
		cfg := f.config(t)
		cfg.Now = nil // real time: Run sleeps on it
		cfg.PollInterval = 50 * time.Millisecond
		logger, records := newRecordingLogger()
		cfg.Logger = logger
		d := newDispatcher(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		defer func() { cancel(); <-done }()

		const (
			failed  = "mail: dispatch failed"
			failing = "mail: dispatch still failing"
		)
		claims := func() []logRecord {
			var out []logRecord
			for _, r := range records() {
				if r.Msg == failed || r.Msg == failing {
					out = append(out, r)
				}
			}
			return out
		}
		// Without backoff, 2 s of 50 ms polls would be 40 claims; with it
		// they are 50 ms, 100, 200, 400, 800 ms apart (less up to a fifth).
		time.Sleep(2 * time.Second)
		got := claims()
		if len(got) < 4 || len(got) > 7 {
			t.Fatalf("%d failed claims in 2 s, want 4 to 7: %+v", len(got), got)
		}
		for i, r := range got {
			switch {
			case i == 0 && (r.Level != slog.LevelError || r.Msg != failed):
				t.Fatalf("first failure logged as %v %q, want an error", r.Level, r.Msg)
			case i > 0 && (r.Level != slog.LevelWarn || r.Msg != failing || fmt.Sprint(r.Attrs["failures"]) != fmt.Sprint(i+1)):
				t.Fatalf("failure %d logged as %v %q failures=%v, want a warning with its count", i+1, r.Level, r.Msg, r.Attrs["failures"])
			}
			if i >= 2 {
				gap, prev := r.At.Sub(got[i-1].At), got[i-1].At.Sub(got[i-2].At)
				if gap < prev {
					t.Fatalf("the waits shrink: %v after %v", gap, prev)
				}
			}
		}

		// The next sleep is over 1 s long; Wake cuts it short.
		time.Sleep(100 * time.Millisecond)
		before := len(claims())
		woken := time.Now()
		d.Wake()
		for len(claims()) == before {
			if time.Since(woken) > 200*time.Millisecond {
				t.Fatal("Wake did not start a claim during the backoff")
			}
			time.Sleep(5 * time.Millisecond)
		}

		// The table comes back: the next claim works and delivers, and
		// the backoff is over.
		if _, err := db.SQL().Exec(`ALTER TABLE outbox_away RENAME TO outbox`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.EnqueueMessage(ctx, mail.EmailAdded(f.userID, "alice@example.com", "b@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		d.Wake()
		f.sink.Wait(t, 1, 10*time.Second)
		// Run logs the recovery once RunOnce has returned, which is just
		// after the sink has the mail: wait for the record.
		recovered := func() bool {
			for _, r := range records() {
				if r.Msg == "mail: dispatch works again" && r.Level == slog.LevelInfo {
					return true
				}
			}
			return false
		}
		for deadline := time.Now().Add(5 * time.Second); !recovered(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(`no "mail: dispatch works again" record`)
			}
		}
		// Polling is back to PollInterval: a new mail goes out without Wake.
		time.Sleep(100 * time.Millisecond)
		if _, err := db.EnqueueMessage(ctx, mail.EmailAdded(f.userID, "alice@example.com", "c@example.com"), time.Now()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		f.sink.Wait(t, 2, 10*time.Second)
		if waited := time.Since(start); waited > time.Second {
			t.Fatalf("the next mail took %v without Wake, want about PollInterval", waited)
		}
		recs := records()
		for _, r := range recs {
			if r.Level >= slog.LevelError && r.Msg != failed {
				t.Errorf("unexpected error record: %+v", r)
			}
		}
		if n := count(recs, slog.LevelError, failed); n != 1 {
			t.Errorf("%d %q records, want 1", n, failed)
		}
	})
}
