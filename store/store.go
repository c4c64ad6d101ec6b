// Package store keeps useremail's state in PostgreSQL (lib/pq) or in embedded
// SQLite (modernc.org/sqlite) through sqlx: users and their addresses,
// sessions, the mail outbox, rate-limit counters and the audit trail.
//
// The database enforces the invariants (one primary address per user, an
// address verified or primary for one user only) with constraints; this
// package translates their violations into sentinel errors once, here. It
// knows nothing of HTTP, Echo or the generated API types, and imports no
// other package of the project.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"    // also registers the "postgres" driver
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names the SQL database behind a DB.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is an open store. Its embedded Queries run outside any transaction;
// WithTx runs a function on the Queries of one transaction.
type DB struct {
	*Queries
	db *sqlx.DB

	pg         *pgConnector // PostgreSQL only
	reaper     *reaper      // PostgreSQL only
	sqlitePath string       // SQLite only: the database file
	writes     *writeHealth
}

// Queries runs the store's statements on a database handle or inside a
// transaction.
type Queries struct {
	ext     sqlx.ExtContext
	dialect Dialect
	stmts   *statements   // the kept prepared statements; nil: none
	tx      *sqlx.Tx      // the transaction that ext is, if any
	queued  bool          // EnqueueMessages added mail in tx (see QueuedMail)
	events  *stagedEvents // PostgreSQL: events RecordEvents staged in tx
	writes  *writeHealth
}

// QueuedMail reports whether mail was queued through q, the Queries of a
// transaction: after it commits, the caller announces it
// (NotifyMailQueued). Outside a transaction it is always false.
func (q *Queries) QueuedMail() bool { return q.queued }

// PoolOptions size the PostgreSQL connection pool. SQLite always uses one
// connection: it has one writer, and a single connection avoids SQLITE_BUSY.
type PoolOptions struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes a connection left idle this long, so that a
	// pool grown in a burst shrinks again and connections that died
	// silently (a database restart, a NAT timeout) are replaced rather than
	// tried first. (A connection that died is also retried by database/sql:
	// lib/pq reports it as driver.ErrBadConn.)
	ConnMaxIdleTime time.Duration
}

// DefaultPoolOptions are used by Open.
var DefaultPoolOptions = PoolOptions{MaxOpenConns: 20, MaxIdleConns: 20, ConnMaxLifetime: 30 * time.Minute, ConnMaxIdleTime: time.Minute}

func init() {
	// sqlx knows "sqlite3" but not modernc's "sqlite"; both take "?".
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Open connects to the database named by rawURL: "postgres://…" (or
// "postgresql://…") for PostgreSQL, "sqlite:PATH" for an embedded SQLite file.
// It does not migrate; see Migrate.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	return OpenWithPool(ctx, rawURL, DefaultPoolOptions)
}

// OpenWithPool is Open with explicit PostgreSQL pool sizes.
func OpenWithPool(ctx context.Context, rawURL string, pool PoolOptions) (*DB, error) {
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &DB{writes: &writeHealth{}}
	switch dialect {
	case SQLite:
		if s.db, err = sqlx.Open(string(dialect), dsn); err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		s.db.SetMaxOpenConns(1)
		s.db.SetMaxIdleConns(1)
		s.db.SetConnMaxLifetime(0)
		s.sqlitePath = sqliteFile(rawURL)
	case Postgres:
		if s.pg, err = newPGConnector(dsn, statementTimeout(rawURL), newPGConns()); err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		s.db = sqlx.NewDb(sql.OpenDB(s.pg), string(Postgres))
		s.db.SetMaxOpenConns(pool.MaxOpenConns)
		s.db.SetMaxIdleConns(pool.MaxIdleConns)
		s.db.SetConnMaxLifetime(pool.ConnMaxLifetime)
		s.db.SetConnMaxIdleTime(pool.ConnMaxIdleTime)
		s.reaper = startReaper(s.pg)
	}
	s.Queries = &Queries{ext: s.db, dialect: dialect, writes: s.writes}
	if preparedStatements(rawURL) {
		s.stmts = newStatements(s.db)
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// A PostgreSQL server or a network that goes silent (a host that died, a
// firewall or NAT dropping packets without a reset) would leave a
// connection open, as far as the kernel can tell, for about 15 minutes of
// retransmissions, or forever once the query was acknowledged. TCP
// keepalive finds a silent peer of an idle connection within about
// pgKeepAliveIdle + 3·pgKeepAliveInterval; on Linux, TCP_USER_TIMEOUT also
// ends a connection whose data stayed unacknowledged for pgUserTimeout.
// Neither helps when the first hop is local and answers for the peer (a
// pooler or a sidecar): pgconn.go covers that, and every call's wait.
const (
	pgKeepAliveIdle     = 15 * time.Second
	pgKeepAliveInterval = 5 * time.Second
	pgUserTimeout       = 15 * time.Second
)

// PostgresDialer returns the dialer of the store's PostgreSQL connections,
// with TCP keepalive and, on Linux, TCP_USER_TIMEOUT (see pgUserTimeout).
// Other long-lived connections to the same server (LISTEN) should use it.
// lib/pq bounds the dial and the start-up by the URL's connect_timeout.
func PostgresDialer() pq.Dialer {
	return pgDialer{d: net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: pgKeepAliveIdle, Interval: pgKeepAliveInterval, Count: 3},
		Control:         setTCPUserTimeout(pgUserTimeout),
	}}
}

// pgDialer implements pq.Dialer and pq.DialerContext.
type pgDialer struct{ d net.Dialer }

func (p pgDialer) Dial(network, address string) (net.Conn, error) {
	return p.d.Dial(network, address)
}

func (p pgDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.d.DialContext(ctx, network, address)
}

func (p pgDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.d.DialContext(ctx, network, address)
}

// ListenDialer is PostgresDialer for a connection that waits for
// notifications, which no deadline can bound: HangUp closes the connection
// it dialed last, so that a listener whose ping got no answer reconnects.
type ListenDialer struct {
	d    pgDialer
	mu   sync.Mutex
	last net.Conn
}

// NewListenDialer returns a ListenDialer; it implements pq.Dialer and
// pq.DialerContext.
func NewListenDialer() *ListenDialer { return &ListenDialer{d: PostgresDialer().(pgDialer)} }

func (l *ListenDialer) Dial(network, address string) (net.Conn, error) {
	return l.keep(l.d.Dial(network, address))
}

func (l *ListenDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	return l.keep(l.d.DialTimeout(network, address, timeout))
}

func (l *ListenDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return l.keep(l.d.DialContext(ctx, network, address))
}

func (l *ListenDialer) keep(c net.Conn, err error) (net.Conn, error) {
	if err == nil {
		l.mu.Lock()
		l.last = c
		l.mu.Unlock()
	}
	return c, err
}

// HangUp closes the connection dialed last.
func (l *ListenDialer) HangUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last != nil {
		_ = l.last.Close()
	}
}

// preparedParam is the parameter of a database URL that turns the kept
// prepared statements off (prepared_statements=off): for a connection
// pooler in transaction mode that cannot carry them (PgBouncer before 1.21,
// or without max_prepared_statements), and to measure what they buy.
const preparedParam = "prepared_statements"

// preparedStatements reports whether a database URL (one that ParseURL
// accepts) leaves the kept prepared statements on.
func preparedStatements(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err != nil || u.Query().Get(preparedParam) != "off"
}

// checkPrepared checks the prepared_statements parameter of q and removes
// it: it is read by Open, and is no parameter of either driver.
func checkPrepared(q url.Values) error {
	switch v := q.Get(preparedParam); v {
	case "", "on", "off":
		q.Del(preparedParam)
		return nil
	default:
		return fmt.Errorf("store: database URL: %s=%q: want on or off", preparedParam, v)
	}
}

// statementTimeoutParam is the parameter of a postgres:// URL that sets the
// statement_timeout of the store's connections, as a Go duration ("0"
// leaves the server's own setting). The store sets it with SET after
// connecting rather than as a start-up parameter, which PgBouncer refuses.
const statementTimeoutParam = "statement_timeout"

// DefaultStatementTimeout is the statement_timeout of the store's
// PostgreSQL connections: a little under the API's request deadline, so
// that a statement stuck on the server (waiting for locks) ends there too,
// and the request's answer is an error from the server rather than its
// deadline's.
const DefaultStatementTimeout = 9 * time.Second

// statementTimeout returns the statement timeout a postgres:// URL (one
// that ParseURL accepts) asks for.
func statementTimeout(rawURL string) time.Duration {
	u, err := url.Parse(rawURL)
	if err != nil || !u.Query().Has(statementTimeoutParam) {
		return DefaultStatementTimeout
	}
	d, _ := time.ParseDuration(u.Query().Get(statementTimeoutParam))
	return d
}

// checkStatementTimeout checks the statement_timeout parameter of q and
// removes it: Open sets it, lib/pq would send it at start-up.
func checkStatementTimeout(q url.Values) error {
	if !q.Has(statementTimeoutParam) {
		return nil
	}
	v := q.Get(statementTimeoutParam)
	if d, err := time.ParseDuration(v); err != nil || d < 0 || (d > 0 && d < time.Millisecond) {
		return fmt.Errorf("store: database URL: %s=%q: want a duration such as 9s or 500ms, or 0 to leave the server's setting", statementTimeoutParam, v)
	}
	q.Del(statementTimeoutParam)
	return nil
}

// ParseURL turns a USEREMAIL_DATABASE_URL into a driver name and DSN.
func ParseURL(rawURL string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return "", "", fmt.Errorf("store: database URL: %w", err)
		}
		q := u.Query()
		if !q.Has("connect_timeout") {
			// Without it a dead server makes every request hang until the
			// kernel gives up; 5 s turns that into a prompt 503.
			q.Set("connect_timeout", "5")
		}
		// PostgreSQL would take it for a setting and refuse the connection.
		if err := checkPrepared(q); err != nil {
			return "", "", err
		}
		if err := checkStatementTimeout(q); err != nil {
			return "", "", err
		}
		if !q.Has("binary_parameters") {
			// lib/pq then sends Parse, Bind and Execute of a statement in one
			// round trip instead of two (it need not ask the server for the
			// parameters' types first): half the round trips of every
			// request. []byte parameters go over in binary; the store's
			// (session id hashes) are bytea columns, which take them as is.
			q.Set("binary_parameters", "yes")
		}
		u.RawQuery = q.Encode()
		return Postgres, u.String(), nil
	case strings.HasPrefix(rawURL, "sqlite:"):
		path, rawQuery, hasQuery := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//"), "?")
		if path == "" {
			return "", "", errors.New("store: database URL: sqlite: needs a file path, as sqlite:useremail.db")
		}
		if strings.Contains(path, "#") {
			return "", "", errors.New("store: database URL: sqlite: the path may not contain '#'")
		}
		if hasQuery {
			// The one parameter: sqlite:PATH?prepared_statements=off.
			q, err := url.ParseQuery(rawQuery)
			if err == nil {
				err = checkPrepared(q)
			}
			if err != nil {
				return "", "", err
			}
			if len(q) > 0 {
				return "", "", fmt.Errorf("store: database URL: sqlite: unknown parameters %q: the only one is %s", q.Encode(), preparedParam)
			}
		}
		// Foreign keys are per connection in SQLite; WAL lets readers run
		// beside the writer; an immediate transaction takes the write lock at
		// BEGIN, which is what makes read-then-write transactions safe.
		dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)" +
			"&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
		return SQLite, dsn, nil
	default:
		return "", "", fmt.Errorf("store: database URL %q: want postgres://… or sqlite:PATH", redactURL(rawURL))
	}
}

// redactURL hides a password in a database URL for error messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return translate(db.db.PingContext(ctx))
}

// Close closes the connection pool.
func (db *DB) Close() error {
	if db.stmts != nil {
		db.stmts.close()
	}
	if db.reaper != nil {
		db.reaper.stop()
	}
	return db.db.Close()
}

// SQL returns the underlying handle, for tests and tools that inspect the
// database directly.
func (db *DB) SQL() *sqlx.DB { return db.db }

// maxTxAttempts bounds how often WithTx retries a transaction that
// PostgreSQL aborted for a deadlock or a serialization failure.
const maxTxAttempts = 3

// WithTx runs fn inside one transaction and commits if fn returns nil. It
// retries fn from the start when PostgreSQL reports a deadlock or a
// serialization failure, so fn must not have effects outside the
// transaction. On SQLite the transaction holds the write lock from BEGIN.
//
// fn must use only the Queries it is given: on SQLite the store has one
// connection, which the transaction holds until it ends.
func (db *DB) WithTx(ctx context.Context, fn func(q *Queries) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = db.tx(ctx, fn)
		if !isRetryable(err) {
			return err
		}
	}
	return err
}

func (db *DB) tx(ctx context.Context, fn func(q *Queries) error) (err error) {
	tx, err := db.db.BeginTxx(ctx, nil)
	if err != nil {
		return db.translate(beginError(err))
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	q := &Queries{ext: tx, dialect: db.dialect, stmts: db.stmts, tx: tx, writes: db.writes}
	if err = fn(q); err != nil {
		return err
	}
	if err = q.writeStagedEvents(ctx); err != nil {
		return err
	}
	return db.translate(tx.Commit())
}

// rebind turns the "?" placeholders of q into the dialect's.
func (q *Queries) rebind(query string) string {
	if q.dialect == Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

// prepared returns the kept statement for query (as the store writes it,
// with ? placeholders), bound to the transaction of q if there is one; nil
// when there is none (yet). A kept statement needs no rebind.
func (q *Queries) prepared(ctx context.Context, query string) *sqlx.Stmt {
	if q.stmts == nil {
		return nil
	}
	st := q.stmts.prepared(query)
	if st != nil && q.tx != nil {
		// Prepared on the transaction's connection if it is not yet, and
		// kept there for the next transaction on it.
		st = q.tx.StmtxContext(ctx, st)
	}
	return st
}

func (q *Queries) get(ctx context.Context, dest any, query string, args ...any) error {
	if st := q.prepared(ctx, query); st != nil {
		return q.translate(st.GetContext(ctx, dest, args...))
	}
	return q.translate(sqlx.GetContext(ctx, q.ext, dest, q.rebind(query), args...))
}

func (q *Queries) selectAll(ctx context.Context, dest any, query string, args ...any) error {
	if st := q.prepared(ctx, query); st != nil {
		return q.translate(st.SelectContext(ctx, dest, args...))
	}
	return q.translate(sqlx.SelectContext(ctx, q.ext, dest, q.rebind(query), args...))
}

// exec runs a statement and returns the number of rows it changed.
func (q *Queries) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if st := q.prepared(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = q.ext.ExecContext(ctx, q.rebind(query), args...)
	}
	if err != nil {
		return 0, q.translate(err)
	}
	n, err := res.RowsAffected()
	return n, q.translate(err)
}

// utc truncates t to microseconds (PostgreSQL's precision) in UTC, so that
// both dialects store and compare the same instants.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
