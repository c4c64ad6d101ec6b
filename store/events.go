package store

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// NewEvent is one event of a change, as RecordEvents writes it.
type NewEvent struct {
	Type  string // user.created, email.added, …
	Actor string // user, link or admin:<token name>
	// Data is the JSON object of the event's own fields (email, previous),
	// without user_id, sequence and actor, which are columns.
	Data string
}

// Event is one stored event.
type Event struct {
	ID        int64     `db:"id"`
	UserID    int64     `db:"user_id"`
	Sequence  int64     `db:"sequence"`
	Type      string    `db:"type"`
	Actor     string    `db:"actor"`
	Data      string    `db:"data"`
	CreatedAt time.Time `db:"created_at"`
}

const eventColumns = `id, user_id, sequence, type, actor, data, created_at`

// RecordEvents appends the events of one change of user userID, in order,
// with the user's next sequence numbers, and queues a delivery of each to
// every endpoint. Call it inside the transaction of the change, after the
// user's row is locked (LockUser, or the insert of a new user), which keeps
// the sequence free of gaps and duplicates; the unique (user_id, sequence)
// refuses what slips by. A delivery queued behind a pending earlier one of
// the user to the same endpoint is due when that one is, not before.
//
// On PostgreSQL, inside a transaction, the events are staged and written
// by the transaction's next outbox insert (EnqueueMessages) in the same
// statement, or else just before the commit: no round trip of their own.
func (q *Queries) RecordEvents(ctx context.Context, userID int64, events []NewEvent, endpoints []string, now time.Time) error {
	if len(events) == 0 {
		return nil
	}
	if endpoints == nil {
		endpoints = []string{}
	}
	if q.tx != nil && len(endpoints) > 0 {
		q.queued = true // the dispatcher is woken as for mail
	}
	if q.dialect == Postgres {
		if q.tx == nil { // the Queries outside a transaction are shared
			s := &stagedEvents{userID: userID, endpoints: endpoints}
			s.add(events, now)
			cte, args := s.cte()
			_, err := q.exec(ctx, `WITH `+cte+` SELECT 1`, args...)
			return err
		}
		if s := q.events; s != nil && (s.userID != userID || !slices.Equal(s.endpoints, endpoints)) {
			if err := q.writeStagedEvents(ctx); err != nil {
				return err
			}
		}
		if q.events == nil {
			q.events = &stagedEvents{userID: userID, endpoints: endpoints}
		}
		q.events.add(events, now)
		return nil
	}
	// SQLite: per event, one statement that takes the next sequence and
	// one for all its deliveries (no round trips to save; an INSTEAD OF
	// trigger doing both cost more than the two).
	for _, e := range events {
		const insert = `INSERT INTO events (user_id, sequence, type, actor, data, created_at)
			SELECT ?, COALESCE(MAX(sequence), 0) + 1, ?, ?, ?, ? FROM events WHERE user_id = ? RETURNING id`
		var id int64
		if err := q.get(ctx, &id, insert, userID, e.Type, e.Actor, e.Data, utc(now), userID); err != nil {
			return err
		}
		if len(endpoints) == 0 {
			continue
		}
		args := make([]any, 0, len(endpoints)+1)
		for _, ep := range endpoints {
			args = append(args, ep)
		}
		args = append(args, id)
		if _, err := q.exec(ctx, sqliteDeliveries(len(endpoints)), args...); err != nil {
			return err
		}
	}
	return nil
}

// sqliteDeliveries returns the statement that queues a delivery of an
// event to each of n endpoints (its arguments, then the event's id), due when the
// last one in line of its user and endpoint is if that one is pending and
// not yet due (see cte).
func sqliteDeliveries(n int) string {
	eps := strings.Repeat("SELECT ? AS endpoint UNION ALL ", n-1) + "SELECT ? AS endpoint"
	return `INSERT INTO event_deliveries (event_id, user_id, sequence, endpoint, status, next_attempt_at, created_at)
	SELECT e.id, e.user_id, e.sequence, ep.endpoint, 'pending', COALESCE((SELECT
			CASE WHEN p.status = 'pending' AND p.next_attempt_at > e.created_at THEN p.next_attempt_at END
		FROM event_deliveries p WHERE p.user_id = e.user_id AND p.endpoint = ep.endpoint
		AND p.status IN ('pending', 'sending') ORDER BY p.sequence DESC LIMIT 1), e.created_at), e.created_at
	FROM events e CROSS JOIN (` + eps + `) AS ep WHERE e.id = ?`
}

// stagedEvents are the events of one user RecordEvents staged in a
// PostgreSQL transaction, with their times and the endpoints.
type stagedEvents struct {
	userID    int64
	events    []NewEvent
	at        []string // RFC 3339 times of the changes
	endpoints []string
}

// add stages events of a change at now.
func (s *stagedEvents) add(events []NewEvent, now time.Time) {
	for _, e := range events {
		s.events = append(s.events, e)
		s.at = append(s.at, utc(now).Format(time.RFC3339Nano))
	}
}

// cte returns the staged events as the common table expressions of a
// statement, with their arguments: the user's sequence base, the events,
// and a delivery of each to every endpoint. A delivery queued behind the
// last one in line of its user and endpoint, pending and not yet due, is
// due when that one is: the last in line falls due no sooner than those
// before it (a retry moves the later ones on), so one index entry answers
// for the whole line.
//
// The rows go as VALUES lists of placeholders, not arrays: with arrays
// PostgreSQL's generic plan guesses their lengths, costs more than a
// custom one, and every execution was planned again.
func (s *stagedEvents) cte() (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2+5*len(s.events)+len(s.endpoints))
	args = append(args, s.userID, s.userID)
	b.WriteString(`staged_base AS (SELECT COALESCE(MAX(sequence), 0) AS s FROM events WHERE user_id = ?),
	staged AS (INSERT INTO events (user_id, sequence, type, actor, data, created_at)
		SELECT ?, staged_base.s + v.n, v.type, v.actor, v.data, v.at
		FROM staged_base CROSS JOIN (VALUES `)
	for i, e := range s.events {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?::bigint, ?::text, ?::text, ?::text, ?::timestamptz)")
		args = append(args, i+1, e.Type, e.Actor, e.Data, s.at[i])
	}
	b.WriteString(`) AS v (n, type, actor, data, at)
		ORDER BY v.n
		RETURNING id, user_id, sequence, created_at)`)
	if len(s.endpoints) == 0 {
		return b.String(), args
	}
	b.WriteString(`,
	staged_deliveries AS (INSERT INTO event_deliveries (event_id, user_id, sequence, endpoint, status, next_attempt_at, created_at)
		SELECT staged.id, staged.user_id, staged.sequence, ep.endpoint, 'pending', COALESCE((SELECT
				CASE WHEN p.status = 'pending' AND p.next_attempt_at > staged.created_at THEN p.next_attempt_at END
			FROM event_deliveries p WHERE p.user_id = staged.user_id AND p.endpoint = ep.endpoint
			AND p.status IN ('pending', 'sending') ORDER BY p.sequence DESC LIMIT 1), staged.created_at), staged.created_at
		FROM staged CROSS JOIN (VALUES `)
	for i, ep := range s.endpoints {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?::text)")
		args = append(args, ep)
	}
	b.WriteString(`) AS ep (endpoint))`)
	return b.String(), args
}

// takeStagedEvents returns the staged events' CTE and arguments for the
// statement that will write them, and forgets them; "" when none waits.
func (q *Queries) takeStagedEvents() (string, []any) {
	s := q.events
	if s == nil {
		return "", nil
	}
	q.events = nil
	return s.cte()
}

// writeStagedEvents writes the staged events with a statement of their
// own; the transaction calls it before its commit.
func (q *Queries) writeStagedEvents(ctx context.Context) error {
	cte, args := q.takeStagedEvents()
	if cte == "" {
		return nil
	}
	_, err := q.exec(ctx, `WITH `+cte+` SELECT 1`, args...)
	return err
}

// The states of a delivery: pending → sending → delivered, or failed once
// its attempts are used up or the endpoint answered 410. The API shows
// sending as pending.
const (
	DeliveryPending   = "pending"
	DeliverySending   = "sending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one event's delivery to one endpoint, with what its attempt
// sends of the event when a claim returned it.
type Delivery struct {
	ID            int64      `db:"id"`
	EventID       int64      `db:"event_id"`
	UserID        int64      `db:"user_id"`
	Sequence      int64      `db:"sequence"`
	Endpoint      string     `db:"endpoint"`
	Status        string     `db:"status"`
	Attempts      int        `db:"attempts"`
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	LastError     string     `db:"last_error"`
	ClaimedBy     int64      `db:"claimed_by"`
	ClaimSeq      int64      `db:"claim_seq"`
	CreatedAt     time.Time  `db:"created_at"`
	DeliveredAt   *time.Time `db:"delivered_at"`

	// The event's, filled by a claim.
	Type           string    `db:"type"`
	Actor          string    `db:"actor"`
	Data           string    `db:"data"`
	EventCreatedAt time.Time `db:"event_created_at"`
}

const deliveryColumns = `id, event_id, user_id, sequence, endpoint, status, attempts, next_attempt_at, last_error, claimed_by, claim_seq, created_at, delivered_at`

// Claim returns the claim that d, as a claim returned it, is under.
func (d Delivery) Claim() Claim { return Claim{ID: d.ID, Seq: d.ClaimSeq} }

// dueDeliveries selects the ids of the deliveries a claim may take: due
// (pending whose time has come, or sending whose lease ran out) and first
// in line, no earlier delivery of the user to the endpoint pending or in
// flight. So a user's events reach an endpoint in sequence order, and one
// claim takes at most one delivery per user and endpoint.
func (q *Queries) dueDeliveries() string {
	from := `event_deliveries d`
	if q.dialect == SQLite {
		from += ` INDEXED BY event_deliveries_due`
	}
	due := `SELECT d.id FROM ` + from + ` WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= ?
		AND NOT EXISTS (SELECT 1 FROM event_deliveries p WHERE p.user_id = d.user_id AND p.endpoint = d.endpoint
			AND p.sequence < d.sequence AND p.status IN ('pending', 'sending'))
		ORDER BY d.next_attempt_at, d.id LIMIT ?`
	if q.dialect == Postgres {
		due += ` FOR UPDATE OF d SKIP LOCKED`
	}
	return due
}

// claimDeliveriesQuery is the statement of a claim of deliveries; its
// arguments are claimArgs. On PostgreSQL it returns the events' fields too.
func (q *Queries) claimDeliveriesQuery() string {
	update := `UPDATE event_deliveries SET status = 'sending', attempts = attempts + 1, claim_seq = claim_seq + 1,
		claimed_by = ?, next_attempt_at = ? WHERE id IN (` + q.dueDeliveries() + `) RETURNING ` + deliveryColumns
	if q.dialect != Postgres {
		return update
	}
	return `WITH c AS (` + update + `)
		SELECT c.*, e.type, e.actor, e.data, e.created_at AS event_created_at FROM c JOIN events e ON e.id = c.event_id
		ORDER BY c.id`
}

// ClaimDeliveries is ClaimMessages for event deliveries: it takes up to
// limit due deliveries (see dueDeliveries) under the owner, marks them
// sending until now+lease and counts the attempt.
func (o *Owner) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	var ds []Delivery
	if o.conn == nil {
		err := o.db.WithTx(ctx, func(q *Queries) error {
			ds = nil
			if err := q.unprepared().selectAll(ctx, &ds, q.claimDeliveriesQuery(), claimArgs(o.id, now, lease, limit)...); err != nil {
				return err
			}
			return q.fillEvents(ctx, ds)
		})
		return ds, err
	}
	query := sqlx.Rebind(sqlx.DOLLAR, o.db.claimDeliveriesQuery())
	o.mu.Lock()
	defer o.mu.Unlock()
	return ds, translate(sqlx.SelectContext(ctx, o.conn, &ds, query, claimArgs(o.id, now, lease, limit)...))
}

// fillEvents reads the events' fields of claimed deliveries (SQLite, whose
// UPDATE cannot join).
func (q *Queries) fillEvents(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]string, len(ds))
	args := make([]any, len(ds))
	for i, d := range ds {
		ids[i], args[i] = "?", d.EventID
	}
	var evs []Event
	if err := q.unprepared().selectAll(ctx, &evs, `SELECT `+eventColumns+` FROM events WHERE id IN (`+strings.Join(ids, ", ")+`)`, args...); err != nil {
		return err
	}
	byID := make(map[int64]Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	for i := range ds {
		e := byID[ds[i].EventID]
		ds[i].Type, ds[i].Actor, ds[i].Data, ds[i].EventCreatedAt = e.Type, e.Actor, e.Data, e.CreatedAt
	}
	return nil
}

// MarkDeliveriesDelivered records the deliveries of several claims at now
// and returns the ids it recorded (or found recorded by the same report),
// each guarded by its claim, as MarkMessagesSent does for mail.
func (q *Queries) MarkDeliveriesDelivered(ctx context.Context, claims []Claim, now time.Time) ([]int64, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	ids := []int64{}
	const guard = `CASE event_deliveries.status WHEN 'sending' THEN TRUE WHEN 'delivered' THEN event_deliveries.delivered_at = ? ELSE FALSE END`
	if q.dialect == Postgres {
		claimIDs, seqs := claimArrays(claims)
		const query = `UPDATE event_deliveries SET status = 'delivered', delivered_at = ?, last_error = ''
			FROM unnest(?::bigint[], ?::bigint[]) AS c (id, seq)
			WHERE event_deliveries.id = c.id AND event_deliveries.claim_seq = c.seq AND ` + guard + `
			RETURNING event_deliveries.id`
		return ids, q.unprepared().selectAll(ctx, &ids, query, utc(now), claimIDs, seqs, utc(now))
	}
	var or strings.Builder
	args := []any{utc(now), utc(now)}
	for i, c := range claims {
		if i > 0 {
			or.WriteString(" OR ")
		}
		or.WriteString("(id = ? AND claim_seq = ?)")
		args = append(args, c.ID, c.Seq)
	}
	query := `UPDATE event_deliveries SET status = 'delivered', delivered_at = ?, last_error = ''
		WHERE ` + guard + ` AND (` + or.String() + `) RETURNING id`
	return ids, q.unprepared().selectAll(ctx, &ids, query, args...)
}

// RescheduleDelivery puts a claimed delivery back in line, due at next,
// keeping the attempt's error; the user's later deliveries to the endpoint
// that would fall due sooner are moved to next too, as they wait for it.
func (q *Queries) RescheduleDelivery(ctx context.Context, d Delivery, next time.Time, lastErr string) error {
	const query = `UPDATE event_deliveries SET status = 'pending', next_attempt_at = ?, last_error = ?
		WHERE id = ? AND claim_seq = ?
		AND (status = 'sending' OR (status = 'pending' AND next_attempt_at = ? AND last_error = ?))`
	next, lastErr = utc(next), boundText(lastErr, maxLastError)
	n, err := q.unprepared().exec(ctx, query, next, lastErr, d.ID, d.ClaimSeq, next, lastErr)
	if err = rowsOrNotFound(n, err); err != nil {
		return err
	}
	const later = `UPDATE event_deliveries SET next_attempt_at = ?
		WHERE user_id = ? AND endpoint = ? AND sequence > ? AND status = 'pending' AND next_attempt_at < ?`
	_, err = q.unprepared().exec(ctx, later, next, d.UserID, d.Endpoint, d.Sequence, next)
	return err
}

// FailDelivery gives up on a claimed delivery, keeping why.
func (q *Queries) FailDelivery(ctx context.Context, c Claim, lastErr string) error {
	const query = `UPDATE event_deliveries SET status = 'failed', last_error = ?
		WHERE id = ? AND claim_seq = ? AND (status = 'sending' OR (status = 'failed' AND last_error = ?))`
	lastErr = boundText(lastErr, maxLastError)
	n, err := q.unprepared().exec(ctx, query, lastErr, c.ID, c.Seq, lastErr)
	return rowsOrNotFound(n, err)
}

// ReleaseDelivery hands a claimed delivery back unattempted: pending, due
// at now, its attempt given back.
func (q *Queries) ReleaseDelivery(ctx context.Context, c Claim, now time.Time) error {
	const query = `UPDATE event_deliveries SET status = 'pending', attempts = attempts - 1, next_attempt_at = ?
		WHERE id = ? AND status = 'sending' AND claim_seq = ?`
	n, err := q.unprepared().exec(ctx, query, utc(now), c.ID, c.Seq)
	return rowsOrNotFound(n, err)
}

// DeadDeliveryClaims is DeadClaims for event deliveries.
func (q *Queries) DeadDeliveryClaims(ctx context.Context) ([]Claim, error) {
	if q.dialect != Postgres {
		return nil, nil
	}
	const query = `SELECT id, claim_seq FROM event_deliveries
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

// TakeBackDeliveryClaims is TakeBackClaims for event deliveries: pending
// again, due at now, the attempt counted (the endpoint may have it).
func (q *Queries) TakeBackDeliveryClaims(ctx context.Context, claims []Claim, now time.Time) ([]int64, error) {
	ids := []int64{}
	if len(claims) == 0 || q.dialect != Postgres {
		return ids, nil
	}
	claimIDs, seqs := claimArrays(claims)
	const query = `UPDATE event_deliveries SET status = 'pending', next_attempt_at = ?
		FROM unnest(?::bigint[], ?::bigint[]) AS c (id, seq)
		WHERE event_deliveries.id = c.id AND event_deliveries.claim_seq = c.seq AND event_deliveries.status = 'sending'
		AND event_deliveries.claimed_by NOT IN (` + liveOwners + `)
		RETURNING event_deliveries.id`
	return ids, q.unprepared().selectAll(ctx, &ids, query, utc(now), claimIDs, seqs)
}

// TakeBackAllDeliveryClaims is TakeBackAllClaims for event deliveries.
func (q *Queries) TakeBackAllDeliveryClaims(ctx context.Context, now time.Time) ([]int64, error) {
	const query = `UPDATE event_deliveries SET status = 'pending', next_attempt_at = ? WHERE status = 'sending' RETURNING id`
	ids := []int64{}
	return ids, q.unprepared().selectAll(ctx, &ids, query, utc(now))
}

// NextDeliveryDueAt returns when the earliest delivery that is first in
// line falls due, or ErrNotFound when none waits.
func (q *Queries) NextDeliveryDueAt(ctx context.Context) (time.Time, error) {
	from := `event_deliveries d`
	if q.dialect == SQLite {
		from += ` INDEXED BY event_deliveries_due`
	}
	query := `SELECT d.next_attempt_at FROM ` + from + ` WHERE d.status IN ('pending', 'sending')
		AND NOT EXISTS (SELECT 1 FROM event_deliveries p WHERE p.user_id = d.user_id AND p.endpoint = d.endpoint
			AND p.sequence < d.sequence AND p.status IN ('pending', 'sending'))
		ORDER BY d.next_attempt_at, d.id LIMIT 1`
	var t time.Time
	return t, q.unprepared().get(ctx, &t, query)
}

// Redeliver queues event id again for every endpoint of endpoints, due at
// now with a fresh count of attempts (the same event, so the same
// webhook-id): its deliveries there are reset, and the missing ones made.
// A delivery in flight is left to finish. It returns the event, and fails
// with ErrNotFound when there is no such event.
func (q *Queries) Redeliver(ctx context.Context, id int64, endpoints []string, now time.Time) (Event, error) {
	var e Event
	if err := q.writeStagedEvents(ctx); err != nil {
		return e, err
	}
	if err := q.get(ctx, &e, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id); err != nil {
		return e, err
	}
	for _, ep := range endpoints {
		const query = `INSERT INTO event_deliveries (event_id, user_id, sequence, endpoint, status, next_attempt_at, created_at)
			VALUES (?, ?, ?, ?, 'pending', ?, ?)
			ON CONFLICT (event_id, endpoint) DO UPDATE SET status = 'pending', attempts = 0,
				next_attempt_at = excluded.next_attempt_at, last_error = '', delivered_at = NULL
			WHERE event_deliveries.status <> 'sending'`
		if _, err := q.exec(ctx, query, e.ID, e.UserID, e.Sequence, ep, utc(now), utc(now)); err != nil {
			return e, err
		}
	}
	if q.tx != nil && len(endpoints) > 0 {
		q.queued = true
	}
	return e, nil
}

// EventFilter selects the events ListEvents returns.
type EventFilter struct {
	UserID int64  // 0: every user's
	Type   string // "": every type
	After  int64  // ids above this one
	Limit  int
}

// EventWithDeliveries is an event with its deliveries, oldest first.
type EventWithDeliveries struct {
	Event
	Deliveries []Delivery
}

// ListEvents returns up to f.Limit events in id order after f.After, of
// one user and one type if asked, each with its deliveries: a keyset page
// (the primary key, events_user_sequence or events_type walk it).
func (q *Queries) ListEvents(ctx context.Context, f EventFilter) ([]EventWithDeliveries, error) {
	if err := q.writeStagedEvents(ctx); err != nil {
		return nil, err
	}
	query := `SELECT ` + eventColumns + ` FROM events WHERE id > ?`
	args := []any{f.After}
	if f.UserID != 0 {
		query += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	if f.Type != "" {
		query += ` AND type = ?`
		args = append(args, f.Type)
	}
	query += ` ORDER BY id LIMIT ?`
	var evs []Event
	if err := q.selectAll(ctx, &evs, query, append(args, f.Limit)...); err != nil {
		return nil, err
	}
	out := make([]EventWithDeliveries, len(evs))
	if len(evs) == 0 {
		return out, nil
	}
	marks := make([]string, len(evs))
	ids := make([]any, len(evs))
	index := make(map[int64]int, len(evs))
	for i, e := range evs {
		out[i] = EventWithDeliveries{Event: e, Deliveries: []Delivery{}}
		marks[i], ids[i], index[e.ID] = "?", e.ID, i
	}
	var ds []Delivery
	dq := `SELECT ` + deliveryColumns + ` FROM event_deliveries WHERE event_id IN (` + strings.Join(marks, ", ") + `) ORDER BY id`
	if err := q.unprepared().selectAll(ctx, &ds, dq, ids...); err != nil {
		return nil, err
	}
	for _, d := range ds {
		i := index[d.EventID]
		out[i].Deliveries = append(out[i].Deliveries, d)
	}
	return out, nil
}

// DeliveriesOf returns the deliveries of one event, oldest first.
func (q *Queries) DeliveriesOf(ctx context.Context, eventID int64) ([]Delivery, error) {
	if err := q.writeStagedEvents(ctx); err != nil {
		return nil, err
	}
	const query = `SELECT ` + deliveryColumns + ` FROM event_deliveries WHERE event_id = ? ORDER BY id`
	ds := []Delivery{}
	return ds, q.selectAll(ctx, &ds, query, eventID)
}
