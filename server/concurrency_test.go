package server_test

// Suite 2: requests that race, on both stores. The rate limits are off, so
// that only the invariants decide.

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// outcome is what one racing request got.
type outcome struct {
	status int
	code   gen.ErrorCode
}

func (o outcome) String() string { return fmt.Sprintf("%d %s", o.status, o.code) }

// concurrently runs n calls of f at once (as near as goroutines allow) and
// returns their outcomes by index. A transport error is status -1.
func concurrently(n int, f func(i int) (response, error)) []outcome {
	outs := make([]outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := f(i)
			if err != nil {
				outs[i] = outcome{status: -1, code: gen.ErrorCode(err.Error())}
				return
			}
			outs[i].status = r.StatusCode()
			if r.ContentType() == "application/problem+json" {
				var p gen.Problem
				_ = json.Unmarshal(r.GetBody(), &p)
				outs[i].code = p.Code
			}
		})
	}
	close(start)
	wg.Wait()
	return outs
}

// wantTally checks that the outcomes are exactly want (outcome → count).
func wantTally(t *testing.T, what string, outs []outcome, want map[outcome]int) {
	t.Helper()
	got := map[outcome]int{}
	for _, o := range outs {
		got[o]++
	}
	if len(got) != len(want) {
		t.Errorf("%s: outcomes %v; want %v", what, got, want)
		return
	}
	for o, n := range want {
		if got[o] != n {
			t.Errorf("%s: outcomes %v; want %v", what, got, want)
			return
		}
	}
}

// checkInvariants checks the invariants of API.md with SQL.
func checkInvariants(t *testing.T, e *env, maxEmails int) {
	t.Helper()
	checks := []struct{ what, query string }{
		{"users without exactly one primary address",
			`SELECT COUNT(*) FROM users u WHERE (SELECT COUNT(*) FROM emails e WHERE e.user_id = u.id AND e.is_primary) <> 1`},
		{"addresses verified or primary for two users",
			`SELECT COUNT(*) FROM (SELECT email_key FROM emails WHERE verified OR is_primary
				GROUP BY email_key HAVING COUNT(DISTINCT user_id) > 1) x`},
		{"addresses a user holds twice",
			`SELECT COUNT(*) FROM (SELECT user_id, email_key FROM emails GROUP BY user_id, email_key HAVING COUNT(*) > 1) x`},
		{"users over the address limit",
			fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT user_id FROM emails GROUP BY user_id HAVING COUNT(*) > %d) x`, maxEmails)},
	}
	for _, c := range checks {
		if n := e.count(c.query); n != 0 {
			t.Errorf("invariant broken: %d %s", n, c.what)
		}
	}
}

func TestConcurrentSignUps(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		variants := []string{"race@example.com", "RACE@example.com", "Race@Example.COM", " race@example.com"}
		outs := concurrently(30, func(i int) (response, error) {
			return e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: variants[i%len(variants)], Password: goodPasswd})
		})
		wantTally(t, "30 sign-ups of one address", outs, map[outcome]int{
			{201, ""}:                      1,
			{400, gen.ErrorCodeEmailTaken}: 29,
		})
		if n := e.count(`SELECT COUNT(*) FROM users`); n != 1 {
			t.Errorf("%d users; want 1", n)
		}
		if n := e.count(`SELECT COUNT(*) FROM outbox`); n != 1 {
			t.Errorf("%d mails queued; want 1", n)
		}
		checkInvariants(t, e, 10)
	})
}

func TestConcurrentVerifyAcrossUsers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		const n = 30
		for i := range n {
			u := e.newUser(fmt.Sprintf("user%d@example.com", i))
			e.addEmail(u, "contested@example.com")
		}
		links := e.links(mail.KindVerify, "contested@example.com")
		if len(links) != n {
			t.Fatalf("%d verify links mailed to the contested address; want %d", len(links), n)
		}
		outs := concurrently(n, func(i int) (response, error) {
			return e.anon.ConfirmEmailVerificationWithResponse(ctx, links[i].token, links[i].userKey)
		})
		wantTally(t, "30 users verifying one address", outs, map[outcome]int{
			{200, ""}:                      1,
			{400, gen.ErrorCodeEmailTaken}: n - 1,
		})
		key := mustKey(t, "contested@example.com")
		if got := e.count(`SELECT COUNT(*) FROM emails WHERE email_key = ? AND verified`, key); got != 1 {
			t.Errorf("%d verified rows for the contested address; want 1", got)
		}
		checkInvariants(t, e, 10)
	})
}

func mustKey(t *testing.T, raw string) string {
	t.Helper()
	a, err := address.Normalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	return a.Key
}

func TestConcurrentAddSameAddress(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.newUser("alice@example.com")
		before := e.count(`SELECT COUNT(*) FROM outbox`)
		variants := []string{"same@example.com", "SAME@example.com", "same@EXAMPLE.com"}
		outs := concurrently(30, func(i int) (response, error) {
			return alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: variants[i%len(variants)]})
		})
		wantTally(t, "one user adding one address 30 times", outs, map[outcome]int{
			{201, ""}:                      1,
			{400, gen.ErrorCodeEmailTaken}: 29,
		})
		if got := e.emails(alice.id); len(got) != 2 {
			t.Errorf("addresses = %+v; want 2", got)
		}
		if n := e.count(`SELECT COUNT(*) FROM outbox`) - before; n != 2 {
			t.Errorf("%d mails queued; want 2 (a verification and a notice)", n)
		}
		checkInvariants(t, e, 10)
	})
}

func TestConcurrentSetPrimaryLink(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		l := e.changeLink("alice@new.example")
		outs := concurrently(20, func(i int) (response, error) {
			if i%2 == 0 {
				return e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
			}
			return e.anon.ShowPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey, withHeaders("Accept", "application/json"))
		})
		wantTally(t, "one set-primary link opened 20 times", outs, map[outcome]int{
			{200, ""}:                    1,
			{400, gen.ErrorCodeLinkUsed}: 19,
		})
		emails := e.emails(alice.id)
		if len(emails) != 2 || !emails[0].Primary || emails[0].Email != "alice@new.example" || emails[1].Primary {
			t.Errorf("addresses = %+v; want the new address as the one primary", emails)
		}
		if n := e.count(`SELECT COUNT(*) FROM outbox WHERE kind = ?`, mail.KindPrimaryChanged); n != 1 {
			t.Errorf("%d primary-changed notices; want 1", n)
		}
		checkInvariants(t, e, 10)
	})
}

// TestConcurrentMixed races change requests, their confirmations,
// verifications, adds and deletes of two users over one pool of addresses,
// then checks the invariants.
func TestConcurrentMixed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		const maxEmails = 5
		e := newEnv(t, db, withoutLimits(), withMaxEmails(maxEmails))
		alice := e.verifiedUser("alice@example.com")
		bob := e.verifiedUser("bob@example.com")
		pool := func(i int) string { return fmt.Sprintf("pool%d@example.com", i) }

		var ids []int64 // addresses to delete
		for _, u := range []*user{alice, bob} {
			for i := range 2 {
				ids = append(ids, e.addEmail(u, pool(i)).Id)
			}
		}
		verify := e.links(mail.KindVerify, pool(0))
		verify = append(verify, e.links(mail.KindVerify, pool(1))...)
		e.requestChange(alice, pool(2))
		stale := e.changeLink(pool(2))
		e.requestChange(alice, pool(3))
		var change []mailedLink
		change = append(change, stale, e.changeLink(pool(3)))
		e.requestChange(bob, pool(3))
		change = append(change, e.changeLink(pool(3)))

		var ops []func() (response, error)
		for _, l := range verify {
			ops = append(ops, func() (response, error) {
				return e.anon.ConfirmEmailVerificationWithResponse(ctx, l.token, l.userKey)
			})
		}
		for _, l := range change {
			ops = append(ops, func() (response, error) {
				return e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
			})
		}
		for _, u := range []*user{alice, bob} {
			for i := 2; i < 7; i++ {
				ops = append(ops, func() (response, error) {
					return u.AddEmailWithResponse(ctx, u.id, gen.AddEmailJSONRequestBody{Email: pool(i)})
				})
			}
			for _, i := range []int{4, 5} {
				ops = append(ops, func() (response, error) {
					return u.RequestEmailChangeWithResponse(ctx, u.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: pool(i), Password: goodPasswd})
				})
			}
			ops = append(ops, func() (response, error) { return u.ListEmailsWithResponse(ctx, u.id) })
		}
		for i, id := range ids {
			u := alice
			if i >= 2 {
				u = bob
			}
			ops = append(ops, func() (response, error) { return u.DeleteEmailWithResponse(ctx, u.id, id) })
		}
		outs := concurrently(len(ops), func(i int) (response, error) { return ops[i]() })
		t.Logf("outcomes: %v", outs)
		for i, o := range outs {
			if o.status < 200 || o.status >= 500 || (o.status >= 400 && o.code == "") {
				t.Errorf("op %d: %v", i, o)
			}
		}

		// The links of the change requests made during the race still
		// work, or answer as a used or refused link would.
		for _, addr := range []string{pool(4), pool(5)} {
			for _, l := range e.links(mail.KindChangeEmail, addr) {
				res, err := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
				if err != nil || res.StatusCode() >= 500 {
					t.Errorf("late confirmation: %v %d %s", err, res.StatusCode(), res.Body)
				}
			}
		}
		checkInvariants(t, e, maxEmails)
		for _, u := range []*user{alice, bob} {
			p, _ := u.GetPrimaryEmailWithResponse(ctx, u.id)
			if p.JSON200 == nil || !strings.Contains(p.JSON200.Email, "@example.com") {
				t.Errorf("user %d primary: %d %s", u.id, p.StatusCode(), p.Body)
			}
		}
	})
}
