package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
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

	dispatcher *mail.Dispatcher
	outbox     *captureSender
}

// captureSender is a mail.Sender that keeps what the real dispatcher
// rendered and signed, for the scenario tests to read links from. (The SMTP
// conversation itself is tested in package mail.)
type captureSender struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (c *captureSender) Send(_ context.Context, m mail.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, m)
	return nil
}

func (c *captureSender) all() []mail.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]mail.Message(nil), c.sent...)
}

type option func(*server.Config)

func newEnv(t *testing.T, db *store.DB, opts ...option) *env {
	t.Helper()
	clock := servertest.NewClock(t0)
	sign, err := signer.New([][]byte{testKey}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.Config{
		Logger:         logger,
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
	e := &env{t: t, db: db, clock: clock, signer: sign, srv: ts, validator: &servertest.Validator{T: t}, outbox: &captureSender{}}
	e.dispatcher, err = mail.NewDispatcher(mail.Config{
		DB: db, Signer: sign, Sender: e.outbox, PublicURL: cfg.PublicURL,
		VerifyTTL: cfg.VerifyTTL, ChangeTTL: cfg.ChangeTTL, Now: clock.Now, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.anon = e.client(nil)
	return e
}

// deliver runs the real dispatcher until the outbox is empty and returns
// the mails it sent.
func (e *env) deliver() []mail.Message {
	e.t.Helper()
	before := len(e.outbox.all())
	for {
		n, err := e.dispatcher.RunOnce(ctx)
		if err != nil {
			e.t.Fatalf("dispatcher: %v", err)
		}
		if n == 0 {
			return e.outbox.all()[before:]
		}
	}
}

// link delivers the queued mail and returns the path of the newest link
// mailed to addr (the public URL stripped, so the test client can call it).
func (e *env) link(addr string) (signedEmail, userKey string) {
	e.t.Helper()
	e.deliver()
	sent := e.outbox.all()
	for i := len(sent) - 1; i >= 0; i-- {
		if sent[i].To != addr || len(sent[i].Links) == 0 {
			continue
		}
		path := strings.TrimPrefix(sent[i].Links[0], "http://useremail.test")
		parts := strings.Split(strings.Trim(path, "/"), "/")
		if len(parts) != 4 {
			e.t.Fatalf("unexpected link %q", sent[i].Links[0])
		}
		return parts[2], parts[3]
	}
	e.t.Fatalf("no link mailed to %s", addr)
	return "", ""
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
