package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/store"
)

// database is one database the harness created and drops at the end.
type database struct {
	name  string
	url   string // USEREMAIL_DATABASE_URL of the servers
	drop  func() error
	store *store.DB
}

// createPostgres creates a fresh database next to the one adminURL names.
func createPostgres(ctx context.Context, adminURL, name string) (*database, error) {
	admin, err := sql.Open("postgres", adminURL)
	if err != nil {
		return nil, err
	}
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		admin.Close()
		return nil, err
	}
	u.Path = "/" + name
	return &database{name: name, url: u.String(), drop: func() error {
		defer admin.Close()
		_, err := admin.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		return err
	}}, nil
}

// createSQLite names a fresh SQLite file in dir.
func createSQLite(dir, name string) *database {
	return &database{name: name, url: "sqlite:" + filepath.Join(dir, name+".db"), drop: func() error { return nil }}
}

// seeded is what the harness knows of the seeded data.
type seeded struct {
	users      int
	minID      int64
	maxID      int64
	sessions   []benchSession
	unverified []pendingEmail // the unverified second addresses
}

type benchSession struct {
	userID int64
	id     string
	csrf   string
}

// pendingEmail is an unverified address a verify link can be made for.
type pendingEmail struct {
	userID  int64
	email   string
	emailID int64
}

const (
	benchPassword = "bench-password-0123"
	benchDomain   = "bench.example"
)

// primaryAddress is the primary address of a seeded user.
func primaryAddress(id int64) string { return fmt.Sprintf("u%d@%s", id, benchDomain) }

// seed fills an empty, migrated database with users users in one batch
// after another: each with a verified primary address u{id}@bench.example,
// every other one with a second, unverified address w{id}@bench.example;
// all share the one real argon2id hash passwordHash. The statements are
// INSERT … SELECT over a generated series, so a batch is one round trip;
// they write the same columns as store.CreateUser and store.InsertEmail.
// Then it inserts sessions, rows hashed as session.Manager.Create
// stores them, for users spread evenly over the ids.
func seed(ctx context.Context, db *store.DB, users, sessions int, passwordHash string, progress func(done int)) (*seeded, error) {
	// The generated addresses must be what the service's normalization makes
	// of them, or logins and links would not find them.
	for _, raw := range []string{primaryAddress(1234567), "w1234567@" + benchDomain} {
		a, err := address.Normalize(raw)
		if err != nil || a.Email != raw || a.Key != raw {
			return nil, fmt.Errorf("seed: %s normalizes to %+v (%v)", raw, a, err)
		}
	}
	x := db.SQL()
	pg := db.Dialect() == store.Postgres
	rb := func(q string) string {
		if pg {
			return sqlx.Rebind(sqlx.DOLLAR, q)
		}
		return q
	}
	series := `SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c) AS s`
	if pg {
		series = `SELECT x FROM generate_series(1, ?::int) AS s(x)`
	}
	now := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	const batch = 50000
	for done := 0; done < users; {
		n := min(batch, users-done)
		tx, err := x.BeginTxx(ctx, nil)
		if err != nil {
			return nil, err
		}
		var before sql.NullInt64
		if err := tx.GetContext(ctx, &before, `SELECT MAX(id) FROM users`); err != nil {
			tx.Rollback()
			return nil, err
		}
		stmts := []struct {
			q    string
			args []any
		}{
			{`INSERT INTO users (password_hash, date_joined) SELECT ?, ? FROM (` + series + `) AS g`, []any{passwordHash, now, n}},
			{`INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
				SELECT id, 'u' || id || '@` + benchDomain + `', 'u' || id || '@` + benchDomain + `', TRUE, TRUE, ?, ?
				FROM users WHERE id > ? ORDER BY id`, []any{now, now, before.Int64}},
			{`INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
				SELECT id, 'w' || id || '@` + benchDomain + `', 'w' || id || '@` + benchDomain + `', FALSE, FALSE, ?, NULL
				FROM users WHERE id > ? AND id % 2 = 0 ORDER BY id`, []any{now, before.Int64}},
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, rb(s.q), s.args...); err != nil {
				tx.Rollback()
				return nil, fmt.Errorf("seed: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		done += n
		if progress != nil {
			progress(done)
		}
	}

	s := &seeded{users: users}
	var count int64
	if err := x.QueryRowxContext(ctx, `SELECT MIN(id), MAX(id), COUNT(*) FROM users`).Scan(&s.minID, &s.maxID, &count); err != nil {
		return nil, err
	}
	if count != int64(users) || s.maxID-s.minID+1 != count {
		return nil, fmt.Errorf("seed: users %d..%d, %d rows; want %d consecutive ids", s.minID, s.maxID, count, users)
	}
	rows := []struct {
		ID     int64  `db:"id"`
		UserID int64  `db:"user_id"`
		Email  string `db:"email"`
	}{}
	if err := x.SelectContext(ctx, &rows, `SELECT id, user_id, email FROM emails WHERE NOT verified ORDER BY id`); err != nil {
		return nil, err
	}
	for _, r := range rows {
		s.unverified = append(s.unverified, pendingEmail{userID: r.UserID, email: r.Email, emailID: r.ID})
	}

	// Sessions as session.Manager.Create makes them: 32 random bytes in
	// unpadded URL-safe base64 for the id and the CSRF token, SHA-256 of the
	// id's text stored.
	sessions = min(sessions, users)
	step := int64(users) / int64(sessions)
	for i := 0; i < sessions; {
		var (
			values []string
			args   []any
		)
		for ; i < sessions && len(values) < 500; i++ {
			bs := benchSession{userID: s.minID + int64(i)*step, id: randomToken(), csrf: randomToken()}
			s.sessions = append(s.sessions, bs)
			h := sha256.Sum256([]byte(bs.id))
			values = append(values, "(?, ?, ?, ?, ?, ?)")
			args = append(args, h[:], bs.userID, bs.csrf, now, time.Now().UTC().Truncate(time.Microsecond), now.Add(14*24*time.Hour))
		}
		q := `INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) VALUES ` + strings.Join(values, ", ")
		if _, err := x.ExecContext(ctx, rb(q), args...); err != nil {
			return nil, fmt.Errorf("seed sessions: %w", err)
		}
	}
	return s, nil
}

// analyze refreshes the planner's statistics after the bulk load, as
// autovacuum would soon after in production (PostgreSQL only).
func analyze(ctx context.Context, db *store.DB) error {
	if db.Dialect() != store.Postgres {
		return nil
	}
	_, err := db.SQL().ExecContext(ctx, `VACUUM ANALYZE`)
	return err
}

// baselineDue divides the outbox: the baseline's rows are due in the year
// 9999, the service's before this.
var baselineDue = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)

// pendingOutbox counts the service's undelivered mail.
func pendingOutbox(ctx context.Context, db *store.DB) (int64, error) {
	var n int64
	q := `SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending') AND next_attempt_at < ?`
	return n, db.SQL().GetContext(ctx, &n, db.SQL().Rebind(q), baselineDue)
}

// clearBaselineMail deletes the outbox rows the baseline queued, so that
// they do not pile up in the table the service's dispatcher claims from,
// and on PostgreSQL vacuums and analyses the table, as autovacuum would.
func clearBaselineMail(ctx context.Context, db *store.DB) error {
	if _, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(`DELETE FROM outbox WHERE next_attempt_at >= ?`), baselineDue); err != nil {
		return err
	}
	if db.Dialect() != store.Postgres {
		return nil
	}
	_, err := db.SQL().ExecContext(ctx, `VACUUM (ANALYZE) outbox`)
	return err
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// backendPIDs returns the PostgreSQL backends connected to db's database
// (PostgreSQL runs on this machine: their CPU time is in /proc).
func backendPIDs(ctx context.Context, db *store.DB) []int {
	if db.Dialect() != store.Postgres {
		return nil
	}
	var pids []int
	_ = db.SQL().SelectContext(ctx, &pids, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	return pids
}

// unverifyAll marks every secondary address unverified again, so that each
// run of the verify scenario verifies addresses for real (a link for an
// address verified already answers 200 without writing). It runs between
// runs, outside the measured time.
func unverifyAll(ctx context.Context, db *store.DB) error {
	_, err := db.SQL().ExecContext(ctx, `UPDATE emails SET verified = FALSE, verified_at = NULL WHERE verified AND NOT is_primary`)
	return err
}
