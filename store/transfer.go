package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// ExportedUser is a user as export reads it: the account and its addresses,
// the primary first.
type ExportedUser struct {
	ID           int64     `db:"id"`
	DateJoined   time.Time `db:"date_joined"`
	PasswordHash string    `db:"password_hash"`
	Language     string    `db:"language"`
	Emails       []ExportedEmail
}

// ExportedEmail is one address of an ExportedUser.
type ExportedEmail struct {
	UserID   int64  `db:"user_id"`
	Email    string `db:"email"`
	Verified bool   `db:"verified"`
	Primary  bool   `db:"is_primary"`
}

// Snapshot runs fn on Queries that read one consistent state of the
// database while others go on writing: a read-only REPEATABLE READ
// transaction on PostgreSQL, a deferred read transaction on SQLite (WAL
// lets the writer go on). fn must not write.
func (db *DB) Snapshot(ctx context.Context, fn func(q *Queries) error) error {
	if db.dialect == Postgres {
		tx, err := db.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return db.translate(err)
		}
		defer tx.Rollback()
		return fn(&Queries{ext: tx, dialect: db.dialect, writes: db.writes})
	}
	// The DSN makes every BeginTx immediate, which would hold the write
	// lock for the whole read: begin by hand on one connection instead.
	conn, err := db.db.Connx(ctx)
	if err != nil {
		return db.translate(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return db.translate(err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
	return fn(&Queries{ext: connExt{conn}, dialect: db.dialect, writes: db.writes})
}

// connExt makes a *sqlx.Conn of SQLite an sqlx.ExtContext.
type connExt struct{ *sqlx.Conn }

func (connExt) DriverName() string { return string(SQLite) }

func (connExt) BindNamed(query string, arg any) (string, []any, error) {
	return sqlx.BindNamed(sqlx.QUESTION, query, arg)
}

// ExportPage returns up to limit users with ids above after, in id order,
// with their addresses: two statements, whatever the page size.
func (q *Queries) ExportPage(ctx context.Context, after int64, limit int) ([]ExportedUser, error) {
	const qUsers = `SELECT id, date_joined, password_hash, language FROM users WHERE id > ? ORDER BY id LIMIT ?`
	const qEmails = `SELECT user_id, email, verified, is_primary FROM emails
		WHERE user_id >= ? AND user_id <= ? ORDER BY user_id, is_primary DESC, id`
	users := []ExportedUser{}
	if err := q.selectAll(ctx, &users, qUsers, after, limit); err != nil || len(users) == 0 {
		return users, err
	}
	emails := []ExportedEmail{}
	if err := q.selectAll(ctx, &emails, qEmails, users[0].ID, users[len(users)-1].ID); err != nil {
		return nil, err
	}
	i := 0
	for _, e := range emails {
		for i < len(users) && users[i].ID < e.UserID {
			i++
		}
		if i < len(users) && users[i].ID == e.UserID {
			users[i].Emails = append(users[i].Emails, e)
		}
	}
	return users, nil
}

// CountUsers returns how many users there are.
func (q *Queries) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	return n, q.get(ctx, &n, `SELECT count(*) FROM users`)
}

// ImportedUser is a user to insert with its own id, as import brings it.
type ImportedUser struct {
	ID           int64
	DateJoined   time.Time
	PasswordHash string
	Language     string
	Emails       []ImportedEmail
}

// ImportedEmail is one address of an ImportedUser, normalized.
type ImportedEmail struct {
	Email, Key        string
	Verified, Primary bool
}

// Parameters per row of the multi-row INSERTs of InsertImported, and rows
// per statement: well under SQLite's 32766 and PostgreSQL's 65535
// parameters a statement.
const (
	importUserCols  = 4
	importEmailCols = 7
	importMaxRows   = 1000
)

// InsertImported inserts users with their ids and their addresses in
// multi-row INSERTs. The database's constraints refuse a taken id
// (ErrEmailTaken too: it is a unique violation) and an address verified or
// primary for two users (ErrEmailTaken). The addresses are verified as of
// now.
func (q *Queries) InsertImported(ctx context.Context, users []ImportedUser, now time.Time) error {
	q = q.unprepared() // built per batch size, run a few times: not worth keeping
	now = utc(now)
	if q.dialect == Postgres {
		return q.insertImportedArrays(ctx, users, now)
	}
	const userInsert = `INSERT INTO users (id, date_joined, password_hash, language) VALUES `
	for start := 0; start < len(users); start += importMaxRows {
		chunk := users[start:min(start+importMaxRows, len(users))]
		args := make([]any, 0, len(chunk)*importUserCols)
		for _, u := range chunk {
			args = append(args, u.ID, utc(u.DateJoined), u.PasswordHash, u.Language)
		}
		if _, err := q.exec(ctx, userInsert+rowsOf(len(chunk), importUserCols), args...); err != nil {
			return err
		}
	}
	const emailInsert = `INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at) VALUES `
	args := make([]any, 0, importMaxRows*importEmailCols)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := q.exec(ctx, emailInsert+rowsOf(len(args)/importEmailCols, importEmailCols), args...)
		args = args[:0]
		return err
	}
	for _, u := range users {
		for _, e := range u.Emails {
			var verifiedAt *time.Time
			if e.Verified {
				verifiedAt = &now
			}
			args = append(args, u.ID, e.Email, e.Key, e.Verified, e.Primary, now, verifiedAt)
			if len(args) == cap(args) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// insertImportedArrays is InsertImported on PostgreSQL: each table's rows
// go as one array per column, unnested by the server, so that a batch is
// two statements of a few parameters whatever its size.
func (q *Queries) insertImportedArrays(ctx context.Context, users []ImportedUser, now time.Time) error {
	var (
		ids, joined, hashes, langs []string
		owners, emails, keys       []string
		verified, primary          []bool
	)
	for _, u := range users {
		id := strconv.FormatInt(u.ID, 10)
		ids = append(ids, id)
		joined = append(joined, utc(u.DateJoined).Format(time.RFC3339Nano))
		hashes = append(hashes, u.PasswordHash)
		langs = append(langs, u.Language)
		for _, e := range u.Emails {
			owners, emails, keys = append(owners, id), append(emails, e.Email), append(keys, e.Key)
			verified, primary = append(verified, e.Verified), append(primary, e.Primary)
		}
	}
	// id is GENERATED ALWAYS: an explicit one needs OVERRIDING SYSTEM VALUE.
	const qUsers = `INSERT INTO users (id, date_joined, password_hash, language) OVERRIDING SYSTEM VALUE
		SELECT * FROM unnest(?::bigint[], ?::timestamptz[], ?::text[], ?::text[])`
	if _, err := q.exec(ctx, qUsers, pq.Array(ids), pq.Array(joined), pq.Array(hashes), pq.Array(langs)); err != nil {
		return err
	}
	const qEmails = `INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
		SELECT u, e, k, v, p, ?, CASE WHEN v THEN ?::timestamptz END
		FROM unnest(?::bigint[], ?::text[], ?::text[], ?::boolean[], ?::boolean[]) AS a (u, e, k, v, p)`
	_, err := q.exec(ctx, qEmails, now, now, pq.Array(owners), pq.Array(emails), pq.Array(keys), pq.Array(verified), pq.Array(primary))
	return err
}

// rowsOf is "(?, ?), (?, ?)" for n rows of cols parameters.
func rowsOf(n, cols int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// importCacheKiB is the SQLite page cache of a connection that imports:
// the tables' and indexes' pages of a large import stay in memory instead
// of going back and forth to the file. (SQLite's default is 2 MiB.)
const importCacheKiB = 64 << 10

// PrepareBulkInsert readies q's connection for a large import: on SQLite
// a larger page cache, for the rest of the connection's life.
func (q *Queries) PrepareBulkInsert(ctx context.Context) error {
	if q.dialect != SQLite {
		return nil
	}
	_, err := q.ext.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, importCacheKiB))
	return q.translate(err)
}

// UserExists reports whether a user has id.
func (q *Queries) UserExists(ctx context.Context, id int64) (bool, error) {
	var n int64
	err := q.get(ctx, &n, `SELECT count(*) FROM users WHERE id = ?`, id)
	return n > 0, err
}

// Savepoint runs fn inside a savepoint of q's transaction and rolls back to
// it when fn fails, so that the transaction goes on after a refused
// statement (PostgreSQL aborts a transaction at its first error otherwise).
func (q *Queries) Savepoint(ctx context.Context, fn func() error) error {
	if _, err := q.ext.ExecContext(ctx, `SAVEPOINT import_batch`); err != nil {
		return q.translate(err)
	}
	if err := fn(); err != nil {
		if _, rerr := q.ext.ExecContext(ctx, `ROLLBACK TO SAVEPOINT import_batch`); rerr != nil {
			return q.translate(rerr)
		}
		return err
	}
	_, err := q.ext.ExecContext(ctx, `RELEASE SAVEPOINT import_batch`)
	return q.translate(err)
}

// MoveUserIDsPast moves the sequence that numbers new users past the
// largest id in the table, so that the next sign-up gets a fresh id after
// users were inserted with their own. On SQLite, AUTOINCREMENT does this
// by itself (sqlite_sequence keeps the largest id ever inserted).
func (q *Queries) MoveUserIDsPast(ctx context.Context) error {
	if q.dialect != Postgres {
		return nil
	}
	// Never backwards: ids of deleted users stay used.
	const query = `SELECT setval(pg_get_serial_sequence('users', 'id'), GREATEST(max(id),
		coalesce(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)))
		FROM users HAVING max(id) IS NOT NULL`
	rows, err := q.ext.QueryContext(ctx, query)
	if err != nil {
		return q.translate(err)
	}
	return q.translate(rows.Close())
}

// StagedUser is a user of a Django dump, held in the import's staging
// table until the dump's addresses have been read too.
type StagedUser struct {
	ID           int64     `db:"id"`
	Seq          int64     `db:"seq"` // the record's position in the dump
	Record       string    `db:"record"`
	DateJoined   time.Time `db:"date_joined"`
	PasswordHash string    `db:"password_hash"`
	Scheme       string    `db:"scheme"`
	Email        string    `db:"email"`
	Inactive     bool      `db:"inactive"`
}

// StagedAddress is an address record of a Django dump, staged.
type StagedAddress struct {
	UserID   int64  `db:"user_id"`
	Seq      int64  `db:"seq"`
	Record   string `db:"record"`
	Email    string `db:"email"`
	Verified bool   `db:"verified"`
	Primary  bool   `db:"is_primary"`
}

// CreateStaging creates the staging tables of a Django import: temporary,
// in q's transaction, so that a rollback takes them away; DropStaging
// drops them before the commit.
func (q *Queries) CreateStaging(ctx context.Context) error {
	ts := "TIMESTAMP"
	if q.dialect == Postgres {
		ts = "TIMESTAMPTZ"
	}
	for _, stmt := range []string{
		`CREATE TEMP TABLE import_users (id BIGINT NOT NULL, seq BIGINT NOT NULL, record TEXT NOT NULL,
			date_joined ` + ts + ` NOT NULL, password_hash TEXT NOT NULL, scheme TEXT NOT NULL, email TEXT NOT NULL, inactive BOOLEAN NOT NULL)`,
		`CREATE INDEX import_users_id ON import_users (id, seq)`,
		`CREATE TEMP TABLE import_addresses (user_id BIGINT NOT NULL, seq BIGINT NOT NULL, record TEXT NOT NULL,
			email TEXT NOT NULL, verified BOOLEAN NOT NULL, is_primary BOOLEAN NOT NULL)`,
		`CREATE INDEX import_addresses_user ON import_addresses (user_id, seq)`,
	} {
		if _, err := q.ext.ExecContext(ctx, stmt); err != nil {
			return q.translate(err)
		}
	}
	return nil
}

// DropStaging drops the staging tables.
func (q *Queries) DropStaging(ctx context.Context) error {
	_, err := q.ext.ExecContext(ctx, `DROP TABLE import_users`)
	if err == nil {
		_, err = q.ext.ExecContext(ctx, `DROP TABLE import_addresses`)
	}
	return q.translate(err)
}

// StageUsers inserts users into the staging table.
func (q *Queries) StageUsers(ctx context.Context, users []StagedUser) error {
	q = q.unprepared()
	if q.dialect == Postgres {
		var ids, seqs, records, joined, hashes, schemes, emails []string
		var inactive []bool
		for _, u := range users {
			ids, seqs = append(ids, strconv.FormatInt(u.ID, 10)), append(seqs, strconv.FormatInt(u.Seq, 10))
			records, joined = append(records, u.Record), append(joined, utc(u.DateJoined).Format(time.RFC3339Nano))
			hashes, schemes, emails = append(hashes, u.PasswordHash), append(schemes, u.Scheme), append(emails, u.Email)
			inactive = append(inactive, u.Inactive)
		}
		const query = `INSERT INTO import_users (id, seq, record, date_joined, password_hash, scheme, email, inactive)
			SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::boolean[])`
		_, err := q.exec(ctx, query, pq.Array(ids), pq.Array(seqs), pq.Array(records), pq.Array(joined),
			pq.Array(hashes), pq.Array(schemes), pq.Array(emails), pq.Array(inactive))
		return err
	}
	const cols = 8
	args := make([]any, 0, len(users)*cols)
	for _, u := range users {
		args = append(args, u.ID, u.Seq, u.Record, utc(u.DateJoined), u.PasswordHash, u.Scheme, u.Email, u.Inactive)
	}
	_, err := q.exec(ctx, `INSERT INTO import_users (id, seq, record, date_joined, password_hash, scheme, email, inactive) VALUES `+rowsOf(len(users), cols), args...)
	return err
}

// StageAddresses inserts addresses into the staging table.
func (q *Queries) StageAddresses(ctx context.Context, addrs []StagedAddress) error {
	q = q.unprepared()
	if q.dialect == Postgres {
		var users, seqs, records, emails []string
		var verified, primary []bool
		for _, a := range addrs {
			users, seqs = append(users, strconv.FormatInt(a.UserID, 10)), append(seqs, strconv.FormatInt(a.Seq, 10))
			records, emails = append(records, a.Record), append(emails, a.Email)
			verified, primary = append(verified, a.Verified), append(primary, a.Primary)
		}
		const query = `INSERT INTO import_addresses (user_id, seq, record, email, verified, is_primary)
			SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::boolean[], ?::boolean[])`
		_, err := q.exec(ctx, query, pq.Array(users), pq.Array(seqs), pq.Array(records), pq.Array(emails),
			pq.Array(verified), pq.Array(primary))
		return err
	}
	const cols = 6
	args := make([]any, 0, len(addrs)*cols)
	for _, a := range addrs {
		args = append(args, a.UserID, a.Seq, a.Record, a.Email, a.Verified, a.Primary)
	}
	_, err := q.exec(ctx, `INSERT INTO import_addresses (user_id, seq, record, email, verified, is_primary) VALUES `+rowsOf(len(addrs), cols), args...)
	return err
}

// AnalyzeStaging gathers the staging tables' statistics, for the plans of
// the reads that follow (autovacuum never sees temporary tables).
func (q *Queries) AnalyzeStaging(ctx context.Context) error {
	_, err := q.ext.ExecContext(ctx, `ANALYZE import_users`)
	if err == nil {
		_, err = q.ext.ExecContext(ctx, `ANALYZE import_addresses`)
	}
	return q.translate(err)
}

// StagedUsers returns up to limit staged users after (id, seq), in that
// order.
func (q *Queries) StagedUsers(ctx context.Context, afterID, afterSeq int64, limit int) ([]StagedUser, error) {
	const query = `SELECT id, seq, record, date_joined, password_hash, scheme, email, inactive FROM import_users
		WHERE (id, seq) > (?, ?) ORDER BY id, seq LIMIT ?`
	users := []StagedUser{}
	return users, q.unprepared().selectAll(ctx, &users, query, afterID, afterSeq, limit)
}

// StagedAddresses returns the staged addresses of the users with ids from
// from to to, by user and then in dump order.
func (q *Queries) StagedAddresses(ctx context.Context, from, to int64) ([]StagedAddress, error) {
	const query = `SELECT user_id, seq, record, email, verified, is_primary FROM import_addresses
		WHERE user_id >= ? AND user_id <= ? ORDER BY user_id, seq`
	addrs := []StagedAddress{}
	return addrs, q.unprepared().selectAll(ctx, &addrs, query, from, to)
}

// OrphanAddress returns the first staged address whose user is not
// staged; ErrNotFound when there is none.
func (q *Queries) OrphanAddress(ctx context.Context) (StagedAddress, error) {
	const query = `SELECT user_id, seq, record, email, verified, is_primary FROM import_addresses a
		WHERE NOT EXISTS (SELECT 1 FROM import_users u WHERE u.id = a.user_id) ORDER BY seq LIMIT 1`
	var a StagedAddress
	return a, q.unprepared().get(ctx, &a, query)
}
