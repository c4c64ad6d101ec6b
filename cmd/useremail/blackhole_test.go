package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// faultLoad is a load of a few kinds of requests from many clients at once,
// each answer stamped and kept.
type faultLoad struct {
	mu      sync.Mutex
	answers []loadAnswer
	stop    atomic.Bool
	wg      sync.WaitGroup
}

// startFaultLoad starts workers clients that, until finish, each send one
// request after another: sign-ups of new addresses, logins and reads of
// the users of sessions, and addresses added to them.
func startFaultLoad(c *client, base string, sessions []userSession, workers int) *faultLoad {
	l := &faultLoad{}
	var seq atomic.Int64
	for w := range workers {
		l.wg.Go(func() {
			pace := time.NewTicker(20 * time.Millisecond) // at most a request per tick per worker
			defer pace.Stop()
			s := sessions[w%len(sessions)]
			for i := w; !l.stop.Load(); i++ {
				<-pace.C
				la := loadAnswer{Started: time.Now()}
				switch i % 4 {
				case 0:
					la.Email = fmt.Sprintf("load%05d@example.com", seq.Add(1))
					la.UserID, la.answer = c.signUp(base, la.Email)
				case 1:
					la.answer = c.do("POST", base+"/auth/login/", "POST /auth/login/",
						map[string]string{"email": s.Email, "password": testPassword}, nil)
				case 2:
					la.answer = c.do("GET", fmt.Sprintf("%s/users/%d/emails/", base, s.UserID), "GET /users/{id}/emails/", nil, s.header())
				case 3:
					la.Email = fmt.Sprintf("added%05d@example.com", seq.Add(1))
					la.UserID = s.UserID
					la.answer = c.do("POST", fmt.Sprintf("%s/users/%d/emails/", base, s.UserID), "POST /users/{id}/emails/",
						map[string]string{"email": la.Email}, s.header())
				}
				l.mu.Lock()
				l.answers = append(l.answers, la)
				l.mu.Unlock()
			}
		})
	}
	return l
}

// since returns the answers to the requests sent at or after t0.
func (l *faultLoad) since(t0 time.Time) []loadAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loadAnswer
	for _, a := range l.answers {
		if !a.Started.Before(t0) {
			out = append(out, a)
		}
	}
	return out
}

// unavailableSince counts the 503 answers to the requests sent at or after t0.
func (l *faultLoad) unavailableSince(t0 time.Time) int {
	n := 0
	for _, a := range l.since(t0) {
		if a.Status == http.StatusServiceUnavailable {
			n++
		}
	}
	return n
}

// finish stops the workers and waits for their last answers.
func (l *faultLoad) finish() {
	l.stop.Store(true)
	l.wg.Wait()
}

// faultBound is the longest an answer may take under a fault: the request
// deadline (server.DefaultRequestTimeout) and a second for the rest. It
// detects hangs (requests waited 95 s before the fix), it measures nothing.
const faultBound = 11 * time.Second

// recoveryBound is how soon after a fault ends the service must answer
// normally again.
const recoveryBound = 5 * time.Second

// checkFaultAnswers checks the answers of a load through a fault from
// faultAt to endAt: each came within faultBound, and was an outcome the
// contract allows, or 503 unavailable for a request that overlapped the
// fault or its first recoveryBound; it logs how long requests waited and
// when the service answered normally again, and returns the successes.
func checkFaultAnswers(t *testing.T, load *faultLoad, faultAt, endAt time.Time) []loadAnswer {
	t.Helper()
	var (
		ok                   []loadAnswer
		longest              time.Duration
		during, unavailable  int
		lastFailed           time.Time // the end of the last answer that was not a success
		after, afterFailures int
	)
	for _, a := range load.since(time.Time{}) {
		end := a.Started.Add(a.Elapsed)
		if end.After(faultAt) && a.Started.Before(endAt) {
			during++
			longest = max(longest, a.Elapsed)
		}
		switch {
		case a.Err != nil:
			t.Errorf("no answer: %v", a)
			lastFailed = later(lastFailed, end)
			continue
		case a.Elapsed > faultBound:
			t.Errorf("answer after %v (bound %v): %v", a.Elapsed.Round(time.Millisecond), faultBound, a)
		}
		success := a.Status < 300 || outcomes[a.Route][outcomeKey(a.answer)]
		switch {
		case success:
			ok = append(ok, a)
		case a.Status == http.StatusServiceUnavailable && a.Code == "unavailable":
			unavailable++
			if !end.After(faultAt) || !a.Started.Before(endAt.Add(recoveryBound)) {
				t.Errorf("503 outside the fault and its first %v (sent %v after the fault began, %v after it ended): %v", recoveryBound,
					a.Started.Sub(faultAt).Round(time.Millisecond), a.Started.Sub(endAt).Round(time.Millisecond), a)
			}
		default:
			t.Errorf("unexpected answer: %v %s", a, a.Body)
		}
		if !success && !a.Started.Before(faultAt) {
			lastFailed = later(lastFailed, end)
		}
		if !a.Started.Before(endAt) {
			after++
			if !success {
				afterFailures++
			}
		}
	}
	t.Logf("%d answers overlapped the fault (%v), the longest after %v; %d answered 503 unavailable",
		during, endAt.Sub(faultAt).Round(time.Millisecond), longest.Round(time.Millisecond), unavailable)
	t.Logf("after the fault ended: %d answers, %d failed; the last failure ended %v after the fault did",
		after, afterFailures, lastFailed.Sub(endAt).Round(time.Millisecond))
	if during == 0 || unavailable == 0 {
		t.Errorf("the fault was not exercised: %d requests overlapped it, %d answered 503", during, unavailable)
	}
	return ok
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// startSessions signs up n users and logs each in.
func startSessions(t *testing.T, c *client, base string, n int) []userSession {
	t.Helper()
	var sessions []userSession
	for i := range n {
		email := fmt.Sprintf("base%d@example.com", i)
		if _, a := c.signUp(base, email); a.Status != http.StatusCreated {
			t.Fatalf("sign-up: %v %s", a, a.Body)
		}
		s, a := c.login(base, email)
		if a.Status != http.StatusOK {
			t.Fatalf("login: %v", a)
		}
		sessions = append(sessions, s)
	}
	return sessions
}

// checkMailed checks that every address a success of the load added got
// its verification mail: the rows are the outbox, all sent.
func checkMailed(t *testing.T, ok []loadAnswer, rows []outboxRow, sink *smtptest.Server, mayRepeat map[int64]bool) {
	t.Helper()
	delivered := checkDeliveredOnce(t, rows, sink, mayRepeat)
	verified := map[string]bool{}
	for _, r := range rows {
		if _, sent := delivered[r.ID]; sent && r.Kind == "verify" {
			verified[r.Recipient] = true
		}
	}
	missing := 0
	for _, a := range ok {
		if a.Status == http.StatusCreated && a.Email != "" && !verified[a.Email] {
			missing++
			t.Errorf("%s answered 201 for %s, but no verification mail reached it", a.Route, a.Email)
		}
	}
	t.Logf("%d outbox rows, all sent; %d committed additions without their mail", len(rows), missing)
}

// slowClient is a client whose hang detector waits long enough to measure
// how long a hung request waited.
func slowClient() *client {
	c := newClient(true)
	c.http.Timeout = 2 * time.Minute
	return c
}

// TestBlackHoledPostgres puts a PostgreSQL path that accepts bytes and
// never answers between the service and its database, under the load of
// 30 clients: every request is answered within the request deadline (503
// unavailable where it needs the database), /readyz says so, and within
// recoveryBound of the path's return the service answers normally again,
// with no committed change missing its mail.
func TestBlackHoledPostgres(t *testing.T) {
	upstream := databaseURL(t, store.Postgres)
	hole := storetest.StartBlackHole(t, upstream)
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(hole.URL(upstream), sink)
	env["USEREMAIL_MAX_EMAILS"] = "1000" // the load adds many addresses to a few users
	p := startServe(t, "useremail", env)
	db := openDB(t, upstream)

	c := slowClient()
	load := startFaultLoad(c, p.base, startSessions(t, c, p.base, 4), 30)
	if !eventually(60*time.Second, func() bool { return len(load.since(time.Time{})) >= 100 }) {
		t.Fatal("fewer than 100 answers to the load in 60 s")
	}

	holeAt := time.Now()
	hole.Swallow(true)
	for _, probe := range []struct {
		path   string
		status int
	}{{"/healthz", 200}, {"/readyz", 503}} {
		a := c.do("GET", p.base+probe.path, probe.path, nil, nil)
		if a.Status != probe.status || a.Elapsed > 3*time.Second {
			t.Errorf("%s with the path black-holed: %v, want %d within 3s", probe.path, a, probe.status)
		}
	}
	// The hole lasts until the dispatcher has met it (in a claim, or in the
	// reports of a batch under way), and the load a score of times.
	if _, ok := p.logs.waitFor(30*time.Second, dispatcherMet); !ok {
		t.Error("the dispatcher did not meet the black hole in 30 s")
	}
	if !eventually(30*time.Second, func() bool { return load.unavailableSince(holeAt) >= 30 }) {
		t.Errorf("%d answers 503 in the first 30 s of the black hole, want 30", load.unavailableSince(holeAt))
	}
	backAt := time.Now()
	hole.Swallow(false)
	t.Logf("the path swallowed everything for %v", backAt.Sub(holeAt).Round(time.Millisecond))

	if !eventually(60*time.Second, func() bool { return len(load.since(backAt.Add(recoveryBound))) >= 100 }) {
		t.Errorf("%d answers to requests sent from %v to 60 s after the path came back, want 100", len(load.since(backAt.Add(recoveryBound))), recoveryBound)
	}
	load.finish()
	ok := checkFaultAnswers(t, load, holeAt, backAt)
	if r := get(p.base + "/readyz"); r.Status != http.StatusOK {
		t.Errorf("/readyz after the load: %v, want 200", r)
	}
	for _, a := range ok {
		if a.Status != http.StatusCreated {
			continue
		}
		var n int
		if err := db.SQL().Get(&n, `SELECT COUNT(*) FROM emails WHERE user_id = $1 AND email = $2`, a.UserID, a.Email); err != nil || n != 1 {
			t.Errorf("%s answered 201 (%s for user %d) but is not in the database: %v", a.Route, a.Email, a.UserID, err)
		}
	}
	checkMailed(t, ok, settleOutbox(t, db, p, env), sink, unrecordedDeliveries(p.logs))
	checkInvariants(t, db)
}

// TestStuckWriterSQLite holds SQLite's write lock from another connection
// (an admin command, or a shell left in a transaction) under the load of
// 30 clients: every request is still answered within the request deadline,
// the writes 503 unavailable, and once the lock is released the service
// answers normally again within recoveryBound, with every committed change
// mailed.
func TestStuckWriterSQLite(t *testing.T) {
	dbURL := databaseURL(t, store.SQLite)
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(dbURL, sink)
	env["USEREMAIL_MAX_EMAILS"] = "1000"
	p := startServe(t, "useremail", env)
	db := openDB(t, dbURL)

	c := slowClient()
	load := startFaultLoad(c, p.base, startSessions(t, c, p.base, 4), 30)
	if !eventually(60*time.Second, func() bool { return len(load.since(time.Time{})) >= 100 }) {
		t.Fatal("fewer than 100 answers to the load in 60 s")
	}

	path, _ := sqlitePath(dbURL)
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	holder, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatalf("taking the write lock: %v", err)
	}
	heldAt := time.Now()
	if !eventually(30*time.Second, func() bool { return load.unavailableSince(heldAt) >= 30 }) {
		t.Errorf("%d answers 503 in the first 30 s of the stuck transaction, want 30", load.unavailableSince(heldAt))
	}
	if _, err := holder.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatalf("releasing the write lock: %v", err)
	}
	releasedAt := time.Now()
	t.Logf("another connection held the write lock for %v", releasedAt.Sub(heldAt).Round(time.Millisecond))

	if !eventually(60*time.Second, func() bool { return len(load.since(releasedAt.Add(recoveryBound))) >= 100 }) {
		t.Errorf("%d answers to requests sent from %v to 60 s after the release, want 100", len(load.since(releasedAt.Add(recoveryBound))), recoveryBound)
	}
	load.finish()
	ok := checkFaultAnswers(t, load, heldAt, releasedAt)
	checkMailed(t, ok, waitOutboxSent(t, db, 90*time.Second), sink, unrecordedDeliveries(p.logs))
	checkInvariants(t, db)
}
