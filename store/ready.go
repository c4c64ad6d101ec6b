package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// writeRefusalMemory is how long a write the database refused (a full
// disk, a read-only database) makes CheckWrites fail. Then it passes again
// by itself, and the next refusal, if any, counts anew: once readiness
// fails, traffic may stop, and with it the writes that would tell.
const writeRefusalMemory = 10 * time.Second

// minFreeBytes is the least free space CheckWrites wants beside an SQLite
// database: about what the write-ahead log grows by between two
// checkpoints (1000 pages of 4 KiB).
const minFreeBytes = 4 << 20

// writeHealth remembers the last write the database refused.
type writeHealth struct {
	mu        sync.Mutex
	refusedAt time.Time
	refusal   error
}

// record remembers err if it is a write the database refused.
func (w *writeHealth) record(err error) {
	if w == nil || !isWriteRefusal(err) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refusedAt, w.refusal = time.Now(), err
}

// recent returns the refusal of the last writeRefusalMemory, if any.
func (w *writeHealth) recent() (time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refusal == nil || time.Since(w.refusedAt) > writeRefusalMemory {
		return time.Time{}, nil
	}
	return w.refusedAt, w.refusal
}

// translate is translate, remembering the writes the database refused.
func (q *Queries) translate(err error) error {
	err = translate(err)
	q.writes.record(err)
	return err
}

// ErrCannotWrite: the database answers but cannot take writes now (its disk
// is full, it is read-only). CheckWrites returns it, joined with the cause.
var ErrCannotWrite = errors.New("store: the database cannot take writes")

// CheckWrites returns an error wrapping ErrCannotWrite while the database
// cannot take writes, and nil otherwise. It writes nothing, so that it can
// serve a readiness probe: on PostgreSQL it asks whether the session is
// read-only (default_transaction_read_only, or a standby); on SQLite it
// checks that the file system is writable and has room (minFreeBytes); on
// both it fails for writeRefusalMemory after the database refused a write.
func (db *DB) CheckWrites(ctx context.Context) error {
	if at, err := db.writes.recent(); err != nil {
		return fmt.Errorf("%w: a write was refused %v ago: %w", ErrCannotWrite, time.Since(at).Round(time.Millisecond), err)
	}
	switch db.dialect {
	case Postgres:
		var readOnly string
		if err := db.db.GetContext(ctx, &readOnly, `SELECT current_setting('transaction_read_only')`); err != nil {
			return translate(err)
		}
		if readOnly == "on" {
			return fmt.Errorf("%w: PostgreSQL is read-only (a standby, or default_transaction_read_only is on)", ErrCannotWrite)
		}
	case SQLite:
		dir := filepath.Dir(db.sqlitePath)
		free, readOnly, err := diskRoom(dir)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %s: %w", ErrCannotWrite, dir, err)
		case readOnly:
			return fmt.Errorf("%w: %s is on a read-only file system", ErrCannotWrite, dir)
		case free < minFreeBytes:
			return fmt.Errorf("%w: %s has %d bytes free, less than %d", ErrCannotWrite, dir, free, minFreeBytes)
		}
	}
	return nil
}

// sqliteFile returns the database file of a sqlite: URL that ParseURL
// accepts.
func sqliteFile(rawURL string) string {
	path, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//"), "?")
	return path
}
