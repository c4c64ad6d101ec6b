package store

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/lib/pq"
)

// A connection whose read has waited reapAfter for an answer is checked
// against the server's own view (pg_stat_activity) every reapEvery; the
// check is bounded by reapCheckTimeout. On a path that lost the statement
// or its answer, the server process is idle while the connection waits:
// the reaper closes it then, so that the pool is whole again within a
// check of the path's return instead of at its callers' deadlines.
const (
	reapAfter        = 3 * time.Second
	reapEvery        = time.Second
	reapCheckTimeout = 2 * time.Second
)

// reaper closes the connections of a connector that wait for answers their
// server will not send.
type reaper struct {
	conns  *pgConns
	check  *sql.DB // one connection of its own: the pool may be all waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startReaper(c *pgConnector) *reaper {
	check := sql.OpenDB(c)
	check.SetMaxOpenConns(1)
	check.SetMaxIdleConns(1)
	check.SetConnMaxIdleTime(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	r := &reaper{conns: c.conns, check: check, cancel: cancel}
	r.wg.Go(func() {
		tick := time.NewTicker(reapEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				r.reapOnce(ctx)
			}
		}
	})
	return r
}

// reapOnce checks the connections that have waited reapAfter and closes
// those whose server process is not running a statement.
func (r *reaper) reapOnce(ctx context.Context) {
	waits := r.conns.waitingBefore(time.Now().Add(-reapAfter))
	if len(waits) == 0 {
		return
	}
	pids := make([]int64, len(waits))
	for i, w := range waits {
		pids[i] = int64(w.conn.pid)
	}
	ctx, cancel := context.WithTimeout(ctx, reapCheckTimeout)
	defer cancel()
	// Read after the waits began: a statement sent more than reapAfter ago
	// has reached a server that answers.
	rows, err := r.check.QueryContext(ctx, `SELECT pid, state FROM pg_stat_activity WHERE pid = ANY($1)`, pq.Array(pids))
	if err != nil {
		return // the path is still silent, or the server away: the callers' deadlines hold
	}
	defer rows.Close()
	state := make(map[int64]string, len(pids))
	for rows.Next() {
		var pid int64
		var s sql.NullString
		if rows.Scan(&pid, &s) != nil {
			return
		}
		state[pid] = s.String
	}
	if rows.Err() != nil {
		return
	}
	for _, w := range waits {
		s, known := state[int64(w.conn.pid)]
		idle := !known || s == "idle" || s == "idle in transaction" || s == "idle in transaction (aborted)"
		// The same read still waits: the server has nothing to send it.
		if idle && w.conn.sock.readingSince.Load() == w.since {
			w.conn.reap()
		}
	}
}

// stop ends the reaper and closes its connection.
func (r *reaper) stop() {
	r.cancel()
	r.wg.Wait()
	_ = r.check.Close()
}
