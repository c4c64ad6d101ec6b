package server_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/server/servertest"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

var (
	t0         = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	testKey    = []byte("test-secret-key-0123456789abcdef0123456789")
	cheapHash  = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	ctx        = context.Background()
	goodPasswd = "correct horse battery staple"
)

// env is one server on one fresh database, with a fake clock.
type env struct {
	t         *testing.T
	db        *store.DB
	clock     *servertest.Clock
	signer    *signer.Signer
	srv       *httptest.Server
	validator *servertest.Validator
	anon      *gen.ClientWithResponses
}

type option func(*server.Config)

func newEnv(t *testing.T, db *store.DB, opts ...option) *env {
	t.Helper()
	clock := servertest.NewClock(t0)
	sign, err := signer.New([][]byte{testKey}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		DB:             db,
		Signer:         sign,
		Hasher:         password.NewHasher(cheapHash, 0),
		PublicURL:      "http://useremail.test",
		Sessions:       session.DefaultPolicy,
		ResendInterval: 3 * time.Minute,
		RateLimits:     true,
		Notices:        true,
		Now:            clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{t: t, db: db, clock: clock, signer: sign, srv: ts, validator: &servertest.Validator{T: t}}
	e.anon = e.client(nil)
	return e
}

func (e *env) client(jar http.CookieJar, editors ...gen.RequestEditorFn) *gen.ClientWithResponses {
	e.t.Helper()
	hc := &http.Client{Transport: e.validator, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	opts := []gen.ClientOption{gen.WithHTTPClient(hc)}
	for _, ed := range editors {
		opts = append(opts, gen.WithRequestEditorFn(ed))
	}
	c, err := gen.NewClientWithResponses(e.srv.URL, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// user is a logged-in user with a client that sends its cookies and CSRF
// header.
type user struct {
	*gen.ClientWithResponses
	id    int64
	email string
	csrf  string
	jar   http.CookieJar
}

func (e *env) signUp(email string) gen.User {
	e.t.Helper()
	res, err := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: email, Password: goodPasswd})
	if err != nil || res.JSON201 == nil {
		e.t.Fatalf("sign up %s: %v %d %s", email, err, res.StatusCode(), res.Body)
	}
	return *res.JSON201
}

func (e *env) login(email string) *user {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := e.client(jar)
	res, err := c.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: email, Password: goodPasswd})
	if err != nil || res.JSON200 == nil {
		e.t.Fatalf("login %s: %v %d %s", email, err, res.StatusCode(), res.Body)
	}
	u := &user{id: res.JSON200.UserId, email: email, csrf: res.JSON200.CsrfToken, jar: jar}
	u.ClientWithResponses = e.client(jar, func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-CSRFToken", u.csrf)
		return nil
	})
	return u
}

// newUser signs up and logs in.
func (e *env) newUser(email string) *user {
	e.t.Helper()
	e.signUp(email)
	return e.login(email)
}

// cookie returns the value of a cookie the user's jar holds for the server.
func (u *user) cookie(srvURL, name string) string {
	parsed, _ := url.Parse(srvURL)
	for _, c := range u.jar.Cookies(parsed) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// problemCode returns the code of a problem response body, or "".
func problemCode(p *gen.Problem) gen.ErrorCode {
	if p == nil {
		return ""
	}
	return p.Code
}
