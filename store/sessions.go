package store

import (
	"context"
	"time"
)

// Session is a login session. Only the hash of its id is stored.
type Session struct {
	IDHash     []byte    `db:"id_hash"`
	UserID     int64     `db:"user_id"`
	CSRFToken  string    `db:"csrf_token"`
	CreatedAt  time.Time `db:"created_at"`
	LastSeenAt time.Time `db:"last_seen_at"`
	ExpiresAt  time.Time `db:"expires_at"` // the absolute limit; the idle limit counts from LastSeenAt
}

const sessionColumns = `id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at`

// CreateSession stores a new session.
func (q *Queries) CreateSession(ctx context.Context, s Session) error {
	const query = `INSERT INTO sessions (` + sessionColumns + `) VALUES (?, ?, ?, ?, ?, ?)`
	_, err := q.exec(ctx, query, s.IDHash, s.UserID, s.CSRFToken, utc(s.CreatedAt), utc(s.LastSeenAt), utc(s.ExpiresAt))
	return err
}

// SessionByHash returns the session whose id hashes to idHash.
func (q *Queries) SessionByHash(ctx context.Context, idHash []byte) (Session, error) {
	const query = `SELECT ` + sessionColumns + ` FROM sessions WHERE id_hash = ?`
	var s Session
	return s, q.get(ctx, &s, query, idHash)
}

// TouchSession records that a session was used at now, which pushes its
// idle limit on.
func (q *Queries) TouchSession(ctx context.Context, idHash []byte, now time.Time) error {
	const query = `UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?`
	n, err := q.exec(ctx, query, utc(now), idHash)
	return rowsOrNotFound(n, err)
}

// DeleteSession removes a session.
func (q *Queries) DeleteSession(ctx context.Context, idHash []byte) error {
	const query = `DELETE FROM sessions WHERE id_hash = ?`
	n, err := q.exec(ctx, query, idHash)
	return rowsOrNotFound(n, err)
}

// DeleteExpiredSessions removes the sessions past their absolute limit at
// now or idle since before idleBefore, and returns how many it removed.
func (q *Queries) DeleteExpiredSessions(ctx context.Context, now, idleBefore time.Time) (int64, error) {
	const query = `DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?`
	return q.exec(ctx, query, utc(now), utc(idleBefore))
}

// DeleteUserSessions removes every session of a user but the one whose id
// hashes to keep (none when keep is nil) and returns how many it removed.
func (q *Queries) DeleteUserSessions(ctx context.Context, userID int64, keep []byte) (int64, error) {
	if keep == nil {
		const query = `DELETE FROM sessions WHERE user_id = ?`
		return q.exec(ctx, query, userID)
	}
	const query = `DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?`
	return q.exec(ctx, query, userID, keep)
}

// CountUserSessions counts the sessions of a user, expired or not.
func (q *Queries) CountUserSessions(ctx context.Context, userID int64) (int, error) {
	const query = `SELECT COUNT(*) FROM sessions WHERE user_id = ?`
	var n int
	return n, q.get(ctx, &n, query, userID)
}
