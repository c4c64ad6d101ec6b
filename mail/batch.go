package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/useremail/useremail/store"
)

// leaseMargin is the part of a lease kept free after the longest send, for
// the report of its outcome and for clock skew between dispatchers.
const leaseMargin = 10 * time.Second

// RunOnce claims one batch of due messages, and with Webhooks one of due
// event deliveries, sends them Workers at a time, records each outcome
// (sent or delivered, rescheduled or failed) and returns how many it
// handled; its error is a claim's. Once ctx is done no send starts: the
// rest is handed back, and the sends in flight are finished and recorded.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	n, _, err := d.runOnce(ctx, true, d.webhooks != nil)
	return n, err
}

// runOnce is RunOnce of mail, of events or of both, reporting too whether
// a claim took a full batch.
func (d *Dispatcher) runOnce(ctx context.Context, mail, events bool) (int, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	// The claim is not cut short by ctx: a cancellation racing with the
	// commit could report failure for a claim that committed, and leave its
	// messages leased to nobody until the lease ran out.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	claimedAt, claimedReal := d.now(), time.Now()
	c, err := d.claimant(cctx)
	if err != nil {
		return 0, false, fmt.Errorf("mail: claim: %w", err)
	}
	defer c.release()
	var msgs []store.Message
	if mail {
		if msgs, err = c.owner.ClaimMessages(cctx, claimedAt, d.lease, d.batchSize); err != nil {
			if h := d.holding.Load(); h != nil && errors.Is(err, store.ErrUnavailable) {
				h.check() // the owner's session may be gone
			}
			return 0, false, fmt.Errorf("mail: claim: %w", err)
		}
	}
	var dels []store.Delivery
	var claimErr error
	if events {
		// The mail claimed is sent whatever becomes of this claim.
		if dels, err = c.owner.ClaimDeliveries(cctx, claimedAt, d.lease, d.batchSize); err != nil {
			if h := d.holding.Load(); h != nil && errors.Is(err, store.ErrUnavailable) {
				h.check()
			}
			claimErr = fmt.Errorf("webhook: claim: %w", err)
		}
	}
	full := len(msgs) >= d.batchSize || len(dels) >= d.batchSize
	b := &batch{
		lost: c.lost,
		// A send may start only while enough of the lease remains for it
		// to finish and be recorded before another dispatcher may take the
		// message over: a slow server must not make the last ones go twice.
		startBy: claimedAt.Add(d.lease - d.sendTimeout - leaseMargin),
		// The lease is on the dispatcher's clock (which tests may set);
		// the waits between tries of a report are on the real one.
		retryUntil: claimedReal.Add(d.lease - reportRetryStop),
	}
	b.langs = d.languages(cctx, msgs)
	// Mail and deliveries alternate, so that neither waits for the other.
	todo := make(chan func() bool, len(msgs)+len(dels))
	for i := range max(len(msgs), len(dels)) {
		if i < len(msgs) {
			m := msgs[i]
			todo <- func() bool { return d.handle(ctx, m, b) }
		}
		if i < len(dels) {
			dl := dels[i]
			todo <- func() bool { return d.handleDelivery(ctx, dl, b) }
		}
	}
	close(todo)
	var handled atomic.Int64
	var wg sync.WaitGroup
	for range min(d.workers, len(todo)) {
		wg.Go(func() {
			for job := range todo {
				if job() {
					handled.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(handled.Load()), full, claimErr
}

// batch is what the messages of one claim share.
type batch struct {
	// lost, if set, reports that the claim's owner has lost its lock since
	// the claim: other dispatchers may take the messages back, and those
	// not yet started are handed back rather than sent.
	lost func() bool
	// langs are the languages of the messages' users.
	langs map[int64]string
	// startBy is the last moment, on the dispatcher's clock, a send of the
	// batch may start.
	startBy time.Time
	// retryUntil is when, in real time, the tries of a report stop: shortly
	// before the lease ends.
	retryUntil time.Time
	// unavailable is set while the database refuses the batch's reports
	// (from a report that failed so to the next one that lands). The
	// messages not yet started are then handed back rather than sent: a
	// delivery that cannot be recorded would be repeated after the lease.
	unavailable atomic.Bool
	// delivered gathers the deliveries waiting to be recorded (markSent).
	delivered groupCommit[sentMessage]
	// events gathers the event deliveries waiting to be recorded
	// (markDelivered).
	events groupCommit[deliveredEvent]
}

// ownerLost reports that the batch's owner has lost its lock since the claim.
func (b *batch) ownerLost() bool { return b.lost != nil && b.lost() }

// handle sends one claimed message and records the outcome. It reports false
// for a message it handed back unsent.
func (d *Dispatcher) handle(ctx context.Context, m store.Message, b *batch) bool {
	log := d.logger.With("outbox_id", m.ID, "kind", m.Kind, "attempt", m.Attempts)
	if ctx.Err() != nil || d.now().After(b.startBy) || b.unavailable.Load() || b.ownerLost() {
		d.handBack(ctx, log, b, m)
		return false
	}
	if m.Attempts > d.maxAttempts {
		// Earlier claims of this row all ran out of lease without a report
		// (a dispatcher crashed or hung on it): stop rather than loop.
		d.fail(ctx, log, b, m, fmt.Sprintf("gave up: claimed %d times without a recorded outcome", m.Attempts-1))
		return true
	}
	msg, err := d.composer.compose(m, b.langs[m.UserID], d.now())
	if err != nil {
		d.fail(ctx, log, b, m, err.Error())
		return true
	}
	log = log.With("message_id", msg.MessageID)

	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), d.sendTimeout)
	err = d.sender.Send(sctx, msg)
	scancel()
	switch {
	case err == nil:
		d.markSent(ctx, b, sentMessage{m: m, log: log})
	case Permanent(err):
		d.fail(ctx, log, b, m, err.Error())
	case m.Attempts >= d.maxAttempts:
		d.fail(ctx, log, b, m, fmt.Sprintf("gave up after %d attempts: %v", m.Attempts, err))
	default:
		d.reschedule(ctx, log, b, m, err)
	}
	return true
}

// languages returns the languages of the users of msgs. Mails follow
// their user's language at send time; should the database not say, they
// go in English rather than wait.
func (d *Dispatcher) languages(ctx context.Context, msgs []store.Message) map[int64]string {
	ids := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.UserID)
	}
	langs, err := d.db.UserLanguages(ctx, ids)
	if err != nil {
		d.logger.Warn("mail: the users' languages are unknown; the batch goes in English", "error", err)
	}
	return langs
}

// handBack puts a message the batch will not send back in the queue,
// unless its lease is about to end anyway.
func (d *Dispatcher) handBack(ctx context.Context, log *slog.Logger, b *batch, m store.Message) {
	reason := "too little of the lease left"
	switch {
	case b.unavailable.Load():
		reason = "the database is unavailable"
		if time.Now().After(b.retryUntil) {
			// Each try would wait for a database that did not answer the
			// batch's last reports; the lease hands the message back.
			log.Warn("mail: left unsent until its lease ends", "reason", reason)
			return
		}
	case b.ownerLost():
		reason = "the claim lock was lost"
	case ctx.Err() != nil:
		reason = "shutting down"
	}
	err := d.record(ctx, log, b, "hand back", func(rctx context.Context) error {
		return d.db.ReleaseMessage(rctx, m.Claim(), d.now())
	})
	if err != nil {
		d.reportError(log, "hand back", err)
		return
	}
	log.Info("mail: handed back unsent", "reason", reason)
}
