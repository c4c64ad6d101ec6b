package main

// The harness of the process tests (replicas, faults, shutdown, metrics):
// the real binary, built once per test run; `useremail serve` processes
// started on a port of their own choosing, their JSON logs kept; a plain
// HTTP client that records every answer; and the mails of an SMTP sink
// parsed back into outbox ids and links.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// testVersion is stamped into the test binary (useremail_build_info).
const testVersion = "v0.0.0-proctest"

// publicURL is the base of the links in the test mails; the tests send each
// link to whichever process they choose.
const publicURL = "http://useremail.test"

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary returns the path of the useremail binary, built from this package
// once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "useremail-bin-")
		if buildErr != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtimeGOROOT(), "bin", "go")
		}
		buildPath = filepath.Join(buildDir, "useremail")
		// Tried twice: on a machine shared with other builds, a build cache
		// trimmed underneath us makes a first attempt fail now and then.
		for attempt := 1; attempt <= 2; attempt++ {
			cmd := exec.Command(goTool, "build", "-ldflags", "-X main.version="+testVersion, "-o", buildPath, ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err == nil {
				buildErr = nil
				break
			}
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func runtimeGOROOT() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "/usr/local/go"
	}
	return strings.TrimSpace(string(out))
}

// databaseURL returns the URL of a fresh, empty database of dialect d: an
// SQLite file, or a PostgreSQL schema of its own; PostgreSQL tests skip when
// USEREMAIL_TEST_DATABASE_URL is not set.
func databaseURL(t *testing.T, d store.Dialect) string {
	t.Helper()
	if d == store.Postgres && os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("needs PostgreSQL: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", storetest.EnvPostgresURL)
	}
	return storetest.URL(t, d)
}

// eventually checks cond every 20 ms until it holds, and reports whether it
// did within timeout.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// serveEnv is the environment of a test process: cheap hashing, no
// per-minute limits, mail to sink, JSON logs.
func serveEnv(databaseURL string, sink *smtptest.Server) map[string]string {
	env := map[string]string{
		"USEREMAIL_ADDR":            "127.0.0.1:0",
		"USEREMAIL_DATABASE_URL":    databaseURL,
		"USEREMAIL_SECRET_KEYS":     "proc-test-secret-0123456789abcdef0123456789abcdef",
		"USEREMAIL_PUBLIC_URL":      publicURL,
		"USEREMAIL_MAIL_FROM":       "useremail@example.com",
		"USEREMAIL_ARGON2":          "m=64,t=1,p=1",
		"USEREMAIL_RATE_LIMITS":     "off",
		"USEREMAIL_RESEND_INTERVAL": "0",
		"USEREMAIL_COOKIE_SECURE":   "false",
		"USEREMAIL_LOG_FORMAT":      "json",
		"USEREMAIL_LOG_LEVEL":       "info",
		"USEREMAIL_SHUTDOWN_GRACE":  "10s",
	}
	if sink != nil {
		env["USEREMAIL_SMTP_URL"] = sink.URL()
	} else {
		// serve needs a mail server outside dev mode; none listens on the
		// discard port of loopback, so queued mail stays in the outbox.
		env["USEREMAIL_SMTP_URL"] = "smtp://127.0.0.1:9"
	}
	return env
}

// proc is one running `useremail serve`.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	logs *logLines
	base string // http://host:port

	done    chan struct{}
	exitErr error
}

// startServe starts `useremail serve` with env (and nothing of the test's
// own environment but PATH and HOME) and the flags of flags, and waits until
// it serves and is ready. The process is stopped when t ends.
func startServe(t testing.TB, name string, env map[string]string, flags ...string) *proc {
	t.Helper()
	p := launchServe(t, name, env, flags...)
	if err := p.waitServing(90 * time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, p.logs.tail(40))
	}
	p.waitReady(t, 30*time.Second)
	return p
}

// launchServe starts the process without waiting for it.
func launchServe(t testing.TB, name string, env map[string]string, flags ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve"}, flags...)...)
	cmd.Env = processEnv(env)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &proc{t: t, name: name, cmd: cmd, logs: &logLines{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	copied := make(chan struct{})
	go func() {
		p.logs.read(stderr)
		close(copied)
	}()
	go func() {
		<-copied
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if !p.waitExit(15 * time.Second) {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("last log lines of %s:\n%s", name, p.logs.tail(25))
		}
	})
	return p
}

// processEnv is env as the environment of a process, with PATH and HOME
// and nothing else of the test's own.
func processEnv(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// waitServing waits for the "serving" log line and takes the address from it.
func (p *proc) waitServing(timeout time.Duration) error {
	rec, ok := p.logs.waitFor(timeout, func(r logRecord) bool { return r.Msg == "serving" })
	if !ok {
		if p.waitExit(time.Second) {
			return fmt.Errorf("exited before serving: %v", p.exitErr)
		}
		return fmt.Errorf("not serving after %v", timeout)
	}
	addr, _ := rec.Attrs["addr"].(string)
	if addr == "" {
		return errors.New(`the "serving" line has no addr`)
	}
	p.base = "http://" + addr
	return nil
}

// waitReady waits until /readyz answers 200.
func (p *proc) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	var r answer
	if !eventually(timeout, func() bool { r = get(p.base + "/readyz"); return r.Status == http.StatusOK }) {
		t.Fatalf("%s: /readyz = %d %s after %v\n%s", p.name, r.Status, r.Code, timeout, p.logs.tail(20))
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitExit waits up to d for the process to exit.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// exitCode is the process's exit code (-1 if killed by a signal).
func (p *proc) exitCode() int {
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	if p.exitErr != nil {
		return -1
	}
	return 0
}

// logRecord is one JSON log line.
type logRecord struct {
	Level string
	Msg   string
	Attrs map[string]any
	Raw   string
}

// logLines keeps the JSON log lines of a process, and tells waiters of
// each new one.
type logLines struct {
	mu    sync.Mutex
	lines []logRecord
	more  chan struct{} // closed at the next line, or at the end
	ended bool
}

func (l *logLines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		raw := sc.Text()
		rec := logRecord{Raw: raw, Attrs: map[string]any{}}
		if err := json.Unmarshal([]byte(raw), &rec.Attrs); err == nil {
			rec.Level, _ = rec.Attrs["level"].(string)
			rec.Msg, _ = rec.Attrs["msg"].(string)
		}
		l.mu.Lock()
		l.lines = append(l.lines, rec)
		l.wakeLocked()
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.ended = true
	l.wakeLocked()
	l.mu.Unlock()
}

func (l *logLines) wakeLocked() {
	if l.more != nil {
		close(l.more)
		l.more = nil
	}
}

// waitFor waits until a line matches and returns it; ok is false when the
// log ended, or timeout passed, first.
func (l *logLines) waitFor(timeout time.Duration, match func(logRecord) bool) (rec logRecord, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for seen := 0; ; {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if match(l.lines[seen]) {
				rec := l.lines[seen]
				l.mu.Unlock()
				return rec, true
			}
		}
		if l.ended {
			l.mu.Unlock()
			return logRecord{}, false
		}
		if l.more == nil {
			l.more = make(chan struct{})
		}
		more := l.more
		l.mu.Unlock()
		select {
		case <-more:
		case <-timer.C:
			return logRecord{}, false
		}
	}
}

func (l *logLines) all() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logRecord(nil), l.lines...)
}

func (l *logLines) find(match func(logRecord) bool) (logRecord, bool) {
	for _, r := range l.all() {
		if match(r) {
			return r, true
		}
	}
	return logRecord{}, false
}

func (l *logLines) tail(n int) string {
	all := l.all()
	if len(all) > n {
		all = all[len(all)-n:]
	}
	var b strings.Builder
	for _, r := range all {
		b.WriteString(r.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// answer is one HTTP exchange as the client saw it.
type answer struct {
	Method, Route string // Route names the operation, for reports
	Status        int    // 0: no answer (Err says why)
	Code          string // the problem's code, if any
	Body          []byte
	Header        http.Header
	Err           error
	Elapsed       time.Duration
	RequestID     string
}

func (a answer) String() string {
	if a.Err != nil {
		return fmt.Sprintf("%s %s: error after %v: %v", a.Method, a.Route, a.Elapsed.Round(time.Millisecond), a.Err)
	}
	return fmt.Sprintf("%s %s: %d %s (%v)", a.Method, a.Route, a.Status, a.Code, a.Elapsed.Round(time.Millisecond))
}

// client talks to the processes. Every request carries an X-Request-ID of
// its own, so that a test can look it up in the logs.
type client struct {
	http *http.Client
}

func newClient(keepAlive bool) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		DisableKeepAlives:   !keepAlive,
	}
	// Timeout is the hang detector: every answer must come well before it.
	return &client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

var defaultClient = newClient(true)

func get(url string) answer { return defaultClient.do("GET", url, url, nil, nil) }

var requestSeq struct {
	sync.Mutex
	n int
}

func nextRequestID() string {
	requestSeq.Lock()
	defer requestSeq.Unlock()
	requestSeq.n++
	return fmt.Sprintf("proctest-%d-%d", os.Getpid(), requestSeq.n)
}

// do sends one request; body, when not nil, is sent as JSON.
func (c *client) do(method, url, route string, body any, header map[string]string) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(b)
	}
	a := answer{Method: method, Route: route, RequestID: nextRequestID()}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		a.Err = err
		return a
	}
	req.Header.Set("X-Request-ID", a.RequestID)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		a.Err, a.Elapsed = err, time.Since(start)
		return a
	}
	a.Body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	a.Elapsed = time.Since(start)
	if err != nil {
		a.Err = fmt.Errorf("reading the body of a %d: %w", resp.StatusCode, err)
		return a
	}
	a.Status, a.Header = resp.StatusCode, resp.Header
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(a.Body, &p)
		a.Code = p.Code
	}
	return a
}

// session is a logged-in user as a client holds it.
type userSession struct {
	UserID int64
	Email  string
	ID     string
	CSRF   string
}

func (s userSession) header() map[string]string {
	return map[string]string{
		"Cookie":      "sessionid=" + s.ID + "; osessionid=" + s.ID + "; csrftoken=" + s.CSRF,
		"X-CSRFToken": s.CSRF,
	}
}

const testPassword = "correct horse battery staple"

// signUp creates a user; on 201 it returns the user's id.
func (c *client) signUp(base, email string) (int64, answer) {
	a := c.do("POST", base+"/users/", "POST /users/", map[string]string{"email": email, "password": testPassword}, nil)
	var u struct {
		ID int64 `json:"id"`
	}
	if a.Status == http.StatusCreated {
		_ = json.Unmarshal(a.Body, &u)
	}
	return u.ID, a
}

// login starts a session.
func (c *client) login(base, email string) (userSession, answer) {
	req, _ := http.NewRequest("POST", base+"/auth/login/", strings.NewReader(
		fmt.Sprintf(`{"email":%q,"password":%q}`, email, testPassword)))
	req.Header.Set("Content-Type", "application/json")
	a := answer{Method: "POST", Route: "POST /auth/login/"}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		a.Err = err
		return userSession{}, a
	}
	defer resp.Body.Close()
	a.Body, _ = io.ReadAll(resp.Body)
	a.Status, a.Elapsed = resp.StatusCode, time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return userSession{}, a
	}
	var body struct {
		UserID int64  `json:"user_id"`
		CSRF   string `json:"csrf_token"`
	}
	_ = json.Unmarshal(a.Body, &body)
	s := userSession{UserID: body.UserID, Email: email, CSRF: body.CSRF}
	for _, ck := range resp.Cookies() {
		if ck.Name == "sessionid" {
			s.ID = ck.Value
		}
	}
	return s, a
}

// sentMail is a mail the sink accepted, parsed.
type sentMail struct {
	OutboxID  int64
	MessageID string
	To        string
	Subject   string
	Links     []string
}

var (
	messageIDPattern = regexp.MustCompile(`^<outbox\.(\d+)\.[0-9a-f]+@[^>]+>$`)
	linkPattern      = regexp.MustCompile(regexp.QuoteMeta(publicURL) + `/users/[A-Za-z0-9._~%/:=+-]+`)
)

// parseMail reads what the sink accepted: the outbox id from the
// Message-ID, and the links of the text part.
func parseMail(m smtptest.Mail) (sentMail, error) {
	msg, err := netmail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		return sentMail{}, err
	}
	s := sentMail{MessageID: msg.Header.Get("Message-ID"), Subject: msg.Header.Get("Subject")}
	if len(m.To) == 1 {
		s.To = m.To[0]
	}
	match := messageIDPattern.FindStringSubmatch(s.MessageID)
	if match == nil {
		return s, fmt.Errorf("Message-ID %q is not an outbox id", s.MessageID)
	}
	s.OutboxID, _ = strconv.ParseInt(match[1], 10, 64)
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		return s, fmt.Errorf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
		b, err := io.ReadAll(part) // quoted-printable is decoded by the reader
		if err != nil {
			return s, err
		}
		if ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct == "text/plain" {
			s.Links = linkPattern.FindAllString(string(b), -1)
		}
	}
	return s, nil
}

// mailsByOutboxID parses every mail of the sink and groups them by outbox id.
func mailsByOutboxID(t testing.TB, sink *smtptest.Server) map[int64][]sentMail {
	t.Helper()
	out := map[int64][]sentMail{}
	for _, m := range sink.Mails() {
		s, err := parseMail(m)
		if err != nil {
			t.Fatalf("a mail the sink accepted: %v", err)
		}
		out[s.OutboxID] = append(out[s.OutboxID], s)
	}
	return out
}

// outboxRow is what the tests read of the outbox.
type outboxRow struct {
	ID        int64  `db:"id"`
	Kind      string `db:"kind"`
	Recipient string `db:"recipient"`
	UserID    int64  `db:"user_id"`
	Status    string `db:"status"`
	Attempts  int    `db:"attempts"`
	LastError string `db:"last_error"`
}

// waitOutboxSent waits until every outbox row is sent and returns the rows;
// a failed row, or rows still unsent after timeout, fail the test.
func waitOutboxSent(t testing.TB, db *store.DB, timeout time.Duration) []outboxRow {
	t.Helper()
	var rows, unsent []outboxRow
	allSent := func() bool {
		rows, unsent = nil, nil
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.SQL().SelectContext(ctx, &rows, `SELECT id, kind, recipient, COALESCE(user_id, 0) AS user_id, status, attempts, last_error FROM outbox ORDER BY id`); err != nil {
			t.Fatalf("reading the outbox: %v", err)
		}
		for _, r := range rows {
			if r.Status == store.StatusFailed {
				t.Fatalf("outbox row %d (%s to %s) failed: %s", r.ID, r.Kind, r.Recipient, r.LastError)
			}
			if r.Status != store.StatusSent {
				unsent = append(unsent, r)
			}
		}
		return len(unsent) == 0
	}
	if !eventually(timeout, allSent) {
		t.Fatalf("%d of %d outbox rows still unsent after %v, e.g. %+v", len(unsent), len(rows), timeout, unsent[0])
	}
	return rows
}

// checkDeliveredOnce checks that the sink got exactly one mail per outbox
// row, to the row's recipient, and no mail that is not in the outbox. The
// rows of mayRepeat may have been delivered twice (see
// unrecordedDeliveries).
func checkDeliveredOnce(t testing.TB, rows []outboxRow, sink *smtptest.Server, mayRepeat map[int64]bool) map[int64]sentMail {
	t.Helper()
	// The sink may still be reading the last DATA of a send that the
	// dispatcher has recorded; the count is what matters.
	eventually(5*time.Second, func() bool { return len(sink.Mails()) >= len(rows) })
	byID := mailsByOutboxID(t, sink)
	delivered := map[int64]sentMail{}
	for _, r := range rows {
		got := byID[r.ID]
		switch {
		case len(got) == 0:
			t.Errorf("outbox row %d (%s to %s) is sent but the sink never got it", r.ID, r.Kind, r.Recipient)
		case len(got) == 2 && mayRepeat[r.ID]:
			t.Logf("outbox row %d (%s) was delivered twice: its first delivery could not be recorded while the database was down", r.ID, r.Kind)
			delivered[r.ID] = got[0]
		case len(got) > 1:
			t.Errorf("outbox row %d (%s to %s) was delivered %d times", r.ID, r.Kind, r.Recipient, len(got))
		default:
			if !strings.EqualFold(got[0].To, r.Recipient) {
				t.Errorf("outbox row %d went to %q, want %q", r.ID, got[0].To, r.Recipient)
			}
			delivered[r.ID] = got[0]
		}
		delete(byID, r.ID)
	}
	for id, m := range byID {
		t.Errorf("the sink got %d mails for outbox id %d, which is not in the outbox", len(m), id)
	}
	return delivered
}

// openDB opens the test's database for SQL checks.
func openDB(t testing.TB, url string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkInvariants runs the SQL checks of API.md's invariants.
func checkInvariants(t testing.TB, db *store.DB) {
	t.Helper()
	checks := []struct{ what, query string }{
		{"users without exactly one primary address", `SELECT u.id FROM users u LEFT JOIN emails e ON e.user_id = u.id AND e.is_primary
			GROUP BY u.id HAVING COUNT(e.id) <> 1`},
		{"addresses verified or primary for two users", `SELECT email_key FROM emails WHERE verified OR is_primary
			GROUP BY email_key HAVING COUNT(DISTINCT user_id) > 1`},
		{"addresses a user holds twice", `SELECT email_key FROM emails GROUP BY user_id, email_key HAVING COUNT(*) > 1`},
		{"primary addresses that are not verified after a change", `SELECT e.id FROM emails e JOIN audit_events a
			ON a.user_id = e.user_id AND a.event = 'primary_changed' AND a.email = e.email WHERE e.is_primary AND NOT e.verified`},
	}
	for _, c := range checks {
		var bad []string
		if err := db.SQL().Select(&bad, c.query); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if len(bad) > 0 {
			t.Errorf("%s: %v", c.what, bad)
		}
	}
}
