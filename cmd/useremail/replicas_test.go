package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// outcomes lists, per operation, the answers the contract allows besides
// 503 unavailable: status and problem code ("" for a success).
var outcomes = map[string]map[string]bool{
	"POST /users/":                    set("201", "400 email_taken"),
	"POST /auth/login/":               set("200"),
	"GET /users/{id}/emails/":         set("200"),
	"POST /users/{id}/emails/":        set("201", "400 email_taken", "400 too_many_emails"),
	"DELETE /users/{id}/emails/{eid}": set("204", "404 not_found", "400 primary_email_undeletable"),
	"POST send-verification":          set("202", "400 already_verified", "404 not_found"),
	"POST /users/{id}/email-change/":  set("204", "400 email_taken", "400 email_same_as_current", "400 too_many_emails"),
	"POST email-verify link":          set("200", "400 link_used", "400 email_taken"),
	"POST email-set-primary link":     set("200", "400 link_used", "400 email_taken", "400 too_many_emails"),
}

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func outcomeKey(a answer) string {
	if a.Code == "" {
		return fmt.Sprint(a.Status)
	}
	return fmt.Sprintf("%d %s", a.Status, a.Code)
}

// ledger records every answer of a load run, checks it against outcomes,
// and counts the mails each success promised, by (kind, user).
type ledger struct {
	t  testing.TB
	mu sync.Mutex

	answers     int
	unavailable int            // 503 unavailable answers
	byOutcome   map[string]int // "route outcome" → count
	promised    map[mailKey]int
}

type mailKey struct {
	Kind   string
	UserID int64
}

func newLedger(t testing.TB) *ledger {
	return &ledger{t: t, byOutcome: map[string]int{}, promised: map[mailKey]int{}}
}

// record checks a and reports whether it succeeded (2xx).
func (l *ledger) record(a answer) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers++
	switch {
	case a.Err != nil:
		l.t.Errorf("no answer: %v", a)
		return false
	case a.Status == http.StatusServiceUnavailable && a.Code == "unavailable":
		l.unavailable++
	case !outcomes[a.Route][outcomeKey(a)]:
		l.t.Errorf("unexpected answer: %v (request %s) %s", a, a.RequestID, truncate(string(a.Body), 300))
	}
	l.byOutcome[a.Route+" → "+outcomeKey(a)]++
	return a.Status >= 200 && a.Status < 300
}

// promise counts a mail that a success queued.
func (l *ledger) promise(kind string, userID int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.promised[mailKey{kind, userID}]++
}

func (l *ledger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.byOutcome))
	for k := range l.byOutcome {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %5d  %s\n", l.byOutcome[k], k)
	}
	return b.String()
}

// linkFeed hands out the links of the mails the sink received.
type linkFeed struct {
	sink *smtptest.Server
	mu   sync.Mutex
	seen int
	list []string
}

func (f *linkFeed) refresh(t testing.TB) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The snapshot is taken under the lock: one taken before it could be
	// older than the one a concurrent refresh has already consumed.
	mails := f.sink.Mails()
	for _, m := range mails[f.seen:] {
		s, err := parseMail(m)
		if err != nil {
			t.Errorf("a mail the sink accepted: %v", err)
			continue
		}
		f.list = append(f.list, s.Links...)
	}
	f.seen = len(mails)
}

// pick returns a random link, newer ones more often ("" if none yet).
func (f *linkFeed) pick(t testing.TB, r *rand.Rand) string {
	f.refresh(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) == 0 {
		return ""
	}
	n := len(f.list)
	if r.IntN(3) > 0 && n > 10 {
		return f.list[n-1-r.IntN(10)]
	}
	return f.list[r.IntN(n)]
}

// TestReplicas runs three `useremail serve` processes on one PostgreSQL and
// drives them concurrently, through all three at once, with sign-ups, adds,
// change requests, link clicks and deletes, some racing on the same users
// and addresses. Afterwards the invariants of API.md hold in the database,
// every promised mail was delivered exactly once, and no request got a 5xx
// other than 503 unavailable.
func TestReplicas(t *testing.T) {
	dbURL := databaseURL(t, store.Postgres)
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(dbURL, sink)

	// Started at once on a fresh schema: their migrations race too.
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = launchServe(t, fmt.Sprintf("replica%d", i+1), env)
	}
	for _, p := range procs {
		if err := p.waitServing(90 * time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", p.name, err, p.logs.tail(40))
		}
	}
	for _, p := range procs {
		p.waitReady(t, 30*time.Second)
	}
	db := openDB(t, dbURL)
	var migrations int
	if err := db.SQL().Get(&migrations, `SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`); err != nil {
		t.Fatal(err)
	}
	var dupVersions []int64
	if err := db.SQL().Select(&dupVersions, `SELECT version_id FROM goose_db_version GROUP BY version_id HAVING COUNT(*) > 1`); err != nil {
		t.Fatal(err)
	}
	if migrations == 0 || len(dupVersions) > 0 {
		t.Fatalf("migrations after three concurrent starts: %d applied, versions applied twice: %v", migrations, dupVersions)
	}

	c := newClient(true)
	led := newLedger(t)
	feed := &linkFeed{sink: sink}
	replica := func(r *rand.Rand) string { return procs[r.IntN(len(procs))].base }
	start := time.Now()

	// Sign-ups: unique addresses, and contested ones that three requests,
	// one through each replica, try to take at the same moment.
	var mu sync.Mutex
	var users []userSession
	signedUp := map[string]int64{}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			email := fmt.Sprintf("user%02d@example.com", i)
			id, a := c.signUp(procs[i%3].base, email)
			if led.record(a) {
				led.promise("verify", id)
				mu.Lock()
				signedUp[email] = id
				mu.Unlock()
			}
		})
	}
	contested := map[string]*[3]answer{}
	for i := range 4 {
		email := fmt.Sprintf("contested%d@example.com", i)
		results := new([3]answer)
		contested[email] = results
		for j := range 3 {
			wg.Go(func() {
				id, a := c.signUp(procs[j].base, email)
				results[j] = a
				if led.record(a) {
					led.promise("verify", id)
					mu.Lock()
					signedUp[email] = id
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for email, results := range contested {
		won := 0
		for _, a := range results {
			if a.Status == http.StatusCreated {
				won++
			}
		}
		if won != 1 {
			t.Errorf("%s: %d of three concurrent sign-ups succeeded, want exactly 1: %v", email, won, results[:])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for email := range signedUp {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(len(email)), 7))
			s, a := c.login(replica(r), email)
			a.Route = "POST /auth/login/"
			if led.record(a) {
				mu.Lock()
				users = append(users, s)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(users) != len(signedUp) {
		t.Fatalf("%d of %d logins succeeded", len(users), len(signedUp))
	}

	// The mixed load: every worker acts on random users (so two workers
	// often act on the same user at once) through random replicas, on a
	// small pool of shared addresses (so users race for them).
	const workers, opsPerWorker = 12, 100
	shared := func(r *rand.Rand) string { return fmt.Sprintf("shared%02d@example.com", r.IntN(14)) }
	var unique sync.Mutex
	uniqueN := 0
	fresh := func() string {
		unique.Lock()
		defer unique.Unlock()
		uniqueN++
		return fmt.Sprintf("fresh%03d@example.com", uniqueN)
	}
	listEmails := func(r *rand.Rand, u userSession) []struct {
		ID       int64 `json:"id"`
		Verified bool  `json:"verified"`
		Primary  bool  `json:"primary"`
	} {
		a := c.do("GET", fmt.Sprintf("%s/users/%d/emails/", replica(r), u.UserID), "GET /users/{id}/emails/", nil, u.header())
		var list []struct {
			ID       int64 `json:"id"`
			Verified bool  `json:"verified"`
			Primary  bool  `json:"primary"`
		}
		if led.record(a) {
			if err := json.Unmarshal(a.Body, &list); err != nil {
				t.Errorf("list: %v", err)
			}
		}
		return list
	}
	clickLink := func(r *rand.Rand, link string) {
		path := strings.TrimPrefix(link, publicURL)
		route, kind := "POST email-verify link", ""
		if strings.HasPrefix(path, "/users/email-set-primary/") {
			route, kind = "POST email-set-primary link", "primary_changed"
		}
		uid := userOfLink(t, path)
		clicks := 1
		if kind != "" && r.IntN(3) == 0 {
			clicks = 2 // a double click, through two replicas at once
		}
		first := r.IntN(len(procs))
		results := make([]answer, clicks)
		var cwg sync.WaitGroup
		for i := range clicks {
			cwg.Go(func() {
				results[i] = c.do("POST", procs[(first+i)%len(procs)].base+path, route, nil, nil)
			})
		}
		cwg.Wait()
		ok := 0
		for _, a := range results {
			if led.record(a) {
				ok++
				if kind != "" {
					led.promise(kind, uid)
				}
			}
		}
		if kind != "" && ok > 1 {
			t.Errorf("a set-primary link worked %d times (single use): %v", ok, results)
		}
	}
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range opsPerWorker {
				u := users[r.IntN(len(users))]
				base := replica(r)
				switch op := r.IntN(100); {
				case op < 22: // add a shared address
					a := c.do("POST", fmt.Sprintf("%s/users/%d/emails/", base, u.UserID), "POST /users/{id}/emails/",
						map[string]string{"email": shared(r)}, u.header())
					if led.record(a) {
						led.promise("verify", u.UserID)
						led.promise("email_added", u.UserID)
					}
				case op < 30: // add an address of its own
					a := c.do("POST", fmt.Sprintf("%s/users/%d/emails/", base, u.UserID), "POST /users/{id}/emails/",
						map[string]string{"email": fresh()}, u.header())
					if led.record(a) {
						led.promise("verify", u.UserID)
						led.promise("email_added", u.UserID)
					}
				case op < 45: // ask to change the primary address
					target := shared(r)
					if r.IntN(3) == 0 {
						target = fresh()
					}
					a := c.do("POST", fmt.Sprintf("%s/users/%d/email-change/", base, u.UserID), "POST /users/{id}/email-change/",
						map[string]string{"new_email": target, "password": testPassword}, u.header())
					if led.record(a) {
						led.promise("change_email", u.UserID)
					}
				case op < 60: // delete a secondary address
					list := listEmails(r, u)
					var candidates []int64
					for _, e := range list {
						if !e.Primary {
							candidates = append(candidates, e.ID)
						}
					}
					if len(candidates) == 0 {
						continue
					}
					id := candidates[r.IntN(len(candidates))]
					a := c.do("DELETE", fmt.Sprintf("%s/users/%d/emails/%d/", replica(r), u.UserID, id), "DELETE /users/{id}/emails/{eid}", nil, u.header())
					if led.record(a) {
						led.promise("email_removed", u.UserID)
					}
				case op < 66: // send the verification mail again
					list := listEmails(r, u)
					var candidates []int64
					for _, e := range list {
						if !e.Verified {
							candidates = append(candidates, e.ID)
						}
					}
					if len(candidates) == 0 {
						continue
					}
					id := candidates[r.IntN(len(candidates))]
					a := c.do("POST", fmt.Sprintf("%s/users/%d/emails/%d/send-verification/", replica(r), u.UserID, id), "POST send-verification", nil, u.header())
					if led.record(a) {
						led.promise("verify", u.UserID)
					}
				default: // click a mailed link
					if link := feed.pick(t, r); link != "" {
						clickLink(r, link)
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("load: %d answers in %v, %d of them 503 unavailable:\n%s", led.answers, time.Since(start).Round(time.Millisecond), led.unavailable, led.summary())

	// Every promised mail delivered, exactly once.
	rows := waitOutboxSent(t, db, 60*time.Second)
	checkDeliveredOnce(t, rows, sink, nil)
	got := map[mailKey]int{}
	for _, r := range rows {
		got[mailKey{r.Kind, r.UserID}]++
	}
	extra := 0
	for k, want := range led.promised {
		switch n := got[k]; {
		case n < want:
			t.Errorf("%d %s mails promised to user %d, %d queued", want, k.Kind, k.UserID, n)
		case n > want:
			extra += n - want
		}
	}
	for k, n := range got {
		if _, ok := led.promised[k]; !ok {
			extra += n
		}
	}
	// A request answered 503 may have committed before the database went
	// away; with no 503 every queued mail was promised by a success.
	if extra > led.unavailable {
		t.Errorf("%d mails queued that no successful request promised (%d answers were 503)", extra, led.unavailable)
	}

	// The invariants, in SQL.
	checkInvariants(t, db)
	for email, id := range signedUp {
		var n int
		if err := db.SQL().Get(&n, `SELECT COUNT(*) FROM users WHERE id = $1`, id); err != nil || n != 1 {
			t.Errorf("user %d (%s) answered 201 but is missing: %v", id, email, err)
		}
	}

	// Nothing went wrong inside the replicas either.
	for _, p := range procs {
		for _, rec := range p.logs.all() {
			if rec.Level == "ERROR" {
				t.Errorf("%s logged an error: %s", p.name, rec.Raw)
			}
		}
	}
}

// userOfLink reads the user id of a mailed link's path (its last segment
// is the user's id in unpadded URL-safe base64).
func userOfLink(t testing.TB, path string) int64 {
	t.Helper()
	parts := strings.Split(strings.Trim(path, "/"), "/")
	key := parts[len(parts)-1]
	id, err := signer.DecodeUserID(key)
	if err != nil {
		t.Fatalf("link %s: user key %q: %v", path, key, err)
	}
	return id
}
