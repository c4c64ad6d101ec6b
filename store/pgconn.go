package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// A PostgreSQL path that accepts bytes and never answers (a stuck pooler,
// proxy or sidecar) is not found by TCP keepalive or TCP_USER_TIMEOUT when
// its first hop is local: the local end acknowledges everything. lib/pq
// answers the end of a call's context by sending a cancel request on a new
// connection, which such a path swallows as well, while the call keeps
// waiting on its socket. So the store's connections are lib/pq's wrapped:
//
//   - each call (and each transaction, each open result set) closes its
//     connection's socket once its context ends, so the call fails with a
//     network error, and the pool discards the connection (IsValid);
//   - each new connection gets the store's statement_timeout, so that a
//     statement stuck on the server (on locks) ends there too, before the
//     caller's deadline;
//   - a reaper closes connections whose read has waited for longer than
//     reapAfter while their server process is not running a statement: an
//     answer that the path lost, which would otherwise hold the connection
//     until its caller's deadline after the path came back.

// setupTimeout bounds the statement that sets up a new connection.
const setupTimeout = 5 * time.Second

// cancelTimeout bounds a cancel request of lib/pq (sent on a connection of
// its own as a call's context ends), whatever connect_timeout says: lib/pq
// waits for the cancel of a prepared statement's execution to finish before
// the call returns, and a path that swallows it would hold the call for the
// whole connect_timeout. A server that answers takes a round trip or two.
const cancelTimeout = 500 * time.Millisecond

// stmtCloseTimeout bounds the closing of a prepared statement or of a
// connection, which database/sql does without a context.
const stmtCloseTimeout = 5 * time.Second

// pgConnector opens the store's PostgreSQL connections (see above).
type pgConnector struct {
	pq               *pq.Connector
	statementTimeout time.Duration // 0: leave the server's setting
	conns            *pgConns
}

func newPGConnector(dsn string, statementTimeout time.Duration, conns *pgConns) (*pgConnector, error) {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	c.Dialer(connectorDialer{PostgresDialer().(pgDialer)})
	return &pgConnector{pq: c, statementTimeout: statementTimeout, conns: conns}, nil
}

// withStatementTimeout returns a connector like c with another statement
// timeout.
func (c *pgConnector) withStatementTimeout(d time.Duration) *pgConnector {
	cc := *c
	cc.statementTimeout = d
	return &cc
}

// dialedKey is the context key under which Connect asks the dialer for the
// socket it dials (lib/pq passes Connect's context to the dialer).
type dialedKey struct{}

// dialed is what the dialer hands back to Connect: the socket, and the
// watch that closes it if Connect's context ends during the start-up.
type dialed struct {
	ctx  context.Context
	conn *socket
	stop func() bool
}

// connectorDialer dials the sockets of a pgConnector: called by its
// Connect (see dialedKey), it hands the socket back to it, closed if
// Connect's context ends first; otherwise lib/pq is sending a cancel
// request, which it bounds by cancelTimeout.
type connectorDialer struct{ pgDialer }

func (p connectorDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d, forConnect := ctx.Value(dialedKey{}).(*dialed)
	if !forConnect {
		ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
		defer cancel()
		c, err := p.d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		s := &cancelSocket{Conn: c, limit: time.Now().Add(cancelTimeout)}
		return s, s.SetDeadline(time.Time{})
	}
	c, err := p.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if d.stop != nil {
		d.stop() // the watch of an earlier attempt (another host, or without TLS)
	}
	s := &socket{Conn: c}
	d.conn, d.stop = s, context.AfterFunc(d.ctx, func() { _ = s.Close() })
	return s, nil
}

// cancelSocket is the socket of a cancel request: no deadline lib/pq sets
// on it goes past limit.
type cancelSocket struct {
	net.Conn
	limit time.Time
}

func (s *cancelSocket) SetDeadline(t time.Time) error {
	if t.IsZero() || t.After(s.limit) {
		t = s.limit
	}
	return s.Conn.SetDeadline(t)
}

// Connect implements driver.Connector.
func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	d := &dialed{ctx: ctx}
	inner, err := c.pq.Connect(context.WithValue(ctx, dialedKey{}, d))
	if d.stop != nil && !d.stop() && err == nil {
		_ = inner.Close()
		err = fmt.Errorf("store: connecting: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, err
	}
	pc, ok := inner.(pqConn)
	if !ok || d.conn == nil {
		_ = inner.Close()
		return nil, fmt.Errorf("store: lib/pq connection %T lacks the interfaces the store wraps", inner)
	}
	cn := &pgConn{inner: pc, sock: d.conn}
	if err := cn.setUp(ctx, c.statementTimeout); err != nil {
		_ = cn.Close()
		return nil, err
	}
	c.conns.add(cn)
	cn.conns = c.conns
	return cn, nil
}

// Driver implements driver.Connector.
func (c *pgConnector) Driver() driver.Driver { return c.pq.Driver() }

// setUp learns the connection's server process id (for the reaper) and
// sets its statement_timeout, in one round trip.
func (c *pgConn) setUp(ctx context.Context, statementTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	query, args := `SELECT pg_backend_pid()`, []driver.NamedValue(nil)
	if statementTimeout > 0 {
		query = `SELECT pg_backend_pid(), set_config('statement_timeout', $1, false)`
		args = []driver.NamedValue{{Ordinal: 1, Value: strconv.FormatInt(statementTimeout.Milliseconds(), 10)}}
	}
	rows, err := c.QueryContext(ctx, query, args)
	if err != nil {
		return fmt.Errorf("store: setting up a connection: %w", err)
	}
	defer rows.Close()
	row := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(row); err != nil {
		return fmt.Errorf("store: setting up a connection: %w", err)
	}
	pid, ok := row[0].(int64)
	if !ok {
		return fmt.Errorf("store: setting up a connection: pg_backend_pid() gave %T", row[0])
	}
	c.pid = int32(pid)
	return nil
}

// pqConn is what the store uses of a lib/pq connection.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// pgConn is a lib/pq connection whose calls end with their context.
type pgConn struct {
	inner  pqConn
	sock   *socket
	pid    int32
	conns  *pgConns
	broken atomic.Bool // the socket was closed under the driver: never reuse
	reaped atomic.Bool // by the reaper
}

// watch closes the socket once ctx ends, until the returned stop is called;
// stop reports whether that happened.
func (c *pgConn) watch(ctx context.Context) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	stopWatch := context.AfterFunc(ctx, c.kill)
	return func() bool {
		if stopWatch() {
			return false
		}
		// The socket is being closed, if it is not yet: the driver may
		// not have seen it fail, the pool must not hand it out again.
		c.broken.Store(true)
		return true
	}
}

// kill closes the socket under the driver, failing the call in progress.
func (c *pgConn) kill() {
	c.broken.Store(true)
	_ = c.sock.Close()
}

// reap closes the socket of a connection whose server process is not
// running the statement the connection waits for: its answer was lost.
func (c *pgConn) reap() {
	c.reaped.Store(true)
	c.kill()
}

// ended wraps the error of a call that failed because the store closed its
// socket (killed: its context ended), so that it says why rather than "use
// of closed network connection".
func (c *pgConn) ended(ctx context.Context, killed bool, err error) error {
	switch {
	case err == nil:
		return nil
	case c.reaped.Load():
		return fmt.Errorf("store: PostgreSQL was not running the statement this connection waited for (its answer was lost on the way); connection closed: %w", err)
	case killed:
		return fmt.Errorf("store: no answer from PostgreSQL before the end of the call (%w); connection closed: %w", context.Cause(ctx), err)
	}
	return err
}

// watched runs call with its socket watched over ctx.
func watched[T any](c *pgConn, ctx context.Context, call func() (T, error)) (T, error) {
	stop := c.watch(ctx)
	v, err := call()
	return v, c.ended(ctx, stop(), err)
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return watched(c, ctx, func() (driver.Result, error) { return c.inner.ExecContext(ctx, query, args) })
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	stop := c.watch(ctx)
	rows, err := c.inner.QueryContext(ctx, query, args)
	if err != nil {
		return nil, c.ended(ctx, stop(), err)
	}
	return newPGRows(ctx, c, rows, stop)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := watched(c, ctx, func() (driver.Stmt, error) { return c.inner.PrepareContext(ctx, query) })
	if err != nil {
		return nil, err
	}
	ps, ok := st.(pqStmt)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("store: lib/pq statement %T lacks the interfaces the store wraps", st)
	}
	return &pgStmt{inner: ps, conn: c}, nil
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// BeginTx watches the transaction's context until it commits or rolls
// back: Commit and Rollback take no context of their own.
func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	stop := c.watch(ctx)
	tx, err := c.inner.BeginTx(ctx, opts)
	if err != nil {
		return nil, c.ended(ctx, stop(), err)
	}
	return &pgTx{inner: tx, conn: c, ctx: ctx, stop: stop}, nil
}

func (c *pgConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *pgConn) Ping(ctx context.Context) error {
	_, err := watched(c, ctx, func() (struct{}, error) { return struct{}{}, c.inner.Ping(ctx) })
	return err
}

func (c *pgConn) ResetSession(ctx context.Context) error {
	if c.broken.Load() {
		return driver.ErrBadConn
	}
	return c.inner.ResetSession(ctx)
}

func (c *pgConn) IsValid() bool { return !c.broken.Load() && c.inner.IsValid() }

func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error { return c.inner.CheckNamedValue(nv) }

// Close bounds lib/pq's goodbye to the server by stmtCloseTimeout.
func (c *pgConn) Close() error {
	if c.conns != nil {
		c.conns.remove(c)
	}
	_ = c.sock.SetDeadline(time.Now().Add(stmtCloseTimeout))
	return c.inner.Close()
}

// pgTx ends the watch of its transaction's context when it ends.
type pgTx struct {
	inner driver.Tx
	conn  *pgConn
	ctx   context.Context
	stop  func() bool
}

func (t *pgTx) Commit() error {
	err := t.inner.Commit()
	return t.conn.ended(t.ctx, t.stop(), err)
}

func (t *pgTx) Rollback() error {
	err := t.inner.Rollback()
	return t.conn.ended(t.ctx, t.stop(), err)
}

// pqStmt is what the store uses of a lib/pq prepared statement.
type pqStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// pgStmt is a prepared statement whose executions end with their context.
type pgStmt struct {
	inner pqStmt
	conn  *pgConn
}

func (s *pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return watched(s.conn, ctx, func() (driver.Result, error) { return s.inner.ExecContext(ctx, args) })
}

func (s *pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	stop := s.conn.watch(ctx)
	rows, err := s.inner.QueryContext(ctx, args)
	if err != nil {
		return nil, s.conn.ended(ctx, stop(), err)
	}
	return newPGRows(ctx, s.conn, rows, stop)
}

// Close is bounded by stmtCloseTimeout: it waits for the server's answer.
func (s *pgStmt) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), stmtCloseTimeout)
	defer cancel()
	_, err := watched(s.conn, ctx, func() (struct{}, error) { return struct{}{}, s.inner.Close() })
	return err
}

func (s *pgStmt) NumInput() int { return s.inner.NumInput() }

// Exec and Query are driver.Stmt's; database/sql calls the Context forms.
func (s *pgStmt) Exec(args []driver.Value) (driver.Result, error) { return s.inner.Exec(args) } //nolint:staticcheck // required by driver.Stmt

func (s *pgStmt) Query(args []driver.Value) (driver.Rows, error) { return s.inner.Query(args) } //nolint:staticcheck // required by driver.Stmt

// pqRows is what database/sql uses of lib/pq's result sets.
type pqRows interface {
	driver.Rows
	driver.RowsNextResultSet
	driver.RowsColumnTypeScanType
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypePrecisionScale
}

// pgRows is a result set read under its query's context: its rows arrive
// as it is read, until Close.
type pgRows struct {
	pqRows
	conn *pgConn
	ctx  context.Context
	stop func() bool
	once sync.Once
}

func newPGRows(ctx context.Context, c *pgConn, rows driver.Rows, stop func() bool) (driver.Rows, error) {
	pr, ok := rows.(pqRows)
	if !ok {
		_ = rows.Close()
		stop()
		return nil, fmt.Errorf("store: lib/pq rows %T lack the interfaces the store wraps", rows)
	}
	return &pgRows{pqRows: pr, conn: c, ctx: ctx, stop: stop}, nil
}

func (r *pgRows) Next(dest []driver.Value) error {
	err := r.pqRows.Next(dest)
	if err != nil && err != io.EOF {
		// The store may have closed the socket under this read.
		return r.conn.ended(r.ctx, r.conn.broken.Load(), err)
	}
	return err
}

func (r *pgRows) Close() error {
	err := r.pqRows.Close()
	var killed bool
	r.once.Do(func() { killed = r.stop() })
	return r.conn.ended(r.ctx, killed, err)
}

// socket is a connection's TCP (or Unix) socket, which records since when a
// read waits for data (for the reaper).
type socket struct {
	net.Conn
	readingSince atomic.Int64 // UnixNano; 0 while no read waits
}

func (s *socket) Read(b []byte) (int, error) {
	s.readingSince.Store(time.Now().UnixNano())
	n, err := s.Conn.Read(b)
	s.readingSince.Store(0)
	return n, err
}

// pgConns are the open connections of a connector and its copies, for the
// reaper.
type pgConns struct {
	mu sync.Mutex
	m  map[*pgConn]struct{}
}

func newPGConns() *pgConns { return &pgConns{m: make(map[*pgConn]struct{})} }

func (s *pgConns) add(c *pgConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[c] = struct{}{}
}

func (s *pgConns) remove(c *pgConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// waiting is a connection whose read has waited since a moment.
type waiting struct {
	conn  *pgConn
	since int64 // UnixNano
}

// waitingBefore returns the connections whose read has waited since before t.
func (s *pgConns) waitingBefore(t time.Time) []waiting {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []waiting
	for c := range s.m {
		if since := c.sock.readingSince.Load(); since != 0 && since < t.UnixNano() && !c.broken.Load() {
			out = append(out, waiting{conn: c, since: since})
		}
	}
	return out
}
