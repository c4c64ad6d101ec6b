package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// The states of an outbox message: queued → sending → sent, or failed once
// its attempts are used up or the mail server refused it for good, or
// cancelled when its user was deleted before it went out.
const (
	StatusQueued    = "queued"
	StatusSending   = "sending"
	StatusSent      = "sent"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Message is one row of the mail outbox. Payload holds the inputs the mail is
// rendered from (never a rendered body or a signed link).
type Message struct {
	ID            int64      `db:"id"`
	Kind          string     `db:"kind"`
	Recipient     string     `db:"recipient"`
	UserID        int64      `db:"user_id"` // 0: the user was deleted (NULL)
	Payload       string     `db:"payload"`
	Status        string     `db:"status"`
	Attempts      int        `db:"attempts"`
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	LastError     string     `db:"last_error"`
	CreatedAt     time.Time  `db:"created_at"`
	SentAt        *time.Time `db:"sent_at"`
	// ClaimedBy is the Owner of the last claim (0: none, or a claim made
	// without one); ClaimSeq counts the claims, never given back.
	ClaimedBy int64 `db:"claimed_by"`
	ClaimSeq  int64 `db:"claim_seq"`
}

const messageColumns = `id, kind, recipient, COALESCE(user_id, 0) AS user_id, payload, status, attempts, next_attempt_at, last_error, created_at, sent_at, claimed_by, claim_seq`

// Claim names one claim of a message: the message, and its ClaimSeq after
// the claim. Unlike Attempts, which a hand-back gives back, ClaimSeq only
// grows: no later claim of the message has the same Claim.
type Claim struct {
	ID  int64
	Seq int64
}

// Claim returns the claim that m, as a claim returned it, is under.
func (m Message) Claim() Claim { return Claim{ID: m.ID, Seq: m.ClaimSeq} }

// NewMessage is what EnqueueMessage needs.
type NewMessage struct {
	Kind      string
	Recipient string
	UserID    int64 // 0 for none: a notice about a user who is gone
	Payload   string
}

// NotifyChannel is the PostgreSQL channel NotifyMailQueued notifies, so
// that dispatchers that LISTEN on it send new mail at once instead of at
// their next poll.
const NotifyChannel = "useremail_outbox"

// NotifyMailQueued sends a notification on NotifyChannel (on PostgreSQL; on
// SQLite it does nothing). Call it after the transaction that queued mail
// has committed, outside any transaction, as mail.Announcer does.
//
// Why not NOTIFY inside the transaction: PostgreSQL serialises the commits
// of all transactions that notified (a database-wide lock held until the
// commit record is flushed), so every request that queued mail would wait
// for the previous one's WAL flush.
func (q *Queries) NotifyMailQueued(ctx context.Context) error {
	if q.dialect != Postgres {
		return nil
	}
	_, err := q.unprepared().exec(ctx, `SELECT pg_notify('`+NotifyChannel+`', '')`)
	return err
}

// EnqueueMessage queues a mail, due at once, and returns its id. It is
// EnqueueMessages of one message.
func (q *Queries) EnqueueMessage(ctx context.Context, m NewMessage, now time.Time) (int64, error) {
	ids, err := q.EnqueueMessages(ctx, []NewMessage{m}, now)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// EnqueueMessageIf is EnqueueMessage when send is true. When it is false
// it does the same work and keeps none of it: the row is inserted under a
// savepoint that is then rolled back, and the id is 0. It is for a path
// that must not show by its time whether it queued mail (a password-reset
// request for an address nobody holds), as a dummy password hash is for a
// login. Call it inside a transaction.
func (q *Queries) EnqueueMessageIf(ctx context.Context, m NewMessage, send bool, now time.Time) (int64, error) {
	if q.tx == nil {
		return 0, fmt.Errorf("store: EnqueueMessageIf outside a transaction")
	}
	u := q.unprepared()
	if _, err := u.exec(ctx, `SAVEPOINT enqueue_if`); err != nil {
		return 0, err
	}
	const query = `INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, 'queued', ?, ?) RETURNING id`
	var userID any // NULL for none
	if m.UserID != 0 {
		userID = m.UserID
	}
	var id int64
	if err := q.get(ctx, &id, query, m.Kind, m.Recipient, userID, m.Payload, utc(now), utc(now)); err != nil {
		return 0, err
	}
	// One round trip either way.
	end := `RELEASE SAVEPOINT enqueue_if`
	if !send {
		end = `ROLLBACK TO SAVEPOINT enqueue_if; RELEASE SAVEPOINT enqueue_if`
	}
	if _, err := u.exec(ctx, end); err != nil {
		return 0, err
	}
	if !send {
		return 0, nil
	}
	q.queued = true
	return id, nil
}

// EnqueueMessages queues mails, due at once, with one statement, and returns
// their ids in the order of msgs. Call it inside the transaction of the
// change that promises the mails, so that all commit or none does, and
// announce them after the commit (NotifyMailQueued).
func (q *Queries) EnqueueMessages(ctx context.Context, msgs []NewMessage, now time.Time) ([]int64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	var values strings.Builder
	args := make([]any, 0, 6*len(msgs))
	for i, m := range msgs {
		if i > 0 {
			values.WriteString(", ")
		}
		values.WriteString("(?, ?, ?, ?, 'queued', ?, ?)")
		var userID any // NULL for none
		if m.UserID != 0 {
			userID = m.UserID
		}
		args = append(args, m.Kind, m.Recipient, userID, m.Payload, utc(now), utc(now))
	}
	query := `INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at)
		VALUES ` + values.String() + ` RETURNING id`
	// Events staged in the transaction go with the mail (RecordEvents).
	if cte, eventArgs := q.takeStagedEvents(); cte != "" {
		query = `WITH ` + cte + ` ` + query
		args = append(eventArgs, args...)
	}
	ids := make([]int64, 0, len(msgs))
	if err := q.selectAll(ctx, &ids, query, args...); err != nil {
		return nil, err
	}
	if len(ids) != len(msgs) {
		return nil, fmt.Errorf("store: enqueue: %d messages inserted, %d ids returned", len(msgs), len(ids))
	}
	// Ids are handed out in the order of the rows; RETURNING may list the
	// rows in any order.
	slices.Sort(ids)
	if q.tx != nil { // the Queries outside a transaction are shared
		q.queued = true
	}
	return ids, nil
}

// ClaimMessages takes up to limit due messages for sending: queued ones whose
// time has come, and sending ones whose lease ran out (their dispatcher died
// or hung). It marks them sending until now+lease and counts the attempt.
// On PostgreSQL, FOR UPDATE SKIP LOCKED lets any number of dispatchers claim
// at once without taking the same row; SQLite has one writer at a time.
//
// The claims name no owner: only their lease ends them. A dispatcher
// claims through its Owner (Owner.ClaimMessages), whose claims end as soon
// as it dies.
func (q *Queries) ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Message, error) {
	var msgs []Message
	if err := q.unprepared().selectAll(ctx, &msgs, q.claimQuery(), claimArgs(0, now, lease, limit)...); err != nil {
		return nil, err
	}
	return msgs, nil
}

// claimQuery is the statement of a claim; its arguments are claimArgs.
func (q *Queries) claimQuery() string {
	due := `SELECT id FROM ` + q.dueOutbox() + ` WHERE status IN ('queued', 'sending') AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id LIMIT ?`
	if q.dialect == Postgres {
		due += ` FOR UPDATE SKIP LOCKED`
	}
	return `UPDATE outbox SET status = 'sending', attempts = attempts + 1, claim_seq = claim_seq + 1, claimed_by = ?,
		next_attempt_at = ? WHERE id IN (` + due + `) RETURNING ` + messageColumns
}

func claimArgs(owner int64, now time.Time, lease time.Duration, limit int) []any {
	return []any{owner, utc(now.Add(lease)), utc(now), limit}
}

// dueOutbox names the outbox for the queries that look for due messages:
// on SQLite through the due-time index, which its planner, lacking
// statistics, passes over for the status index and a sort of every queued
// row (however many are deferred).
func (q *Queries) dueOutbox() string {
	if q.dialect == SQLite {
		return `outbox INDEXED BY outbox_due`
	}
	return `outbox`
}

// The reports of a claim's outcome (MarkMessagesSent, RescheduleMessage,
// FailMessage, ReleaseMessage) are each guarded by the claim (Claim). A
// claim taken over after its lease, or taken back from an owner that died,
// changes nothing (ErrNotFound, or missing from MarkMessagesSent's ids). A
// report repeated with the same arguments after an earlier call of it
// committed but lost its answer finds the row as that call left it and
// succeeds again, changing nothing: the store compares what it stored, so
// a caller may repeat a report until it hears the answer.

// MarkMessageSent records a delivery: MarkMessagesSent of one claim.
func (q *Queries) MarkMessageSent(ctx context.Context, c Claim, now time.Time) error {
	ids, err := q.MarkMessagesSent(ctx, []Claim{c}, now)
	return rowsOrNotFound(int64(len(ids)), err)
}

// MarkMessagesSent records the deliveries of several claimed messages, sent
// at now, with one statement and returns the ids of those it recorded (or
// found recorded by the same report). Each row is guarded by its own claim.
//
// On PostgreSQL the claims go as two arrays joined to the table by its
// primary key: one index lookup per claim. Why not a guard of one
// "(id = ? AND claim_seq = ?)" per claim, as on SQLite: PostgreSQL planned
// that OR as a bitmap AND with every index entry of status 'sending' (sent
// rows' entries too, until a VACUUM), and each batch size was a new plan.
func (q *Queries) MarkMessagesSent(ctx context.Context, claims []Claim, now time.Time) ([]int64, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	ids := []int64{}
	if q.dialect == Postgres {
		claimIDs, seqs := claimArrays(claims)
		const query = `UPDATE outbox SET status = 'sent', sent_at = ?, last_error = ''
			FROM unnest(?::bigint[], ?::bigint[]) AS c (id, seq)
			WHERE outbox.id = c.id AND outbox.claim_seq = c.seq AND ` + sendingOrSentAt + `
			RETURNING outbox.id`
		return ids, q.unprepared().selectAll(ctx, &ids, query, utc(now), claimIDs, seqs, utc(now))
	}
	var guard strings.Builder
	args := make([]any, 0, 2+2*len(claims))
	args = append(args, utc(now), utc(now))
	for i, c := range claims {
		if i > 0 {
			guard.WriteString(" OR ")
		}
		guard.WriteString("(id = ? AND claim_seq = ?)")
		args = append(args, c.ID, c.Seq)
	}
	query := `UPDATE outbox SET status = 'sent', sent_at = ?, last_error = ''
		WHERE ` + sendingOrSentAt + ` AND (` + guard.String() + `) RETURNING id`
	return ids, q.unprepared().selectAll(ctx, &ids, query, args...)
}

// sendingOrSentAt is MarkMessagesSent's guard of a row's state: sending, or
// sent at the time its parameter gives. A CASE, as both planners, given
// statistics, took a comparison of status for a walk of the status index
// (every row of the status) instead of a lookup of each claim by key.
const sendingOrSentAt = `CASE outbox.status WHEN 'sending' THEN TRUE WHEN 'sent' THEN outbox.sent_at = ? ELSE FALSE END`

// claimArrays returns the ids and the sequence numbers of claims, for a
// PostgreSQL statement that joins them to the table as arrays.
func claimArrays(claims []Claim) (ids, seqs pq.Int64Array) {
	ids, seqs = make(pq.Int64Array, len(claims)), make(pq.Int64Array, len(claims))
	for i, c := range claims {
		ids[i], seqs[i] = c.ID, c.Seq
	}
	return ids, seqs
}

// RescheduleMessage puts a claimed message back in the queue, due at next,
// keeping the error of the failed attempt (its first maxLastError bytes).
func (q *Queries) RescheduleMessage(ctx context.Context, c Claim, next time.Time, lastErr string) error {
	const query = `UPDATE outbox SET status = 'queued', next_attempt_at = ?, last_error = ?
		WHERE id = ? AND claim_seq = ?
		AND (status = 'sending' OR (status = 'queued' AND next_attempt_at = ? AND last_error = ?))`
	next, lastErr = utc(next), boundText(lastErr, maxLastError)
	n, err := q.unprepared().exec(ctx, query, next, lastErr, c.ID, c.Seq, next, lastErr)
	return rowsOrNotFound(n, err)
}

// ReleaseMessage hands a claimed message back unsent: it is queued again, due
// at now, and the attempt its claim counted is given back. A dispatcher calls
// it for the messages of a batch it will not start (it is shutting down, or
// too little of the lease is left to finish a send safely).
func (q *Queries) ReleaseMessage(ctx context.Context, c Claim, now time.Time) error {
	const query = `UPDATE outbox SET status = 'queued', attempts = attempts - 1, next_attempt_at = ?
		WHERE id = ? AND status = 'sending' AND claim_seq = ?`
	n, err := q.unprepared().exec(ctx, query, utc(now), c.ID, c.Seq)
	return rowsOrNotFound(n, err)
}

// FailMessage gives up on a claimed message, keeping why (its first
// maxLastError bytes).
func (q *Queries) FailMessage(ctx context.Context, c Claim, lastErr string) error {
	const query = `UPDATE outbox SET status = 'failed', last_error = ?
		WHERE id = ? AND claim_seq = ? AND (status = 'sending' OR (status = 'failed' AND last_error = ?))`
	lastErr = boundText(lastErr, maxLastError)
	n, err := q.unprepared().exec(ctx, query, lastErr, c.ID, c.Seq, lastErr)
	return rowsOrNotFound(n, err)
}

// Taking claims back: a claim of a dispatcher that died is queued again,
// due at once, without waiting for its lease. The attempt it counted stays
// counted (the dead dispatcher may have sent the mail), as after a lease.

// TakeBackAllClaims takes back every claim: every sending message is queued
// again, due at now. Only a process that knows no other dispatcher runs
// may call it: on SQLite, the serve that holds the lock file (LockSQLite),
// when it starts. It returns the ids of the messages taken back.
func (q *Queries) TakeBackAllClaims(ctx context.Context, now time.Time) ([]int64, error) {
	const query = `UPDATE outbox SET status = 'queued', next_attempt_at = ? WHERE status = 'sending' RETURNING id`
	ids := []int64{}
	return ids, q.unprepared().selectAll(ctx, &ids, query, utc(now))
}

// liveOwners lists the keys of the bigint advisory locks that sessions of
// this database hold (pg_locks shows a key's high half as classid, its low
// half as objid): an Owner among them is alive. pg_locks is not MVCC: it
// shows the locks as they are when the statement reads it.
const liveOwners = `SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l
	WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
	AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())`

// DeadClaims returns the claims of sending messages whose Owner holds no
// lock: it died, or lost its session to the database. On SQLite there are
// none to find (one serve holds the file, and took back every claim when it
// started), and it returns none.
func (q *Queries) DeadClaims(ctx context.Context) ([]Claim, error) {
	if q.dialect != Postgres {
		return nil, nil
	}
	const query = `SELECT id, claim_seq FROM outbox
		WHERE status = 'sending' AND claimed_by <> 0 AND claimed_by NOT IN (` + liveOwners + `)`
	var rows []struct {
		ID  int64 `db:"id"`
		Seq int64 `db:"claim_seq"`
	}
	if err := q.unprepared().selectAll(ctx, &rows, query); err != nil {
		return nil, err
	}
	claims := make([]Claim, len(rows))
	for i, r := range rows {
		claims[i] = Claim{ID: r.ID, Seq: r.Seq}
	}
	return claims, nil
}

// TakeBackClaims takes back those of claims (found by DeadClaims) that
// still stand and whose owner still holds no lock: their messages are
// queued again, due at now. It returns the ids of the messages taken back;
// on SQLite, none.
//
// Why the claims and not "every dead claim" again: a row's claim may
// change between the two looks (another dispatcher takes it back and a
// live one claims it), and a statement that rechecks a changed row's
// owner against the locks it read before could end the live claim.
func (q *Queries) TakeBackClaims(ctx context.Context, claims []Claim, now time.Time) ([]int64, error) {
	ids := []int64{}
	if len(claims) == 0 || q.dialect != Postgres {
		return ids, nil
	}
	claimIDs, seqs := claimArrays(claims)
	const query = `UPDATE outbox SET status = 'queued', next_attempt_at = ?
		FROM unnest(?::bigint[], ?::bigint[]) AS c (id, seq)
		WHERE outbox.id = c.id AND outbox.claim_seq = c.seq AND outbox.status = 'sending'
		AND outbox.claimed_by NOT IN (` + liveOwners + `)
		RETURNING outbox.id`
	return ids, q.unprepared().selectAll(ctx, &ids, query, utc(now), claimIDs, seqs)
}

// RetryMessage queues a failed (or sent) message again, due at now, with a
// fresh count of attempts. It is the operator's "outbox retry".
func (q *Queries) RetryMessage(ctx context.Context, id int64, now time.Time) error {
	const query = `UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = ?, last_error = ''
		WHERE id = ? AND status IN ('failed', 'sent')`
	n, err := q.unprepared().exec(ctx, query, utc(now), id)
	return rowsOrNotFound(n, err)
}

// CancelUserMessages cancels every queued message of a user and returns
// how many it cancelled. One a dispatcher is sending may be out already:
// it stays, and ends as sent or failed. Call it in the transaction that
// deletes the user, before the deletion, which leaves the rows without a
// user.
func (q *Queries) CancelUserMessages(ctx context.Context, userID int64) (int64, error) {
	const query = `UPDATE outbox SET status = 'cancelled', last_error = 'the user was deleted'
		WHERE user_id = ? AND status = 'queued'`
	return q.exec(ctx, query, userID)
}

// MessagesByUser returns every outbox message of a user, oldest first.
func (q *Queries) MessagesByUser(ctx context.Context, userID int64) ([]Message, error) {
	const query = `SELECT ` + messageColumns + ` FROM outbox WHERE user_id = ? ORDER BY id`
	msgs := []Message{}
	return msgs, q.unprepared().selectAll(ctx, &msgs, query, userID)
}

// MessageByID returns one outbox message.
func (q *Queries) MessageByID(ctx context.Context, id int64) (Message, error) {
	const query = `SELECT ` + messageColumns + ` FROM outbox WHERE id = ?`
	var m Message
	return m, q.unprepared().get(ctx, &m, query, id)
}

// ListMessages returns up to limit messages, newest first, of one status or
// of all when status is empty.
func (q *Queries) ListMessages(ctx context.Context, status string, limit int) ([]Message, error) {
	query := `SELECT ` + messageColumns + ` FROM outbox`
	args := []any{}
	if status != "" {
		query += ` WHERE status = ?`
		args = append(args, status)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	msgs := []Message{}
	return msgs, q.unprepared().selectAll(ctx, &msgs, query, append(args, limit)...)
}

// CountMessages returns the number of outbox messages in each status.
func (q *Queries) CountMessages(ctx context.Context) (map[string]int64, error) {
	const query = `SELECT status, COUNT(*) AS n FROM outbox GROUP BY status`
	var rows []struct {
		Status string `db:"status"`
		N      int64  `db:"n"`
	}
	if err := q.unprepared().selectAll(ctx, &rows, query); err != nil {
		return nil, err
	}
	counts := map[string]int64{StatusQueued: 0, StatusSending: 0, StatusSent: 0, StatusFailed: 0}
	for _, r := range rows {
		counts[r.Status] = r.N
	}
	return counts, nil
}

// NextDueAt returns when the earliest queued or sending message falls due,
// or ErrNotFound when there is none.
func (q *Queries) NextDueAt(ctx context.Context) (time.Time, error) {
	query := `SELECT next_attempt_at FROM ` + q.dueOutbox() + ` WHERE status IN ('queued', 'sending')
		ORDER BY next_attempt_at, id LIMIT 1`
	var t time.Time
	return t, q.unprepared().get(ctx, &t, query)
}
