package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/lib/pq"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The store's sentinel errors. Driver errors are translated into them in one
// place (translate); the returned error wraps both the sentinel and the
// driver's error, so errors.Is works and logs keep the detail.
var (
	// ErrNotFound: no row matched (RowsAffected()==0 or no result).
	ErrNotFound = errors.New("store: not found")
	// ErrEmailTaken: a uniqueness constraint on addresses refused the change:
	// the address is verified or primary for another user, or the user
	// already holds it.
	ErrEmailTaken = errors.New("store: email address taken")
	// ErrPrimaryUndeletable: the primary address cannot be deleted.
	ErrPrimaryUndeletable = errors.New("store: primary address cannot be deleted")
	// ErrNameTaken: a live admin token has that name already.
	ErrNameTaken = errors.New("store: admin token name taken")
	// ErrUnavailable: the database cannot be reached or is shutting down.
	ErrUnavailable = errors.New("store: database unavailable")
)

// translate maps driver errors to the store's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return errors.Join(ErrNotFound, err)
	case isUniqueViolation(err) && isAdminTokenName(err):
		return errors.Join(ErrNameTaken, err)
	case isUniqueViolation(err):
		return errors.Join(ErrEmailTaken, err)
	case isKeepPrimary(err):
		return errors.Join(ErrPrimaryUndeletable, err)
	case isUnavailable(err):
		return errors.Join(ErrUnavailable, err)
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	return errors.As(err, &se) &&
		(se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// isAdminTokenName recognizes the unique index on live admin token names.
func isAdminTokenName(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Constraint == "admin_tokens_live_name"
	}
	var se *sqlite.Error
	return errors.As(err, &se) && strings.Contains(se.Error(), "admin_tokens.name")
}

// isKeepPrimary recognizes the emails_keep_primary trigger of the migrations.
func isKeepPrimary(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Constraint == "emails_keep_primary"
	}
	var se *sqlite.Error
	return errors.As(err, &se) && strings.Contains(se.Error(), "emails_keep_primary")
}

// isRetryable reports a PostgreSQL deadlock or serialization failure, after
// which the whole transaction may be run again.
func isRetryable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// errBeginOnStandby marks the refusal of a transaction's BEGIN by a
// standby: lib/pq begins every transaction READ WRITE, which PostgreSQL in
// recovery refuses with 0A000 feature_not_supported (beginError).
var errBeginOnStandby = errors.New("store: PostgreSQL is in recovery (a standby) and takes no read-write transaction")

// beginError marks an error of BEGIN that a standby gives.
func beginError(err error) error {
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "0A000" {
		return errors.Join(errBeginOnStandby, err)
	}
	return err
}

// isWriteRefusal recognizes a write the database refused for want of room
// or because it is read-only: SQLITE_FULL, SQLITE_READONLY; PostgreSQL's
// 53100 disk_full and 25006 read_only_sql_transaction (a standby, or
// default_transaction_read_only), and a standby's refusal of BEGIN.
func isWriteRefusal(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errBeginOnStandby) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code == "53100" || pe.Code == "25006"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
			return true
		}
	}
	return false
}

// isUnavailable recognizes a database that cannot be reached, is shutting
// down, is too slow to answer within the caller's deadline, or refuses
// writes (isWriteRefusal).
func isUnavailable(err error) bool {
	if isWriteRefusal(err) {
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01..57P03: shutting down or starting up;
		// 53300: too many connections.
		//
		// 57014 (query_canceled) too: the store never cancels a statement
		// of its own accord, so a cancellation comes from lib/pq when the
		// caller's context is done (it sends a cancel request and the
		// server answers 57014 rather than the context's error), or from
		// an operator's statement_timeout. Either way the database did not
		// answer in time, which is what ErrUnavailable (503) says. A caller
		// that gave up (context.Canceled) sees it too, but no one reads
		// that answer.
		c := string(pe.Code)
		return strings.HasPrefix(c, "08") || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300" || c == "57014"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// The primary result code is the low byte of an extended one.
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
			return true
		}
	}
	// lib/pq reports a connection it could not make as a plain error.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "bad connection")
}
