package store

import (
	"context"
	"time"
)

// The outbox's upkeep: the counts that the metrics report, and the
// deletion of old mail, a batch at a time (the janitor's retention, and an
// operator's purge of failed mail). A status 'cancelled' (mail that will
// not be sent) is finished mail like 'sent'.

// CountWaitingMessages returns the number of outbox messages that wait for
// a dispatcher or an operator, by status: queued, sending and failed. Each
// count reads the status index over that status alone, so its cost grows
// with the backlog and the failed mail, never with the sent mail kept for
// retention.
func (q *Queries) CountWaitingMessages(ctx context.Context) (map[string]int64, error) {
	const query = `SELECT
		(SELECT COUNT(*) FROM outbox WHERE status = 'queued') AS queued,
		(SELECT COUNT(*) FROM outbox WHERE status = 'sending') AS sending,
		(SELECT COUNT(*) FROM outbox WHERE status = 'failed') AS failed`
	var row struct {
		Queued  int64 `db:"queued"`
		Sending int64 `db:"sending"`
		Failed  int64 `db:"failed"`
	}
	if err := q.unprepared().get(ctx, &row, query); err != nil {
		return nil, err
	}
	return map[string]int64{StatusQueued: row.Queued, StatusSending: row.Sending, StatusFailed: row.Failed}, nil
}

// DeleteFinishedMessages deletes up to limit sent and cancelled messages
// that finished before before (a sent one at its sent_at, a cancelled one
// at its created_at), oldest first, and returns how many it deleted. Call
// it until it deletes fewer than limit: each call is one short statement,
// so no lock is held for long however many rows are due.
func (q *Queries) DeleteFinishedMessages(ctx context.Context, before time.Time, limit int) (int64, error) {
	from := `outbox`
	if q.dialect == SQLite {
		// Without statistics SQLite's planner takes the status index and
		// sorts every sent row instead.
		from = `outbox INDEXED BY outbox_finished`
	}
	pick := `SELECT id FROM ` + from + ` WHERE status IN ('sent', 'cancelled') AND COALESCE(sent_at, created_at) < ?
		ORDER BY COALESCE(sent_at, created_at), id LIMIT ?`
	return q.unprepared().exec(ctx, q.deletePicked(pick), utc(before), limit)
}

// DeleteFailedMessages deletes up to limit failed messages queued before
// before, oldest first, and returns how many it deleted; call it as
// DeleteFinishedMessages. It is the operator's "outbox purge --failed".
func (q *Queries) DeleteFailedMessages(ctx context.Context, before time.Time, limit int) (int64, error) {
	const pick = `SELECT id FROM outbox WHERE status = 'failed' AND created_at < ? ORDER BY id LIMIT ?`
	return q.unprepared().exec(ctx, q.deletePicked(pick), utc(before), limit)
}

// deletePicked is the statement that deletes the outbox rows whose ids
// pick selects, a batch at most.
//
// On PostgreSQL the batch is an array computed first, whose rows are
// reached by primary key: joined to an IN, the planner read the whole
// table for a batch of a thousand. The rows are locked as they are picked,
// passing over rows that others hold; one that changed since it was read
// (an operator's retry) is checked again as it is now, so only rows that
// still match are deleted. SQLite has one writer.
func (q *Queries) deletePicked(pick string) string {
	if q.dialect == Postgres {
		return `DELETE FROM outbox WHERE id = ANY(ARRAY(` + pick + ` FOR UPDATE SKIP LOCKED))`
	}
	return `DELETE FROM outbox WHERE id IN (` + pick + `)`
}
