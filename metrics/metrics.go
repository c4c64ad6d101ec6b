// Package metrics owns useremail's Prometheus metrics: requests by method,
// route template and status; the mail waiting in the outbox and the
// dispatcher's outcomes; the database pool (client_golang's collector);
// rate-limit refusals; and the build. It writes them in the Prometheus text
// format, for the API's /metrics route or a listener of their own.
//
// It implements the server's Metrics interface by its method set and the
// dispatcher's hooks with plain methods, so that it imports neither server
// nor mail (cmd/useremail wires them); it imports the store, and never gen.
package metrics

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/useremail/useremail/store"
)

// namespace prefixes every metric of the service.
const namespace = "useremail"

// DefaultOutboxTimeout bounds the query that counts the outbox, so that a
// slow or unreachable database cannot stall a scrape.
const DefaultOutboxTimeout = 2 * time.Second

// DefaultOutboxInterval is the least time between two counts of the
// outbox; the scrapes in between report the last count.
const DefaultOutboxInterval = 5 * time.Second

// Source is what the metrics read from the database: the mail waiting in
// the outbox and the connection pool; *store.DB is one.
type Source interface {
	CountWaitingMessages(ctx context.Context) (map[string]int64, error)
	SQL() *sqlx.DB
}

// dbName is the db_name label of the connection pool's metrics.
const dbName = namespace

var _ Source = (*store.DB)(nil)

// Options configure New.
type Options struct {
	// DB, when set, is reported: the mail waiting in the outbox by status
	// (counted at most once per OutboxInterval) and the connection pool's
	// statistics (go_sql_*{db_name="useremail"}, read at every scrape).
	DB Source
	// Version is the build's version, reported by useremail_build_info.
	Version string
	// MailKinds are created at zero in the mail counters, so that rates
	// and alerts work before the first mail of a kind.
	MailKinds []string
	// EventTypes are created at zero in the webhook counter, likewise.
	EventTypes []string
	// OutboxTimeout bounds the outbox count; default DefaultOutboxTimeout.
	OutboxTimeout time.Duration
	// OutboxInterval is the least time between two outbox counts, however
	// many scrapes come; default DefaultOutboxInterval.
	OutboxInterval time.Duration
	// Now is the clock of the outbox counts; nil means time.Now.
	Now func() time.Time
}

// Metrics is the service's registry. Its methods are safe for concurrent
// use.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	mailSent    *prometheus.CounterVec
	mailRetried *prometheus.CounterVec
	mailFailed  *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
}

// New returns a Metrics with every collector registered: the service's own,
// and the Go runtime's and the process's.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method, route template and status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "status"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rate_limited_total",
			Help: "Requests refused with 429 rate_limited, by limit.",
		}, []string{"rule"}),
		mailSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "mail", Name: "sent_total",
			Help: "Mails delivered to the mail server, by kind.",
		}, []string{"kind"}),
		mailRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "mail", Name: "retried_total",
			Help: "Mail attempts that failed temporarily and were rescheduled, by kind.",
		}, []string{"kind"}),
		mailFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "mail", Name: "failed_total",
			Help: "Mails given up on (permanent failure or attempts used up), by kind.",
		}, []string{"kind"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "webhook", Name: "attempts_total",
			Help: "Event deliveries attempted to the webhook endpoints, by event type and outcome (delivered, retried, failed).",
		}, []string{"type", "outcome"}),
	}
	for _, typ := range opts.EventTypes {
		for _, outcome := range []string{"delivered", "retried", "failed"} {
			m.webhooks.WithLabelValues(typ, outcome)
		}
	}
	for _, kind := range opts.MailKinds {
		m.mailSent.WithLabelValues(kind)
		m.mailRetried.WithLabelValues(kind)
		m.mailFailed.WithLabelValues(kind)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": orUnknown(opts.Version), "go_version": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.latency, m.rateLimited, m.mailSent, m.mailRetried, m.mailFailed, m.webhooks, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.DB != nil {
		m.reg.MustRegister(newOutboxCollector(opts), collectors.NewDBStatsCollector(opts.DB.SQL().DB, dbName))
	}
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ObserveRequest records one answered request. route must be a route
// template (never a raw path: link paths carry tokens); methods outside
// HTTP's usual set count as "other", so that no client can grow the label
// set.
func (m *Metrics) ObserveRequest(method, route string, status int, elapsed time.Duration) {
	labels := []string{methodLabel(method), route, strconv.Itoa(status)}
	m.requests.WithLabelValues(labels...).Inc()
	m.latency.WithLabelValues(labels...).Observe(elapsed.Seconds())
}

func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// RateLimited records a request refused by the named limit.
func (m *Metrics) RateLimited(rule string) { m.rateLimited.WithLabelValues(rule).Inc() }

// MailSent records a delivered mail of kind (for mail.Hooks.OnSent).
func (m *Metrics) MailSent(kind string) { m.mailSent.WithLabelValues(kind).Inc() }

// MailRetried records a temporary failure of a mail of kind that was
// rescheduled (for mail.Hooks.OnRetry).
func (m *Metrics) MailRetried(kind string) { m.mailRetried.WithLabelValues(kind).Inc() }

// MailFailed records a mail of kind given up on (for mail.Hooks.OnFailed).
func (m *Metrics) MailFailed(kind string) { m.mailFailed.WithLabelValues(kind).Inc() }

// Handler serves every metric, in the format the scraper asks for (the
// text format by default), for a listener of the metrics' own. A
// collector that fails leaves out its own metrics only.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// WriteText writes every metric in the Prometheus text exposition format
// (version 0.0.4). A collector that fails leaves out its own metrics only.
func (m *Metrics) WriteText(w io.Writer) error {
	families, _ := m.reg.Gather() // partial results on error; the failing collector's are missing
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	return nil
}

// outboxCollector reports the mail waiting in the outbox. It counts at
// most once per interval, whatever the number of scrapes: a scrape that
// finds the last count older takes the lock and counts again, and the
// scrapes that come meanwhile wait for that count rather than run their
// own. A failed count is kept as well, so that a database in trouble is
// not asked at every scrape.
type outboxCollector struct {
	db       Source
	timeout  time.Duration
	interval time.Duration
	now      func() time.Time
	messages *prometheus.Desc
	errors   *prometheus.Desc

	mu        sync.Mutex
	countedAt time.Time        // when the last count was made; zero: never
	counts    map[string]int64 // its result; nil when it failed
	failures  int64
}

func newOutboxCollector(opts Options) *outboxCollector {
	c := &outboxCollector{
		db:       opts.DB,
		timeout:  opts.OutboxTimeout,
		interval: opts.OutboxInterval,
		now:      opts.Now,
		messages: prometheus.NewDesc(prometheus.BuildFQName(namespace, "outbox", "messages"),
			"Mail waiting in the outbox, by status (queued, sending, failed); counted at most every few seconds.",
			[]string{"status"}, nil),
		errors: prometheus.NewDesc(prometheus.BuildFQName(namespace, "outbox", "count_errors_total"),
			"Outbox counts that failed (database unreachable or too slow); useremail_outbox_messages is missing until a count succeeds.",
			nil, nil),
	}
	if c.timeout <= 0 {
		c.timeout = DefaultOutboxTimeout
	}
	if c.interval <= 0 {
		c.interval = DefaultOutboxInterval
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.errors
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	counts, failures := c.count()
	if counts != nil {
		for _, status := range []string{store.StatusQueued, store.StatusSending, store.StatusFailed} {
			ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(counts[status]), status)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(failures))
}

// count returns the last count, counting again first when it is older than
// the interval; counts is nil when that count failed.
func (c *outboxCollector) count() (counts map[string]int64, failures int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.countedAt.IsZero() || c.now().Sub(c.countedAt) >= c.interval {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		counts, err := c.db.CountWaitingMessages(ctx)
		cancel()
		if err != nil {
			counts = nil
			c.failures++
		}
		c.counts, c.countedAt = counts, c.now()
	}
	return c.counts, c.failures
}

// WebhookDelivered records an event delivered to an endpoint (for
// mail.Hooks.OnDelivered).
func (m *Metrics) WebhookDelivered(eventType string) {
	m.webhooks.WithLabelValues(eventType, "delivered").Inc()
}

// WebhookRetried records a failed attempt of an event's delivery that was
// rescheduled (for mail.Hooks.OnDeliveryRetry).
func (m *Metrics) WebhookRetried(eventType string) {
	m.webhooks.WithLabelValues(eventType, "retried").Inc()
}

// WebhookFailed records an event's delivery given up on (for
// mail.Hooks.OnDeliveryFailed).
func (m *Metrics) WebhookFailed(eventType string) {
	m.webhooks.WithLabelValues(eventType, "failed").Inc()
}
