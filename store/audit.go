package store

import (
	"context"
	"time"
)

// AuditEvent is one security event of a user's account, or of an address
// no account holds (a failed login for it): UserID 0, stored as NULL.
type AuditEvent struct {
	ID        int64  `db:"id"`
	UserID    int64  `db:"user_id"`
	Event     string `db:"event"`
	Email     string `db:"email"`
	IP        string `db:"ip"`
	UserAgent string `db:"user_agent"`
	// Actor is who made the change: user, link, admin:<token name>, cli.
	Actor     string    `db:"actor"`
	CreatedAt time.Time `db:"created_at"`
}

// auditColumns are AuditEvent's; a NULL user_id reads as 0.
const auditColumns = `id, COALESCE(user_id, 0) AS user_id, event, email, ip, user_agent, actor, created_at`

// maxUserAgent bounds the User-Agent an audit event keeps.
const maxUserAgent = 512

// RecordEvent appends an event to the audit trail. Call it inside the
// transaction of the change it records, if there is one.
func (q *Queries) RecordEvent(ctx context.Context, e AuditEvent) error {
	const query = `INSERT INTO audit_events (user_id, event, email, ip, user_agent, actor, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	var userID any // NULL for no user
	if e.UserID != 0 {
		userID = e.UserID
	}
	_, err := q.exec(ctx, query, userID, e.Event, e.Email, e.IP, boundText(e.UserAgent, maxUserAgent), e.Actor, utc(e.CreatedAt))
	return err
}

// EventsByUser returns up to limit events of a user, oldest first.
func (q *Queries) EventsByUser(ctx context.Context, userID int64, limit int) ([]AuditEvent, error) {
	const query = `SELECT ` + auditColumns + ` FROM audit_events WHERE user_id = ? ORDER BY id LIMIT ?`
	events := []AuditEvent{}
	return events, q.selectAll(ctx, &events, query, userID, limit)
}
