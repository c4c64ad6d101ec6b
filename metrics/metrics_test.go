package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/useremail/useremail/metrics"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// scrape writes m in the text format and parses it back, as Prometheus
// would.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	var b strings.Builder
	if err := m.WriteText(&b); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("the output does not parse as the text format: %v\n%s", err, b.String())
	}
	return families
}

// sample returns the metric of family name whose labels include want, or
// nil.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := families[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := sample(families, name, labels)
	if m == nil {
		t.Fatalf("no %s%v in the output", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s%v has no value", name, labels)
	return 0
}

func TestRequests(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "v1.2.3"})
	m.ObserveRequest("POST", "/users/", 201, 30*time.Millisecond)
	m.ObserveRequest("POST", "/users/", 201, 2*time.Second)
	m.ObserveRequest("POST", "/users/", 400, time.Millisecond)
	m.ObserveRequest("GET", "/users/{id}/emails/", 200, time.Millisecond)
	m.ObserveRequest("BREW", "unmatched", 405, time.Millisecond)
	m.ObserveRequest("PROPFIND", "unmatched", 405, time.Millisecond)
	f := scrape(t, m)

	tests := []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"method": "POST", "route": "/users/", "status": "201"}, 2},
		{map[string]string{"method": "POST", "route": "/users/", "status": "400"}, 1},
		{map[string]string{"method": "GET", "route": "/users/{id}/emails/", "status": "200"}, 1},
		// Unknown methods share one label value: clients cannot grow the set.
		{map[string]string{"method": "other", "route": "unmatched", "status": "405"}, 2},
	}
	for _, tt := range tests {
		if got := value(t, f, "useremail_http_requests_total", tt.labels); got != tt.want {
			t.Errorf("useremail_http_requests_total%v = %v, want %v", tt.labels, got, tt.want)
		}
		if got := value(t, f, "useremail_http_request_duration_seconds", tt.labels); got != tt.want {
			t.Errorf("useremail_http_request_duration_seconds%v count = %v, want %v", tt.labels, got, tt.want)
		}
	}
	h := sample(f, "useremail_http_request_duration_seconds", map[string]string{"method": "POST", "route": "/users/", "status": "201"}).GetHistogram()
	if got, want := h.GetSampleSum(), 2.03; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("latency sum = %v, want %v", got, want)
	}
	for _, b := range h.GetBucket() {
		// One of the two observations (30 ms) is at most 0.05 s, both at most 2.5 s.
		switch b.GetUpperBound() {
		case 0.05:
			if b.GetCumulativeCount() != 1 {
				t.Errorf("bucket le=0.05 has %d, want 1", b.GetCumulativeCount())
			}
		case 2.5:
			if b.GetCumulativeCount() != 2 {
				t.Errorf("bucket le=2.5 has %d, want 2", b.GetCumulativeCount())
			}
		}
	}
	if sample(f, "useremail_http_requests_total", map[string]string{"method": "BREW"}) != nil {
		t.Error("a method outside HTTP's set became a label value")
	}
}

func TestRateLimitsAndMail(t *testing.T) {
	m := metrics.New(metrics.Options{MailKinds: []string{"verify", "change_email"}})
	m.RateLimited("login")
	m.RateLimited("login")
	m.RateLimited("manage")
	m.MailSent("verify")
	m.MailSent("verify")
	m.MailRetried("verify")
	m.MailFailed("email_added")
	f := scrape(t, m)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"useremail_rate_limited_total", map[string]string{"rule": "login"}, 2},
		{"useremail_rate_limited_total", map[string]string{"rule": "manage"}, 1},
		{"useremail_mail_sent_total", map[string]string{"kind": "verify"}, 2},
		{"useremail_mail_retried_total", map[string]string{"kind": "verify"}, 1},
		{"useremail_mail_failed_total", map[string]string{"kind": "email_added"}, 1},
		// MailKinds exist at zero before their first mail.
		{"useremail_mail_sent_total", map[string]string{"kind": "change_email"}, 0},
		{"useremail_mail_failed_total", map[string]string{"kind": "verify"}, 0},
	}
	for _, tt := range tests {
		if got := value(t, f, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestBuildInfoAndRuntime(t *testing.T) {
	f := scrape(t, metrics.New(metrics.Options{Version: "v9.9.9"}))
	bi := sample(f, "useremail_build_info", map[string]string{"version": "v9.9.9"})
	if bi == nil || bi.GetGauge().GetValue() != 1 {
		t.Fatalf("useremail_build_info{version=v9.9.9} = %v, want 1", bi)
	}
	var goVersion string
	for _, lp := range bi.GetLabel() {
		if lp.GetName() == "go_version" {
			goVersion = lp.GetValue()
		}
	}
	if !strings.HasPrefix(goVersion, "go") {
		t.Errorf("go_version label = %q", goVersion)
	}
	if f["go_goroutines"] == nil {
		t.Error("the Go runtime's metrics are missing")
	}
	if sample(f, "useremail_outbox_messages", nil) != nil || f["go_sql_open_connections"] != nil {
		t.Error("database metrics without a DB")
	}
	if sample(scrape(t, metrics.New(metrics.Options{})), "useremail_build_info", map[string]string{"version": "unknown"}) == nil {
		t.Error("an empty version is not reported as unknown")
	}
}

// queueMail gives db's outbox 2 queued mails, 1 sent and 1 failed.
func queueMail(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	err := db.WithTx(ctx, func(q *store.Queries) error {
		user, _, err := q.CreateUser(ctx, store.NewUser{Email: "ann@example.com", Key: "ann@example.com", PasswordHash: "x"}, now)
		if err != nil {
			return err
		}
		for range 4 {
			if _, err := q.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "ann@example.com", UserID: user.ID, Payload: "{}"}, now); err != nil {
				return err
			}
		}
		claimed, err := q.ClaimMessages(ctx, now, time.Minute, 2)
		if err != nil || len(claimed) != 2 {
			return fmt.Errorf("claimed %d: %v", len(claimed), err)
		}
		if err := q.MarkMessageSent(ctx, claimed[0].Claim(), now); err != nil {
			return err
		}
		return q.FailMessage(ctx, claimed[1].Claim(), "refused")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// poolMetrics are the connection pool's metrics, by client_golang's
// collector.
var poolMetrics = []string{
	"go_sql_max_open_connections", "go_sql_open_connections", "go_sql_in_use_connections", "go_sql_idle_connections",
	"go_sql_wait_count_total", "go_sql_wait_duration_seconds_total",
	"go_sql_max_idle_closed_total", "go_sql_max_idle_time_closed_total", "go_sql_max_lifetime_closed_total",
}

// TestStore reads a real store: the mail waiting in the outbox by status
// (sent mail is not counted), and the connection pool.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		queueMail(t, db)
		f := scrape(t, metrics.New(metrics.Options{DB: db}))
		for status, want := range map[string]float64{"queued": 2, "sending": 0, "failed": 1} {
			if got := value(t, f, "useremail_outbox_messages", map[string]string{"status": status}); got != want {
				t.Errorf("useremail_outbox_messages{status=%q} = %v, want %v", status, got, want)
			}
		}
		if sample(f, "useremail_outbox_messages", map[string]string{"status": "sent"}) != nil {
			t.Error("sent mail is counted")
		}
		if got := value(t, f, "useremail_outbox_count_errors_total", nil); got != 0 {
			t.Errorf("useremail_outbox_count_errors_total = %v, want 0", got)
		}
		pool := map[string]string{"db_name": "useremail"}
		for _, name := range poolMetrics {
			value(t, f, name, pool)
		}
		if got, want := value(t, f, "go_sql_max_open_connections", pool), float64(db.SQL().Stats().MaxOpenConnections); got != want {
			t.Errorf("go_sql_max_open_connections = %v, want %v", got, want)
		}
	})
}

// TestOutboxCountIsBounded holds the outbox locked (on SQLite, the one
// connection) while Prometheus scrapes: the count gives up after
// OutboxTimeout, the scrape answers without the outbox gauges and counts
// the failure, and the first scrape after the interval, the lock gone,
// counts again.
func TestOutboxCountIsBounded(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		queueMail(t, db)
		clock := &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		m := metrics.New(metrics.Options{DB: db, OutboxTimeout: 100 * time.Millisecond, Now: clock.Now})
		tx, err := db.SQL().BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if db.Dialect() == store.Postgres {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
		}
		f := scrape(t, m)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if sample(f, "useremail_outbox_messages", nil) != nil {
			t.Error("outbox gauges reported although the count timed out")
		}
		if got := value(t, f, "useremail_outbox_count_errors_total", nil); got != 1 {
			t.Errorf("useremail_outbox_count_errors_total = %v, want 1", got)
		}
		f = scrape(t, m)
		if sample(f, "useremail_outbox_messages", nil) != nil || value(t, f, "useremail_outbox_count_errors_total", nil) != 1 {
			t.Error("a scrape within the interval counted again after a failed count")
		}
		if db.Dialect() == store.SQLite {
			// The count waited for the connection the transaction held. The
			// pool's collector runs beside the count in a scrape, so the
			// wait shows in the next one.
			if got := value(t, f, "go_sql_wait_count_total", map[string]string{"db_name": "useremail"}); got < 1 {
				t.Errorf("go_sql_wait_count_total = %v, want at least 1", got)
			}
		}
		clock.Advance(metrics.DefaultOutboxInterval)
		f = scrape(t, m)
		if got := value(t, f, "useremail_outbox_messages", map[string]string{"status": "queued"}); got != 2 {
			t.Errorf("after the lock: queued = %v, want 2", got)
		}
		if got := value(t, f, "useremail_outbox_count_errors_total", nil); got != 1 {
			t.Errorf("after the lock: useremail_outbox_count_errors_total = %v, want 1", got)
		}
	})
}

// TestClosedDatabase: with the database gone, a scrape leaves out the
// outbox gauges, counts the failure, and keeps every other metric.
func TestClosedDatabase(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	m := metrics.New(metrics.Options{DB: db})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f := scrape(t, m)
	if sample(f, "useremail_outbox_messages", nil) != nil {
		t.Error("outbox gauges reported although the count failed")
	}
	if got := value(t, f, "useremail_outbox_count_errors_total", nil); got != 1 {
		t.Errorf("useremail_outbox_count_errors_total = %v, want 1", got)
	}
	for _, name := range append(poolMetrics, "useremail_build_info", "go_goroutines") {
		if f[name] == nil {
			t.Errorf("%s missing while the database is down", name)
		}
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore is a real store whose outbox counts are counted.
type countingStore struct {
	*store.DB
	counts atomic.Int64
}

func (s *countingStore) CountWaitingMessages(ctx context.Context) (map[string]int64, error) {
	s.counts.Add(1)
	return s.DB.CountWaitingMessages(ctx)
}

// TestScrapesShareOneCount: with many sent rows in the outbox, 32
// concurrent scrapes of the metrics' handler count the outbox once, and so
// do the scrapes after them within the interval; the first scrape after it
// counts again. The counts leave the sent rows out.
func TestScrapesShareOneCount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		queueMail(t, db)
		addSentMail(t, db, 20_000)
		src := &countingStore{DB: db}
		clock := &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		m := metrics.New(metrics.Options{DB: src, Now: clock.Now})
		srv := httptest.NewServer(m.Handler())
		defer srv.Close()
		get := func() string {
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return ""
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("scrape: %d %v", resp.StatusCode, err)
			}
			return string(b)
		}

		const scrapers = 32
		bodies := make([]string, scrapers)
		var wg sync.WaitGroup
		for i := range scrapers {
			wg.Go(func() { bodies[i] = get() })
		}
		wg.Wait()
		if n := src.counts.Load(); n != 1 {
			t.Errorf("%d concurrent scrapes counted the outbox %d times, want once", scrapers, n)
		}
		for _, b := range bodies {
			for _, line := range []string{`useremail_outbox_messages{status="queued"} 2`, `useremail_outbox_messages{status="sending"} 0`,
				`useremail_outbox_messages{status="failed"} 1`} {
				if !strings.Contains(b, line+"\n") {
					t.Fatalf("a scrape lacks %s:\n%s", line, b)
				}
			}
			if strings.Contains(b, `status="sent"`) {
				t.Fatal("a scrape counts the sent mail")
			}
		}

		for range 10 {
			clock.Advance(metrics.DefaultOutboxInterval / 10)
			get()
		}
		if n := src.counts.Load(); n != 2 {
			t.Errorf("after one interval of scrapes the outbox was counted %d times, want twice", n)
		}
	})
}

// addSentMail adds n sent mails to db's outbox.
func addSentMail(t *testing.T, db *store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	user, _, err := db.CreateUser(ctx, store.NewUser{Email: "sent@example.com", Key: "sent@example.com", PasswordHash: "x"}, now)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]store.NewMessage, 1000)
	for i := range batch {
		batch[i] = store.NewMessage{Kind: "verify", Recipient: "sent@example.com", UserID: user.ID, Payload: "{}"}
	}
	err = db.WithTx(ctx, func(q *store.Queries) error {
		for done := 0; done < n; done += len(batch) {
			if _, err := q.EnqueueMessages(ctx, batch[:min(len(batch), n-done)], now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q := db.SQL().Rebind(`UPDATE outbox SET status = 'sent', attempts = 1, sent_at = ? WHERE user_id = ?`)
	if _, err := db.SQL().ExecContext(ctx, q, now, user.ID); err != nil {
		t.Fatal(err)
	}
}
