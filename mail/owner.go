package mail

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/useremail/useremail/store"
)

// On PostgreSQL, Run claims under an owner (store.Owner) that holds an
// advisory lock for as long as Run runs: checked every ownerCheckInterval,
// and taken again under the same id when its session was lost. Every
// deadClaimScan it looks for the claims of owners that hold no lock, and
// takes back those it found dead at the scan before too: an owner whose
// session the database lost (a restart) gets that long to take its lock
// again and keep its claims, whose reports it may still be trying.
const (
	ownerCheckInterval = time.Second
	deadClaimScan      = 2 * time.Second
)

// errNoClaimLock is a claim's error while Run's owner holds no lock.
var errNoClaimLock = errors.New("no claim lock: the database session that held it was lost; claims wait until it is taken again")

// claimant is what a batch claims under.
type claimant struct {
	owner *store.Owner
	// lost reports that the owner has lost its lock since the claim
	// (nil: not watched): the batch then starts no more sends, as other
	// dispatchers may take its messages back.
	lost func() bool
	// release drops an owner made for one batch.
	release func()
}

// claimant returns Run's owner, or outside Run one of the batch's own.
func (d *Dispatcher) claimant(ctx context.Context) (claimant, error) {
	if h := d.holding.Load(); h != nil {
		return h.current()
	}
	owner, err := d.db.NewOwner(ctx)
	if err != nil {
		return claimant{}, err
	}
	return claimant{owner: owner, release: func() { _ = owner.Close() }}, nil
}

// holder keeps Run's owner and takes back the claims of dead ones.
type holder struct {
	d      *Dispatcher
	logger *slog.Logger
	checks chan struct{} // asks for a check at once

	mu    sync.Mutex
	owner *store.Owner // nil while no lock is held
	id    int64        // the owner's id, kept across sessions
	epoch uint64       // counts the sessions that held the lock

	suspects         map[store.Claim]bool // mail claims dead at the last scan
	deliverySuspects map[store.Claim]bool // delivery claims dead at the last scan
}

// hold makes Run's owner and, on PostgreSQL, keeps its lock and takes back
// dead claims until ctx is done; the function it returns stops that and
// drops the lock. Without a lock at first (the database is away), the
// claims fail until the keeper takes one.
func (d *Dispatcher) hold(ctx context.Context) (release func()) {
	h := &holder{d: d, logger: d.logger, checks: make(chan struct{}, 1)}
	h.take(ctx)
	d.holding.Store(h)
	if d.db.Dialect() != store.Postgres {
		return func() { d.holding.Store(nil) }
	}
	kctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { h.keep(kctx) })
	return func() {
		stop()
		wg.Wait()
		d.holding.Store(nil)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.owner != nil {
			_ = h.owner.Close()
			h.owner = nil
		}
	}
}

// current returns the owner to claim under, while it holds its lock.
func (h *holder) current() (claimant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.owner == nil {
		return claimant{}, errNoClaimLock
	}
	epoch := h.epoch
	lost := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.owner == nil || h.epoch != epoch
	}
	return claimant{owner: h.owner, lost: lost, release: func() {}}, nil
}

// check asks the keeper to check the owner's lock at once, as after a
// claim failed.
func (h *holder) check() {
	select {
	case h.checks <- struct{}{}:
	default:
	}
}

// keep checks the owner's lock every ownerCheckInterval (and when asked),
// taking it again when lost, and scans for dead claims every
// deadClaimScan, until ctx is done.
func (h *holder) keep(ctx context.Context) {
	check := time.NewTicker(ownerCheckInterval)
	defer check.Stop()
	scan := time.NewTicker(deadClaimScan)
	defer scan.Stop()
	h.scan(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			h.keepLock(ctx)
		case <-h.checks:
			h.keepLock(ctx)
		case <-scan.C:
			h.scan(ctx)
		}
	}
}

// keepLock checks that the owner holds its lock, and takes it again if not.
func (h *holder) keepLock(ctx context.Context) {
	h.mu.Lock()
	owner := h.owner
	h.mu.Unlock()
	if owner != nil {
		cctx, cancel := context.WithTimeout(ctx, ownerCheckInterval*5)
		err := owner.Check(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		h.owner = nil
		h.mu.Unlock()
		_ = owner.Close()
		h.logger.Warn("mail: lost the claim lock; no claims until it is taken again", "owner", owner.ID(), "error", err)
	}
	if h.take(ctx) {
		h.d.Wake()
	}
}

// take takes the owner's lock: under its id again if it has one and no
// other session holds it, else under a new id. It reports whether it did.
func (h *holder) take(ctx context.Context) bool {
	h.mu.Lock()
	id := h.id
	h.mu.Unlock()
	var owner *store.Owner
	var err error
	if id != 0 {
		owner, err = h.d.db.LockOwner(ctx, id)
	}
	if id == 0 || errors.Is(err, store.ErrOwnerLocked) {
		// An older session of the owner lives on: its claims stay alive
		// until the server ends it, then anyone takes them back.
		owner, err = h.d.db.NewOwner(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			h.logger.Debug("mail: cannot take the claim lock yet", "error", err)
		}
		return false
	}
	h.mu.Lock()
	h.owner, h.id = owner, owner.ID()
	h.epoch++
	first := h.epoch == 1
	h.mu.Unlock()
	if first {
		h.logger.Info("mail: claiming as owner", "owner", owner.ID())
	} else {
		h.logger.Info("mail: holds the claim lock again", "owner", owner.ID(), "same_owner", owner.ID() == id)
	}
	return true
}

// scan takes back the claims found dead at this scan and at the one
// before, of mail and, with webhooks, of event deliveries.
func (h *holder) scan(ctx context.Context) {
	h.scanTable(ctx, &h.suspects, "outbox_ids", h.d.db.DeadClaims, h.d.db.TakeBackClaims)
	if h.d.webhooks != nil {
		h.scanTable(ctx, &h.deliverySuspects, "delivery_ids", h.d.db.DeadDeliveryClaims, h.d.db.TakeBackDeliveryClaims)
	}
}

// scanTable takes back the claims of one table found dead at this scan
// and at the one before, and keeps this scan's in *suspects for the next.
func (h *holder) scanTable(ctx context.Context, suspects *map[store.Claim]bool, idsKey string,
	deadClaims func(context.Context) ([]store.Claim, error),
	takeBack func(context.Context, []store.Claim, time.Time) ([]int64, error)) {
	cctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	dead, err := deadClaims(cctx)
	if err != nil {
		h.scanError(ctx, "mail: cannot look for the claims of dead dispatchers", err)
		return
	}
	var confirmed []store.Claim
	for _, c := range dead {
		if (*suspects)[c] {
			confirmed = append(confirmed, c)
		}
	}
	*suspects = make(map[store.Claim]bool, len(dead))
	for _, c := range dead {
		(*suspects)[c] = true
	}
	if len(confirmed) == 0 {
		return
	}
	ids, err := takeBack(cctx, confirmed, h.d.now())
	if err != nil {
		h.scanError(ctx, "mail: cannot take back the claims of dead dispatchers", err)
		return
	}
	if len(ids) > 0 {
		h.logger.Info("mail: took back the claims of a dispatcher that is gone", "count", len(ids), idsKey, ids)
		h.d.Wake()
	}
}

// scanError logs a scan that failed: a warning, unless Run is stopping, or
// the database is away (the claims fail too, and say so).
func (h *holder) scanError(ctx context.Context, msg string, err error) {
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, store.ErrUnavailable):
		h.logger.Debug(msg, "error", err)
	default:
		h.logger.Warn(msg, "error", err)
	}
}
