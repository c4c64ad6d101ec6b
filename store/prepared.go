package store

import (
	"context"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// maxPrepared bounds the statements a DB keeps prepared. The store's
// statements are fixed strings, but a few are built for a number of rows
// (EnqueueMessages); past the bound a statement runs
// unprepared.
const maxPrepared = 256

// prepareTimeout bounds a background preparation.
const prepareTimeout = 5 * time.Second

// statements keeps the store's statements prepared. PostgreSQL then parses
// and analyses a statement once per connection instead of at every
// execution, and lib/pq sends only Bind and Execute; SQLite compiles it
// once. database/sql prepares a kept statement on each pool connection the
// first time it runs there (inside a transaction too: Tx.Stmt), and again
// on a connection that replaces a broken one; both databases prepare it
// again by themselves after a schema change.
//
// A statement's first use runs unprepared and starts its preparation in the
// background: preparing in the caller would need a second connection while
// the caller's transaction holds one (on SQLite, the only one), and a pool
// full of such transactions would wait on itself.
type statements struct {
	db     *sqlx.DB
	ctx    context.Context // ends at close, ending the preparations in progress
	cancel context.CancelFunc
	mu     sync.RWMutex
	m      map[string]*sqlx.Stmt // by the query as the store writes it, with ? placeholders; nil while being prepared
	wg     sync.WaitGroup
}

func newStatements(db *sqlx.DB) *statements {
	ctx, cancel := context.WithCancel(context.Background())
	return &statements{db: db, ctx: ctx, cancel: cancel, m: make(map[string]*sqlx.Stmt)}
}

// prepared returns the kept statement for query, or nil when it has none
// (yet): the caller then runs the query unprepared.
func (s *statements) prepared(query string) *sqlx.Stmt {
	s.mu.RLock()
	st, seen := s.m[query]
	s.mu.RUnlock()
	if seen {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.m[query]; seen || len(s.m) >= maxPrepared || s.ctx.Err() != nil {
		return nil
	}
	s.m[query] = nil
	s.wg.Go(func() { s.prepare(query) })
	return nil
}

// prepare prepares query (in the dialect's placeholders) and keeps it;
// when that fails (the database is away, the table is not there yet), a
// later use tries again.
func (s *statements) prepare(query string) {
	ctx, cancel := context.WithTimeout(s.ctx, prepareTimeout)
	defer cancel()
	st, err := s.db.PreparexContext(ctx, s.db.Rebind(query))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.m, query)
		return
	}
	s.m[query] = st
}

// close ends the preparations in progress and closes the kept statements.
func (s *statements) close() {
	s.mu.Lock()
	s.cancel() // under the lock: no preparation starts after it
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for q, st := range s.m {
		if st != nil {
			_ = st.Close()
		}
		delete(s.m, q)
	}
}

// unprepared returns q without the kept statements. The outbox's
// statements other than the INSERT use it: their table churns (every mail
// is inserted, claimed and recorded), and a statement prepared while it
// was small can keep a plan made for a small table, such as a sequential
// scan and a sort for the claim, until the next ANALYZE (never, where
// autovacuum is off). They run once per batch or per mail, where parsing
// them again costs nothing that shows.
func (q *Queries) unprepared() *Queries {
	if q.stmts == nil {
		return q
	}
	c := *q
	c.stmts = nil
	return &c
}
