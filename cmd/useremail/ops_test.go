package main

// The operator's side of `useremail serve`, through the real binary: the
// metrics' own listener, the outbox retention, what the log may hold, and
// start-up failures that name their cause at once.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestMetricsListener: with USEREMAIL_METRICS_ADDR the metrics are served
// on a listener of their own, and the API's answers 404 on /metrics.
func TestMetricsListener(t *testing.T) {
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(databaseURL(t, store.SQLite), sink)
	env["USEREMAIL_METRICS_ADDR"] = "127.0.0.1:0"
	p := startServe(t, "useremail", env)

	rec, ok := p.logs.find(func(r logRecord) bool { return r.Msg == "serving metrics" })
	if !ok {
		t.Fatal(`no "serving metrics" record`)
	}
	addr, _ := rec.Attrs["addr"].(string)
	if addr == "" || "http://"+addr == p.base {
		t.Fatalf("metrics served at %q, the API at %s", addr, p.base)
	}
	families := scrapeMetrics(t, "http://"+addr)
	if metricValue(families, "useremail_build_info", map[string]string{"version": testVersion}) != 1 {
		t.Error("the metrics' listener lacks useremail_build_info")
	}
	if metricValue(families, "useremail_outbox_messages", map[string]string{"status": "queued"}) != 0 {
		t.Error("the metrics' listener lacks the outbox")
	}
	if a := get(p.base + "/metrics"); a.Status != http.StatusNotFound || a.Code != "not_found" {
		t.Errorf("the API's /metrics: %v, want 404 not_found", a)
	}
	if a := get("http://" + addr + "/users/"); a.Status != http.StatusNotFound {
		t.Errorf("the metrics' listener answers /users/ with %v, want 404", a)
	}
}

// TestOutboxRetention: the janitor of serve deletes the sent mail older
// than USEREMAIL_OUTBOX_RETENTION (more than one batch of it) and keeps
// newer sent mail and every failed mail; outbox purge --failed deletes
// failed mail, by age with --older-than, beside the running server.
func TestOutboxRetention(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := databaseURL(t, d)
			sink := smtptest.Start(t, smtptest.Options{})
			env := serveEnv(url, sink)
			if r := runBinary(t, t.TempDir(), env, "", "migrate"); r.code != 0 {
				t.Fatalf("migrate: %v", r)
			}
			db := openDB(t, url)
			now := time.Now().UTC()
			old, recent := now.AddDate(0, 0, -40), now.AddDate(0, 0, -1)
			const oldSent = 1500 // a batch and a half
			seedOutbox(t, db, now, []outboxSeed{
				{n: oldSent, status: "sent", created: old, sent: old},
				{n: 2, status: "sent", created: old, sent: recent}, // queued long ago, sent lately
				{n: 3, status: "failed", created: old},
				{n: 1, status: "failed", created: recent},
			})

			p := startServe(t, "useremail", env)
			rec, ok := p.logs.waitFor(30*time.Second, func(r logRecord) bool { return r.Msg == "janitor: old mail deleted from the outbox" })
			if !ok {
				t.Fatalf("no record of the janitor deleting old mail:\n%s", p.logs.tail(20))
			}
			if rec.Attrs["count"] != float64(oldSent) || rec.Attrs["older_than"] != "720h0m0s" {
				t.Errorf("the janitor's record: %s", rec.Raw)
			}
			if got := outboxStatuses(t, db); got != "failed:4 sent:2" {
				t.Errorf("after the janitor the outbox holds %s, want failed:4 sent:2", got)
			}

			if r := runBinary(t, t.TempDir(), env, "", "outbox", "purge", "--failed", "--older-than", "720h"); r.code != 0 || r.stdout != "3 failed messages deleted\n" {
				t.Errorf("outbox purge --failed --older-than 720h: %v", r)
			}
			if r := runBinary(t, t.TempDir(), env, "", "outbox", "purge", "--failed"); r.code != 0 || r.stdout != "1 failed message deleted\n" {
				t.Errorf("outbox purge --failed: %v", r)
			}
			if got := outboxStatuses(t, db); got != "sent:2" {
				t.Errorf("after the purges the outbox holds %s, want sent:2", got)
			}
		})
	}
}

// outboxSeed is n outbox rows of one status and age.
type outboxSeed struct {
	n             int
	status        string
	created, sent time.Time // sent: zero for none
}

// seedOutbox writes the rows of seeds for one user.
func seedOutbox(t *testing.T, db *store.DB, now time.Time, seeds []outboxSeed) {
	t.Helper()
	ctx := context.Background()
	user, _, err := db.CreateUser(ctx, store.NewUser{Email: "old@example.com", Key: "old@example.com", PasswordHash: "x"}, now)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]store.NewMessage, 500)
	for i := range batch {
		batch[i] = store.NewMessage{Kind: "verify", Recipient: "old@example.com", UserID: user.ID, Payload: `{"email":"old@example.com","email_id":1}`}
	}
	for _, s := range seeds {
		var sentAt any
		if !s.sent.IsZero() {
			sentAt = s.sent
		}
		var ids []int64
		err := db.WithTx(ctx, func(q *store.Queries) error {
			ids = nil
			for done := 0; done < s.n; done += len(batch) {
				more, err := q.EnqueueMessages(ctx, batch[:min(len(batch), s.n-done)], now)
				if err != nil {
					return err
				}
				ids = append(ids, more...)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		update := db.SQL().Rebind(`UPDATE outbox SET status = ?, attempts = 1, created_at = ?, sent_at = ? WHERE id BETWEEN ? AND ?`)
		if _, err := db.SQL().ExecContext(ctx, update, s.status, s.created, sentAt, ids[0], ids[len(ids)-1]); err != nil {
			t.Fatal(err)
		}
	}
}

// outboxStatuses counts the outbox by status: "failed:4 sent:2".
func outboxStatuses(t *testing.T, db *store.DB) string {
	t.Helper()
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := db.SQL().Select(&rows, `SELECT status, COUNT(*) AS n FROM outbox GROUP BY status ORDER BY status`); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s:%d", r.Status, r.N))
	}
	return strings.Join(parts, " ")
}

// TestNoSecretsInLogs runs sign-up, verification, login, adding an
// address, an email change and its confirmation, a wrong password and a
// tampered link against the real binary, and then looks for every link,
// link token, session id, CSRF token and password of the run in its log.
func TestNoSecretsInLogs(t *testing.T) {
	sink := smtptest.Start(t, smtptest.Options{})
	url := databaseURL(t, store.SQLite)
	env := serveEnv(url, sink)
	env["USEREMAIL_LOG_LEVEL"] = "debug"
	p := startServe(t, "useremail", env)
	c := newClient(true)
	secrets := map[string]string{"password": testPassword}
	// nextLink waits for the n-th mail and returns the path of its link.
	nextLink := func(what string, n int) string {
		t.Helper()
		parsed, err := parseMail(sink.Wait(t, n, 30*time.Second)[n-1])
		if err != nil || len(parsed.Links) != 1 {
			t.Fatalf("the %s mail: %+v %v", what, parsed, err)
		}
		path := strings.TrimPrefix(parsed.Links[0], publicURL)
		secrets[what+" link"] = parsed.Links[0]
		secrets[what+" link token"] = strings.Split(path, "/")[3]
		return path
	}
	must := func(a answer, status int) {
		t.Helper()
		if a.Status != status {
			t.Fatalf("%v %s, want %d", a, a.Body, status)
		}
	}

	id, a := c.signUp(p.base, "ann@example.com")
	must(a, http.StatusCreated)
	must(c.do("POST", p.base+nextLink("verify", 1), "verify link", nil, nil), http.StatusOK)
	s1, a := c.login(p.base, "ann@example.com")
	must(a, http.StatusOK)
	secrets["session id"], secrets["CSRF token"] = s1.ID, s1.CSRF

	must(c.do("POST", fmt.Sprintf("%s/users/%d/emails/", p.base, id), "add", map[string]string{"email": "bob@example.com"}, s1.header()), http.StatusCreated)
	sink.Wait(t, 3, 30*time.Second) // the verification mail and the notice
	verifyBob := ""
	for _, m := range sink.Mails()[1:3] {
		if parsed, err := parseMail(m); err == nil && len(parsed.Links) == 1 {
			verifyBob = strings.TrimPrefix(parsed.Links[0], publicURL)
			secrets["second verify link"], secrets["second verify link token"] = parsed.Links[0], strings.Split(verifyBob, "/")[3]
		}
	}
	if verifyBob == "" {
		t.Fatal("no verification mail for the added address")
	}
	must(c.do("GET", p.base+verifyBob, "verify link, JSON", nil, nil), http.StatusOK)

	must(c.do("POST", fmt.Sprintf("%s/users/%d/email-change/", p.base, id), "change",
		map[string]string{"new_email": "carol@example.com", "password": testPassword}, s1.header()), http.StatusNoContent)
	must(c.do("POST", p.base+nextLink("set-primary", 4), "set-primary link", nil, nil), http.StatusOK)
	sink.Wait(t, 5, 30*time.Second) // the notice to the old primary
	s2, a := c.login(p.base, "carol@example.com")
	must(a, http.StatusOK)
	secrets["second session id"], secrets["second CSRF token"] = s2.ID, s2.CSRF

	wrong := "wrong horse battery staple"
	secrets["wrong password"] = wrong
	must(c.do("POST", p.base+"/auth/login/", "login", map[string]string{"email": "carol@example.com", "password": wrong}, nil), http.StatusBadRequest)
	token := secrets["second verify link token"]
	tampered := token[:len(token)-2] + "xx"
	if strings.HasSuffix(token, "xx") {
		tampered = token[:len(token)-2] + "yy"
	}
	secrets["tampered token"] = tampered
	must(c.do("POST", p.base+strings.Replace(verifyBob, token, tampered, 1), "tampered link", nil, nil), http.StatusBadRequest)
	must(c.do("GET", p.base+"/no/such/"+tampered, "unmatched", nil, s2.header()), http.StatusNotFound)

	rows := waitOutboxSent(t, openDB(t, url), 30*time.Second)
	if !eventually(10*time.Second, func() bool {
		n := 0
		for _, r := range p.logs.all() {
			if r.Msg == "mail: sent" {
				n++
			}
		}
		return n == len(rows)
	}) {
		t.Errorf("the log does not record the %d mails sent", len(rows))
	}
	requests := 0
	for _, rec := range p.logs.all() {
		if rec.Msg == "request" {
			requests++
		}
		for what, secret := range secrets {
			if secret != "" && strings.Contains(rec.Raw, secret) {
				t.Errorf("the log has the %s: %s", what, rec.Raw)
			}
		}
	}
	if requests < 10 || len(secrets) < 12 {
		t.Errorf("%d request records, %d secrets looked for: the run did not happen as planned", requests, len(secrets))
	}
}

// TestServeNeedsSMTP: outside dev mode, serve refuses to start without
// USEREMAIL_SMTP_URL, at once and naming it; in dev mode it starts, and its
// log says once, without contradiction, where each mail went.
func TestServeNeedsSMTP(t *testing.T) {
	url := databaseURL(t, store.SQLite)
	env := serveEnv(url, nil)
	delete(env, "USEREMAIL_SMTP_URL")
	r := runBinary(t, t.TempDir(), env, "", "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "USEREMAIL_SMTP_URL: is required outside dev mode") {
		t.Errorf("serve without USEREMAIL_SMTP_URL: %v", r)
	}

	env["USEREMAIL_DEV"] = "true"
	p := startServe(t, "dev", env)
	if _, a := newClient(true).signUp(p.base, "ann@example.com"); a.Status != http.StatusCreated {
		t.Fatalf("sign-up: %v", a)
	}
	rec, ok := p.logs.waitFor(30*time.Second, func(r logRecord) bool { return r.Msg == "mail: delivered to the log (dev mode)" })
	if !ok {
		t.Fatalf("no record of the mail:\n%s", p.logs.tail(20))
	}
	if link, _ := rec.Attrs["link"].(string); !strings.HasPrefix(link, publicURL+"/users/email-verify/") {
		t.Errorf("dev mode logs no link: %s", rec.Raw)
	}
	if _, ok := p.logs.waitFor(10*time.Second, func(r logRecord) bool { return r.Msg == "mail: sent" }); !ok {
		t.Error(`no "mail: sent" record`)
	}
	for _, rec := range p.logs.all() {
		if strings.Contains(rec.Msg, "not sent") {
			t.Errorf("a record says the mail was not sent: %s", rec.Raw)
		}
	}
}

// TestStartFailures: serve fails at once, in one line that names the
// cause, for an SQLite file in a directory that does not exist (migrate
// too), an address in use (the API's, the metrics'), a placeholder secret
// and a list of configuration problems (one line each); an unreachable
// PostgreSQL is tried for a time it names, with the driver's error on one
// line.
func TestStartFailures(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing", "dir")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // the substrings of the last line of stderr
	}{
		{"sqlite file in a missing directory", map[string]string{"USEREMAIL_DATABASE_URL": "sqlite:" + missing + "/x.db"}, []string{"serve"},
			[]string{"useremail: database sqlite:" + missing + "/x.db: the directory " + missing + " does not exist"}},
		{"migrate an sqlite file in a missing directory", map[string]string{"USEREMAIL_DATABASE_URL": "sqlite:" + missing + "/x.db"}, []string{"migrate"},
			[]string{"useremail: database sqlite:" + missing + "/x.db: the directory " + missing + " does not exist"}},
		{"API address in use", map[string]string{"USEREMAIL_ADDR": busy.Addr().String()}, []string{"serve"},
			[]string{"useremail: USEREMAIL_ADDR " + busy.Addr().String() + ": ", "address already in use"}},
		{"metrics address in use", map[string]string{"USEREMAIL_METRICS_ADDR": busy.Addr().String()}, []string{"serve"},
			[]string{"useremail: USEREMAIL_METRICS_ADDR " + busy.Addr().String() + ": ", "address already in use"}},
		{"placeholder secret", map[string]string{"USEREMAIL_SECRET_KEYS": "change-me-to-a-long-random-secret-of-48-characters"}, []string{"serve"},
			[]string{"USEREMAIL_SECRET_KEYS: a secret that contains \"changeme\" is a placeholder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := serveEnv(databaseURL(t, store.SQLite), nil)
			for k, v := range tt.env {
				env[k] = v
			}
			start := time.Now()
			r := runBinary(t, t.TempDir(), env, "", tt.args...)
			t.Logf("exit %d after %v", r.code, time.Since(start).Round(time.Millisecond))
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if r.code != 1 {
				t.Errorf("exit %d, want 1; %v", r.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(last, w) {
					t.Errorf("the last line %q does not say %q", last, w)
				}
			}
			for _, l := range lines[:len(lines)-1] {
				if l == "useremail: configuration:" {
					continue
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Errorf("a line on stderr that is neither a JSON record nor the last: %q", l)
				}
				if strings.Contains(l, "retrying") {
					t.Errorf("a retry: %s", l)
				}
			}
		})
	}

	t.Run("configuration problems, one line each", func(t *testing.T) {
		env := serveEnv(databaseURL(t, store.SQLite), nil)
		env["USEREMAIL_VERIFY_TTL"] = "soon"
		env["USEREMAIL_OUTBOX_RETENTION"] = "a month"
		r := runBinary(t, t.TempDir(), env, "", "serve")
		want := "useremail: configuration:\n  USEREMAIL_VERIFY_TTL: \"soon\" is not a duration (use Go syntax, as 72h or 90m)\n" +
			"  USEREMAIL_OUTBOX_RETENTION: \"a month\" is not a duration (use Go syntax, as 72h or 90m)\n"
		if r.code != 1 || r.stderr != want {
			t.Errorf("want exit 1 and\n%s\ngot %v", want, r)
		}
	})

	t.Run("unreachable PostgreSQL", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		env := serveEnv("postgres://useremail@"+closed+"/useremail?sslmode=disable", nil)
		p := launchServe(t, "useremail", env)
		rec, ok := p.logs.waitFor(30*time.Second, func(r logRecord) bool { return strings.HasPrefix(r.Msg, "database not reachable yet") })
		if !ok {
			t.Fatalf("no record of the retries:\n%s", p.logs.tail(10))
		}
		if rec.Msg != "database not reachable yet; retrying for up to 30s" {
			t.Errorf("the first retry's message %q does not say how long it keeps trying", rec.Msg)
		}
		if msg, _ := rec.Attrs["error"].(string); !strings.Contains(msg, "connection refused") || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("the error of the retry record: %q", msg)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !p.waitExit(15 * time.Second) {
			t.Fatal("serve did not stop on SIGTERM while waiting for the database")
		}
		last := p.logs.all()[len(p.logs.all())-1].Raw
		if p.exitCode() != 1 || !strings.Contains(last, "useremail: database postgres://"+closed+"/useremail") || !strings.Contains(last, "stopped waiting") {
			t.Errorf("exit %d, last line %q", p.exitCode(), last)
		}
	})
}

// TestSecureCookieWarning: Secure cookies with a plain-HTTP public URL are
// a warning at start, but not on localhost, where browsers keep them.
func TestSecureCookieWarning(t *testing.T) {
	for _, tt := range []struct {
		publicURL string
		warn      bool
	}{
		{"http://useremail.test", true},
		{"http://localhost:8080", false},
		{"https://useremail.test", false},
	} {
		t.Run(tt.publicURL, func(t *testing.T) {
			env := serveEnv(databaseURL(t, store.SQLite), nil)
			env["USEREMAIL_COOKIE_SECURE"] = "true"
			env["USEREMAIL_PUBLIC_URL"] = tt.publicURL
			p := startServe(t, "useremail", env)
			_, warned := p.logs.find(func(r logRecord) bool {
				return r.Level == "WARN" && strings.HasPrefix(r.Msg, "USEREMAIL_COOKIE_SECURE is on but USEREMAIL_PUBLIC_URL is plain http")
			})
			if warned != tt.warn {
				t.Errorf("warned %v, want %v:\n%s", warned, tt.warn, p.logs.tail(10))
			}
		})
	}
}
