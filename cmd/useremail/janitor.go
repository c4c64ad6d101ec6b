package main

import (
	"context"
	"time"

	"github.com/useremail/useremail/session"
)

// janitorEvery is how often the janitor runs, after its first run at start.
const janitorEvery = 5 * time.Minute

// janitorRoundMax bounds one round of the janitor.
const janitorRoundMax = time.Minute

// purgeBatch is how many outbox rows one statement of a purge deletes: a
// batch holds its locks (on SQLite, the database's) for milliseconds, and
// the requests waiting for the connection go between two batches.
const purgeBatch = 1000

// janitor removes long-expired sessions, recovered rate limits and the sent
// and cancelled mail older than Config.OutboxRetention, at start and then
// every janitorEvery until ctx ends.
func (m *Main) janitor(ctx context.Context) {
	sessions := session.NewManager(m.DB, m.Config.Sessions, nil)
	tick := time.NewTicker(janitorEvery)
	defer tick.Stop()
	for {
		m.janitorRound(ctx, sessions)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// janitorRound does one round of upkeep, bounded by janitorRoundMax so that
// a database path that went silent cannot hold the janitor.
func (m *Main) janitorRound(ctx context.Context, sessions *session.Manager) {
	ctx, cancel := context.WithTimeout(ctx, janitorRoundMax)
	defer cancel()
	// Expired sessions stay a week, so that their cookies answer
	// "expired" rather than "unknown" for a while.
	if n, err := sessions.DeleteExpired(ctx, 7*24*time.Hour); err != nil {
		m.Logger.Warn("janitor: sessions", "error", err)
	} else if n > 0 {
		m.Logger.Info("janitor: expired sessions removed", "count", n)
	}
	if _, err := m.DB.DeleteIdleRateLimits(ctx, time.Now()); err != nil {
		m.Logger.Warn("janitor: rate limits", "error", err)
	}
	if keep := m.Config.OutboxRetention; keep > 0 {
		before := time.Now().Add(-keep)
		n, err := purge(ctx, func(ctx context.Context, limit int) (int64, error) {
			return m.DB.DeleteFinishedMessages(ctx, before, limit)
		})
		if n > 0 {
			m.Logger.Info("janitor: old mail deleted from the outbox", "count", n, "older_than", keep.String())
		}
		if err != nil {
			m.Logger.Warn("janitor: outbox", "error", err)
		}
	}
}

// purge calls deleteBatch with purgeBatch until it deletes fewer rows, or
// fails, or ctx ends, and returns how many rows it deleted in all.
func purge(ctx context.Context, deleteBatch func(ctx context.Context, limit int) (int64, error)) (int64, error) {
	var total int64
	for ctx.Err() == nil {
		n, err := deleteBatch(ctx, purgeBatch)
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
	return total, ctx.Err()
}
