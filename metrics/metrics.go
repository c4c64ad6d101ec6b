// Package metrics owns useremail's Prometheus metrics: requests by method,
// route template and status; the mail outbox's depth and the dispatcher's
// outcomes; the database pool (client_golang's collector); rate-limit
// refusals; and the build. It writes them in the Prometheus text format for
// the /metrics route.
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
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/useremail/useremail/store"
)

// namespace prefixes every metric of the service.
const namespace = "useremail"

// DefaultOutboxTimeout bounds the query that counts the outbox at scrape
// time, so that a slow or unreachable database cannot stall a scrape.
const DefaultOutboxTimeout = 2 * time.Second

// Source is what the metrics read from the database at scrape time: the
// outbox and the connection pool; *store.DB is one.
type Source interface {
	CountMessages(ctx context.Context) (map[string]int64, error)
	SQL() *sqlx.DB
}

// dbName is the db_name label of the connection pool's metrics.
const dbName = namespace

var _ Source = (*store.DB)(nil)

// Options configure New.
type Options struct {
	// DB, when set, is counted at every scrape: outbox depth by status and
	// the connection pool's statistics (go_sql_*{db_name="useremail"}).
	DB Source
	// Version is the build's version, reported by useremail_build_info.
	Version string
	// MailKinds are created at zero in the mail counters, so that rates
	// and alerts work before the first mail of a kind.
	MailKinds []string
	// OutboxTimeout bounds the outbox count; default DefaultOutboxTimeout.
	OutboxTimeout time.Duration
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
	m.reg.MustRegister(m.requests, m.latency, m.rateLimited, m.mailSent, m.mailRetried, m.mailFailed, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.DB != nil {
		timeout := opts.OutboxTimeout
		if timeout <= 0 {
			timeout = DefaultOutboxTimeout
		}
		m.reg.MustRegister(newOutboxCollector(opts.DB, timeout), collectors.NewDBStatsCollector(opts.DB.SQL().DB, dbName))
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

// outboxCollector counts the outbox by status at scrape time.
type outboxCollector struct {
	db       Source
	timeout  time.Duration
	messages *prometheus.Desc
	errors   *prometheus.Desc
	failures atomic.Int64
}

func newOutboxCollector(db Source, timeout time.Duration) *outboxCollector {
	return &outboxCollector{
		db:      db,
		timeout: timeout,
		messages: prometheus.NewDesc(prometheus.BuildFQName(namespace, "outbox", "messages"),
			"Mail outbox rows by status (queued, sending, sent, failed), counted at scrape time.",
			[]string{"status"}, nil),
		errors: prometheus.NewDesc(prometheus.BuildFQName(namespace, "outbox", "count_errors_total"),
			"Scrapes whose outbox count failed (database unreachable or too slow); useremail_outbox_messages is missing from those.",
			nil, nil),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.errors
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.db.CountMessages(ctx)
	if err != nil {
		c.failures.Add(1)
	} else {
		for _, status := range []string{store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusFailed} {
			ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(counts[status]), status)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(c.failures.Load()))
}
