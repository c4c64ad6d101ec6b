// Command baseline is the bare stack useremail is built on, Echo and sqlx on
// the same database and tables, doing the same work per request as
// useremail's hot endpoints and nothing else: no spec validation, no
// generated code, no middleware, no request log, no rate limits, no audit
// trail. It is that stack at its best: it opens the database as the service
// does (store.Open: the same URL rules, pool and driver settings), keeps
// its statements prepared (database/sql prepares each on every connection
// it runs on), and hashes with golang.org/x/crypto/argon2 behind as many
// slots as the service has (one per two CPUs, at least one). The bench
// harness (package main one level up) measures useremail against it in the
// same run; see docs/PERFORMANCE.md.
//
// Per request it does:
//
//	GET  /users/{id}/emails/         session lookup (SHA-256 of the cookie, sessions table), expiry and
//	GET  /users/{id}/primary-email/  ownership check, then the same SELECT as store.EmailsByUser / store.PrimaryEmail
//	POST /users/{id}/emails/         session, CSRF header (constant time), ownership, JSON body; one
//	                                 transaction: user row lock, INSERT of the email, INSERT of an outbox row
//	POST /auth/login/                JSON body, the same SELECT as store.UserByLoginKey, argon2.IDKey with the
//	                                 stored hash's parameters, INSERT of a session
//	POST /users/email-verify/{t}/{u} signer.Verify of the token, one transaction: user row lock, UPDATE of
//	                                 the email guarded by id, user and address
//
// Its outbox rows are due in the year 9999, so that useremail's dispatcher,
// which shares the database, never delivers them; the harness deletes them
// after each run.
//
// Configuration: BASELINE_ADDR, BASELINE_DATABASE_URL (postgres://… or
// sqlite:PATH, as USEREMAIL_DATABASE_URL), BASELINE_SECRET (the link signing
// secret), and USEREMAIL_BENCH_PPROF (an address to serve net/http/pprof on,
// for the harness's -profile-dir).
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on USEREMAIL_BENCH_PPROF
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/argon2"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

type app struct {
	db     *sqlx.DB
	stmts  statements
	slots  chan struct{} // a hash runs holding one
	dummy  string        // the hash unknown addresses are verified against
	signer *signer.Signer
}

func main() {
	if err := run(); err != nil {
		log.Fatal("baseline: ", err)
	}
}

func run() error {
	ctx := context.Background()
	st, err := store.Open(ctx, os.Getenv("BASELINE_DATABASE_URL"))
	if err != nil {
		return err
	}
	defer st.Close()
	sign, err := signer.New([][]byte{[]byte(os.Getenv("BASELINE_SECRET"))}, nil)
	if err != nil {
		return err
	}
	a := &app{
		db:     st.SQL(),
		slots:  make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		dummy:  dummyHash(password.DefaultParams),
		signer: sign,
	}
	if err := a.stmts.prepare(ctx, a.db, st.Dialect()); err != nil {
		return err
	}

	if addr := os.Getenv("USEREMAIL_BENCH_PPROF"); addr != "" {
		go func() { log.Println(http.ListenAndServe(addr, nil)) }()
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	e.GET("/users/:id/emails/", a.listEmails)
	e.GET("/users/:id/primary-email/", a.primaryEmail)
	e.POST("/users/:id/emails/", a.addEmail)
	e.POST("/auth/login/", a.login)
	e.POST("/users/email-verify/:token/:uid", a.verify)

	ln, err := net.Listen("tcp", os.Getenv("BASELINE_ADDR"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}

// statements are the baseline's statements, prepared once at start.
type statements struct {
	session, list, primary, lockUser, insertEmail, insertOutbox, loginUser, insertSession, verify *sqlx.Stmt
}

func (s *statements) prepare(ctx context.Context, db *sqlx.DB, dialect store.Dialect) error {
	lock := `SELECT id FROM users WHERE id = ?`
	if dialect == store.Postgres {
		lock += ` FOR UPDATE`
	}
	for _, p := range []struct {
		st    **sqlx.Stmt
		query string
	}{
		{&s.session, `SELECT user_id, csrf_token, last_seen_at, expires_at FROM sessions WHERE id_hash = ?`},
		{&s.list, `SELECT ` + emailColumns + ` FROM emails WHERE user_id = ? ORDER BY is_primary DESC, id`},
		{&s.primary, `SELECT ` + emailColumns + ` FROM emails WHERE user_id = ? AND is_primary`},
		{&s.lockUser, lock},
		{&s.insertEmail, `INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
			VALUES (?, ?, ?, FALSE, FALSE, ?, NULL) RETURNING ` + emailColumns},
		{&s.insertOutbox, `INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at)
			VALUES ('verify', ?, ?, ?, 'queued', ?, ?)`},
		{&s.loginUser, `SELECT u.id, u.password_hash FROM emails e JOIN users u ON u.id = e.user_id
			WHERE e.email_key = ? AND (e.verified OR e.is_primary)`},
		{&s.insertSession, `INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.verify, `UPDATE emails SET verified = TRUE, verified_at = COALESCE(verified_at, ?)
			WHERE id = ? AND user_id = ? AND email_key = ? RETURNING ` + emailColumns},
	} {
		st, err := db.PreparexContext(ctx, db.Rebind(p.query))
		if err != nil {
			return fmt.Errorf("prepare %s: %w", p.query, err)
		}
		*p.st = st
	}
	return nil
}

type emailRow struct {
	ID        int64     `db:"id"`
	UserID    int64     `db:"user_id"`
	Email     string    `db:"email"`
	Key       string    `db:"email_key"`
	Verified  bool      `db:"verified"`
	Primary   bool      `db:"is_primary"`
	CreatedAt time.Time `db:"created_at"`
}

type emailJSON struct {
	ID       int64  `json:"id"`
	Email    string `json:"email"`
	Verified bool   `json:"verified"`
	Primary  bool   `json:"primary"`
}

func toJSON(e emailRow) emailJSON {
	return emailJSON{ID: e.ID, Email: e.Email, Verified: e.Verified, Primary: e.Primary}
}

const emailColumns = `id, user_id, email, email_key, verified, is_primary, created_at`

var errAuth = echo.NewHTTPError(http.StatusUnauthorized, "not authenticated")

type sessionRow struct {
	UserID     int64     `db:"user_id"`
	CSRFToken  string    `db:"csrf_token"`
	LastSeenAt time.Time `db:"last_seen_at"`
	ExpiresAt  time.Time `db:"expires_at"`
}

// session finds the cookie's session and checks that it acts on {id}.
func (a *app) session(c echo.Context) (sessionRow, error) {
	ck, err := c.Cookie("sessionid")
	if err != nil {
		return sessionRow{}, errAuth
	}
	sum := sha256.Sum256([]byte(ck.Value))
	var s sessionRow
	if err := a.stmts.session.GetContext(c.Request().Context(), &s, sum[:]); err != nil {
		return sessionRow{}, errAuth
	}
	now := time.Now()
	if !now.Before(s.ExpiresAt) || !now.Before(s.LastSeenAt.Add(2*time.Hour)) {
		return sessionRow{}, errAuth
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id != s.UserID {
		return sessionRow{}, echo.NewHTTPError(http.StatusForbidden, "forbidden")
	}
	return s, nil
}

func (a *app) listEmails(c echo.Context) error {
	s, err := a.session(c)
	if err != nil {
		return err
	}
	rows := []emailRow{}
	if err := a.stmts.list.SelectContext(c.Request().Context(), &rows, s.UserID); err != nil {
		return err
	}
	out := make([]emailJSON, len(rows))
	for i, r := range rows {
		out[i] = toJSON(r)
	}
	return c.JSON(http.StatusOK, out)
}

func (a *app) primaryEmail(c echo.Context) error {
	s, err := a.session(c)
	if err != nil {
		return err
	}
	var r emailRow
	if err := a.stmts.primary.GetContext(c.Request().Context(), &r, s.UserID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toJSON(r))
}

// far is when the baseline's outbox rows fall due: never, in a run.
var far = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func (a *app) addEmail(c echo.Context) error {
	s, err := a.session(c)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(c.Request().Header.Get("X-CSRFToken")), []byte(s.CSRFToken)) != 1 {
		return echo.NewHTTPError(http.StatusForbidden, "csrf")
	}
	var body struct {
		Email string `json:"email"`
	}
	if err := c.Bind(&body); err != nil || !strings.Contains(body.Email, "@") {
		return echo.NewHTTPError(http.StatusBadRequest, "invalid email")
	}
	addr := strings.TrimSpace(body.Email)
	ctx := c.Request().Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tx, err := a.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var uid int64
	if err := tx.StmtxContext(ctx, a.stmts.lockUser).GetContext(ctx, &uid, s.UserID); err != nil {
		return err
	}
	var r emailRow
	if err := tx.StmtxContext(ctx, a.stmts.insertEmail).GetContext(ctx, &r, uid, addr, strings.ToLower(addr), now); err != nil {
		return err
	}
	payload := fmt.Sprintf(`{"email":%q,"email_id":%d}`, r.Email, r.ID)
	if _, err := tx.StmtxContext(ctx, a.stmts.insertOutbox).ExecContext(ctx, r.Email, uid, payload, far, now); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toJSON(r))
}

func (a *app) login(c echo.Context) error {
	var body struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := c.Bind(&body); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "invalid body")
	}
	ctx := c.Request().Context()
	var u struct {
		ID   int64  `db:"id"`
		Hash string `db:"password_hash"`
	}
	err := a.stmts.loginUser.GetContext(ctx, &u, strings.ToLower(strings.TrimSpace(body.Email)))
	if err != nil {
		_, _ = a.verifyPassword(ctx, body.Password, a.dummy)
		return echo.NewHTTPError(http.StatusBadRequest, "invalid credentials")
	}
	ok, err := a.verifyPassword(ctx, body.Password, u.Hash)
	if err != nil {
		return err
	}
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "invalid credentials")
	}
	id, csrf := token(), token()
	sum := sha256.Sum256([]byte(id))
	now := time.Now().UTC().Truncate(time.Microsecond)
	expires := now.Add(14 * 24 * time.Hour)
	if _, err := a.stmts.insertSession.ExecContext(ctx, sum[:], u.ID, csrf, now, now, expires); err != nil {
		return err
	}
	for _, name := range []string{"sessionid", "osessionid"} {
		c.SetCookie(&http.Cookie{Name: name, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Expires: expires})
	}
	c.SetCookie(&http.Cookie{Name: "csrftoken", Value: csrf, Path: "/", SameSite: http.SameSiteLaxMode, Expires: expires})
	return c.JSON(http.StatusOK, map[string]any{"user_id": u.ID, "csrf_token": csrf, "expires_at": now.Add(2 * time.Hour)})
}

// verifyPassword checks password against an argon2id hash in the PHC
// format ($argon2id$v=19$m=…,t=…,p=…$salt$key) with the hash's own
// parameters, holding a hashing slot.
func (a *app) verifyPassword(ctx context.Context, password, encoded string) (bool, error) {
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[1] != "argon2id" || f[2] != "v=19" {
		return false, errors.New("not an argon2id hash")
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("argon2id parameters %q: %w", f[3], err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(f[4])
	if err != nil {
		return false, err
	}
	key, err := base64.RawStdEncoding.DecodeString(f[5])
	if err != nil {
		return false, err
	}
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
	<-a.slots
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// dummyHash is a hash with parameters p that no password matches.
func dummyHash(p password.Params) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Iterations, p.Parallelism,
		b64.EncodeToString(make([]byte, p.SaltLen)), b64.EncodeToString(make([]byte, p.KeyLen)))
}

func (a *app) verify(c echo.Context) error {
	uid, err := signer.DecodeUserID(c.Param("uid"))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "link invalid")
	}
	claims, err := a.signer.Verify(c.Param("token"), signer.PurposeVerify, 72*time.Hour)
	if err != nil || claims.UserID != uid {
		return echo.NewHTTPError(http.StatusBadRequest, "link invalid")
	}
	ctx := c.Request().Context()
	tx, err := a.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.StmtxContext(ctx, a.stmts.lockUser).GetContext(ctx, &uid, uid); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "link used")
	}
	var r emailRow
	err = tx.StmtxContext(ctx, a.stmts.verify).GetContext(ctx, &r,
		time.Now().UTC().Truncate(time.Microsecond), claims.State, uid, strings.ToLower(claims.Email))
	if errors.Is(err, context.Canceled) {
		return err
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "link used")
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toJSON(r))
}

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
