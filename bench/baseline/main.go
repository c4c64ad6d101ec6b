// Command baseline is the bare stack useremail is built on, Echo and sqlx on
// the same database and tables, doing the same work per request as
// useremail's hot endpoints and nothing else: no spec validation, no
// generated code, no middleware, no request log, no rate limits, no audit
// trail. The bench harness (package main one level up) measures useremail
// against it in the same run; see docs/PERFORMANCE.md.
//
// Per request it does:
//
//	GET  /users/{id}/emails/         session lookup (SHA-256 of the cookie, sessions table), expiry and
//	GET  /users/{id}/primary-email/  ownership check, then the same SELECT as store.EmailsByUser / store.PrimaryEmail
//	POST /users/{id}/emails/         session, CSRF header (constant time), ownership, JSON body; one
//	                                 transaction: user row lock, INSERT of the email, INSERT of an outbox row
//	POST /auth/login/                JSON body, the same SELECT as store.UserByLoginKey, the same argon2id
//	                                 verify (package password, same parameters and slots), INSERT of a session
//	POST /users/email-verify/{t}/{u} signer.Verify of the token, one transaction: user row lock, UPDATE of
//	                                 the email guarded by id, user and address
//
// Its outbox rows are due in the year 9999, so that useremail's dispatcher,
// which shares the database during a run, never delivers them.
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
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

type app struct {
	db       *sqlx.DB
	postgres bool
	hasher   *password.Hasher
	signer   *signer.Signer
}

func main() {
	if err := run(); err != nil {
		log.Fatal("baseline: ", err)
	}
}

func run() error {
	dialect, dsn, err := store.ParseURL(os.Getenv("BASELINE_DATABASE_URL"))
	if err != nil {
		return err
	}
	db, err := sqlx.Open(string(dialect), dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// The same pool as store.Open: 20 connections on PostgreSQL, one on SQLite.
	if dialect == store.SQLite {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	} else {
		db.SetMaxOpenConns(store.DefaultPoolOptions.MaxOpenConns)
		db.SetMaxIdleConns(store.DefaultPoolOptions.MaxIdleConns)
		db.SetConnMaxLifetime(store.DefaultPoolOptions.ConnMaxLifetime)
	}
	if err := db.Ping(); err != nil {
		return err
	}
	sign, err := signer.New([][]byte{[]byte(os.Getenv("BASELINE_SECRET"))}, nil)
	if err != nil {
		return err
	}
	a := &app{db: db, postgres: dialect == store.Postgres, hasher: password.NewHasher(password.DefaultParams, 0), signer: sign}

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

func (a *app) q(query string) string {
	if a.postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
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
	err = a.db.GetContext(c.Request().Context(), &s,
		a.q(`SELECT user_id, csrf_token, last_seen_at, expires_at FROM sessions WHERE id_hash = ?`), sum[:])
	if err != nil {
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
	if err := a.db.SelectContext(c.Request().Context(), &rows,
		a.q(`SELECT `+emailColumns+` FROM emails WHERE user_id = ? ORDER BY is_primary DESC, id`), s.UserID); err != nil {
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
	if err := a.db.GetContext(c.Request().Context(), &r,
		a.q(`SELECT `+emailColumns+` FROM emails WHERE user_id = ? AND is_primary`), s.UserID); err != nil {
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
	lock := `SELECT id FROM users WHERE id = ?`
	if a.postgres {
		lock += ` FOR UPDATE`
	}
	var uid int64
	if err := tx.GetContext(ctx, &uid, a.q(lock), s.UserID); err != nil {
		return err
	}
	var r emailRow
	if err := tx.GetContext(ctx, &r, a.q(`INSERT INTO emails (user_id, email, email_key, verified, is_primary, created_at, verified_at)
		VALUES (?, ?, ?, FALSE, FALSE, ?, NULL) RETURNING `+emailColumns), uid, addr, strings.ToLower(addr), now); err != nil {
		return err
	}
	payload := fmt.Sprintf(`{"email":%q,"email_id":%d}`, r.Email, r.ID)
	if _, err := tx.ExecContext(ctx, a.q(`INSERT INTO outbox (kind, recipient, user_id, payload, status, next_attempt_at, created_at)
		VALUES ('verify', ?, ?, ?, 'queued', ?, ?)`), r.Email, uid, payload, far, now); err != nil {
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
	err := a.db.GetContext(ctx, &u, a.q(`SELECT u.id, u.password_hash FROM emails e JOIN users u ON u.id = e.user_id
		WHERE e.email_key = ? AND (e.verified OR e.is_primary)`), strings.ToLower(strings.TrimSpace(body.Email)))
	if err != nil {
		a.hasher.VerifyDummy(ctx, body.Password)
		return echo.NewHTTPError(http.StatusBadRequest, "invalid credentials")
	}
	ok, _, err := a.hasher.Verify(ctx, body.Password, u.Hash)
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
	if _, err := a.db.ExecContext(ctx, a.q(`INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`), sum[:], u.ID, csrf, now, now, expires); err != nil {
		return err
	}
	for _, name := range []string{"sessionid", "osessionid"} {
		c.SetCookie(&http.Cookie{Name: name, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Expires: expires})
	}
	c.SetCookie(&http.Cookie{Name: "csrftoken", Value: csrf, Path: "/", SameSite: http.SameSiteLaxMode, Expires: expires})
	return c.JSON(http.StatusOK, map[string]any{"user_id": u.ID, "csrf_token": csrf, "expires_at": now.Add(2 * time.Hour)})
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
	lock := `SELECT id FROM users WHERE id = ?`
	if a.postgres {
		lock += ` FOR UPDATE`
	}
	if err := tx.GetContext(ctx, &uid, a.q(lock), uid); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "link used")
	}
	var r emailRow
	err = tx.GetContext(ctx, &r, a.q(`UPDATE emails SET verified = TRUE, verified_at = COALESCE(verified_at, ?)
		WHERE id = ? AND user_id = ? AND email_key = ? RETURNING `+emailColumns),
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
