package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
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
	"github.com/useremail/useremail/webhook"
)

var (
	t0         = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	testKey    = []byte("test-secret-key-0123456789abcdef0123456789")
	cheapHash  = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	ctx        = context.Background()
	goodPasswd = "correct horse battery staple"
)

// publicURL is the base of the links the dispatcher mails.
const publicURL = "http://useremail.test"

// env is one server on one fresh database, with a fake clock.
type env struct {
	t         *testing.T
	db        *store.DB
	cfg       server.Config
	clock     *servertest.Clock
	signer    *signer.Signer
	srv       *httptest.Server
	server    *server.Server
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

// withMailbox gives the server the dev mailbox (dev mode), which the
// dispatcher fills.
func withMailbox() option {
	return func(c *server.Config) { c.Mailbox = mail.NewMailbox(nil, 0, nil) }
}

// withBrand sets the brand name and the app's URL.
func withBrand(name, appURL string) option {
	return func(c *server.Config) { c.BrandName, c.AppURL = name, appURL }
}

// teeSender delivers to each of its senders.
type teeSender []mail.Sender

func (t teeSender) Send(ctx context.Context, m mail.Message) error {
	for _, s := range t {
		if err := s.Send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// withMaxEmails sets the per-user address limit.
func withMaxEmails(n int) option { return func(c *server.Config) { c.MaxEmails = n } }

// withoutLimits turns off the per-minute limits and the resend interval,
// for tests that fire many requests at once.
func withoutLimits() option {
	return func(c *server.Config) { c.RateLimits = false; c.ResendInterval = 0 }
}

// withTrustedOrigins sets the origins besides the public URL's that may send
// unsafe requests under a session.
func withTrustedOrigins(origins ...string) option {
	return func(c *server.Config) { c.TrustedOrigins = origins }
}

// withTrustedProxies sets the networks whose X-Forwarded-For is believed;
// the test server's peer is 127.0.0.1.
func withTrustedProxies(cidrs ...string) option {
	return func(c *server.Config) {
		for _, s := range cidrs {
			c.TrustedProxies = append(c.TrustedProxies, netip.MustParsePrefix(s))
		}
	}
}

// from makes a request come from ip, as a trusted proxy on 127.0.0.1
// forwards it (withTrustedProxies("127.0.0.1/32")).
func from(ip string) gen.RequestEditorFn { return withHeaders("X-Forwarded-For", ip) }

// withCookieSecure sets the Secure flag of the session cookies.
func withCookieSecure(on bool) option { return func(c *server.Config) { c.CookieSecure = on } }

// withLogger makes the server and the dispatcher log to l.
func withLogger(l *slog.Logger) option { return func(c *server.Config) { c.Logger = l } }

func newEnv(t *testing.T, db *store.DB, opts ...option) *env {
	t.Helper()
	clock := servertest.NewClock(t0)
	sign, err := signer.New([][]byte{testKey}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		DB:             db,
		Signer:         sign,
		Hasher:         password.NewHasher(cheapHash, 0),
		PublicURL:      publicURL,
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
	e := &env{
		t: t, db: db, cfg: cfg, clock: clock, signer: sign, srv: ts, server: srv,
		validator: &servertest.Validator{T: t, Base: commonHeaders{t: t, base: http.DefaultTransport}},
		outbox:    &captureSender{},
	}
	e.dispatcher = e.newDispatcher(nil)
	e.anon = e.client(nil)
	return e
}

// newDispatcher returns a dispatcher of the env's outbox on its clock,
// delivering events too when the server has webhook endpoints (signed
// with webhookSecrets, stamped by the env's clock); edit, if set, changes
// its configuration first.
func (e *env) newDispatcher(edit func(*mail.Config)) *mail.Dispatcher {
	e.t.Helper()
	var sender mail.Sender = e.outbox
	if e.cfg.Mailbox != nil {
		sender = teeSender{e.cfg.Mailbox, e.outbox}
	}
	cfg := mail.Config{
		DB: e.db, Signer: e.signer, Sender: sender, PublicURL: e.cfg.PublicURL, ProductName: e.cfg.BrandName,
		VerifyTTL: e.cfg.VerifyTTL, ChangeTTL: e.cfg.ChangeTTL, ResetTTL: e.cfg.ResetTTL, Now: e.clock.Now, Logger: e.cfg.Logger,
	}
	if len(e.cfg.WebhookEndpoints) > 0 {
		signer, err := webhook.NewSigner(webhookSecrets...)
		if err != nil {
			e.t.Fatal(err)
		}
		cfg.Webhooks = webhook.NewClient(signer, nil, e.clock.Now)
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := mail.NewDispatcher(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// commonHeaders checks what every answer must carry, below the validator:
// X-Content-Type-Options: nosniff on all, and Cache-Control: no-store on
// every problem (problems answer requests that carry sessions or tokens).
type commonHeaders struct {
	t    testing.TB
	base http.RoundTripper
}

func (c commonHeaders) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		c.t.Errorf("%s %s -> %d: X-Content-Type-Options %q, want nosniff", req.Method, req.URL.Path, res.StatusCode, got)
	}
	if res.Header.Get("Content-Type") == "application/problem+json" && res.Header.Get("Cache-Control") != "no-store" {
		c.t.Errorf("%s %s -> %d: problem with Cache-Control %q, want no-store", req.Method, req.URL.Path, res.StatusCode, res.Header.Get("Cache-Control"))
	}
	return res, nil
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

// mailedLink is one link of a delivered mail, split into its parts.
type mailedLink struct {
	url     string // as mailed
	kind    string // the mail's kind
	to      string
	token   string // signed_email
	userKey string // user_id_key
}

// links delivers the queued mail and returns every link mailed to addr in
// mails of kind ("" for any), oldest first.
func (e *env) links(kind, addr string) []mailedLink {
	e.t.Helper()
	e.deliver()
	var out []mailedLink
	for _, m := range e.outbox.all() {
		if m.To != addr || (kind != "" && m.Kind != kind) {
			continue
		}
		for _, l := range m.Links {
			path := strings.TrimPrefix(l, publicURL)
			parts := strings.Split(strings.Trim(path, "/"), "/")
			if len(parts) != 4 {
				e.t.Fatalf("unexpected link %q", l)
			}
			token, userKey := parts[2], parts[3]
			if m.Kind == mail.KindPasswordReset { // Django's order: reset/<uidb64>/<token>/
				token, userKey = userKey, token
			}
			out = append(out, mailedLink{url: l, kind: m.Kind, to: m.To, token: token, userKey: userKey})
		}
	}
	return out
}

// link delivers the queued mail and returns the parts of the newest link
// mailed to addr.
func (e *env) link(addr string) (signedEmail, userKey string) {
	e.t.Helper()
	l := e.newestLink("", addr)
	return l.token, l.userKey
}

// newestLink is the newest link of kind ("" for any) mailed to addr.
func (e *env) newestLink(kind, addr string) mailedLink {
	e.t.Helper()
	all := e.links(kind, addr)
	if len(all) == 0 {
		e.t.Fatalf("no %s link mailed to %s", kind, addr)
	}
	return all[len(all)-1]
}

// verifyLink and changeLink are the newest verify and set-primary links
// mailed to addr.
func (e *env) verifyLink(addr string) mailedLink {
	e.t.Helper()
	return e.newestLink(mail.KindVerify, addr)
}
func (e *env) changeLink(addr string) mailedLink {
	e.t.Helper()
	return e.newestLink(mail.KindChangeEmail, addr)
}

// resetLink asks for a password reset of addr, expects 202, and returns
// the newest reset link mailed to it.
func (e *env) resetLink(addr string) mailedLink {
	e.t.Helper()
	e.requestReset(addr)
	return e.newestLink(mail.KindPasswordReset, addr)
}

// requestReset asks for a password reset of addr and expects 202 with no
// body.
func (e *env) requestReset(addr string) {
	e.t.Helper()
	res, err := e.anon.RequestPasswordResetWithResponse(ctx, gen.RequestPasswordResetJSONRequestBody{Email: addr})
	if err != nil || res.StatusCode() != http.StatusAccepted || len(res.Body) != 0 {
		e.t.Fatalf("reset %s: %v %d %q", addr, err, res.StatusCode(), res.Body)
	}
}

// httpClient is a plain client whose answers go through the validator.
func (e *env) httpClient(jar http.CookieJar) *http.Client {
	return &http.Client{Transport: e.validator, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) client(jar http.CookieJar, editors ...gen.RequestEditorFn) *gen.ClientWithResponses {
	e.t.Helper()
	opts := []gen.ClientOption{gen.WithHTTPClient(e.httpClient(jar))}
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
	sid   string // the session id of the sessionid cookie
}

func (e *env) signUp(email string) gen.User {
	e.t.Helper()
	res, err := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: email, Password: goodPasswd})
	if err != nil || res.JSON201 == nil {
		e.t.Fatalf("sign up %s: %v %d %s", email, err, res.StatusCode(), res.Body)
	}
	return *res.JSON201
}

// login logs in as email; editors apply to the login and to every request
// of the user's client (from, to act from a client network).
func (e *env) login(email string, editors ...gen.RequestEditorFn) *user {
	e.t.Helper()
	return e.loginAs(email, goodPasswd, editors...)
}

// loginAs is login with the password pw.
func (e *env) loginAs(email, pw string, editors ...gen.RequestEditorFn) *user {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := e.client(jar, editors...)
	res, err := c.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: email, Password: pw})
	if err != nil || res.JSON200 == nil {
		e.t.Fatalf("login %s: %v %d %s", email, err, res.StatusCode(), res.Body)
	}
	u := &user{id: res.JSON200.UserId, email: email, csrf: res.JSON200.CsrfToken, jar: jar}
	u.ClientWithResponses = e.client(jar, append(editors, func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-CSRFToken", u.csrf)
		return nil
	})...)
	u.sid = u.cookie(e.srv.URL, session.Cookie)
	if u.sid == "" {
		e.t.Fatalf("login %s: no sessionid cookie", email)
	}
	return u
}

// newUser signs up and logs in.
func (e *env) newUser(email string) *user {
	e.t.Helper()
	e.signUp(email)
	return e.login(email)
}

// verifiedUser signs up, verifies the primary address through its mailed
// link, and logs in.
func (e *env) verifiedUser(email string) *user {
	e.t.Helper()
	e.signUp(email)
	e.confirmVerify(email)
	return e.login(email)
}

// confirmVerify opens the newest verify link mailed to addr, as an API
// client does, and expects success.
func (e *env) confirmVerify(addr string) gen.Email {
	e.t.Helper()
	l := e.verifyLink(addr)
	res, err := e.anon.ConfirmEmailVerificationWithResponse(ctx, l.token, l.userKey)
	if err != nil || res.JSON200 == nil {
		e.t.Fatalf("verify %s: %v %d %s", addr, err, res.StatusCode(), res.Body)
	}
	return *res.JSON200
}

// addEmail adds addr to u and expects success.
func (e *env) addEmail(u *user, addr string) gen.Email {
	e.t.Helper()
	res, err := u.AddEmailWithResponse(ctx, u.id, gen.AddEmailJSONRequestBody{Email: addr})
	if err != nil || res.JSON201 == nil {
		e.t.Fatalf("add %s: %v %d %s", addr, err, res.StatusCode(), res.Body)
	}
	return *res.JSON201
}

// requestChange asks for newEmail as u's primary address and expects 204.
func (e *env) requestChange(u *user, newEmail string) {
	e.t.Helper()
	res, err := u.RequestEmailChangeWithResponse(ctx, u.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: newEmail, Password: goodPasswd})
	if err != nil || res.StatusCode() != http.StatusNoContent {
		e.t.Fatalf("change to %s: %v %d %s", newEmail, err, res.StatusCode(), res.Body)
	}
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

// withHeaders returns a request editor that sets header pairs (name, value, …).
func withHeaders(kv ...string) gen.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		for i := 0; i+1 < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return nil
	}
}

// problemCode returns the code of a problem response body, or "".
func problemCode(p *gen.Problem) gen.ErrorCode {
	if p == nil {
		return ""
	}
	return p.Code
}

// response is what every generated response and rawResponse offer.
type response interface {
	StatusCode() int
	GetBody() []byte
	ContentType() string
}

// wantProblem checks that r is a problem with the status and code.
func wantProblem(t *testing.T, what string, r response, status int, code gen.ErrorCode) gen.Problem {
	t.Helper()
	var p gen.Problem
	if r.StatusCode() != status || r.ContentType() != "application/problem+json" ||
		json.Unmarshal(r.GetBody(), &p) != nil || p.Code != code || p.Status != status {
		t.Errorf("%s: got %d %s %.400s; want %d %s", what, r.StatusCode(), r.ContentType(), r.GetBody(), status, code)
	}
	return p
}

// wantStatus checks the status of a success.
func wantStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.StatusCode() != status {
		t.Errorf("%s: got %d %.400s; want %d", what, r.StatusCode(), r.GetBody(), status)
	}
}

// rawResponse is the answer to a hand-made request.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResponse) StatusCode() int     { return r.status }
func (r rawResponse) GetBody() []byte     { return r.body }
func (r rawResponse) ContentType() string { return r.header.Get("Content-Type") }

// request builds a hand-made request to path (which may hold any escapes)
// with header pairs (name, value, …).
func (e *env) request(method, path string, body io.Reader, header ...string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatalf("request %s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// send sends a hand-made request through the validator.
func (e *env) send(req *http.Request) rawResponse {
	e.t.Helper()
	res, err := e.httpClient(nil).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading: %v", req.Method, req.URL, err)
	}
	return rawResponse{status: res.StatusCode, header: res.Header, body: body}
}

// do builds and sends a hand-made request.
func (e *env) do(method, path string, body []byte, header ...string) rawResponse {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return e.send(e.request(method, path, r, header...))
}

// authHeaders are the headers of a request under u's session, by hand.
func (u *user) authHeaders(extra ...string) []string {
	return append([]string{"Cookie", "sessionid=" + u.sid + "; osessionid=" + u.sid, "X-CSRFToken", u.csrf}, extra...)
}

// state is what a refused request must leave as it was: a user's addresses,
// change sequence and sessions, and the outbox.
type state struct {
	emails   []store.Email
	seq      int64
	outbox   int64
	users    int64
	sessions int64
}

func (e *env) state(userID int64) state {
	e.t.Helper()
	var s state
	if userID > 0 {
		var err error
		if s.emails, err = e.db.EmailsByUser(ctx, userID); err != nil {
			e.t.Fatalf("state: %v", err)
		}
		u, err := e.db.UserByID(ctx, userID)
		if err != nil {
			e.t.Fatalf("state: %v", err)
		}
		s.seq = u.ChangeSeq
	}
	s.outbox = e.count(`SELECT COUNT(*) FROM outbox`)
	s.users = e.count(`SELECT COUNT(*) FROM users`)
	s.sessions = e.count(`SELECT COUNT(*) FROM sessions`)
	return s
}

// unchanged fails the test if userID's state moved on from before.
func (e *env) unchanged(t *testing.T, what string, userID int64, before state) {
	t.Helper()
	after := e.state(userID)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("%s changed the state:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

// count runs a COUNT query ("?" placeholders) on the store.
func (e *env) count(query string, args ...any) int64 {
	e.t.Helper()
	var n int64
	db := e.db.SQL()
	if err := db.GetContext(ctx, &n, db.Rebind(query), args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// emails returns a user's addresses from the store.
func (e *env) emails(userID int64) []store.Email {
	e.t.Helper()
	list, err := e.db.EmailsByUser(ctx, userID)
	if err != nil {
		e.t.Fatalf("emails: %v", err)
	}
	return list
}

// mustJSON encodes v.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
