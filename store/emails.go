package store

import (
	"context"
	"time"
)

// Email is one address of a user.
type Email struct {
	ID        int64     `db:"id"`
	UserID    int64     `db:"user_id"`
	Email     string    `db:"email"`
	Key       string    `db:"email_key"`
	Verified  bool      `db:"verified"`
	Primary   bool      `db:"is_primary"`
	CreatedAt time.Time `db:"created_at"`
}

const emailColumns = `id, user_id, email, email_key, verified, is_primary, created_at`

// NewEmail is what InsertEmail needs.
type NewEmail struct {
	UserID   int64
	Email    string
	Key      string
	Verified bool
	Primary  bool
}

// InsertEmail adds an address to a user. It fails with ErrEmailTaken when the
// user holds the address already, or when it is to be verified or primary
// and another user holds it verified or primary.
func (q *Queries) InsertEmail(ctx context.Context, ne NewEmail, now time.Time) (Email, error) {
	const query = `INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ` + emailColumns
	var verifiedAt *time.Time
	if ne.Verified {
		t := utc(now)
		verifiedAt = &t
	}
	var e Email
	return e, q.get(ctx, &e, query, ne.UserID, ne.Email, ne.Key, ne.Verified, ne.Primary, utc(now), verifiedAt)
}

// InsertEmailAudited is InsertEmail and RecordEvent of ev for the inserted
// address (its Email is the address as stored): on PostgreSQL one
// statement, on SQLite (no round trips to save) the two. Call it inside the
// transaction of the change.
func (q *Queries) InsertEmailAudited(ctx context.Context, ne NewEmail, ev AuditEvent, now time.Time) (Email, error) {
	if q.dialect != Postgres {
		e, err := q.InsertEmail(ctx, ne, now)
		if err != nil {
			return Email{}, err
		}
		ev.Email = e.Email
		return e, q.RecordEvent(ctx, ev)
	}
	// A data-modifying CTE always runs, referenced or not.
	const query = `WITH e AS (INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ` + emailColumns + `),
		a AS (INSERT INTO audit_events (user_id, event, email, ip, user_agent, actor, created_at)
			SELECT user_id, ?, email, ?, ?, ?, ? FROM e)
		SELECT ` + emailColumns + ` FROM e`
	var verifiedAt *time.Time
	if ne.Verified {
		t := utc(now)
		verifiedAt = &t
	}
	var e Email
	return e, q.get(ctx, &e, query, ne.UserID, ne.Email, ne.Key, ne.Verified, ne.Primary, utc(now), verifiedAt,
		ev.Event, ev.IP, ev.UserAgent, ev.Actor, utc(ev.CreatedAt))
}

// EmailsByUser returns all addresses of a user, the primary first, then in
// the order they were added.
func (q *Queries) EmailsByUser(ctx context.Context, userID int64) ([]Email, error) {
	const query = `SELECT ` + emailColumns + ` FROM emails WHERE user_id = ? ORDER BY is_primary DESC, id`
	emails := []Email{}
	return emails, q.selectAll(ctx, &emails, query, userID)
}

// EmailByID returns one address of a user.
func (q *Queries) EmailByID(ctx context.Context, userID, emailID int64) (Email, error) {
	const query = `SELECT ` + emailColumns + ` FROM emails WHERE id = ? AND user_id = ?`
	var e Email
	return e, q.get(ctx, &e, query, emailID, userID)
}

// PrimaryEmail returns a user's primary address.
func (q *Queries) PrimaryEmail(ctx context.Context, userID int64) (Email, error) {
	const query = `SELECT ` + emailColumns + ` FROM emails WHERE user_id = ? AND is_primary`
	var e Email
	return e, q.get(ctx, &e, query, userID)
}

// ClaimedBy returns the id of the user who holds the address with comparison
// key key verified or as primary, or ErrNotFound when nobody does.
func (q *Queries) ClaimedBy(ctx context.Context, key string) (int64, error) {
	const query = `SELECT user_id FROM emails WHERE email_key = ? AND (verified OR is_primary)`
	var userID int64
	return userID, q.get(ctx, &userID, query, key)
}

// AddressCheck is what a change to a user's addresses must know about one
// address (by its comparison key) and about the user's others.
type AddressCheck struct {
	// Count is how many addresses the user has.
	Count int `db:"n"`
	// OwnID is the id of the user's address with the key; 0 when the user
	// does not hold it.
	OwnID int64 `db:"own_id"`
	// Claimed reports that another user holds the address verified or as
	// primary.
	Claimed bool `db:"claimed"`
	// The user's primary address.
	PrimaryID    int64  `db:"primary_id"`
	PrimaryEmail string `db:"primary_email"`
	PrimaryKey   string `db:"primary_key"`
}

// CheckAddress reads in one statement what a change of addresses must
// know about the address with comparison key key and the user userID. It
// fails with ErrNotFound when the user has no primary address, that is,
// when there is no such user. Call it after LockUser, so that nothing
// changes the user's addresses in between.
func (q *Queries) CheckAddress(ctx context.Context, userID int64, key string) (AddressCheck, error) {
	// Each part is an index lookup: emails_user_key (the count, index only,
	// and the user's own address), emails_claimed_key, emails_one_primary.
	const query = `SELECT
			(SELECT COUNT(*) FROM emails WHERE user_id = ?) AS n,
			COALESCE((SELECT id FROM emails WHERE user_id = ? AND email_key = ?), 0) AS own_id,
			EXISTS (SELECT 1 FROM emails WHERE email_key = ? AND (verified OR is_primary) AND user_id <> ?) AS claimed,
			COALESCE(p.id, 0) AS primary_id, COALESCE(p.email, '') AS primary_email, COALESCE(p.email_key, '') AS primary_key
		FROM (SELECT 1 AS one) AS one LEFT JOIN emails p ON p.user_id = ? AND p.is_primary`
	var c AddressCheck
	if err := q.get(ctx, &c, query, userID, userID, key, key, userID, userID); err != nil {
		return AddressCheck{}, err
	}
	if c.PrimaryID == 0 {
		return AddressCheck{}, ErrNotFound
	}
	return c, nil
}

// VerifyEmailByKey marks an unverified address of a user verified, if it
// still has the comparison key key, and returns it: the one statement of a
// verify link. It fails with ErrNotFound when no such unverified address
// exists (the address is gone, holds another address now, or is verified
// already: the caller reads the row to tell these apart), and with
// ErrEmailTaken when another user holds the address verified or as primary.
func (q *Queries) VerifyEmailByKey(ctx context.Context, userID, emailID int64, key string, now time.Time) (Email, error) {
	const query = `UPDATE emails SET verified = TRUE, verified_at = COALESCE(verified_at, ?)
		WHERE id = ? AND user_id = ? AND email_key = ? AND NOT verified RETURNING ` + emailColumns
	var e Email
	return e, q.get(ctx, &e, query, utc(now), emailID, userID, key)
}

// VerifyEmail marks an address verified (keeping the first verification
// time) and returns it. It fails with ErrEmailTaken when another user holds
// the address verified or as primary.
func (q *Queries) VerifyEmail(ctx context.Context, userID, emailID int64, now time.Time) (Email, error) {
	const query = `UPDATE emails SET verified = TRUE, verified_at = COALESCE(verified_at, ?)
		WHERE id = ? AND user_id = ? RETURNING ` + emailColumns
	var e Email
	return e, q.get(ctx, &e, query, utc(now), emailID, userID)
}

// MakePrimary makes one address of a user its primary, verified address; the
// old primary stays as a secondary address. It fails with ErrEmailTaken when
// another user holds the address verified or as primary.
func (q *Queries) MakePrimary(ctx context.Context, userID, emailID int64, now time.Time) (Email, error) {
	// Two statements, in this order: the partial unique index
	// emails_one_primary is checked row by row, so the old primary must be
	// cleared before the new one is set. The caller holds LockUser.
	const clear = `UPDATE emails SET is_primary = FALSE WHERE user_id = ? AND is_primary AND id <> ?`
	if _, err := q.exec(ctx, clear, userID, emailID); err != nil {
		return Email{}, err
	}
	const set = `UPDATE emails SET is_primary = TRUE, verified = TRUE, verified_at = COALESCE(verified_at, ?)
		WHERE id = ? AND user_id = ? RETURNING ` + emailColumns
	var e Email
	return e, q.get(ctx, &e, set, utc(now), emailID, userID)
}

// DeleteEmail removes a non-primary address of a user. It fails with
// ErrNotFound when the user has no such address and with
// ErrPrimaryUndeletable when it is the primary one.
func (q *Queries) DeleteEmail(ctx context.Context, userID, emailID int64) error {
	const query = `DELETE FROM emails WHERE id = ? AND user_id = ?`
	n, err := q.exec(ctx, query, emailID, userID)
	return rowsOrNotFound(n, err)
}

// EmailByKey returns the address of a user with comparison key key.
func (q *Queries) EmailByKey(ctx context.Context, userID int64, key string) (Email, error) {
	const query = `SELECT ` + emailColumns + ` FROM emails WHERE user_id = ? AND email_key = ?`
	var e Email
	return e, q.get(ctx, &e, query, userID, key)
}

// DeleteOtherEmails removes every address of a user but keepID and
// returns those it removed.
func (q *Queries) DeleteOtherEmails(ctx context.Context, userID, keepID int64) ([]Email, error) {
	const query = `DELETE FROM emails WHERE user_id = ? AND id <> ? RETURNING ` + emailColumns
	removed := []Email{}
	return removed, q.selectAll(ctx, &removed, query, userID, keepID)
}
