package server_test

// Suite 5: abuse from one client and from many (issue 13): floods, lockout,
// enumeration, resend griefing, and the client address behind proxies.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/bench/pgcount"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// answer is what one request of a flood got.
type answer struct {
	status     int
	code       gen.ErrorCode
	retryAfter string
}

// flood sends n requests, req(i) making the i-th, from workers goroutines,
// and returns the answers by index. A transport error fails the test.
func (e *env) flood(t *testing.T, n, workers int, req func(i int) *http.Request) []answer {
	t.Helper()
	out := make([]answer, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				out[i] = e.answer(t, req(i))
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// answer sends req through the validator; safe from any goroutine.
func (e *env) answer(t *testing.T, req *http.Request) answer {
	res, err := e.httpClient(nil).Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return answer{status: -1}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After")}
	var p gen.Problem
	if json.Unmarshal(body, &p) == nil {
		a.code = p.Code
	}
	return a
}

// loginRequest is a login for addr with pw, from the client address ip
// ("" for the peer's own).
func (e *env) loginRequest(addr, pw, ip string) *http.Request {
	body := mustJSON(gen.Credentials{Email: addr, Password: pw})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/auth/login/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	return req
}

// tally counts answers by status and code.
func tally(answers []answer) map[string]int {
	m := map[string]int{}
	for _, a := range answers {
		m[fmt.Sprintf("%d %s", a.status, a.code)]++
	}
	return m
}

// TestClientAddress checks which address the service takes for the
// client's (item 14), as the audit trail records it: X-Forwarded-For only
// from the trusted proxies, read from the right, and none of Echo's default
// trusts (loopback, private networks).
func TestClientAddress(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for i, tc := range []struct {
			name    string
			trusted []string
			xff     []string // header lines
			want    string
		}{
			{"no trusted proxies: the header is ignored", nil, []string{"203.0.113.9"}, "127.0.0.1"},
			{"a trusted peer without the header", []string{"127.0.0.1/32"}, nil, "127.0.0.1"},
			{"a trusted peer", []string{"127.0.0.1/32"}, []string{"203.0.113.9"}, "203.0.113.9"},
			{"what the client wrote itself is not believed", []string{"127.0.0.1/32"}, []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
			{"header lines are one list", []string{"127.0.0.1/32"}, []string{"198.51.100.1", "203.0.113.9"}, "203.0.113.9"},
			{"a private hop is not trusted unless named", []string{"127.0.0.1/32"}, []string{"203.0.113.9, 10.0.0.5"}, "10.0.0.5"},
			{"two trusted hops", []string{"127.0.0.1/32", "10.0.0.0/8"}, []string{"203.0.113.9, 10.0.0.5"}, "203.0.113.9"},
			{"a loopback peer is not trusted unless named", []string{"192.0.2.0/24"}, []string{"203.0.113.9"}, "127.0.0.1"},
			{"an IPv6 client", []string{"127.0.0.1/32"}, []string{"[2001:db8::1]"}, "2001:db8::1"},
			{"an IPv4-mapped trusted network", []string{"::ffff:127.0.0.0/104"}, []string{"203.0.113.9"}, "203.0.113.9"},
			{"a hop that is no address", []string{"127.0.0.1/32"}, []string{"somewhere"}, "127.0.0.1"},
		} {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				e := newEnv(t, db, withTrustedProxies(tc.trusted...))
				addr := fmt.Sprintf("nobody%d@example.com", i)
				req := e.loginRequest(addr, "whatever password", "")
				for _, v := range tc.xff {
					req.Header.Add("X-Forwarded-For", v)
				}
				if a := e.answer(t, req); a.status != 400 || a.code != gen.ErrorCodeInvalidCredentials {
					t.Fatalf("%s: login %+v", tc.name, a)
				}
				var ip string
				if err := db.SQL().GetContext(ctx, &ip, db.SQL().Rebind(`SELECT ip FROM audit_events WHERE email = ?`), addr); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if ip != tc.want {
					t.Errorf("%s: client address %q, want %q", tc.name, ip, tc.want)
				}
			})
		}
	})
}

// TestLoginFloodFromOneNetwork is item 4: logins for many unknown
// addresses from one client network, so that no per-address limit applies,
// while a user logs in from another. The flood gets 429s once past the
// network's limit, before any hash; the user gets in every time.
func TestLoginFloodFromOneNetwork(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withTrustedProxies("127.0.0.1/32"))
		e.signUp("alice@example.com")
		const floodSize = 4 * server.LoginsPerNetwork
		var wg sync.WaitGroup
		var flood []answer
		wg.Go(func() {
			flood = e.flood(t, floodSize, 16, func(i int) *http.Request {
				return e.loginRequest(fmt.Sprintf("nobody%d@example.com", i), "a guess", "")
			})
		})
		var real []answer
		wg.Go(func() {
			for range 5 {
				real = append(real, e.answer(t, e.loginRequest("alice@example.com", goodPasswd, "198.51.100.7")))
			}
		})
		wg.Wait()
		want := map[string]int{
			"400 invalid_credentials": server.LoginsPerNetwork,
			"429 rate_limited":        floodSize - server.LoginsPerNetwork,
		}
		if got := tally(flood); !maps.Equal(got, want) {
			t.Errorf("the flood's answers %v, want %v", got, want)
		}
		for _, a := range flood {
			if n, err := strconv.Atoi(a.retryAfter); a.status == 429 && (err != nil || n < 1 || n > 60) {
				t.Errorf("a refused login's Retry-After %q, want 1..60", a.retryAfter)
				break
			}
		}
		if got := tally(real); !maps.Equal(got, map[string]int{"200 ": 5}) {
			t.Errorf("the real user's logins %v, want 5 × 200", got)
		}
	})
}

// TestLoginFloodShedsEarly is item 4's other half: a flood from many
// networks, which no per-network limit stops, fills the hashing queue; the
// logins beyond it get a 429 with Retry-After: 1 at once, never a 503, and
// a user who tries again after each 429 gets in.
func TestLoginFloodShedsEarly(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		// A cost whose hashes take long enough that a burst of logins
		// overlaps, and a queue of one.
		hasher := password.NewHasher(password.Params{Memory: 8 << 10, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 1)
		hasher.SetMaxWaiting(1)
		e := newEnv(t, db, withTrustedProxies("127.0.0.1/32"), func(c *server.Config) { c.Hasher = hasher })
		e.signUp("alice@example.com")
		const floodSize = 160
		var wg sync.WaitGroup
		var flood []answer
		wg.Go(func() {
			flood = e.flood(t, floodSize, 32, func(i int) *http.Request {
				return e.loginRequest(fmt.Sprintf("nobody%d@example.com", i), "a guess", fmt.Sprintf("10.%d.%d.1", i/250, i%250))
			})
		})
		var real []answer
		wg.Go(func() {
			for len(real) < 10_000 {
				a := e.answer(t, e.loginRequest("alice@example.com", goodPasswd, "198.51.100.7"))
				real = append(real, a)
				if a.status != 429 {
					return
				}
				e.clock.Advance(time.Second) // the user's own network's limit
			}
		})
		wg.Wait()
		got := tally(flood)
		if got["429 rate_limited"] == 0 || got["400 invalid_credentials"]+got["429 rate_limited"] != floodSize {
			t.Errorf("the flood's answers %v, want only 400 invalid_credentials and some 429 rate_limited", got)
		}
		for _, a := range flood {
			if a.status == 429 && a.retryAfter != "1" {
				t.Errorf("a shed login's Retry-After %q, want 1", a.retryAfter)
				break
			}
		}
		if last := real[len(real)-1]; last.status != 200 {
			t.Errorf("the real user's last login %+v, want 200", last)
		}
		for _, a := range real[:len(real)-1] {
			if a.status != 429 || a.code != gen.ErrorCodeRateLimited {
				t.Errorf("the real user's login %+v, want 200 or 429 rate_limited", a)
			}
		}
	})
}

// TestLoginFailuresPerNetwork is item 5: wrong passwords from one network
// lock the address out on that network only, and successes never count.
func TestLoginFailuresPerNetwork(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withTrustedProxies("127.0.0.1/32"))
		e.signUp("alice@example.com")
		const attacker, owner = "203.0.113.66", "198.51.100.7"
		for i := range 50 {
			a := e.answer(t, e.loginRequest("alice@example.com", "guess "+strconv.Itoa(i), attacker))
			want := answer{status: 400, code: gen.ErrorCodeInvalidCredentials}
			if i >= 10 {
				want = answer{status: 429, code: gen.ErrorCodeRateLimited}
			}
			if a.status != want.status || a.code != want.code {
				t.Fatalf("wrong password %d from the attacker's network: %+v, want %d %s", i+1, a, want.status, want.code)
			}
		}
		// The owner, on another network, gets in again and again, with a
		// typo now and then: a success gives its try back, so only the
		// typos count, and they stay under the limit.
		for i := range 30 {
			if a := e.answer(t, e.loginRequest("ALICE@example.com", goodPasswd, owner)); a.status != 200 {
				t.Fatalf("the owner's login %d: %+v", i+1, a)
			}
			if i%4 == 0 {
				if a := e.answer(t, e.loginRequest("alice@example.com", "a typo", owner)); a.status != 400 {
					t.Fatalf("the owner's typo: %+v", a)
				}
			}
		}
		// The attacker's network stays refused, right password or not,
		// until its failures have aged.
		if a := e.answer(t, e.loginRequest("alice@example.com", goodPasswd, attacker)); a.status != 429 {
			t.Errorf("the right password from the attacker's network: %+v, want 429", a)
		}
		e.clock.Advance(time.Minute)
		if a := e.answer(t, e.loginRequest("alice@example.com", goodPasswd, attacker)); a.status != 200 {
			t.Errorf("the right password from that network a minute later: %+v", a)
		}
	})
}

// TestEnumerationLimits is item 6: sign-up, adding an address and an
// email change answer email_taken, so they count per client network
// whatever their answer.
func TestEnumerationLimits(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withTrustedProxies("127.0.0.1/32"), withMaxEmails(100))
		const probe, other = "203.0.113.66", "198.51.100.7"
		e.signUp("alice@example.com") // from the peer's network, not probe's
		signUp := func(addr, ip string) answer {
			return answerOf(e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: addr, Password: goodPasswd}, from(ip)))
		}
		var got []answer
		for range server.SignUpsPerNetwork + 10 {
			got = append(got, signUp("alice@example.com", probe))
		}
		want := map[string]int{"400 email_taken": server.SignUpsPerNetwork, "429 rate_limited": 10}
		if n := tally(got); !maps.Equal(n, want) {
			t.Errorf("sign-ups as a taken address from one network: %v, want %v", n, want)
		}
		if a := signUp("bob@example.com", other); a.status != 201 {
			t.Errorf("a sign-up from another network: %+v", a)
		}

		// Adding addresses and asking for email changes, from several
		// accounts on one network: together they meet one limit.
		var users []*user
		for i := range 8 {
			addr := fmt.Sprintf("user%d@example.com", i)
			if a := signUp(addr, fmt.Sprintf("192.0.2.%d", i+1)); a.status != 201 {
				t.Fatalf("sign up %s: %+v", addr, a)
			}
			users = append(users, e.login(addr, from(probe)))
		}
		var adds []answer
		for i, u := range users {
			for j := range 10 {
				switch j % 3 {
				case 0:
					adds = append(adds, answerOf(u.AddEmailWithResponse(ctx, u.id, gen.AddEmailJSONRequestBody{Email: "alice@example.com"})))
				case 1:
					adds = append(adds, answerOf(u.AddEmailWithResponse(ctx, u.id, gen.AddEmailJSONRequestBody{Email: fmt.Sprintf("new%d.%d@example.com", i, j)})))
				case 2:
					adds = append(adds, answerOf(u.RequestEmailChangeWithResponse(ctx, u.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: "bob@example.com", Password: goodPasswd})))
				}
			}
		}
		counted := 0
		for _, a := range adds {
			switch {
			case a.status == 201, a.status == 400 && a.code == gen.ErrorCodeEmailTaken:
				counted++
			case a.status != 429:
				t.Errorf("an add or change from the probing network: %+v", a)
			}
		}
		if counted != server.AddressesPerNetwork || len(adds)-counted != 80-server.AddressesPerNetwork {
			t.Errorf("adds and changes from one network: %v, want %d answered and the rest 429", tally(adds), server.AddressesPerNetwork)
		}
		e.addEmail(e.login("bob@example.com", from(other)), "bob2@example.com")
	})
}

// answerOf is the answer of a generated client's call; a transport error
// is status -1.
func answerOf[R response](r R, err error) answer {
	if err != nil {
		return answer{status: -1, code: gen.ErrorCode(err.Error())}
	}
	a := answer{status: r.StatusCode()}
	var p gen.Problem
	if json.Unmarshal(r.GetBody(), &p) == nil {
		a.code = p.Code
	}
	return a
}

// TestLoginFailurePathsSameWork is item 6's timing: a wrong password for an
// address with an account and a login for an address without one must do
// the same database work, or the difference tells which addresses exist.
// It compares what each path sends, which a shared machine cannot
// disturb: the statements on PostgreSQL (through a counting proxy), the
// rows written on SQLite (total_changes of its one connection).
// BenchmarkLoginFailurePaths shows the times.
func TestLoginFailurePathsSameWork(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			var db *store.DB
			var work func(path func()) map[string]int
			switch d {
			case store.Postgres:
				u, err := url.Parse(storetest.URL(t, d))
				if err != nil {
					t.Fatal(err)
				}
				counter, err := pgcount.New(u.Host)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(counter.Close)
				u.Host = counter.Addr()
				db = storetest.OpenURL(t, u.String())
				work = func(path func()) map[string]int {
					counter.Reset()
					path()
					stats, _ := counter.Snapshot()
					m := map[string]int{}
					for _, s := range stats {
						m[s.SQL] = s.Count
					}
					return m
				}
			default:
				db = storetest.Open(t, d)
				changes := func() int {
					var n int
					if err := db.SQL().GetContext(ctx, &n, `SELECT total_changes()`); err != nil {
						t.Fatal(err)
					}
					return n
				}
				work = func(path func()) map[string]int {
					before := changes()
					path()
					return map[string]int{"rows written": changes() - before}
				}
			}
			e := newEnv(t, db)
			e.signUp("alice@example.com")
			login := func(addr string) func() {
				return func() {
					res, err := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: addr, Password: "a wrong password"})
					if err != nil {
						t.Fatal(err)
					}
					wantProblem(t, "login as "+addr, res, 400, gen.ErrorCodeInvalidCredentials)
				}
			}
			// Once each first, so that both paths' statements are prepared.
			login("alice@example.com")()
			login("nobody@example.com")()
			known := work(login("alice@example.com"))
			unknown := work(login("nobody@example.com"))
			if !maps.Equal(known, unknown) {
				t.Errorf("a wrong password for an account does\n%v\nand a login for no account\n%v\nwant the same", known, unknown)
			}
			total := 0
			for _, n := range known {
				total += n
			}
			// Two limits, the lookup (PostgreSQL only) and the audit row.
			if want := map[store.Dialect]int{store.Postgres: 4, store.SQLite: 3}[d]; total != want {
				t.Errorf("a failed login did %d statements or rows, want %d: %v", total, want, known)
			}
			t.Logf("each failed login: %v", known)
			if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE event = 'login_failed' AND user_id IS NULL AND email = 'nobody@example.com'`); n != 2 {
				t.Errorf("%d failed logins for no account audited without a user, want 2", n)
			}
			if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE event = 'login_failed' AND user_id IS NOT NULL`); n != 2 {
				t.Errorf("%d failed logins for an account audited with the user, want 2", n)
			}
		})
	}
}

// TestResendIntervalPerUser is item 7: a user who adds someone else's
// address does not stop its owner from signing up with it, nor anyone else
// from adding it; the interval still holds for each user and address.
func TestResendIntervalPerUser(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		mallory := e.verifiedUser("mallory@example.com")
		e.addEmail(mallory, "victim@example.com")
		res, err := mallory.ListEmailsWithResponse(ctx, mallory.id)
		if err != nil || res.JSON200 == nil {
			t.Fatalf("list: %v", err)
		}
		victimID := (*res.JSON200)[1].Id
		r, _ := mallory.SendVerificationWithResponse(ctx, mallory.id, victimID)
		wantProblem(t, "mallory's resend at once", r, 429, gen.ErrorCodeRateLimited)

		victim := e.signUp("Victim@Example.com")
		if got := e.links(mail.KindVerify, victim.Email); len(got) != 1 {
			t.Errorf("the victim got %d verification links, want 1", len(got))
		}
		other := e.verifiedUser("other@example.com")
		wantProblem(t, "another user adding the victim's address, claimed by now", mustAdd(other, "victim@example.com"), 400, gen.ErrorCodeEmailTaken)
		e.addEmail(other, "shared@example.com")
		e.addEmail(mallory, "shared@example.com")
	})
}

func mustAdd(u *user, addr string) *gen.AddEmailResponse {
	r, _ := u.AddEmailWithResponse(ctx, u.id, gen.AddEmailJSONRequestBody{Email: addr})
	return r
}

// TestDailyMailCap is item 7's cap: however many accounts ask, one address
// gets at most DailyMailsPerAddress verification mails a day. Adding it
// past the cap answers 429; a sign-up past it succeeds without the mail,
// which the user asks for again once the cap allows.
func TestDailyMailCap(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits(), func(c *server.Config) { c.ResendInterval = 3 * time.Minute })
		var spammers []*user
		for i := range server.DailyMailsPerAddress {
			u := e.verifiedUser(fmt.Sprintf("spammer%d@example.com", i))
			e.addEmail(u, "victim@example.com")
			spammers = append(spammers, u)
		}
		if got := e.links(mail.KindVerify, "victim@example.com"); len(got) != server.DailyMailsPerAddress {
			t.Fatalf("the victim got %d mails, want %d", len(got), server.DailyMailsPerAddress)
		}
		late := e.verifiedUser("late@example.com")
		before := e.state(late.id)
		res := mustAdd(late, "VICTIM@example.com")
		wantProblem(t, "adding the address past the cap", res, 429, gen.ErrorCodeRateLimited)
		wantRetryAfter(t, "adding the address past the cap", res.HTTPResponse, 1, 24*3600)
		e.unchanged(t, "adding the address past the cap", late.id, before)
		e.clock.Advance(3*time.Minute + time.Second)
		r, _ := spammers[0].SendVerificationWithResponse(ctx, spammers[0].id, e.emails(spammers[0].id)[1].ID)
		wantProblem(t, "a resend past the cap", r, 429, gen.ErrorCodeRateLimited)

		victim := e.signUp("victim@example.com")
		if got := e.links(mail.KindVerify, "victim@example.com"); len(got) != server.DailyMailsPerAddress {
			t.Errorf("after the victim's sign-up past the cap: %d mails, want still %d", len(got), server.DailyMailsPerAddress)
		}
		owner := e.login("victim@example.com")
		r, _ = owner.SendVerificationWithResponse(ctx, victim.Id, e.emails(victim.Id)[0].ID)
		wantProblem(t, "the owner's resend past the cap", r, 429, gen.ErrorCodeRateLimited)
		e.clock.Advance(24 * time.Hour / server.DailyMailsPerAddress)
		owner = e.login("victim@example.com") // the session's idle limit has passed
		r, _ = owner.SendVerificationWithResponse(ctx, victim.Id, e.emails(victim.Id)[0].ID)
		wantStatus(t, "the owner's resend once the cap allows", r, 202)
		e.confirmVerify("victim@example.com")
	})
}
