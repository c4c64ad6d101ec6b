package main

// Events from `useremail serve` to a webhook endpoint: configured from the
// environment, signed, and after a crash repeated with the same webhook-id.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/webhook"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookCall is one request the endpoint got.
type hookCall struct {
	id   string
	body string
	at   time.Time
}

// hookEndpoint verifies every request's signature and answers 204, except
// the first request of each id in hold, which it keeps open until the
// sender goes away.
type hookEndpoint struct {
	t    *testing.T
	srv  *httptest.Server
	key  webhook.Secret
	mu   sync.Mutex
	got  []hookCall
	hold map[string]bool
	held chan string
}

func newHookEndpoint(t *testing.T, hold ...string) *hookEndpoint {
	key, err := webhook.ParseSecret(testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookEndpoint{t: t, key: key, hold: map[string]bool{}, held: make(chan string, len(hold))}
	for _, id := range hold {
		h.hold[id] = true
	}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(webhook.HeaderID)
	if err := webhook.Verify([]webhook.Secret{h.key}, id, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		h.t.Errorf("%s: %v", id, err)
	}
	h.mu.Lock()
	h.got = append(h.got, hookCall{id: id, body: string(body), at: time.Now()})
	hold := h.hold[id]
	delete(h.hold, id)
	h.mu.Unlock()
	if hold {
		h.held <- id
		select {
		case <-r.Context().Done(): // the sender died
		case <-time.After(time.Minute):
		}
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookEndpoint) calls(id string) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookCall
	for _, c := range h.got {
		if c.id == id {
			out = append(out, c)
		}
	}
	return out
}

// TestWebhookRepeatedAfterCrash kills `useremail serve` while an event's
// delivery is in flight and checks that the event reaches the endpoint
// again, with the same webhook-id and body, within 10 s of the restart on
// the same SQLite file or of the death while another replica runs on
// PostgreSQL; and that the user's next event follows it.
func TestWebhookRepeatedAfterCrash(t *testing.T) {
	for _, dialect := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			url := databaseURL(t, dialect)
			hooks := newHookEndpoint(t, "evt_1")
			env := serveEnv(url, nil)
			env["USEREMAIL_WEBHOOK_URLS"] = hooks.srv.URL + "/useremail"
			env["USEREMAIL_WEBHOOK_SECRETS"] = testWebhookSecret
			first := startServe(t, "first", env)
			if _, a := defaultClient.signUp(first.base, "crash-hook@example.com"); a.Status != http.StatusCreated {
				t.Fatalf("sign up: %v", a)
			}
			select {
			case <-hooks.held:
			case <-time.After(15 * time.Second):
				t.Fatalf("no delivery of evt_1\n%s", first.logs.tail(30))
			}
			var second *proc
			if dialect == store.Postgres {
				second = startServe(t, "second", env)
			}
			_ = first.cmd.Process.Signal(syscall.SIGKILL)
			if !first.waitExit(10 * time.Second) {
				t.Fatal("the first process survived SIGKILL")
			}
			since := time.Now()
			if dialect == store.SQLite {
				second = startServe(t, "second", env)
				since = time.Now()
			}
			if !eventually(15*time.Second, func() bool { return len(hooks.calls("evt_1")) == 2 }) {
				t.Fatalf("evt_1 not delivered again: %d calls\n%s", len(hooks.calls("evt_1")), second.logs.tail(30))
			}
			calls := hooks.calls("evt_1")
			if calls[0].body != calls[1].body {
				t.Errorf("the repeat's body differs: %s vs %s", calls[0].body, calls[1].body)
			}
			if d := calls[1].at.Sub(since); d > deadMailWithin {
				t.Errorf("repeated %v after the %s, want within %v", d, map[store.Dialect]string{store.SQLite: "restart", store.Postgres: "death"}[dialect], deadMailWithin)
			}
			var ev struct {
				Type string `json:"type"`
				Data struct {
					Sequence int64 `json:"sequence"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(calls[1].body), &ev); err != nil || ev.Type != "user.created" || ev.Data.Sequence != 1 {
				t.Errorf("body %s: %v", calls[1].body, err)
			}

			db := openDB(t, url)
			if !eventually(5*time.Second, func() bool {
				evs, err := db.ListEvents(context.Background(), store.EventFilter{Limit: 10})
				return err == nil && len(evs) == 1 && len(evs[0].Deliveries) == 1 && evs[0].Deliveries[0].Status == store.DeliveryDelivered
			}) {
				evs, err := db.ListEvents(context.Background(), store.EventFilter{Limit: 10})
				t.Fatalf("events after the repeat: %+v %v", evs, err)
			}
			evs, _ := db.ListEvents(context.Background(), store.EventFilter{Limit: 10})
			if a := evs[0].Deliveries[0].Attempts; a != 2 {
				t.Errorf("attempts %d, want 2 (the crashed one counts)", a)
			}
			const want = `useremail_webhook_attempts_total{outcome="delivered",type="user.created"} 1`
			if m := get(second.base + "/metrics"); !strings.Contains(string(m.Body), want) {
				t.Errorf("/metrics of the second process lacks %s", want)
			}
		})
	}
}
