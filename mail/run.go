package mail

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// wakeDelay is how long Run waits after a Wake or a notification before it
// claims, so that the mail other requests queue meanwhile joins the same
// batch: one claim and one record for many requests instead of one each.
const wakeDelay = 10 * time.Millisecond

// minDueWait is the shortest sleep Run takes for a message that falls due.
const minDueWait = 50 * time.Millisecond

// claimBackoffMax caps the wait between claims while they fail (the
// database is down): the wait doubles from PollInterval up to it.
const claimBackoffMax = 30 * time.Second

// Wake makes a sleeping Run look for due messages, wakeDelay later. It never
// blocks; call it after committing a transaction that queued a mail.
func (d *Dispatcher) Wake() {
	for _, w := range []chan struct{}{d.wake, d.wakeEvents} {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// lane is one of Run's loops: mail, or event deliveries. Each claims,
// sleeps and backs off on its own, so that a slow webhook endpoint never
// holds mail back; both claim under Run's one owner.
type lane struct {
	name    string // the log records' prefix
	wake    chan struct{}
	batch   func(ctx context.Context) (full bool, err error)
	nextDue func(ctx context.Context) (time.Time, error)
}

// Run sends due messages until ctx is done, then finishes and records the
// sends in flight, hands the rest back and returns nil. Between batches it
// sleeps up to PollInterval (less when a message falls due sooner), wakes
// early on Wake and, with ListenURL, on PostgreSQL notifications, and backs
// off while claims fail (claimBackoff).
//
// On PostgreSQL it claims under one owner, whose lock it holds until it
// returns, and takes back within seconds the claims of owners that hold
// none: dispatchers whose process died (see ownerCheckInterval).
//
// With Webhooks it delivers events too, in a loop of its own.
func (d *Dispatcher) Run(ctx context.Context) error {
	release := d.hold(ctx)
	defer release()
	notify := d.listen(ctx)
	mail := &lane{name: "mail", wake: d.wake, nextDue: d.db.NextDueAt,
		batch: func(ctx context.Context) (bool, error) {
			_, full, err := d.runOnce(ctx, true, false)
			return full, err
		}}
	if d.webhooks == nil {
		d.loop(ctx, mail, notify)
		return nil
	}
	events := &lane{name: "webhook", wake: d.wakeEvents, nextDue: d.db.NextDeliveryDueAt,
		batch: func(ctx context.Context) (bool, error) {
			_, full, err := d.runOnce(ctx, false, true)
			return full, err
		}}
	// Each notification of queued mail or events wakes both lanes.
	var mailNotify, eventNotify <-chan struct{}
	if notify != nil {
		m, e := make(chan struct{}, 1), make(chan struct{}, 1)
		mailNotify, eventNotify = m, e
		go func() {
			defer close(m)
			defer close(e)
			for range notify {
				for _, ch := range []chan struct{}{m, e} {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.loop(ctx, events, eventNotify) })
	d.loop(ctx, mail, mailNotify)
	wg.Wait()
	return nil
}

// loop runs the batches of one lane until ctx is done.
func (d *Dispatcher) loop(ctx context.Context, l *lane, notify <-chan struct{}) {
	var failures int
	var failingSince time.Time
	for {
		full, err := l.batch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && failures > 0 {
			d.logger.Info(l.name+": dispatch works again", "failures", failures,
				"after", time.Since(failingSince).Round(time.Millisecond).String())
			failures = 0
		}
		var wait time.Duration
		switch {
		case err != nil:
			failures++
			if failures == 1 {
				failingSince = time.Now()
			}
			wait = d.claimBackoff(failures)
			d.logClaimFailure(l.name, err, failures, failingSince, wait)
		case full:
			continue // more may be due already
		default:
			wait = d.idleWait(ctx, l)
		}
		if !d.sleep(ctx, wait, l.wake, &notify) {
			return
		}
	}
}

// listen returns the channel of PostgreSQL notifications of queued mail
// when Run should LISTEN, else nil. It listens before the first batch: mail
// queued before LISTEN took effect is found by that batch.
func (d *Dispatcher) listen(ctx context.Context) <-chan struct{} {
	if d.listenURL == "" {
		return nil
	}
	ch, err := ListenPostgres(ctx, d.listenURL)
	if err != nil {
		d.logger.Warn("mail: cannot LISTEN for new mail; polling only", "error", err)
		return nil
	}
	return ch
}

// idleWait returns how long Run may sleep after a batch that was not full:
// PollInterval, or less when a message falls due sooner. Why ask: new mail
// wakes Run, but retries, hand-backs, lost leases and the mail of replicas
// that cannot notify only the next due time announces.
func (d *Dispatcher) idleWait(ctx context.Context, l *lane) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	due, err := l.nextDue(ctx)
	if err != nil {
		return d.pollInterval
	}
	return min(d.pollInterval, max(due.Sub(d.now()), minDueWait))
}

// sleep waits up to wait, or until woken by Wake or a notification on
// *notify (set to nil once that channel closes); woken, it waits wakeDelay
// more to gather the mail being queued. It reports false once ctx is done.
func (d *Dispatcher) sleep(ctx context.Context, wait time.Duration, wake chan struct{}, notify *<-chan struct{}) bool {
	d.logger.Debug("mail: waiting", "up_to", wait.Round(time.Millisecond).String())
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wait):
		return true
	case <-wake:
	case _, ok := <-*notify:
		if !ok {
			*notify = nil
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wakeDelay):
	}
	// The claim that follows takes what woke Run and what came meanwhile.
	select {
	case <-wake:
	default:
	}
	select {
	case _, ok := <-*notify:
		if !ok {
			*notify = nil
		}
	default:
	}
	return true
}

// claimBackoff returns the sleep after the given number of claims that
// failed in a row: PollInterval doubled for each failure after the first,
// up to claimBackoffMax (or PollInterval, if that is longer), less a random
// part of up to a fifth so that replicas that failed together do not come
// back together.
func (d *Dispatcher) claimBackoff(failures int) time.Duration {
	ceiling := max(claimBackoffMax, d.pollInterval)
	wait := d.pollInterval
	for i := 1; i < failures && wait < ceiling; i++ {
		wait *= 2
	}
	wait = min(wait, ceiling)
	return wait - time.Duration(rand.Int64N(int64(wait/5)+1))
}

// logClaimFailure logs the failures-th claim in a row that failed: the
// first as an error, the repeats as warnings with their count.
func (d *Dispatcher) logClaimFailure(lane string, err error, failures int, since time.Time, wait time.Duration) {
	retryIn := slog.String("retry_in", wait.Round(time.Millisecond).String())
	if failures == 1 {
		d.logger.Error(lane+": dispatch failed", "error", err, retryIn)
		return
	}
	d.logger.Warn(lane+": dispatch still failing", "failures", failures,
		"for", time.Since(since).Round(time.Millisecond).String(), "error", err, retryIn)
}
