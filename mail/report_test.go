package mail_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestReportRetriedWhileDatabaseBusy: the mail left, but the database does
// not take the report that records it on the first try (another session
// holds the row's write lock: on SQLite past the busy timeout, on
// PostgreSQL past the report's timeout, which cancels the statement with
// 57014). The report is tried again until it lands, so the row is sent once
// and is not claimed again.
func TestReportRetriedWhileDatabaseBusy(t *testing.T) {
	runTimed(t, func(t *testing.T, url string, fake bool) {
		db := openURL(t, url)
		holder := openURL(t, url) // another session, as another process would be
		f := newStoreFixture(t, db)
		id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))
		logger, book := newRecordingLogger()

		// Once the mail has left, the other session takes the row's write
		// lock and keeps it until the report has failed once.
		var sent inbox
		var released sync.WaitGroup
		cfg := f.config(t)
		cfg.Sender = senderFunc(func(ctx context.Context, m mail.Message) error {
			if err := sent.Send(ctx, m); err != nil {
				return err
			}
			tx, err := lockRow(holder.SQL(), db.Dialect(), id)
			if err != nil {
				return err
			}
			released.Go(func() {
				if err := book.waitErr(1, slog.LevelWarn, reportWaits); err != nil {
					t.Error(err)
				}
				if err := tx.Commit(); err != nil {
					t.Errorf("releasing the lock: %v", err)
				}
			})
			return nil
		})
		var hooks counters
		cfg.Logger, cfg.Hooks = logger, hooks.hooks()
		d := newDispatcher(t, cfg)

		runOnce(t, d, 1)
		released.Wait()
		if m := f.message(t, id); m.Status != store.StatusSent || m.Attempts != 1 {
			t.Fatalf("row = %+v, want sent on the first attempt", m)
		}
		runOnce(t, d, 0) // nothing left to claim, now or after the lease
		f.clock.Advance(3 * time.Minute)
		runOnce(t, d, 0)
		if n := len(sent.all()); n != 1 || hooks.sent.Load() != 1 {
			t.Fatalf("%d mails sent, OnSent %d; want 1 and 1", n, hooks.sent.Load())
		}
		if len(book.matching(slog.LevelWarn, reportWaits)) != 1 || len(book.matching(slog.LevelInfo, reportLanded)) != 1 ||
			len(book.matching(slog.LevelInfo, "mail: sent")) != 1 {
			t.Fatalf("log records: %+v", book.all())
		}
		for _, r := range book.all() {
			if r.Level >= slog.LevelError {
				t.Errorf("an error was logged: %+v", r)
			}
		}
	})
}

// TestReportGivesUpBeforeLeaseEnds: while the database refuses the reports
// of a batch, they are tried again until shortly before the lease ends,
// never after; the messages not yet sent are not sent. After the lease the
// next claim takes them all over (the delivery that was never recorded
// goes out again: the duplicate that the retries make rare).
func TestReportGivesUpBeforeLeaseEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		url := storetest.URL(t, store.SQLite)
		db, holder := openURL(t, url), openURL(t, url)
		// Refuse at once, not after the busy timeout: each try then takes
		// no time, and what the test sees is the schedule of the tries.
		if _, err := db.SQL().Exec(`PRAGMA busy_timeout = 0`); err != nil {
			t.Fatal(err)
		}
		f := newStoreFixture(t, db)
		for i := range 3 {
			f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", fmt.Sprintf("a%d@example.com", i)))
		}
		logger, book := newRecordingLogger()
		var sent inbox
		var lock *sqlx.Tx
		cfg := f.config(t)
		const lease = 30 * time.Second
		cfg.Lease, cfg.SendTimeout, cfg.Workers = lease, 10*time.Second, 1
		cfg.Sender = senderFunc(func(ctx context.Context, m mail.Message) error {
			if lock == nil { // the database refuses every write from now on
				var err error
				if lock, err = lockRow(holder.SQL(), store.SQLite, 0); err != nil {
					return err
				}
			}
			return sent.Send(ctx, m)
		})
		var hooks counters
		cfg.Logger, cfg.Hooks = logger, hooks.hooks()
		d := newDispatcher(t, cfg)

		start := time.Now()
		runOnce(t, d, 1)
		retryUntil := start.Add(lease - 2*time.Second)
		if time.Now().After(retryUntil) {
			t.Errorf("RunOnce returned %v after the claim, past the end of the retries %v", time.Since(start), lease-2*time.Second)
		}
		missing := book.matching(slog.LevelError, reportMissing)
		if len(missing) == 0 || missing[0].Attrs["report"] != "mark sent" ||
			!strings.Contains(fmt.Sprint(missing[0].Attrs["error"]), "as the lease is about to end") {
			t.Fatalf("no give-up of the delivery's report: %+v", book.all())
		}
		if at := missing[0].At; at.Before(retryUntil.Add(-2*time.Second)) || at.After(retryUntil) {
			t.Errorf("the delivery's report gave up %v after the claim, want within the last retry wait before %v", at.Sub(start), lease-2*time.Second)
		}
		for _, r := range book.all() {
			if r.At.After(retryUntil) {
				t.Errorf("a record after the retries ended: %+v", r)
			}
		}
		if n := hooks.sent.Load() + hooks.retry.Load() + hooks.failed.Load(); n != 0 || len(sent.all()) != 1 {
			t.Fatalf("%d hooks, %d mails sent; want none and 1", n, len(sent.all()))
		}

		if err := lock.Rollback(); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(lease + time.Second)
		runOnce(t, d, 3)
		if len(sent.all()) != 4 || hooks.sent.Load() != 3 {
			t.Fatalf("after the lease: %d mails sent, OnSent %d; want 4 and 3", len(sent.all()), hooks.sent.Load())
		}
	})
}

// lockRow takes the write lock of the outbox row id in a transaction of
// db, as a long transaction of another session would, and returns it. On
// SQLite that is the write lock of the whole database.
func lockRow(db *sqlx.DB, dialect store.Dialect, id int64) (*sqlx.Tx, error) {
	tx, err := db.Beginx() // SQLite: BEGIN IMMEDIATE (see store.ParseURL), the write lock
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	q := `UPDATE outbox SET last_error = last_error WHERE id = ?`
	if dialect == store.Postgres {
		q = `SELECT id FROM outbox WHERE id = $1 FOR UPDATE`
	}
	if _, err := tx.Exec(q, id); err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return tx, nil
}

// TestBatchRecordsDeliveriesTogether: the deliveries of a batch, finishing
// at once, are recorded by the group record (MarkMessagesSent, whose
// statement store's TestMarkMessagesSent checks), each row still guarded
// by its own claim. Of a batch whose lease ran out while its sends hung,
// the message another dispatcher took over keeps that dispatcher's
// outcome; the others are recorded as the first dispatcher's deliveries,
// once each.
func TestBatchRecordsDeliveriesTogether(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		const n = 6
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", fmt.Sprintf("a%d@example.com", i)))
		}
		var slowHooks, fastHooks counters
		logger, book := newRecordingLogger()
		slowCfg := f.config(t)
		g := newGate(nil, nil)
		slowCfg.Sender, slowCfg.Hooks, slowCfg.Workers, slowCfg.Logger = g, slowHooks.hooks(), n, logger
		slow := newDispatcher(t, slowCfg)
		fastCfg := f.config(t)
		fastCfg.Hooks, fastCfg.BatchSize = fastHooks.hooks(), 1
		fast := newDispatcher(t, fastCfg)

		done := make(chan error, 1)
		go func() {
			_, err := slow.RunOnce(context.Background())
			done <- err
		}()
		for range n {
			<-g.started
		}
		// The sends hang past the lease; the other dispatcher takes the
		// first message over (the earliest due) and delivers it.
		f.clock.Advance(2*time.Minute + time.Second)
		runOnce(t, fast, 1)
		close(g.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			m := f.message(t, id)
			want := 1
			if i == 0 {
				want = 2 // the take-over's attempt
			}
			if m.Status != store.StatusSent || m.Attempts != want || m.SentAt == nil {
				t.Errorf("message %d = %+v; want sent on attempt %d", i, m, want)
			}
		}
		if slowHooks.sent.Load() != n-1 || fastHooks.sent.Load() != 1 || len(f.sink.Mails()) != 1 {
			t.Errorf("OnSent %d and %d, sink %d; want %d, 1 and 1", slowHooks.sent.Load(), fastHooks.sent.Load(), len(f.sink.Mails()), n-1)
		}
		if len(book.matching(slog.LevelWarn, "mail: lease was taken over; outcome not recorded")) != 1 || len(book.matching(slog.LevelInfo, "mail: sent")) != n-1 {
			t.Errorf("log records: %+v", book.all())
		}
	})
}
