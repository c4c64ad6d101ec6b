package store

import (
	"context"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// AdminToken is a bearer token of the admin API. Only the SHA-256 of the
// token is stored.
type AdminToken struct {
	ID         int64      `db:"id"`
	Name       string     `db:"name"`
	Hash       []byte     `db:"token_hash"`
	ReadOnly   bool       `db:"read_only"`
	CreatedAt  time.Time  `db:"created_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
}

const adminTokenColumns = `id, name, token_hash, read_only, created_at, revoked_at, last_used_at`

// CreateAdminToken stores a token by the hash of its secret. It fails with
// ErrNameTaken when a live token has the name.
func (q *Queries) CreateAdminToken(ctx context.Context, name string, hash []byte, readOnly bool, now time.Time) (AdminToken, error) {
	const query = `INSERT INTO admin_tokens (name, token_hash, read_only, created_at) VALUES (?, ?, ?, ?)
		RETURNING ` + adminTokenColumns
	var t AdminToken
	return t, q.unprepared().get(ctx, &t, query, name, hash, readOnly, utc(now))
}

// AdminTokenByHash returns the token whose secret hashes to hash, revoked
// or not.
func (q *Queries) AdminTokenByHash(ctx context.Context, hash []byte) (AdminToken, error) {
	const query = `SELECT ` + adminTokenColumns + ` FROM admin_tokens WHERE token_hash = ?`
	var t AdminToken
	return t, q.get(ctx, &t, query, hash)
}

// TouchAdminToken records that token id was used at now, at most once per
// interval so that reads do not write on every request.
func (q *Queries) TouchAdminToken(ctx context.Context, id int64, now time.Time, interval time.Duration) error {
	const query = `UPDATE admin_tokens SET last_used_at = ?
		WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`
	_, err := q.exec(ctx, query, utc(now), id, utc(now.Add(-interval)))
	return err
}

// AdminTokens returns every token, live and revoked, by id.
func (q *Queries) AdminTokens(ctx context.Context) ([]AdminToken, error) {
	const query = `SELECT ` + adminTokenColumns + ` FROM admin_tokens ORDER BY id`
	tokens := []AdminToken{}
	return tokens, q.unprepared().selectAll(ctx, &tokens, query)
}

// RevokeAdminToken revokes the live token called name; ErrNotFound when
// there is none.
func (q *Queries) RevokeAdminToken(ctx context.Context, name string, now time.Time) error {
	const query = `UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`
	n, err := q.unprepared().exec(ctx, query, utc(now), name)
	return rowsOrNotFound(n, err)
}

// Page is where a keyset page starts and how long it is: the rows with an
// id above After, at most Limit of them.
type Page struct {
	After int64
	Limit int
}

// pageOf cuts the one row fetched beyond the limit off rows and returns the
// id to continue after, 0 when rows was the last page.
func pageOf[T any](rows []T, limit int, id func(T) int64) ([]T, int64) {
	if len(rows) <= limit {
		return rows, 0
	}
	rows = rows[:limit]
	return rows, id(rows[limit-1])
}

// ListUsers returns a page of users by id, and the id of the next page's
// start (0: none).
func (q *Queries) ListUsers(ctx context.Context, p Page) ([]User, int64, error) {
	users := []User{}
	if err := q.unprepared().selectAll(ctx, &users, listUsersQuery, p.After, p.Limit+1); err != nil {
		return nil, 0, err
	}
	users, next := pageOf(users, p.Limit, func(u User) int64 { return u.ID })
	return users, next, nil
}

// The admin lists' statements, each reading one index from the page's
// start (store's plan test checks that they do).
const (
	listUsersQuery = `SELECT id, password_hash, change_seq, date_joined, language FROM users
		WHERE id > ? ORDER BY id LIMIT ?`
	usersByEmailKeyQuery = `SELECT id, password_hash, change_seq, date_joined, language FROM users
		WHERE id IN (SELECT user_id FROM emails WHERE email_key = ? AND user_id > ?)
		ORDER BY id LIMIT ?`
)

// UsersByEmailKey returns a page of the users who hold the address of
// comparison key key in any state.
func (q *Queries) UsersByEmailKey(ctx context.Context, key string, p Page) ([]User, int64, error) {
	users := []User{}
	if err := q.unprepared().selectAll(ctx, &users, usersByEmailKeyQuery, key, p.After, p.Limit+1); err != nil {
		return nil, 0, err
	}
	users, next := pageOf(users, p.Limit, func(u User) int64 { return u.ID })
	return users, next, nil
}

// OutboxFilter narrows ListOutbox; empty fields match all.
type OutboxFilter struct {
	// Recipient matches the recipient ignoring the case of its letters
	// (ASCII letters on SQLite, whose lower() knows no others).
	Recipient string
	Status    string
	Kind      string
}

// ListOutbox returns a page of outbox messages by id.
func (q *Queries) ListOutbox(ctx context.Context, f OutboxFilter, p Page) ([]Message, int64, error) {
	query, args := q.listOutboxQuery(f, p)
	msgs := []Message{}
	if err := q.unprepared().selectAll(ctx, &msgs, query, args...); err != nil {
		return nil, 0, err
	}
	msgs, next := pageOf(msgs, p.Limit, func(m Message) int64 { return m.ID })
	return msgs, next, nil
}

// listOutboxQuery is ListOutbox's statement and its arguments.
func (q *Queries) listOutboxQuery(f OutboxFilter, p Page) (string, []any) {
	query := `SELECT ` + messageColumns + ` FROM outbox WHERE id > ?`
	args := []any{p.After}
	recipient := strings.ToLower(f.Recipient)
	if q.dialect == SQLite {
		recipient = asciiLower(f.Recipient)
	}
	for _, c := range []struct{ column, value string }{
		{"lower(recipient)", recipient}, {"status", f.Status}, {"kind", f.Kind},
	} {
		if c.value != "" {
			query += ` AND ` + c.column + ` = ?`
			args = append(args, c.value)
		}
	}
	return query + ` ORDER BY id LIMIT ?`, append(args, p.Limit+1)
}

// asciiLower lower-cases the ASCII letters of s only, as SQLite's lower().
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// RetryFailedMessage queues a failed message again, due at now, with a
// fresh count of attempts; ErrNotFound when id is not a failed message.
func (q *Queries) RetryFailedMessage(ctx context.Context, id int64, now time.Time) error {
	const query = `UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = ?, last_error = ''
		WHERE id = ? AND status = 'failed'`
	n, err := q.unprepared().exec(ctx, query, utc(now), id)
	return rowsOrNotFound(n, err)
}

// ListAudit returns a page of the audit trail by id, of one user when
// userID is not 0.
func (q *Queries) ListAudit(ctx context.Context, userID int64, p Page) ([]AuditEvent, int64, error) {
	query, args := listAuditQuery(userID, p)
	events := []AuditEvent{}
	if err := q.unprepared().selectAll(ctx, &events, query, args...); err != nil {
		return nil, 0, err
	}
	events, next := pageOf(events, p.Limit, func(e AuditEvent) int64 { return e.ID })
	return events, next, nil
}

// listAuditQuery is ListAudit's statement and its arguments.
func listAuditQuery(userID int64, p Page) (string, []any) {
	query := `SELECT ` + auditColumns + ` FROM audit_events WHERE id > ?`
	args := []any{p.After}
	if userID != 0 {
		query += ` AND user_id = ?`
		args = append(args, userID)
	}
	return query + ` ORDER BY id LIMIT ?`, append(args, p.Limit+1)
}

// EmailsOfUsers returns the addresses of the users ids, by user: for each,
// the primary first, then in the order they were added.
func (q *Queries) EmailsOfUsers(ctx context.Context, ids []int64) (map[int64][]Email, error) {
	out := make(map[int64][]Email, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	query, args, err := sqlx.In(`SELECT `+emailColumns+` FROM emails WHERE user_id IN (?)
		ORDER BY user_id, is_primary DESC, id`, ids)
	if err != nil {
		return nil, err
	}
	var emails []Email
	if err := q.unprepared().selectAll(ctx, &emails, query, args...); err != nil {
		return nil, err
	}
	for _, e := range emails {
		out[e.UserID] = append(out[e.UserID], e)
	}
	return out, nil
}
