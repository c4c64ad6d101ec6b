package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/useremail/useremail/store"
)

// reportTimeout bounds one try of the store write that records an outcome.
const reportTimeout = 10 * time.Second

// A report the database cannot take (it is down, restarting, or too slow)
// is tried again after a delay that grows from reportRetryMin to
// reportRetryMax, until reportRetryStop before the claim's lease ends: a
// delivery never recorded would be repeated by the claim after the lease.
const (
	reportRetryMin  = 100 * time.Millisecond
	reportRetryMax  = 2 * time.Second
	reportRetryStop = 2 * time.Second
)

// reschedule records a temporary failure of m's attempt: queued again
// after a backoff.
func (d *Dispatcher) reschedule(ctx context.Context, log *slog.Logger, b *batch, m store.Message, sendErr error) {
	next := d.now().Add(d.backoff(m.Attempts))
	err := d.record(ctx, log, b, "reschedule", func(rctx context.Context) error {
		return d.db.RescheduleMessage(rctx, m.Claim(), next, sendErr.Error())
	})
	if err != nil {
		d.reportError(log, "reschedule", err)
		return
	}
	log.Warn("mail: temporary failure, will retry", "next_attempt_at", next, "error", sendErr)
	call(d.hooks.OnRetry, m.Kind)
}

// backoff returns the delay before the retry that follows attempt: full
// jitter over an exponential ceiling, so that many mails failing together do
// not come back together.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	ceiling := d.backoffBase
	for i := 1; i < attempt && ceiling < d.backoffMax; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, d.backoffMax)
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// fail records that m is given up, for reason.
func (d *Dispatcher) fail(ctx context.Context, log *slog.Logger, b *batch, m store.Message, reason string) {
	err := d.record(ctx, log, b, "mark failed", func(rctx context.Context) error {
		return d.db.FailMessage(rctx, m.Claim(), reason)
	})
	if err != nil {
		d.reportError(log, "mark failed", err)
		return
	}
	log.Error("mail: failed for good", "error", reason)
	call(d.hooks.OnFailed, m.Kind)
}

// sentMessage is a delivery to record.
type sentMessage struct {
	m   store.Message
	log *slog.Logger
}

// groupCommit gathers a batch's finished deliveries of one kind and has
// them recorded together, as in a group commit: the worker that finds no
// record in progress writes the waiting ones with one statement, and again
// for those that finished meanwhile, until none waits; the others leave
// theirs to it. A delivery waits for at most the record in progress, never
// for the rest of the batch: a crash loses no more records than one at a
// time did.
type groupCommit[T any] struct {
	mu        sync.Mutex
	waiting   []T
	recording bool // a worker is recording
}

// add queues item and, unless a record is in progress, records the waiting
// items with record until none waits.
func (g *groupCommit[T]) add(item T, record func(group []T)) {
	g.mu.Lock()
	g.waiting = append(g.waiting, item)
	if g.recording {
		g.mu.Unlock()
		return
	}
	g.recording = true
	for len(g.waiting) > 0 {
		group := g.waiting
		g.waiting = nil
		g.mu.Unlock()
		record(group)
		g.mu.Lock()
	}
	g.recording = false
	g.mu.Unlock()
}

// markSent records a delivery of batch b, grouped with the others that
// finish meanwhile.
func (d *Dispatcher) markSent(ctx context.Context, b *batch, s sentMessage) {
	b.delivered.add(s, func(group []sentMessage) { d.recordSent(ctx, b, group) })
}

// recordSent records a group of deliveries with one statement, each row
// guarded by its own claim, and reports each outcome: sent, or not recorded
// because the lease was taken over.
func (d *Dispatcher) recordSent(ctx context.Context, b *batch, group []sentMessage) {
	claims := make([]store.Claim, len(group))
	for i, s := range group {
		claims[i] = s.m.Claim()
	}
	log := group[0].log
	if len(group) > 1 {
		ids := make([]int64, len(group))
		for i, c := range claims {
			ids[i] = c.ID
		}
		log = d.logger.With("outbox_ids", ids)
	}
	recorded := make(map[int64]bool, len(group))
	now := d.now() // the same report on every try
	err := d.record(ctx, log, b, "mark sent", func(rctx context.Context) error {
		ids, err := d.db.MarkMessagesSent(rctx, claims, now)
		for _, id := range ids {
			recorded[id] = true
		}
		return err
	})
	for _, s := range group {
		switch {
		case err != nil:
			d.reportError(s.log, "mark sent", err)
		case !recorded[s.m.ID]:
			d.reportError(s.log, "mark sent", store.ErrNotFound)
		default:
			s.log.Info("mail: sent")
			call(d.hooks.OnSent, s.m.Kind)
		}
	}
}

// record writes one report of claimed messages with write, each try
// bounded by reportTimeout, even when ctx is done: a mail that left must be
// recorded as sent, or it would be sent again after the lease.
//
// While the database is unavailable it tries again until shortly before
// the lease ends: until then no other claim can take the message, so a
// report that lands in time prevents a duplicate. A try whose answer was
// lost may have committed; the store takes the repeat of a report that
// landed as a success. Other errors, ErrNotFound among them (the lease was
// taken over), are returned at once.
func (d *Dispatcher) record(ctx context.Context, log *slog.Logger, b *batch, what string, write func(context.Context) error) error {
	parent := context.WithoutCancel(ctx)
	wait := reportRetryMin
	var firstFailure time.Time
	for tries := 1; ; tries++ {
		rctx, cancel := context.WithTimeout(parent, reportTimeout)
		err := write(rctx)
		cancel()
		if err == nil {
			b.unavailable.Store(false)
			if tries > 1 {
				log.Info("mail: outcome recorded after the database came back", "report", what, "tries", tries,
					"after", time.Since(firstFailure).Round(time.Millisecond).String())
			}
			return nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		b.unavailable.Store(true)
		if tries == 1 {
			firstFailure = time.Now()
		}
		sleep := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		if time.Now().Add(sleep).After(b.retryUntil) {
			if tries == 1 {
				return err
			}
			return fmt.Errorf("gave up after %d tries over %v, as the lease is about to end: %w",
				tries, time.Since(firstFailure).Round(time.Millisecond), err)
		}
		if tries == 1 {
			log.Warn("mail: cannot record outcome yet; retrying until shortly before the lease ends",
				"report", what, "error", err, "retry_until", b.retryUntil)
		}
		time.Sleep(sleep)
		wait = min(wait*2, reportRetryMax)
	}
}

// reportError logs a report that could not be recorded. ErrNotFound means
// the lease ran out and another dispatcher took the message over: its
// outcome is the one that counts.
func (d *Dispatcher) reportError(log *slog.Logger, what string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("mail: lease was taken over; outcome not recorded", "report", what)
		return
	}
	log.Error("mail: cannot record outcome", "report", what, "error", err)
}
