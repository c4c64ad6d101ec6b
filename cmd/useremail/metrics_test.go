package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
)

// TestMetricsAndLogs checks the wiring of `useremail serve`: /metrics
// reports requests by route template, mail outcomes, the outbox, the pool,
// rate-limit refusals and the build; the JSON log has one line per request
// with its request id, and no secrets.
func TestMetricsAndLogs(t *testing.T) {
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(databaseURL(t, store.SQLite), sink)
	env["USEREMAIL_RATE_LIMITS"] = "on"
	p := startServe(t, "useremail", env)
	c := newClient(true)

	id, a := c.signUp(p.base, "ann@example.com")
	if a.Status != http.StatusCreated {
		t.Fatalf("sign-up: %v %s", a, a.Body)
	}
	if got := a.Header.Get("X-Request-ID"); got != a.RequestID {
		t.Errorf("X-Request-ID = %q, want the one sent, %q", got, a.RequestID)
	}
	mails := sink.Wait(t, 1, 30*time.Second)
	m, err := parseMail(mails[0])
	if err != nil || len(m.Links) != 1 {
		t.Fatalf("verification mail: %v %v", m, err)
	}
	linkPath := strings.TrimPrefix(m.Links[0], publicURL)
	token := strings.Split(linkPath, "/")[3]
	if a := c.do("POST", p.base+linkPath, "verify link", nil, nil); a.Status != http.StatusOK {
		t.Fatalf("verify link: %v %s", a, a.Body)
	}
	s, a := c.login(p.base, "ann@example.com")
	if a.Status != http.StatusOK {
		t.Fatalf("login: %v", a)
	}
	if a := c.do("GET", fmt.Sprintf("%s/users/%d/emails/", p.base, id), "list", nil, s.header()); a.Status != http.StatusOK {
		t.Fatalf("list: %v", a)
	}
	// Wrong passwords until the login limit (10 a minute per address) refuses.
	limited := false
	for range 12 {
		a := c.do("POST", p.base+"/auth/login/", "login", map[string]string{"email": "bob@example.com", "password": "wrong password"}, nil)
		if a.Status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("the login limit never refused")
	}
	unmatched := c.do("GET", p.base+"/no/such/path/"+token, "unmatched", nil, nil)
	if unmatched.Status != http.StatusNotFound {
		t.Fatalf("unknown path: %v", unmatched)
	}

	// The dispatcher reports the mail once it recorded it.
	var families map[string]*dto.MetricFamily
	eventually(10*time.Second, func() bool {
		families = scrapeMetrics(t, p.base)
		return metricValue(families, "useremail_mail_sent_total", map[string]string{"kind": "verify"}) == 1
	})
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"useremail_http_requests_total", map[string]string{"method": "POST", "route": "/users/", "status": "201"}, 1},
		{"useremail_http_requests_total", map[string]string{"method": "POST", "route": "/users/email-verify/{signed_email}/{user_id_key}", "status": "200"}, 1},
		{"useremail_http_requests_total", map[string]string{"method": "GET", "route": "/users/{id}/emails/", "status": "200"}, 1},
		{"useremail_http_requests_total", map[string]string{"method": "POST", "route": "/auth/login/", "status": "429"}, 1},
		{"useremail_http_requests_total", map[string]string{"method": "GET", "route": "unmatched", "status": "404"}, 1},
		{"useremail_http_request_duration_seconds", map[string]string{"method": "POST", "route": "/users/", "status": "201"}, 1},
		{"useremail_rate_limited_total", map[string]string{"rule": "login"}, 1},
		{"useremail_mail_sent_total", map[string]string{"kind": "verify"}, 1},
		{"useremail_mail_sent_total", map[string]string{"kind": "change_email"}, 0},
		{"useremail_mail_failed_total", map[string]string{"kind": "verify"}, 0},
		{"useremail_outbox_messages", map[string]string{"status": "queued"}, 0},
		{"useremail_outbox_messages", map[string]string{"status": "failed"}, 0},
		{"go_sql_max_open_connections", map[string]string{"db_name": "useremail"}, 1}, // SQLite: one connection
		{"useremail_build_info", map[string]string{"version": testVersion}, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.name, tt.labels), func(t *testing.T) {
			if got := metricValue(families, tt.name, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
			}
		})
	}
	for _, name := range []string{"go_sql_open_connections", "go_sql_in_use_connections", "go_sql_idle_connections",
		"go_sql_wait_count_total", "go_sql_wait_duration_seconds_total", "go_goroutines"} {
		if families[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
	// Label values are route templates, never paths: no token, no id.
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v := lp.GetValue(); strings.Contains(v, token) || strings.Contains(v, fmt.Sprintf("/%d/", id)) || strings.Contains(v, "/no/such") {
					t.Errorf("%s has a raw path in a label: %s=%q", name, lp.GetName(), v)
				}
			}
		}
	}

	// The log: JSON, one line per request with its id, no secrets.
	secrets := map[string]string{"session id": s.ID, "CSRF token": s.CSRF, "link token": token, "password": testPassword, "wrong password": "wrong password"}
	requestLines := map[string]logRecord{}
	for _, rec := range p.logs.all() {
		if rec.Msg == "" {
			t.Errorf("a log line that is not JSON: %s", rec.Raw)
		}
		for what, secret := range secrets {
			if secret != "" && strings.Contains(rec.Raw, secret) {
				t.Errorf("the log has the %s: %s", what, rec.Raw)
			}
		}
		if rec.Msg == "request" {
			id, _ := rec.Attrs["request_id"].(string)
			requestLines[id] = rec
			for _, k := range []string{"method", "route", "status", "elapsed"} {
				if _, ok := rec.Attrs[k]; !ok {
					t.Errorf("a request line without %s: %s", k, rec.Raw)
				}
			}
			if route, _ := rec.Attrs["route"].(string); strings.Contains(route, token) || strings.Contains(route, "/no/such") {
				t.Errorf("a request line with a raw path: %s", rec.Raw)
			}
		}
	}
	if rec, ok := requestLines[unmatched.RequestID]; !ok || rec.Attrs["status"] != float64(404) || rec.Level != "INFO" {
		t.Errorf("the request line of %s: %v %s", unmatched.RequestID, ok, rec.Raw)
	}
}

func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	a := get(base + "/metrics")
	if a.Status != http.StatusOK || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %v %s", a, a.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(a.Body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// metricValue returns the value of the sample of name whose labels include
// labels (a histogram's count), or -1 when there is none.
func metricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
next:
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestDebugListener checks USEREMAIL_DEBUG_ADDR: the Go profiles are served
// on their own listener, and never on the API's.
func TestDebugListener(t *testing.T) {
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(databaseURL(t, store.SQLite), sink)
	env["USEREMAIL_DEBUG_ADDR"] = "127.0.0.1:0"
	p := startServe(t, "useremail", env)

	rec, ok := p.logs.find(func(r logRecord) bool { return r.Msg == "serving profiles" })
	if !ok {
		t.Fatal(`no "serving profiles" record`)
	}
	addr, _ := rec.Attrs["addr"].(string)
	if addr == "" || addr == env["USEREMAIL_ADDR"] {
		t.Fatalf("profiles served at %q", addr)
	}
	if a := get("http://" + addr + "/debug/pprof/heap?debug=1"); a.Status != http.StatusOK || !strings.Contains(string(a.Body), "runtime.MemStats") {
		t.Fatalf("heap profile: %v %.200s", a, a.Body)
	}
	if a := get("http://" + addr + "/debug/pprof/profile?seconds=1"); a.Status != http.StatusOK || len(a.Body) == 0 {
		t.Fatalf("CPU profile: %v", a)
	}
	if a := get(p.base + "/debug/pprof/"); a.Status != http.StatusNotFound {
		t.Fatalf("the API listener answers /debug/pprof/ with %v, want 404", a)
	}
	if a := get("http://" + addr + "/users/"); a.Status != http.StatusNotFound {
		t.Fatalf("the debug listener answers /users/ with %v, want 404", a)
	}
}
