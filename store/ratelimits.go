package store

import (
	"context"
	"errors"
	"time"
)

// TakeToken spends one token of the rate limit named key, kept as GCRA
// (the generic cell rate algorithm) in one row: tat, the theoretical arrival
// time. Each allowed call moves tat on by interval; a call is allowed while
// tat is at most burst-interval ahead of now, so up to burst/interval calls
// pass at once and then one per interval.
//
// One statement decides and records atomically on both dialects, so the
// limit holds across replicas sharing the database. A denied call changes
// nothing and returns how long to wait.
func (q *Queries) TakeToken(ctx context.Context, key string, now time.Time, interval, burst time.Duration) (allowed bool, retryAfter time.Duration, err error) {
	nowMS := now.UnixMilli()
	intervalMS := interval.Milliseconds()
	toleranceMS := (burst - interval).Milliseconds()
	const take = `INSERT INTO rate_limits (key, tat) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE
		SET tat = (CASE WHEN rate_limits.tat > ? THEN rate_limits.tat ELSE ? END) + ?
		WHERE rate_limits.tat - ? <= ?
		RETURNING tat`
	var tat int64
	err = q.get(ctx, &tat, take, key, nowMS+intervalMS, nowMS, nowMS, intervalMS, nowMS, toleranceMS)
	if err == nil {
		return true, 0, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return false, 0, err
	}
	// The conditional update did not happen: denied. Read when it would pass.
	const read = `SELECT tat FROM rate_limits WHERE key = ?`
	if err := q.get(ctx, &tat, read, key); err != nil {
		return false, 0, err
	}
	wait := time.Duration(tat-toleranceMS-nowMS) * time.Millisecond
	return false, max(wait, time.Millisecond), nil
}

// ReturnToken gives back one token taken from the limit named key, for
// limits that count only failures (a correct password refunds its try).
func (q *Queries) ReturnToken(ctx context.Context, key string, interval time.Duration) error {
	const query = `UPDATE rate_limits SET tat = tat - ? WHERE key = ?`
	_, err := q.exec(ctx, query, interval.Milliseconds(), key)
	return err
}

// DeleteIdleRateLimits removes the limits that have fully recovered at now:
// they allow a full burst, as a missing row does.
func (q *Queries) DeleteIdleRateLimits(ctx context.Context, now time.Time) (int64, error) {
	const query = `DELETE FROM rate_limits WHERE tat <= ?`
	return q.exec(ctx, query, now.UnixMilli())
}
