package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Owner is the identity a mail dispatcher claims outbox messages under, so
// that its claims end when it dies rather than when their lease runs out.
//
// On PostgreSQL an Owner is a connection of its own that holds the
// session-level advisory lock whose key is the owner's id: the server drops
// the lock when the session ends (the process died, the connection broke),
// and other dispatchers then take back the owner's claims (DeadClaims,
// TakeBackClaims). Its claims are made on that session, so none commits
// after the lock is gone. On SQLite an Owner is an id alone: one serve
// holds the database file (LockSQLite) and takes back every claim when it
// starts.
//
// An Owner is safe for concurrent use; its session runs one statement at a
// time.
type Owner struct {
	db   *DB
	id   int64
	mu   sync.Mutex // one statement at a time on conn: database/sql lets a Conn's results interleave
	conn *sqlx.Conn // PostgreSQL: the session that holds the lock
}

// ErrOwnerLocked is LockOwner's answer when another session holds the
// owner's lock: an older session of the same owner that the server has not
// yet seen die.
var ErrOwnerLocked = errors.New("store: the owner's lock is held by another session")

// ownerLockTimeout bounds the statements that take and drop an owner's lock.
const ownerLockTimeout = 5 * time.Second

// NewOwner returns an Owner of a new random id, holding its lock.
func (db *DB) NewOwner(ctx context.Context) (*Owner, error) {
	for tries := 1; ; tries++ {
		id := rand.Int64() // 63 bits: no other session holds it, but check
		if id == 0 {
			continue
		}
		o, err := db.LockOwner(ctx, id)
		if !errors.Is(err, ErrOwnerLocked) || tries == 3 {
			return o, err
		}
	}
}

// LockOwner takes the lock of owner id again, as after its session was
// lost, so that the claims it made before remain its own. It returns
// ErrOwnerLocked while another session holds the lock.
func (db *DB) LockOwner(ctx context.Context, id int64) (*Owner, error) {
	if id <= 0 {
		return nil, fmt.Errorf("store: owner %d: the id must be positive", id)
	}
	o := &Owner{db: db, id: id}
	if db.dialect != Postgres {
		return o, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ownerLockTimeout)
	defer cancel()
	conn, err := db.session(ctx)
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := conn.GetContext(ctx, &locked, `SELECT pg_try_advisory_lock($1)`, id); err != nil {
		// The lock may be held all the same: the session must end.
		discard(conn)
		return nil, translate(err)
	}
	if !locked {
		_ = conn.Close()
		return nil, ErrOwnerLocked
	}
	o.conn = conn
	return o, nil
}

// session takes a connection of the pool that answers. The pool hands out
// its idle connections unchecked, and after a database restart they are
// all dead: a ping finds out, and database/sql drops each that fails.
func (db *DB) session(ctx context.Context) (*sqlx.Conn, error) {
	for {
		conn, err := db.db.Connx(ctx)
		if err != nil {
			return nil, translate(err)
		}
		err = conn.PingContext(ctx)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, driver.ErrBadConn) || ctx.Err() != nil {
			discard(conn)
			return nil, translate(err)
		}
	}
}

// ID returns the owner's id: what its claims record as claimed_by.
func (o *Owner) ID() int64 { return o.id }

// Check reports whether the owner still holds its lock: on PostgreSQL, an
// error unless its session answers.
func (o *Owner) Check(ctx context.Context) error {
	if o.conn == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var one int
	return translate(o.conn.GetContext(ctx, &one, `SELECT 1`))
}

// ClaimMessages is Queries.ClaimMessages, with claims that name the owner;
// on PostgreSQL it runs on the owner's session and fails once that is lost.
func (o *Owner) ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Message, error) {
	var msgs []Message
	if o.conn == nil {
		err := o.db.WithTx(ctx, func(q *Queries) error {
			return q.unprepared().selectAll(ctx, &msgs, q.claimQuery(), claimArgs(o.id, now, lease, limit)...)
		})
		return msgs, err
	}
	query := sqlx.Rebind(sqlx.DOLLAR, o.db.claimQuery())
	o.mu.Lock()
	defer o.mu.Unlock()
	return msgs, translate(sqlx.SelectContext(ctx, o.conn, &msgs, query, claimArgs(o.id, now, lease, limit)...))
}

// Close drops the owner's lock and gives its connection back. The claims
// it still has look dead from then on.
func (o *Owner) Close() error {
	if o.conn == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), ownerLockTimeout)
	defer cancel()
	var unlocked bool
	if err := o.conn.GetContext(ctx, &unlocked, `SELECT pg_advisory_unlock($1)`, o.id); err != nil || !unlocked {
		// The session ends, and its lock with it.
		discard(o.conn)
		return translate(err)
	}
	return o.conn.Close()
}

// discard closes a connection for good instead of giving it back to the
// pool.
func discard(conn *sqlx.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}
