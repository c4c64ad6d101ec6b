package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// opsMetrics is a server.Metrics that keeps what it is told.
type opsMetrics struct {
	mu       sync.Mutex
	requests []string // "METHOD route status"
	limited  []string
}

func (m *opsMetrics) ObserveRequest(method, route string, status int, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, method+" "+route+" "+http.StatusText(status))
}

func (m *opsMetrics) RateLimited(rule string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limited = append(m.limited, rule)
}

func (m *opsMetrics) WriteText(w io.Writer) error { return nil }

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

type opsServer struct {
	url     string
	db      *store.DB
	metrics *opsMetrics
	logs    *syncBuffer
	hasher  *password.Hasher
}

func newOpsServer(t *testing.T, db *store.DB, configure func(*server.Config)) *opsServer {
	t.Helper()
	sign, err := signer.New([][]byte{[]byte("ops-test-secret-0123456789abcdef0123456789")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &opsServer{db: db, metrics: &opsMetrics{}, logs: &syncBuffer{},
		hasher: password.NewHasher(password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 0)}
	cfg := server.Config{
		DB: db, Signer: sign, Hasher: o.hasher,
		PublicURL:  "http://useremail.test",
		RateLimits: true,
		Metrics:    o.metrics,
		Logger:     slog.New(server.LogHandler(slog.NewJSONHandler(o.logs, nil))),
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	o.url = ts.URL
	return o
}

func (o *opsServer) do(t *testing.T, method, path, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, o.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(res.Body).Decode(&doc)
	return res, doc
}

// TestRequestDeadline: a request whose database work outlasts the request
// deadline (here: a row lock held elsewhere) is answered 503 unavailable at
// the deadline, and logged as a warning, not as an internal error.
func TestRequestDeadline(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("needs PostgreSQL (set %s): it cancels a waiting statement", storetest.EnvPostgresURL)
	}
	db := storetest.Open(t, store.Postgres)
	o := newOpsServer(t, db, func(c *server.Config) { c.RequestTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	hash, err := o.hasher.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	var user store.User
	if err := db.WithTx(ctx, func(q *store.Queries) error {
		user, _, err = q.CreateUser(ctx, store.NewUser{Email: "ann@example.com", Key: "ann@example.com", PasswordHash: hash}, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	res, doc := o.do(t, "POST", "/auth/login/", `{"email":"ann@example.com","password":"correct horse battery staple"}`, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %v", res.StatusCode, doc)
	}
	var sid string
	for _, c := range res.Cookies() {
		if c.Name == "sessionid" {
			sid = c.Value
		}
	}
	csrf, _ := doc["csrf_token"].(string)
	auth := map[string]string{"Cookie": "sessionid=" + sid + "; csrftoken=" + csrf, "X-CSRFToken": csrf, "X-Request-ID": "deadline-1"}
	path := "/users/" + jsonNumber(user.ID) + "/emails/"

	// Another transaction holds the user's row, as a long change would.
	tx, err := db.SQL().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, user.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, doc = o.do(t, "POST", path, `{"email":"ann@work.example.com"}`, auth)
	elapsed := time.Since(start)
	_ = tx.Rollback()
	if res.StatusCode != http.StatusServiceUnavailable || doc["code"] != "unavailable" {
		t.Fatalf("with the row locked: %d %v, want 503 unavailable", res.StatusCode, doc)
	}
	if elapsed > 3*time.Second {
		t.Errorf("answered after %v; the deadline is 300ms", elapsed)
	}
	var sawWarn bool
	for _, rec := range o.logs.records(t) {
		if rec["level"] == "ERROR" {
			t.Errorf("logged as an error: %v", rec)
		}
		if rec["msg"] == "request failed" && rec["request_id"] == "deadline-1" && rec["level"] == "WARN" {
			sawWarn = true
		}
	}
	if !sawWarn {
		t.Errorf("no WARN \"request failed\" line with the request id:\n%v", o.logs.records(t))
	}

	// Without the lock the same request works.
	auth["X-Request-ID"] = "deadline-2"
	if res, doc := o.do(t, "POST", path, `{"email":"ann@work.example.com"}`, auth); res.StatusCode != http.StatusCreated {
		t.Fatalf("after the lock: %d %v", res.StatusCode, doc)
	}
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestRateLimitMetrics: a refusal by a limit reaches the metrics with the
// limit's name, and the request with its route template.
func TestRateLimitMetrics(t *testing.T) {
	o := newOpsServer(t, storetest.Open(t, store.SQLite), nil)
	var limited bool
	for range 12 {
		res, _ := o.do(t, "POST", "/auth/login/", `{"email":"bob@example.com","password":"wrong password"}`, nil)
		if res.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("the login limit never refused")
	}
	o.metrics.mu.Lock()
	defer o.metrics.mu.Unlock()
	if len(o.metrics.limited) != 1 || o.metrics.limited[0] != "login" {
		t.Errorf("RateLimited calls: %v, want [login]", o.metrics.limited)
	}
	if last := o.metrics.requests[len(o.metrics.requests)-1]; last != "POST /auth/login/ Too Many Requests" {
		t.Errorf("last observed request: %q", last)
	}
}

// TestLogHandler: records logged while answering a request carry its
// request_id (once); others do not.
func TestLogHandler(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	o := newOpsServer(t, db, nil)
	db.Close() // readiness fails and logs why
	res, _ := o.do(t, "GET", "/readyz", "", map[string]string{"X-Request-ID": "ready-1"})
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("X-Request-ID") != "ready-1" {
		t.Fatalf("/readyz: %d, X-Request-ID %q", res.StatusCode, res.Header.Get("X-Request-ID"))
	}
	var notReady, request bool
	for _, rec := range o.logs.records(t) {
		switch rec["msg"] {
		case "not ready: database":
			notReady = rec["request_id"] == "ready-1"
		case "request":
			request = rec["request_id"] == "ready-1" && rec["route"] == "/readyz" && rec["level"] == "WARN"
		}
	}
	if !notReady || !request {
		t.Errorf("request id on the readiness line: %v, on the request line (WARN): %v\n%v", notReady, request, o.logs.records(t))
	}

	var buf syncBuffer
	logger := slog.New(server.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	logger.InfoContext(context.Background(), "outside a request")
	logger.Info("named", "request_id", "mine")
	recs := buf.records(t)
	if _, ok := recs[0]["request_id"]; ok || recs[0]["component"] != "test" {
		t.Errorf("a record outside a request: %v", recs[0])
	}
	if recs[1]["request_id"] != "mine" {
		t.Errorf("a record that names its request id: %v", recs[1])
	}
}
