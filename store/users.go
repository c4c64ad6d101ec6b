package store

import (
	"cmp"
	"context"
	"strings"
	"time"
)

// User is a user account.
type User struct {
	ID           int64     `db:"id"`
	PasswordHash string    `db:"password_hash"`
	ChangeSeq    int64     `db:"change_seq"`
	DateJoined   time.Time `db:"date_joined"`
	Language     string    `db:"language"` // BCP 47 tag of the user's mails
}

// NewUser is what CreateUser needs.
type NewUser struct {
	Email        string // the normalized display form
	Key          string // the comparison key
	PasswordHash string
	Language     string // BCP 47 tag; empty means DefaultLanguage
}

// DefaultLanguage is the language of a user who named none.
const DefaultLanguage = "en"

// CreateUser inserts a user and its primary, unverified address. It fails
// with ErrEmailTaken when the address is verified or primary for another user.
func (q *Queries) CreateUser(ctx context.Context, nu NewUser, now time.Time) (User, Email, error) {
	const qUser = `INSERT INTO users (password_hash, date_joined, language) VALUES (?, ?, ?)
		RETURNING id, password_hash, change_seq, date_joined, language`
	var u User
	if err := q.get(ctx, &u, qUser, nu.PasswordHash, utc(now), cmp.Or(nu.Language, DefaultLanguage)); err != nil {
		return User{}, Email{}, err
	}
	e, err := q.InsertEmail(ctx, NewEmail{UserID: u.ID, Email: nu.Email, Key: nu.Key, Primary: true}, now)
	if err != nil {
		return User{}, Email{}, err
	}
	return u, e, nil
}

// UserByID returns one user.
func (q *Queries) UserByID(ctx context.Context, id int64) (User, error) {
	const query = `SELECT id, password_hash, change_seq, date_joined, language FROM users WHERE id = ?`
	var u User
	return u, q.get(ctx, &u, query, id)
}

// LockUser returns one user and, on PostgreSQL, locks its row until the
// transaction ends. Every change to a user's addresses takes this lock
// first, which serializes them per user (limits, the primary swap, change
// sequences) and fixes one lock order. SQLite transactions hold the database
// write lock from BEGIN, which serializes them already.
func (q *Queries) LockUser(ctx context.Context, id int64) (User, error) {
	query := `SELECT id, password_hash, change_seq, date_joined, language FROM users WHERE id = ?`
	if q.dialect == Postgres {
		query += ` FOR UPDATE`
	}
	var u User
	return u, q.get(ctx, &u, query, id)
}

// UserByLoginKey returns the user who holds the address with comparison key
// key as its primary or a verified address: the addresses one may log in with.
func (q *Queries) UserByLoginKey(ctx context.Context, key string) (User, error) {
	const query = `SELECT u.id, u.password_hash, u.change_seq, u.date_joined, u.language
		FROM emails e JOIN users u ON u.id = e.user_id
		WHERE e.email_key = ? AND (e.verified OR e.is_primary)`
	var u User
	return u, q.get(ctx, &u, query, key)
}

// SetPasswordHash replaces a user's password hash (after a parameter
// upgrade; a new password is SetNewPassword).
func (q *Queries) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	const query = `UPDATE users SET password_hash = ? WHERE id = ?`
	n, err := q.exec(ctx, query, hash, userID)
	return rowsOrNotFound(n, err)
}

// ReplacePasswordHash sets a user's password hash to fresh if it is still
// old: a rehash at login never overwrites a password changed meanwhile
// (ErrNotFound then).
func (q *Queries) ReplacePasswordHash(ctx context.Context, userID int64, old, fresh string) error {
	const query = `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`
	n, err := q.exec(ctx, query, fresh, userID, old)
	return rowsOrNotFound(n, err)
}

// NextChangeSeq moves a user's change sequence on and returns the new value,
// which the new set-primary link carries; older links stop working.
func (q *Queries) NextChangeSeq(ctx context.Context, userID int64) (int64, error) {
	const query = `UPDATE users SET change_seq = change_seq + 1 WHERE id = ? RETURNING change_seq`
	var seq int64
	return seq, q.get(ctx, &seq, query, userID)
}

// ConsumeChangeSeq moves a user's change sequence on if it still equals seq,
// which makes a set-primary link single use. It fails with ErrNotFound when
// the sequence has moved on (the link was used, or a newer one was sent).
func (q *Queries) ConsumeChangeSeq(ctx context.Context, userID, seq int64) error {
	const query = `UPDATE users SET change_seq = change_seq + 1 WHERE id = ? AND change_seq = ?`
	n, err := q.exec(ctx, query, userID, seq)
	return rowsOrNotFound(n, err)
}

// DeleteUser removes a user with its addresses and sessions, so that its
// addresses are free at once, and cancels its queued mail (CancelUserMessages):
// its outbox rows stay, without a user, as do its audit events. Call it in
// a transaction, after LockUser; it fails with ErrNotFound for no such user.
func (q *Queries) DeleteUser(ctx context.Context, id int64) error {
	if _, err := q.CancelUserMessages(ctx, id); err != nil {
		return err
	}
	const query = `DELETE FROM users WHERE id = ?`
	n, err := q.exec(ctx, query, id)
	return rowsOrNotFound(n, err)
}

// SetNewPassword gives a user a new password hash and moves its change
// sequence on: a new password ends every outstanding set-primary link, as
// the hash's change ends every reset link (signer.PasswordState).
func (q *Queries) SetNewPassword(ctx context.Context, userID int64, hash string) error {
	const query = `UPDATE users SET password_hash = ?, change_seq = change_seq + 1 WHERE id = ?`
	n, err := q.exec(ctx, query, hash, userID)
	return rowsOrNotFound(n, err)
}

// LoginAddress is a user and one of the addresses it logs in with.
type LoginAddress struct {
	User
	EmailID int64  `db:"email_id"`
	Email   string `db:"email"`
}

// LoginAddressByKey returns the user who holds the address with comparison
// key key as its primary or a verified address, with that address; the
// same one lookup as UserByLoginKey.
func (q *Queries) LoginAddressByKey(ctx context.Context, key string) (LoginAddress, error) {
	const query = `SELECT u.id, u.password_hash, u.change_seq, u.date_joined, u.language, e.id AS email_id, e.email
		FROM emails e JOIN users u ON u.id = e.user_id
		WHERE e.email_key = ? AND (e.verified OR e.is_primary)`
	var a LoginAddress
	return a, q.get(ctx, &a, query, key)
}

// rowsOrNotFound turns "no row changed" into ErrNotFound.
func rowsOrNotFound(n int64, err error) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetUserLanguage sets the language of a user's mails, a BCP 47 tag.
func (q *Queries) SetUserLanguage(ctx context.Context, userID int64, lang string) error {
	const query = `UPDATE users SET language = ? WHERE id = ?`
	n, err := q.exec(ctx, query, cmp.Or(lang, DefaultLanguage), userID)
	return rowsOrNotFound(n, err)
}

// UserLanguages returns the languages of the users of ids that exist.
func (q *Queries) UserLanguages(ctx context.Context, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	query := `SELECT id, language FROM users WHERE id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var rows []struct {
		ID       int64  `db:"id"`
		Language string `db:"language"`
	}
	if err := q.selectAll(ctx, &rows, query, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.Language
	}
	return out, nil
}
