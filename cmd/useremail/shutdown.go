package main

import (
	"context"
	"errors"
	"sync"
	"time"
)

// backgroundDrainMin is the least time the dispatcher gets at shutdown to
// finish the sends in flight and record them, even when the requests used
// up the grace period.
const backgroundDrainMin = 5 * time.Second

// Shutdown drains what Run started within Config.ShutdownGrace: it stops
// accepting, lets the requests in flight finish, flushes the mail they
// queued, stops the background work (which gets at least
// backgroundDrainMin) and hangs up SMTP. Requests cut off at the end of
// the grace period are its error.
func (m *Main) Shutdown() error {
	if m.stopBackground == nil {
		return nil // Run never started
	}
	grace := m.Config.ShutdownGrace
	deadline := time.Now().Add(grace)
	m.Logger.Info("shutting down", "grace", grace.String())
	err := m.drainRequests(deadline)
	if err == nil {
		m.flushMail(deadline)
	}
	m.stopBackground()
	if !waitUntil(&m.background, max(time.Until(deadline), backgroundDrainMin)) {
		m.Logger.Warn("mail sends still in flight at the end of the grace period; their messages are sent again once their lease ends")
	}
	m.hangUpSMTP()
	m.Logger.Info("stopped")
	return err
}

// drainRequests closes the listener and waits for the requests in flight
// until deadline, then cuts off the ones still running.
func (m *Main) drainRequests(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := m.httpServer.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = m.httpServer.Close()
		m.Logger.Warn("requests still running after the grace period were cut off")
		return errors.New("shutdown: requests still running after the grace period were cut off")
	}
	return err
}

// flushMailMax bounds how long shutdown waits for the mail that the last
// requests queued.
const flushMailMax = 5 * time.Second

// flushMail waits, up to flushMailMax and never past deadline, until no
// queued mail is due, waking the dispatcher, so that a single node sends
// what its last requests queued before it exits. Nothing is lost without
// it (the outbox keeps the rows for the next dispatcher); with several
// replicas the others send it anyway.
func (m *Main) flushMail(deadline time.Time) {
	if until := time.Now().Add(flushMailMax); until.Before(deadline) {
		deadline = until
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		due, err := m.DB.NextDueAt(ctx)
		if err != nil || due.After(time.Now()) {
			return // nothing due, or the database is away: the rows wait
		}
		m.Dispatcher.Wake()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// hangUpSMTP closes the SMTP connections kept between mails. After a
// grace period that ran out, a send still running closes its own.
func (m *Main) hangUpSMTP() {
	if m.smtp != nil {
		_ = m.smtp.Close()
		m.smtp = nil
	}
}

// waitUntil waits for wg for at most d and reports whether it finished.
func waitUntil(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}
