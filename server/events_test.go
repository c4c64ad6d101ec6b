package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/webhook"
)

// webhookSecrets sign the test deliveries: two, as during a rotation.
var webhookSecrets = []webhook.Secret{
	webhook.Secret("webhook-test-secret-one-0123456789"),
	webhook.Secret("webhook-test-secret-two-0123456789abcdef"),
}

// withWebhooks sets the endpoints every event goes to.
func withWebhooks(urls ...string) option {
	return func(c *server.Config) { c.WebhookEndpoints = urls }
}

// hookEvent is a delivered event's body.
type hookEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		UserID   int64      `json:"user_id"`
		Sequence int64      `json:"sequence"`
		Actor    string     `json:"actor"`
		Email    *gen.Email `json:"email"`
		Previous *gen.Email `json:"previous"`
	} `json:"data"`
}

// attempt is one request a receiver got.
type attempt struct {
	id, timestamp, signature string
	body                     []byte
	event                    hookEvent
	status                   int // what the receiver answered
}

// receiver is a webhook endpoint in the test: it verifies the signature
// of every request (with one secret of the two, as a receiver that knows
// only the new one), checks the body, answers what answer says (2xx by
// default), and checks that what it accepts comes once per webhook-id and
// in sequence order per user.
type receiver struct {
	t   testing.TB
	srv *httptest.Server
	now func() time.Time

	mu       sync.Mutex
	answer   func(a attempt) (status int, header http.Header)
	attempts []attempt
	accepted map[string]int  // webhook-id → 2xx answers
	lastSeq  map[int64]int64 // user → sequence last accepted
	order    []string        // webhook-ids accepted, in order
}

func newReceiver(t testing.TB, now func() time.Time) *receiver {
	r := &receiver{t: t, now: now, accepted: map[string]int{}, lastSeq: map[int64]int64{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	a := attempt{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"), body: body}
	sig := req.Header.Get("webhook-signature")
	a.signature = sig
	if n := len(strings.Fields(sig)); n != len(webhookSecrets) {
		r.t.Errorf("%s: %d signatures, want one per secret: %q", a.id, n, sig)
	}
	if err := webhook.Verify(webhookSecrets[1:], a.id, a.timestamp, sig, body, r.now(), 5*time.Minute); err != nil {
		r.t.Errorf("%s: %v", a.id, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("%s: %s with Content-Type %q", a.id, req.Method, req.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal(body, &a.event); err != nil {
		r.t.Errorf("%s: body %s: %v", a.id, body, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	status, header := http.StatusNoContent, http.Header(nil)
	if r.answer != nil {
		status, header = r.answer(a)
	}
	a.status = status
	r.attempts = append(r.attempts, a)
	if status >= 200 && status < 300 {
		r.accepted[a.id]++
		if r.accepted[a.id] > 1 {
			r.t.Errorf("%s accepted %d times", a.id, r.accepted[a.id])
		}
		uid, seq := a.event.Data.UserID, a.event.Data.Sequence
		if seq <= r.lastSeq[uid] {
			r.t.Errorf("%s: user %d's sequence %d after %d", a.id, uid, seq, r.lastSeq[uid])
		}
		r.lastSeq[uid] = seq
		r.order = append(r.order, a.id)
	}
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.WriteHeader(status)
}

// setAnswer sets how the receiver answers from now on.
func (r *receiver) setAnswer(f func(a attempt) (int, http.Header)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// acceptedEvents returns the events accepted so far, in arrival order.
func (r *receiver) acceptedEvents() []hookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hookEvent
	for _, a := range r.attempts {
		if a.status >= 200 && a.status < 300 {
			out = append(out, a.event)
		}
	}
	return out
}

// attemptsOf returns the attempts of one webhook-id.
func (r *receiver) attemptsOf(id string) []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []attempt
	for _, a := range r.attempts {
		if a.id == id {
			out = append(out, a)
		}
	}
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.attempts)
}

// typesOf lists the types of events of user uid, in order.
func typesOf(evs []hookEvent, uid int64) []string {
	var out []string
	for _, e := range evs {
		if e.Data.UserID == uid {
			out = append(out, e.Type)
		}
	}
	return out
}

// events lists the stored events of a user with their deliveries.
func (e *env) events(uid int64) []store.EventWithDeliveries {
	e.t.Helper()
	evs, err := e.db.ListEvents(ctx, store.EventFilter{UserID: uid, Limit: 500})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// TestEventsOfEveryChange runs every change that is an event and checks
// what two endpoints receive: the types in the contract's order, the
// sequence from 1 without gaps, actor, data and timestamp, webhook-id
// evt_<id> the same at both, each once.
func TestEventsOfEveryChange(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var e *env
		now := func() time.Time { return e.clock.Now() }
		r1, r2 := newReceiver(t, now), newReceiver(t, now)
		e = newEnv(t, db, withoutLimits(), withWebhooks(r1.srv.URL+"/hooks", r2.srv.URL))

		u := e.verifiedUser("ev@example.com")         // user.created, email.verified
		added := e.addEmail(u, "ev-work@example.com") // email.added
		e.confirmVerify("ev-work@example.com")        // email.verified
		e.requestChange(u, "ev-new@example.com")      // nothing: a request is no change
		l := e.changeLink("ev-new@example.com")       // …
		res, err := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
		if err != nil || res.JSON200 == nil {
			t.Fatalf("confirm primary: %v %d %s", err, res.StatusCode(), res.Body)
		}
		newPrimary := *res.JSON200 // email.added, email.verified, email.primary_changed
		if r, err := u.DeleteEmailWithResponse(ctx, u.id, added.Id); err != nil || r.StatusCode() != http.StatusNoContent {
			t.Fatalf("delete: %v %d", err, r.StatusCode())
		} // email.removed
		other := e.newUser("ev-other@example.com") // another user's own sequence
		e.deliver()

		want := []string{
			server.EventUserCreated, server.EventEmailVerified,
			server.EventEmailAdded, server.EventEmailVerified,
			server.EventEmailAdded, server.EventEmailVerified, server.EventEmailPrimaryChanged,
			server.EventEmailRemoved,
		}
		for _, r := range []*receiver{r1, r2} {
			got := r.acceptedEvents()
			if types := typesOf(got, u.id); !slices.Equal(types, want) {
				t.Fatalf("user's events %v, want %v", types, want)
			}
			if types := typesOf(got, other.id); !slices.Equal(types, []string{server.EventUserCreated}) {
				t.Errorf("other user's events %v", types)
			}
		}
		stored := e.events(u.id)
		got := r1.acceptedEvents()
		mine := slices.DeleteFunc(slices.Clone(got), func(h hookEvent) bool { return h.Data.UserID != u.id })
		actors := []string{"user", "link", "user", "link", "link", "link", "link", "user"}
		for i, h := range mine {
			if h.Data.Sequence != int64(i+1) || h.Data.Actor != actors[i] {
				t.Errorf("event %d (%s): sequence %d actor %q, want %d %q", i, h.Type, h.Data.Sequence, h.Data.Actor, i+1, actors[i])
			}
			if !h.Timestamp.Equal(t0) {
				t.Errorf("event %d: timestamp %v, want the change's %v", i, h.Timestamp, t0)
			}
			if stored[i].Sequence != int64(i+1) || stored[i].Type != h.Type {
				t.Errorf("stored event %d: %+v", i, stored[i].Event)
			}
			if len(stored[i].Deliveries) != 2 {
				t.Errorf("event %d: %d deliveries, want one per endpoint", i, len(stored[i].Deliveries))
			}
			for _, d := range stored[i].Deliveries {
				if d.Status != store.DeliveryDelivered || d.Attempts != 1 || d.DeliveredAt == nil {
					t.Errorf("event %d to %s: %s after %d attempts", i, d.Endpoint, d.Status, d.Attempts)
				}
			}
			id := mail.WebhookID(stored[i].ID)
			if len(r1.attemptsOf(id)) != 1 || len(r2.attemptsOf(id)) != 1 {
				t.Errorf("%s: %d and %d attempts at the two endpoints, want 1 each", id, len(r1.attemptsOf(id)), len(r2.attemptsOf(id)))
			}
		}
		wantEmail := func(i int, want gen.Email) {
			t.Helper()
			if mine[i].Data.Email == nil || *mine[i].Data.Email != want {
				t.Errorf("event %d (%s): email %+v, want %+v", i, mine[i].Type, mine[i].Data.Email, want)
			}
		}
		primary := gen.Email{Id: mine[0].Data.Email.Id, Email: "ev@example.com", Primary: true}
		wantEmail(0, primary)
		primary.Verified = true
		wantEmail(1, primary)
		wantEmail(2, added)
		wantEmail(3, gen.Email{Id: added.Id, Email: added.Email, Verified: true})
		wantEmail(4, gen.Email{Id: newPrimary.Id, Email: newPrimary.Email})
		wantEmail(5, gen.Email{Id: newPrimary.Id, Email: newPrimary.Email, Verified: true})
		wantEmail(6, newPrimary)
		if p := mine[6].Data.Previous; p == nil || *p != (gen.Email{Id: primary.Id, Email: primary.Email, Verified: true}) {
			t.Errorf("primary_changed: previous %+v", p)
		}
		wantEmail(7, gen.Email{Id: added.Id, Email: added.Email, Verified: true})
		// The body is exactly what EventBody makes of the stored event.
		body, err := mail.EventBody(stored[0].Event)
		if err != nil {
			t.Fatal(err)
		}
		if a := r1.attemptsOf(mail.WebhookID(stored[0].ID)); string(a[0].body) != string(body) {
			t.Errorf("body %s, want %s", a[0].body, body)
		}
	})
}

// TestEventsRetryInOrder: a failing endpoint gets the same webhook-id on
// every retry, on the schedule and no sooner than its Retry-After, while
// the user's later events wait; another user's events do not wait.
func TestEventsRetryInOrder(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var e *env
		r := newReceiver(t, func() time.Time { return e.clock.Now() })
		e = newEnv(t, db, withoutLimits(), withWebhooks(r.srv.URL))
		failing := true
		r.setAnswer(func(a attempt) (int, http.Header) {
			if failing && a.event.Data.Sequence == 1 && a.event.Data.Email.Email == "retry@example.com" {
				return http.StatusServiceUnavailable, nil
			}
			return http.StatusOK, nil
		})
		u := e.newUser("retry@example.com")
		e.addEmail(u, "retry-2@example.com")
		e.newUser("bystander@example.com")
		e.deliver()

		first := mail.WebhookID(e.events(u.id)[0].ID)
		if n := len(r.attemptsOf(first)); n != 1 {
			t.Fatalf("%d attempts of the first event, want 1", n)
		}
		if types := typesOf(r.acceptedEvents(), u.id); len(types) != 0 {
			t.Fatalf("user's later event delivered before the first: %v", types)
		}
		if len(r.acceptedEvents()) != 1 {
			t.Fatalf("the other user's event waited: %d accepted", len(r.acceptedEvents()))
		}
		// The first retry is about 5 s later (4.5 s to 5.5 s).
		e.clock.Advance(4 * time.Second)
		e.deliver()
		if n := len(r.attemptsOf(first)); n != 1 {
			t.Fatalf("retried after 4 s: %d attempts", n)
		}
		// The second attempt asks for an hour.
		r.setAnswer(func(a attempt) (int, http.Header) {
			if a.id == first {
				return http.StatusTooManyRequests, http.Header{"Retry-After": {"3600"}}
			}
			return http.StatusOK, nil
		})
		e.clock.Advance(2 * time.Second)
		e.deliver()
		if n := len(r.attemptsOf(first)); n != 2 {
			t.Fatalf("not retried after 6 s: %d attempts", n)
		}
		e.clock.Advance(30 * time.Minute) // the schedule's 5 min is long past
		e.deliver()
		if n := len(r.attemptsOf(first)); n != 2 {
			t.Fatalf("retried before the Retry-After: %d attempts", n)
		}
		ev := e.events(u.id)
		if d := ev[0].Deliveries[0]; d.Status != store.DeliveryPending || d.Attempts != 2 || !strings.Contains(d.LastError, "429") {
			t.Errorf("delivery while retrying: %+v", d)
		}
		if d := ev[1].Deliveries[0]; d.Status != store.DeliveryPending || d.Attempts != 0 {
			t.Errorf("the waiting delivery: %+v", d)
		}
		r.setAnswer(nil)
		e.clock.Advance(31 * time.Minute)
		e.deliver()
		if types := typesOf(r.acceptedEvents(), u.id); !slices.Equal(types, []string{server.EventUserCreated, server.EventEmailAdded}) {
			t.Fatalf("after the retry: %v", types)
		}
		as := r.attemptsOf(first)
		if len(as) != 3 || as[0].timestamp == as[2].timestamp {
			t.Errorf("attempts of %s: %d, timestamps %s %s (each attempt's own)", first, len(as), as[0].timestamp, as[2].timestamp)
		}
		for _, a := range as {
			if string(a.body) != string(as[0].body) {
				t.Errorf("the body changed between attempts: %s vs %s", a.body, as[0].body)
			}
		}
	})
}

// TestEventsGoneFailedRedeliver: 410 fails a delivery at once, a
// redirect is not followed, the last try fails it, and the user's later
// events go on; a redelivery sends the same webhook-id again.
func TestEventsGoneFailedRedeliver(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var e *env
		r := newReceiver(t, func() time.Time { return e.clock.Now() })
		redirected := 0
		elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { redirected++ }))
		t.Cleanup(elsewhere.Close)
		e = newEnv(t, db, withoutLimits(), withWebhooks(r.srv.URL))
		e.dispatcher = e.newDispatcher(func(c *mail.Config) { c.WebhookSchedule = []time.Duration{time.Minute, time.Minute} })
		r.setAnswer(func(a attempt) (int, http.Header) {
			switch a.event.Data.Sequence {
			case 1:
				return http.StatusGone, nil
			case 2:
				return http.StatusTemporaryRedirect, http.Header{"Location": {elsewhere.URL}}
			}
			return http.StatusOK, nil
		})
		u := e.newUser("gone@example.com")
		e.addEmail(u, "gone-2@example.com")
		e.addEmail(u, "gone-3@example.com")
		e.deliver()
		ev := e.events(u.id)
		if d := ev[0].Deliveries[0]; d.Status != store.DeliveryFailed || d.Attempts != 1 || !strings.Contains(d.LastError, "410") {
			t.Errorf("after 410: %+v", d)
		}
		for range 2 { // the schedule's two retries, a minute apart
			e.clock.Advance(70 * time.Second)
			e.deliver()
		}
		ev = e.events(u.id)
		if d := ev[1].Deliveries[0]; d.Status != store.DeliveryFailed || d.Attempts != 3 || !strings.Contains(d.LastError, "307") {
			t.Errorf("after the last try: %+v", d)
		}
		if redirected != 0 {
			t.Errorf("a redirect was followed %d times", redirected)
		}
		if types := typesOf(r.acceptedEvents(), u.id); !slices.Equal(types, []string{server.EventEmailAdded}) {
			t.Fatalf("accepted %v, want the third event alone", types)
		}

		r.setAnswer(nil)
		r.mu.Lock()
		r.lastSeq = map[int64]int64{} // a redelivery comes out of order
		r.mu.Unlock()
		if err := db.WithTx(ctx, func(q *store.Queries) error {
			_, err := q.Redeliver(ctx, ev[0].ID, e.cfg.WebhookEndpoints, e.clock.Now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		e.deliver()
		first := mail.WebhookID(ev[0].ID)
		as := r.attemptsOf(first)
		if len(as) != 2 || as[1].status != http.StatusNoContent {
			t.Fatalf("redelivery of %s: %d attempts", first, len(as))
		}
		if d := e.events(u.id)[0].Deliveries[0]; d.Status != store.DeliveryDelivered || d.Attempts != 1 {
			t.Errorf("after redelivery: %+v", d)
		}
		if _, err := db.Redeliver(ctx, 1<<40, e.cfg.WebhookEndpoints, e.clock.Now()); err == nil {
			t.Error("redeliver of no event: no error")
		}
	})
}

// TestEventsWithoutEndpoints: events are recorded without endpoints, and
// none is delivered; a redelivery to an endpoint configured later makes
// the delivery.
func TestEventsWithoutEndpoints(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		u := e.newUser("quiet@example.com")
		ev := e.events(u.id)
		if len(ev) != 1 || ev[0].Type != server.EventUserCreated || len(ev[0].Deliveries) != 0 {
			t.Fatalf("events %+v", ev)
		}
		page, err := db.ListEvents(ctx, store.EventFilter{Type: server.EventEmailAdded, Limit: 10})
		if err != nil || len(page) != 0 {
			t.Errorf("filter by type: %v %v", page, err)
		}
	})
}

// TestEventsManyDispatchers: three dispatchers on one database, each with
// its own owner, deliver the events of many users concurrently changing
// their addresses: each once, in order per user, while the endpoint fails
// now and then (retried on a short schedule).
func TestEventsManyDispatchers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		if db.Dialect() != store.Postgres {
			t.Skip("SQLite has one serve, so one dispatcher, per database")
		}
		r := newReceiver(t, time.Now)
		e := newEnv(t, db, withoutLimits(), withWebhooks(r.srv.URL))
		var mu sync.Mutex
		tries := map[string]int{}
		r.setAnswer(func(a attempt) (int, http.Header) {
			mu.Lock()
			defer mu.Unlock()
			tries[a.id]++
			if tries[a.id] == 1 && a.event.Data.Sequence%3 == 2 {
				return http.StatusInternalServerError, nil
			}
			return http.StatusOK, nil
		})
		runCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range 3 {
			d := e.newDispatcher(func(c *mail.Config) {
				c.Now = nil // real time, so that retries fall due
				signer, _ := webhook.NewSigner(webhookSecrets...)
				c.Webhooks = webhook.NewClient(signer, nil, nil)
				c.WebhookSchedule = []time.Duration{20 * time.Millisecond}
				c.PollInterval = 20 * time.Millisecond
				c.BatchSize = 5
			})
			wg.Go(func() { _ = d.Run(runCtx) })
		}
		const users, adds = 8, 4
		var uwg sync.WaitGroup
		ids := make([]int64, users)
		for i := range users {
			uwg.Go(func() {
				u := e.newUser(fmt.Sprintf("many-%d@example.com", i))
				ids[i] = u.id
				for j := range adds {
					e.addEmail(u, fmt.Sprintf("many-%d-%d@example.com", i, j))
				}
			})
		}
		uwg.Wait()
		total := users * (1 + adds)
		deadline := time.Now().Add(30 * time.Second)
		for len(r.acceptedEvents()) < total && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // time for a duplicate to show
		stop()
		wg.Wait()
		got := r.acceptedEvents()
		if len(got) != total {
			t.Fatalf("%d events accepted, want %d", len(got), total)
		}
		for _, uid := range ids {
			if n := len(typesOf(got, uid)); n != 1+adds {
				t.Errorf("user %d: %d events", uid, n)
			}
		}
	})
}

// TestEventSequenceUnderConcurrency: concurrent changes of one user get
// the sequence numbers 1…n without a gap or a repeat, in the order of the
// events' ids, on both stores.
func TestEventSequenceUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits(), withMaxEmails(100), withWebhooks("https://app.example.com/hooks"))
		u := e.newUser("seq@example.com")
		const n = 12
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res, err := u.AddEmailWithResponse(ctx, u.id, gen.AddEmailJSONRequestBody{Email: fmt.Sprintf("seq-%d@example.com", i)})
				if err != nil || res.StatusCode() != http.StatusCreated {
					t.Errorf("add %d: %v %d %s", i, err, res.StatusCode(), res.Body)
				}
			})
		}
		wg.Wait()
		evs := e.events(u.id)
		if len(evs) != n+1 {
			t.Fatalf("%d events, want %d", len(evs), n+1)
		}
		for i, ev := range evs {
			if ev.Sequence != int64(i+1) {
				t.Errorf("event %d (id %d): sequence %d", i, ev.ID, ev.Sequence)
			}
			if len(ev.Deliveries) != 1 || ev.Deliveries[0].Sequence != ev.Sequence || ev.Deliveries[0].Status != store.DeliveryPending {
				t.Errorf("event %d: deliveries %+v", i, ev.Deliveries)
			}
		}
	})
}

// TestListEventsPages: the admin list is keyset-paginated by id and
// filters by user and type.
func TestListEventsPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		a := e.newUser("page-a@example.com")
		b := e.newUser("page-b@example.com")
		for i := range 3 {
			e.addEmail(a, fmt.Sprintf("page-a-%d@example.com", i))
			e.addEmail(b, fmt.Sprintf("page-b-%d@example.com", i))
		}
		var all []store.EventWithDeliveries
		for after := int64(0); ; {
			page, err := db.ListEvents(ctx, store.EventFilter{After: after, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].ID
		}
		if len(all) != 8 || !slices.IsSortedFunc(all, func(x, y store.EventWithDeliveries) int { return int(x.ID - y.ID) }) {
			t.Fatalf("%d events over the pages, want 8 in id order", len(all))
		}
		onlyB, err := db.ListEvents(ctx, store.EventFilter{UserID: b.id, Type: server.EventEmailAdded, Limit: 50})
		if err != nil || len(onlyB) != 3 {
			t.Fatalf("b's email.added: %d %v", len(onlyB), err)
		}
		for _, ev := range onlyB {
			if ev.UserID != b.id || ev.Type != server.EventEmailAdded {
				t.Errorf("filtered page holds %+v", ev.Event)
			}
		}
	})
}

// TestSlowEndpointHoldsNoMail: while an endpoint keeps a delivery waiting,
// Run still sends the mail queued meanwhile at once: events and mail claim
// and wait apart.
func TestSlowEndpointHoldsNoMail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		held := make(chan struct{}, 1)
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case held <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(slow.Close)
		e := newEnv(t, db, withoutLimits(), withWebhooks(slow.URL))
		d := e.newDispatcher(func(c *mail.Config) { c.Now = nil; c.PollInterval = 50 * time.Millisecond })
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = d.Run(runCtx); close(done) }()
		t.Cleanup(func() { close(release); stop(); <-done })

		e.signUp("slow-a@example.com")
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatal("the endpoint got no delivery")
		}
		before := len(e.outbox.all())
		e.signUp("slow-b@example.com")
		start := time.Now()
		for len(e.outbox.all()) == before {
			if time.Since(start) > 2*time.Second {
				t.Fatal("the mail waited for the slow endpoint")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestEventsOfRecovery: a password change, a reset through its link (with
// the takeover of an account whose primary was never verified) and a
// deletion are events too, in the contract's order, and a deleted user's
// events still go out.
func TestEventsOfRecovery(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var e *env
		r := newReceiver(t, func() time.Time { return e.clock.Now() })
		e = newEnv(t, db, withoutLimits(), withWebhooks(r.srv.URL))

		u := e.verifiedUser("rec-change@example.com")
		res, err := u.ChangePasswordWithResponse(ctx, u.id, gen.PasswordChange{Password: goodPasswd, NewPassword: "a much better passphrase"})
		if err != nil || res.StatusCode() != http.StatusNoContent {
			t.Fatalf("change password: %v %d %s", err, res.StatusCode(), res.Body)
		}

		// An unverified primary: the reset verifies it and takes the
		// account over, removing the address its squatter added.
		v := e.newUser("rec-reset@example.com")
		squatted := e.addEmail(v, "rec-squat@example.com")
		l := e.resetLink("rec-reset@example.com")
		if r, err := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: "another fine passphrase"}); err != nil || r.StatusCode() != http.StatusNoContent {
			t.Fatalf("reset: %v %d %s", err, r.StatusCode(), r.Body)
		}

		w := e.newUser("rec-delete@example.com")
		e.addEmail(w, "rec-delete-2@example.com")
		if r, err := w.DeleteAccountWithResponse(ctx, w.id, gen.AccountDeletion{Password: goodPasswd}); err != nil || r.StatusCode() != http.StatusNoContent {
			t.Fatalf("delete: %v %d %s", err, r.StatusCode(), r.Body)
		}
		e.deliver()

		got := r.acceptedEvents()
		for _, c := range []struct {
			uid  int64
			want []string
		}{
			{u.id, []string{server.EventUserCreated, server.EventEmailVerified, server.EventUserPasswordChanged}},
			{v.id, []string{server.EventUserCreated, server.EventEmailAdded, server.EventEmailRemoved, server.EventEmailVerified, server.EventUserPasswordChanged}},
			{w.id, []string{server.EventUserCreated, server.EventEmailAdded, server.EventUserDeleted}},
		} {
			if types := typesOf(got, c.uid); !slices.Equal(types, c.want) {
				t.Errorf("user %d: events %v, want %v", c.uid, types, c.want)
			}
		}
		for _, h := range got {
			switch {
			case h.Data.UserID == u.id && h.Type == server.EventUserPasswordChanged:
				if h.Data.Actor != server.ActorUser || h.Data.Email != nil {
					t.Errorf("password change: actor %q, email %+v", h.Data.Actor, h.Data.Email)
				}
			case h.Data.UserID == v.id && h.Data.Sequence > 2:
				if h.Data.Actor != server.ActorLink {
					t.Errorf("reset's %s: actor %q, want link", h.Type, h.Data.Actor)
				}
				if h.Type == server.EventEmailRemoved && (h.Data.Email == nil || h.Data.Email.Id != squatted.Id) {
					t.Errorf("takeover's email.removed: %+v", h.Data.Email)
				}
				if h.Type == server.EventEmailVerified && (h.Data.Email == nil || !h.Data.Email.Verified || !h.Data.Email.Primary) {
					t.Errorf("reset's email.verified: %+v", h.Data.Email)
				}
			case h.Data.UserID == w.id && h.Type == server.EventUserDeleted:
				if h.Data.Actor != server.ActorUser || h.Data.Sequence != 3 {
					t.Errorf("deletion: actor %q sequence %d", h.Data.Actor, h.Data.Sequence)
				}
			}
		}
	})
}

// TestAdminEvents: the admin writes are events with actor admin:<name>;
// the admin API lists events with their deliveries (keyset pages,
// filters) and redelivers one with the same webhook-id.
func TestAdminEvents(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var e *env
		r := newReceiver(t, func() time.Time { return e.clock.Now() })
		e = newEnv(t, db, withoutLimits(), withWebhooks(r.srv.URL))
		ops := e.newAdmin("ops", false)
		ro := e.newAdmin("support", true)

		cr, err := ops.AdminCreateUserWithResponse(ctx, gen.AdminCreateUserJSONRequestBody{Email: "adm@example.com", Verified: ptr(true)})
		if err != nil || cr.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		uid := cr.JSON201.Id
		ar, err := ops.AdminAddEmailWithResponse(ctx, uid, gen.AdminAddEmailJSONRequestBody{Email: "adm-2@example.com", Verified: ptr(true)})
		if err != nil || ar.JSON201 == nil {
			t.Fatalf("add: %v %d %s", err, ar.StatusCode(), ar.Body)
		}
		if res, err := ops.AdminMakePrimaryWithResponse(ctx, uid, ar.JSON201.Id); err != nil || res.JSON200 == nil {
			t.Fatalf("make primary: %v %d %s", err, res.StatusCode(), res.Body)
		}
		old := cr.JSON201.Emails[0].Id
		if res, err := ops.AdminDeleteEmailWithResponse(ctx, uid, old); err != nil || res.StatusCode() != http.StatusNoContent {
			t.Fatalf("delete email: %v %d %s", err, res.StatusCode(), res.Body)
		}
		e.deliver()
		want := []string{server.EventUserCreated, server.EventEmailAdded, server.EventEmailVerified, server.EventEmailPrimaryChanged, server.EventEmailRemoved}
		got := r.acceptedEvents()
		if types := typesOf(got, uid); !slices.Equal(types, want) {
			t.Fatalf("events %v, want %v", types, want)
		}
		for _, h := range got {
			if h.Data.Actor != "admin:ops" {
				t.Errorf("%s: actor %q, want admin:ops", h.Type, h.Data.Actor)
			}
		}

		// The list, two at a time, and its filters.
		var items []gen.Event
		var after *gen.After
		for {
			res, err := ro.AdminListEventsWithResponse(ctx, &gen.AdminListEventsParams{After: after, Limit: ptr(gen.Limit(2)), UserId: &uid})
			if err != nil || res.JSON200 == nil {
				t.Fatalf("list: %v %d %s", err, res.StatusCode(), res.Body)
			}
			items = append(items, res.JSON200.Items...)
			if res.JSON200.NextAfter == nil {
				break
			}
			after = res.JSON200.NextAfter
		}
		if len(items) != len(want) {
			t.Fatalf("%d events listed, want %d", len(items), len(want))
		}
		for i, it := range items {
			if string(it.Type) != want[i] || it.Sequence != int64(i+1) || it.Actor != "admin:ops" || it.UserId != uid {
				t.Errorf("item %d: %+v", i, it)
			}
			if len(it.Deliveries) != 1 || it.Deliveries[0].Status != gen.DeliveryDelivered || it.Deliveries[0].Endpoint != r.srv.URL || it.Deliveries[0].DeliveredAt == nil {
				t.Errorf("item %d deliveries: %+v", i, it.Deliveries)
			}
		}
		if email, ok := items[3].Data["email"].(map[string]any); !ok || email["email"] != "adm-2@example.com" || email["primary"] != true {
			t.Errorf("primary_changed data: %+v", items[3].Data)
		}
		typ := gen.EventType(server.EventEmailVerified)
		res, err := ro.AdminListEventsWithResponse(ctx, &gen.AdminListEventsParams{Type: &typ})
		if err != nil || res.JSON200 == nil || len(res.JSON200.Items) != 1 || res.JSON200.Items[0].Id != items[2].Id {
			t.Fatalf("type filter: %v %s", err, res.Body)
		}
		bad := e.do("GET", "/admin/events/?type=user.exploded", nil, "Authorization", "Bearer "+ro.token)
		wantProblem(t, "unknown type", bad, http.StatusBadRequest, gen.ErrorCodeValidationError)

		// Redelivery: the same webhook-id again; read-only tokens may not.
		first := items[0]
		if res, err := ro.AdminRedeliverEventWithResponse(ctx, first.Id); err != nil {
			t.Fatal(err)
		} else {
			wantProblem(t, "read-only redeliver", res, http.StatusForbidden, gen.ErrorCodeForbidden)
		}
		if res, err := ops.AdminRedeliverEventWithResponse(ctx, 1<<40); err != nil {
			t.Fatal(err)
		} else {
			wantProblem(t, "redeliver of no event", res, http.StatusNotFound, gen.ErrorCodeNotFound)
		}
		r.mu.Lock()
		r.lastSeq = map[int64]int64{} // a redelivery comes out of order
		r.accepted = map[string]int{}
		r.mu.Unlock()
		if res, err := ops.AdminRedeliverEventWithResponse(ctx, first.Id); err != nil || res.StatusCode() != http.StatusAccepted {
			t.Fatalf("redeliver: %v %d %s", err, res.StatusCode(), res.Body)
		}
		e.deliver()
		if n := len(r.attemptsOf(mail.WebhookID(first.Id))); n != 2 {
			t.Errorf("%d deliveries of %s after the redelivery, want 2", n, mail.WebhookID(first.Id))
		}
		actions := []string{}
		for _, a := range e.auditTrail(uid) {
			actions = append(actions, a.Event)
		}
		if !slices.Contains(actions, "event_redelivered") {
			t.Errorf("audit trail %v lacks event_redelivered", actions)
		}

		if res, err := ops.AdminDeleteUserWithResponse(ctx, uid); err != nil || res.StatusCode() != http.StatusNoContent {
			t.Fatalf("delete user: %v %d %s", err, res.StatusCode(), res.Body)
		}
		e.deliver()
		last := r.acceptedEvents()
		if h := last[len(last)-1]; h.Type != server.EventUserDeleted || h.Data.UserID != uid || h.Data.Actor != "admin:ops" || h.Data.Sequence != int64(len(want)+1) {
			t.Errorf("after the admin's deletion: %s of user %d by %q, sequence %d", h.Type, h.Data.UserID, h.Data.Actor, h.Data.Sequence)
		}
	})
}
