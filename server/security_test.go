package server_test

// Suite 4: security and abuse resistance.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// idRoute is one operation on a user's {id}.
type idRoute struct {
	method string
	path   string // with %d for {id} and, where it has one, %e for {email_id}
	body   []byte
	write  bool
}

var idRoutes = []idRoute{
	{"GET", "/users/%d/emails/", nil, false},
	{"POST", "/users/%d/emails/", mustJSON(gen.NewEmail{Email: "mallory@example.com"}), true},
	{"GET", "/users/%d/emails/%e/", nil, false},
	{"DELETE", "/users/%d/emails/%e/", nil, true},
	{"POST", "/users/%d/emails/%e/send-verification/", nil, true},
	{"GET", "/users/%d/primary-email/", nil, false},
	{"POST", "/users/%d/email-change/", mustJSON(gen.EmailChange{NewEmail: "mallory@example.com", Password: goodPasswd}), true},
}

func (r idRoute) url(id, emailID int64) string {
	p := strings.Replace(r.path, "%d", strconv.FormatInt(id, 10), 1)
	return strings.Replace(p, "%e", strconv.FormatInt(emailID, 10), 1)
}

func (r idRoute) headers(u *user, extra ...string) []string {
	h := u.authHeaders(extra...)
	if r.body != nil {
		h = append(h, "Content-Type", "application/json")
	}
	return h
}

func TestCrossUserAccess(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		bob := e.verifiedUser("bob@example.com")
		bobWork := e.addEmail(bob, "bob@work.example")
		aliceWork := e.addEmail(alice, "alice@work.example")
		e.deliver()

		for _, r := range idRoutes {
			for _, target := range []struct {
				name    string
				id, eid int64
			}{
				{"bob's id and address", bob.id, bobWork.Id},
				{"bob's id, alice's address", bob.id, aliceWork.Id},
			} {
				what := r.method + " " + r.path + " with " + target.name
				before, bobBefore := e.state(alice.id), e.state(bob.id)
				res := e.do(r.method, r.url(target.id, target.eid), r.body, r.headers(alice)...)
				wantProblem(t, what, res, 403, gen.ErrorCodeForbidden)
				e.unchanged(t, what, alice.id, before)
				e.unchanged(t, what, bob.id, bobBefore)
			}
		}
		// Alice's own id with bob's address: not found, not bob's data.
		for _, r := range idRoutes {
			if !strings.Contains(r.path, "%e") {
				continue
			}
			what := r.method + " " + r.path + " with alice's id and bob's address"
			bobBefore := e.state(bob.id)
			wantProblem(t, what, e.do(r.method, r.url(alice.id, bobWork.Id), r.body, r.headers(alice)...), 404, gen.ErrorCodeNotFound)
			e.unchanged(t, what, bob.id, bobBefore)
		}
	})
}

func TestCSRF(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits(), withTrustedOrigins("https://app.example.com"))
		alice := e.verifiedUser("alice@example.com")
		bob := e.verifiedUser("bob@example.com")
		work := e.addEmail(alice, "alice@work.example")
		e.deliver()
		cookie := "sessionid=" + alice.sid + "; osessionid=" + alice.sid

		writes := append([]idRoute{{"POST", "/auth/logout/", nil, true}}, idRoutes...)
		bad := []struct {
			name   string
			header []string
		}{
			{"no CSRF header", []string{"Cookie", cookie}},
			{"an empty CSRF header", []string{"Cookie", cookie, "X-CSRFToken", ""}},
			{"a wrong CSRF header", []string{"Cookie", cookie, "X-CSRFToken", strings.Repeat("A", len(alice.csrf))}},
			{"the token one character off", []string{"Cookie", cookie, "X-CSRFToken", alice.csrf[:len(alice.csrf)-1] + flip(alice.csrf[len(alice.csrf)-1])}},
			{"bob's token with alice's cookie", []string{"Cookie", cookie, "X-CSRFToken", bob.csrf}},
			{"the session id as the token", []string{"Cookie", cookie, "X-CSRFToken", alice.sid}},
			{"a foreign Origin", []string{"Cookie", cookie, "X-CSRFToken", alice.csrf, "Origin", "https://evil.example"}},
			{"a null Origin", []string{"Cookie", cookie, "X-CSRFToken", alice.csrf, "Origin", "null"}},
			{"a look-alike Origin", []string{"Cookie", cookie, "X-CSRFToken", alice.csrf, "Origin", "http://useremail.test.evil.example"}},
			{"a foreign Referer", []string{"Cookie", cookie, "X-CSRFToken", alice.csrf, "Referer", "https://evil.example/page"}},
		}
		for _, r := range writes {
			if !r.write {
				continue
			}
			for _, b := range bad {
				what := r.method + " " + r.path + " with " + b.name
				before := e.state(alice.id)
				h := b.header
				if r.body != nil {
					h = append(append([]string{}, h...), "Content-Type", "application/json")
				}
				res := e.do(r.method, r.url(alice.id, work.Id), r.body, h...)
				wantProblem(t, what, res, 403, gen.ErrorCodeCsrfFailed)
				e.unchanged(t, what, alice.id, before)
			}
		}

		// Reads need no token; a trusted origin, the public URL's origin
		// and API clients without Origin pass.
		wantStatus(t, "list without a token", e.do("GET", "/users/"+strconv.FormatInt(alice.id, 10)+"/emails/", nil, "Cookie", cookie), 200)
		for i, origin := range []string{"https://app.example.com", publicURL, ""} {
			h := alice.authHeaders("Content-Type", "application/json")
			if origin != "" {
				h = append(h, "Origin", origin)
			}
			res := e.do("POST", "/users/"+strconv.FormatInt(alice.id, 10)+"/emails/", mustJSON(gen.NewEmail{Email: "ok" + strconv.Itoa(i) + "@example.com"}), h...)
			wantStatus(t, "add with Origin "+strconv.Quote(origin), res, 201)
		}
		res := e.do("POST", "/users/"+strconv.FormatInt(alice.id, 10)+"/emails/", mustJSON(gen.NewEmail{Email: "ref@example.com"}),
			alice.authHeaders("Content-Type", "application/json", "Referer", "https://app.example.com/settings")...)
		wantStatus(t, "add with a trusted Referer", res, 201)
	})
}

func TestSessionFixation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.signUp("alice@example.com")
		mallory := e.newUser("mallory@example.com")
		srvURL, _ := url.Parse(e.srv.URL)

		for _, planted := range []struct{ name, id string }{
			{"a value the attacker chose", strings.Repeat("F", 43)},
			{"the attacker's own live session", mallory.sid},
		} {
			jar, _ := cookiejar.New(nil)
			jar.SetCookies(srvURL, []*http.Cookie{
				{Name: session.Cookie, Value: planted.id, Path: "/"},
				{Name: session.OldCookie, Value: planted.id, Path: "/"},
			})
			victim := e.client(jar)
			res, err := victim.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "alice@example.com", Password: goodPasswd})
			if err != nil || res.JSON200 == nil {
				t.Fatalf("%s: login: %v %d %s", planted.name, err, res.StatusCode(), res.Body)
			}
			var issued string
			for _, c := range res.HTTPResponse.Cookies() {
				if c.Name == session.Cookie {
					issued = c.Value
				}
			}
			if issued == "" || issued == planted.id {
				t.Errorf("%s: login issued %q; want a new id", planted.name, issued)
			}
			// The planted value is no key to alice's account.
			got := e.do("GET", "/auth/session/", nil, "Cookie", "sessionid="+planted.id)
			if planted.id == mallory.sid {
				var s gen.Session
				if got.status != 200 || json.Unmarshal(got.body, &s) != nil || s.UserId != mallory.id {
					t.Errorf("%s: the planted session now answers %d %s; want still mallory's", planted.name, got.status, got.body)
				}
			} else {
				wantProblem(t, planted.name+" after login", got, 401, gen.ErrorCodeSessionInvalid)
			}
			// The victim's browser now holds the new session.
			s, _ := victim.GetSessionWithResponse(ctx)
			if s.JSON200 == nil || s.JSON200.UserId != res.JSON200.UserId {
				t.Errorf("%s: victim's session %d %s", planted.name, s.StatusCode(), s.Body)
			}
		}
	})
}

func TestTokenTampering(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		e.addEmail(alice, "alice@work.example")
		l := e.verifyLink("alice@work.example")
		e.deliver()
		before := e.state(alice.id)
		for i := range len(l.token) {
			tampered := l.token[:i] + flip(l.token[i]) + l.token[i+1:]
			res, err := e.anon.ConfirmEmailVerificationWithResponse(ctx, tampered, l.userKey)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, "token byte "+strconv.Itoa(i)+" flipped", res, 400, gen.ErrorCodeLinkInvalid)
		}
		for i := range len(l.userKey) {
			tampered := l.userKey[:i] + flip(l.userKey[i]) + l.userKey[i+1:]
			res, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, l.token, tampered)
			wantProblem(t, "user key byte "+strconv.Itoa(i)+" flipped", res, 400, gen.ErrorCodeLinkInvalid)
		}
		e.unchanged(t, "tampered links", alice.id, before)
		if n := e.count(`SELECT COUNT(*) FROM emails WHERE verified`); n != 0 {
			t.Errorf("%d addresses verified by tampered links", n)
		}
		if r, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, l.token, l.userKey); r.JSON200 == nil {
			t.Errorf("genuine link after the tampering: %d %s", r.StatusCode(), r.Body)
		}

		// A reset link: every byte of its token and user key.
		reset := e.resetLink("alice@example.com")
		before = e.state(alice.id)
		for i := range len(reset.token) {
			tampered := reset.token[:i] + flip(reset.token[i]) + reset.token[i+1:]
			res, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, reset.userKey, tampered, gen.NewPassword{Password: "purple monkey dishwasher lamp"})
			wantProblem(t, "reset token byte "+strconv.Itoa(i)+" flipped", res, 400, gen.ErrorCodeLinkInvalid)
		}
		for i := range len(reset.userKey) {
			tampered := reset.userKey[:i] + flip(reset.userKey[i]) + reset.userKey[i+1:]
			res, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, tampered, reset.token, gen.NewPassword{Password: "purple monkey dishwasher lamp"})
			wantProblem(t, "reset user key byte "+strconv.Itoa(i)+" flipped", res, 400, gen.ErrorCodeLinkInvalid)
		}
		e.unchanged(t, "tampered reset links", alice.id, before)
		if r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, reset.userKey, reset.token, gen.NewPassword{Password: "purple monkey dishwasher lamp"}); r.StatusCode() != 204 {
			t.Errorf("genuine reset link after the tampering: %d %s", r.StatusCode(), r.Body)
		}
	})
}

func TestExpiredLinks(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		e.addEmail(alice, "alice@one.example")
		e.addEmail(alice, "alice@two.example")
		one, two := e.verifyLink("alice@one.example"), e.verifyLink("alice@two.example")
		e.requestChange(alice, "alice@new.example")
		change := e.changeLink("alice@new.example")
		e.deliver()

		// A change link lives 24 hours.
		e.clock.Advance(24*time.Hour + time.Second)
		before := e.state(alice.id)
		res, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, change.token, change.userKey)
		wantProblem(t, "set-primary link after 24h", res, 400, gen.ErrorCodeLinkExpired)
		show, _ := e.anon.ShowPrimaryEmailChangeWithResponse(ctx, change.token, change.userKey, withHeaders("Accept", "application/json"))
		wantProblem(t, "set-primary link after 24h (JSON GET)", show, 400, gen.ErrorCodeLinkExpired)
		wantHTMLPage(t, "set-primary link after 24h (browser)", e.do("GET", linkPath(change), nil, "Accept", browserAccept), 400, "", false)
		e.unchanged(t, "expired set-primary link", alice.id, before)

		// A verify link lives 72 hours.
		e.clock.Advance(48*time.Hour - time.Minute)
		if r, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, one.token, one.userKey); r.JSON200 == nil {
			t.Errorf("verify link just before 72h: %d %s", r.StatusCode(), r.Body)
		}
		e.clock.Advance(2 * time.Minute)
		before = e.state(alice.id)
		v, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, two.token, two.userKey)
		wantProblem(t, "verify link after 72h", v, 400, gen.ErrorCodeLinkExpired)
		vs, _ := e.anon.ShowEmailVerificationWithResponse(ctx, two.token, two.userKey, withHeaders("Accept", "application/json"))
		wantProblem(t, "verify link after 72h (JSON GET)", vs, 400, gen.ErrorCodeLinkExpired)
		wantHTMLPage(t, "verify link after 72h (browser)", e.do("GET", linkPath(two), nil), 400, "", false)
		e.unchanged(t, "expired verify link", alice.id, before)
	})
}

func TestLinkPurposeConfusion(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		v := e.verifyLink("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		c := e.changeLink("alice@new.example")
		before := e.state(alice.id)

		sp, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, v.token, v.userKey)
		wantProblem(t, "verify token on the set-primary path", sp, 400, gen.ErrorCodeLinkInvalid)
		sps, _ := e.anon.ShowPrimaryEmailChangeWithResponse(ctx, v.token, v.userKey, withHeaders("Accept", "application/json"))
		wantProblem(t, "verify token on the set-primary path (JSON GET)", sps, 400, gen.ErrorCodeLinkInvalid)
		vf, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, c.token, c.userKey)
		wantProblem(t, "set-primary token on the verify path", vf, 400, gen.ErrorCodeLinkInvalid)
		vfs, _ := e.anon.ShowEmailVerificationWithResponse(ctx, c.token, c.userKey, withHeaders("Accept", "application/json"))
		wantProblem(t, "set-primary token on the verify path (JSON GET)", vfs, 400, gen.ErrorCodeLinkInvalid)

		// The reset link's token on the other paths, and theirs on its path.
		r := e.resetLink("alice@example.com")
		before = e.state(alice.id)
		rv, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, r.token, r.userKey)
		wantProblem(t, "reset token on the verify path", rv, 400, gen.ErrorCodeLinkInvalid)
		rp, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, r.token, r.userKey)
		wantProblem(t, "reset token on the set-primary path", rp, 400, gen.ErrorCodeLinkInvalid)
		for _, other := range []mailedLink{v, c} {
			res, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, other.userKey, other.token, gen.NewPassword{Password: "purple monkey dishwasher lamp"})
			wantProblem(t, other.kind+" token on the reset path", res, 400, gen.ErrorCodeLinkInvalid)
			show, _ := e.anon.ShowPasswordResetWithResponse(ctx, other.userKey, other.token, withHeaders("Accept", "application/json"))
			wantProblem(t, other.kind+" token on the reset path (JSON GET)", show, 400, gen.ErrorCodeLinkInvalid)
		}
		e.unchanged(t, "links on the wrong path", alice.id, before)
	})
}

func TestLinkReplay(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		work := e.addEmail(alice, "alice@work.example")
		old := e.verifyLink("alice@work.example")

		// A verify link outlives neither its address nor a re-added one.
		if r, _ := alice.DeleteEmailWithResponse(ctx, alice.id, work.Id); r.StatusCode() != 204 {
			t.Fatalf("delete: %d %s", r.StatusCode(), r.Body)
		}
		before := e.state(alice.id)
		r, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, old.token, old.userKey)
		wantProblem(t, "verify link of a deleted address", r, 400, gen.ErrorCodeLinkUsed)
		e.unchanged(t, "verify link of a deleted address", alice.id, before)
		e.clock.Advance(3*time.Minute + time.Second)
		e.addEmail(alice, "alice@work.example")
		before = e.state(alice.id)
		r, _ = e.anon.ConfirmEmailVerificationWithResponse(ctx, old.token, old.userKey)
		wantProblem(t, "verify link of a re-added address", r, 400, gen.ErrorCodeLinkUsed)
		e.unchanged(t, "verify link of a re-added address", alice.id, before)

		// A set-primary link: once, and not after a newer request.
		e.requestChange(alice, "alice@new.example")
		c := e.changeLink("alice@new.example")
		if r, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, c.token, c.userKey); r.JSON200 == nil {
			t.Fatalf("set primary: %d %s", r.StatusCode(), r.Body)
		}
		before = e.state(alice.id)
		sp, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, c.token, c.userKey)
		wantProblem(t, "set-primary link replayed", sp, 400, gen.ErrorCodeLinkUsed)
		e.unchanged(t, "set-primary link replayed", alice.id, before)

		e.requestChange(alice, "alice@third.example")
		older := e.changeLink("alice@third.example")
		e.requestChange(alice, "alice@fourth.example")
		before = e.state(alice.id)
		sp, _ = e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, older.token, older.userKey)
		wantProblem(t, "set-primary link after a newer request", sp, 400, gen.ErrorCodeLinkUsed)
		e.unchanged(t, "set-primary link after a newer request", alice.id, before)

		// A reset link: once; and a set-primary link dies with the reset.
		e.requestChange(alice, "alice@fifth.example")
		pending := e.changeLink("alice@fifth.example")
		reset := e.resetLink("alice@example.com")
		if r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, reset.userKey, reset.token, gen.NewPassword{Password: "purple monkey dishwasher lamp"}); r.StatusCode() != 204 {
			t.Fatalf("reset: %d %s", r.StatusCode(), r.Body)
		}
		e.deliver()
		before = e.state(alice.id)
		rr, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, reset.userKey, reset.token, gen.NewPassword{Password: "another fine password"})
		wantProblem(t, "reset link replayed", rr, 400, gen.ErrorCodeLinkUsed)
		sp, _ = e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, pending.token, pending.userKey)
		wantProblem(t, "set-primary link after a reset", sp, 400, gen.ErrorCodeLinkUsed)
		e.unchanged(t, "links after a reset", alice.id, before)
	})
}

func TestLinkErrorsRevealNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		v := e.verifyLink("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		c := e.changeLink("alice@new.example")

		other, err := signer.New([][]byte{[]byte("another-secret-key-0123456789abcdef0123")}, e.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		const ghost = 987654
		forge := func(p signer.Purpose) string {
			tok, err := other.Sign(signer.Claims{Purpose: p, UserID: ghost, Email: "ghost@example.com", State: 1})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		ghostKey := signer.EncodeUserID(ghost)
		for _, tc := range []struct {
			name          string
			forged, valid mailedLink
			base, end     string
		}{
			{"verify", mailedLink{token: forge(signer.PurposeVerify), userKey: ghostKey}, v, "/users/email-verify/", ""},
			{"set-primary", mailedLink{token: forge(signer.PurposeSetPrimary), userKey: ghostKey}, c, "/users/email-set-primary/", "/"},
		} {
			tampered := mailedLink{token: tc.valid.token[:30] + flip(tc.valid.token[30]) + tc.valid.token[31:], userKey: tc.valid.userKey}
			for _, h := range [][]string{nil, {"Accept", "application/json"}, {"Accept", browserAccept}} {
				method := "POST"
				if h != nil {
					method = "GET"
				}
				ghostRes := e.do(method, tc.base+tc.forged.token+"/"+tc.forged.userKey+tc.end, nil, h...)
				aliceRes := e.do(method, tc.base+tampered.token+"/"+tampered.userKey+tc.end, nil, h...)
				what := tc.name + " " + method + " " + strings.Join(h, ": ")
				if ghostRes.status != 400 || ghostRes.status != aliceRes.status || ghostRes.ContentType() != aliceRes.ContentType() ||
					!bytes.Equal(ghostRes.body, aliceRes.body) {
					t.Errorf("%s: a link for no account answers %d %s %q, a tampered link of an account %d %s %q; want the same",
						what, ghostRes.status, ghostRes.ContentType(), ghostRes.body, aliceRes.status, aliceRes.ContentType(), aliceRes.body)
				}
				if ghostRes.ContentType() == "application/problem+json" {
					wantProblem(t, what, ghostRes, 400, gen.ErrorCodeLinkInvalid)
				}
			}
		}

		// The reset link (user key first) with a new password.
		r := e.resetLink("alice@example.com")
		tampered := r.token[:30] + flip(r.token[30]) + r.token[31:]
		body := mustJSON(gen.NewPassword{Password: "purple monkey dishwasher lamp"})
		for _, h := range [][]string{{"Content-Type", "application/json"}, {"Accept", "application/json"}, {"Accept", browserAccept}} {
			method, b := "POST", body
			if h[0] == "Accept" {
				method, b = "GET", nil
			}
			ghostRes := e.do(method, "/auth/password-reset/"+ghostKey+"/"+forge(signer.PurposePasswordReset)+"/", b, h...)
			aliceRes := e.do(method, "/auth/password-reset/"+r.userKey+"/"+tampered+"/", b, h...)
			what := "reset " + method + " " + strings.Join(h, ": ")
			if ghostRes.status != 400 || ghostRes.status != aliceRes.status || ghostRes.ContentType() != aliceRes.ContentType() ||
				!bytes.Equal(ghostRes.body, aliceRes.body) {
				t.Errorf("%s: a link for no account answers %d %s %q, a tampered link of an account %d %s %q; want the same",
					what, ghostRes.status, ghostRes.ContentType(), ghostRes.body, aliceRes.status, aliceRes.ContentType(), aliceRes.body)
			}
			if ghostRes.ContentType() == "application/problem+json" {
				wantProblem(t, what, ghostRes, 400, gen.ErrorCodeLinkInvalid)
			}
		}
	})
}

func TestLoginRateLimitVariants(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.signUp("zoë@example.com")
		e.signUp("bob@example.com")
		variants := []string{"zoë@example.com", "ZOË@EXAMPLE.COM", "zoe\u0308@example.com", "  Zoë@Example.com  ", "ZOE\u0308@example.COM"}
		for i := range 10 {
			res, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: variants[i%len(variants)], Password: "wrong password"})
			wantProblem(t, "wrong password "+strconv.Itoa(i+1), res, 400, gen.ErrorCodeInvalidCredentials)
		}
		for _, v := range variants {
			before := e.state(0)
			res, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: v, Password: goodPasswd})
			wantProblem(t, "login as "+strconv.Quote(v)+" over the limit", res, 429, gen.ErrorCodeRateLimited)
			wantRetryAfter(t, "login over the limit", res.HTTPResponse, 1, 60)
			if len(res.HTTPResponse.Cookies()) != 0 {
				t.Errorf("login over the limit set cookies %v", res.HTTPResponse.Cookies())
			}
			e.unchanged(t, "login over the limit", 0, before)
		}
		// Another address is not limited; the limited one recovers.
		if r, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "bob@example.com", Password: goodPasswd}); r.JSON200 == nil {
			t.Errorf("login as another address: %d %s", r.StatusCode(), r.Body)
		}
		e.clock.Advance(time.Minute)
		if r, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "ZOË@example.com", Password: goodPasswd}); r.JSON200 == nil {
			t.Errorf("login a minute later: %d %s", r.StatusCode(), r.Body)
		}
	})
}

// TestResendIntervalVariants checks that the resend interval of a user and
// an address holds for every spelling of the address and every way of
// mailing it (another user's mails are TestResendIntervalPerUser's).
func TestResendIntervalVariants(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		first := e.verifiedUser("first@example.com")
		added := e.addEmail(first, "bob@example.com") // mailed just now
		e.deliver()

		attempts := []struct {
			name string
			call func() (response, error)
		}{
			{"resend", func() (response, error) {
				return first.SendVerificationWithResponse(ctx, first.id, added.Id)
			}},
			{"change to BOB@example.com", func() (response, error) {
				return first.RequestEmailChangeWithResponse(ctx, first.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: "BOB@example.com", Password: goodPasswd})
			}},
			{"remove and add Bob@Example.COM", func() (response, error) {
				if r, _ := first.DeleteEmailWithResponse(ctx, first.id, added.Id); r.StatusCode() != 204 {
					t.Fatalf("delete: %d %s", r.StatusCode(), r.Body)
				}
				return first.AddEmailWithResponse(ctx, first.id, gen.AddEmailJSONRequestBody{Email: "Bob@Example.COM"})
			}},
		}
		for _, a := range attempts {
			res, err := a.call()
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, a.name, res, 429, gen.ErrorCodeRateLimited)
		}
		for _, m := range e.deliver() {
			if m.To != first.email { // the notice of the removal goes there
				t.Errorf("a %s mail to %s for a refused request", m.Kind, m.To)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM emails WHERE email_key = 'bob@example.com'`); n != 0 {
			t.Errorf("%d rows of the refused address", n)
		}
		e.clock.Advance(3*time.Minute + time.Second)
		if got := e.addEmail(first, "Bob@Example.COM"); got.Email != "Bob@example.com" {
			t.Errorf("add after the interval: %+v", got)
		}
	})
}

func TestWrongPasswordLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		change := func(addr, pw string) *gen.RequestEmailChangeResponse {
			res, err := alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: addr, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		for i := range 4 {
			wantProblem(t, "wrong password "+strconv.Itoa(i+1), change("alice@a.example", "wrong password"), 400, gen.ErrorCodeInvalidPassword)
		}
		// The right password does not count against the limit.
		wantStatus(t, "right password after 4 wrong", change("alice@a.example", goodPasswd), 204)
		wantProblem(t, "wrong password 5", change("alice@b.example", "wrong password"), 400, gen.ErrorCodeInvalidPassword)
		// 5 wrong in 15 minutes: even the right password is refused now.
		before := e.state(alice.id)
		res := change("alice@b.example", goodPasswd)
		wantProblem(t, "right password after 5 wrong", res, 429, gen.ErrorCodeRateLimited)
		wantRetryAfter(t, "right password after 5 wrong", res.HTTPResponse, 1, 15*60)
		e.unchanged(t, "right password after 5 wrong", alice.id, before)

		e.clock.Advance(3 * time.Minute)
		wantStatus(t, "right password 3 minutes later", change("alice@b.example", goodPasswd), 204)
	})
}

func TestManageLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		bob := e.verifiedUser("bob@example.com")
		var ids []int64
		for i := range 5 {
			ids = append(ids, e.addEmail(alice, "alice"+strconv.Itoa(i)+"@example.com").Id)
		}
		for _, id := range ids {
			if r, _ := alice.DeleteEmailWithResponse(ctx, alice.id, id); r.StatusCode() != 204 {
				t.Fatalf("delete: %d %s", r.StatusCode(), r.Body)
			}
		}
		for _, tc := range []struct {
			name string
			call func() (response, error)
		}{
			{"add", func() (response, error) {
				return alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: "eleven@example.com"})
			}},
			{"change", func() (response, error) {
				return alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: "eleven@example.com", Password: goodPasswd})
			}},
			{"delete", func() (response, error) { return alice.DeleteEmailWithResponse(ctx, alice.id, ids[0]) }},
			{"send verification", func() (response, error) { return alice.SendVerificationWithResponse(ctx, alice.id, ids[0]) }},
		} {
			before := e.state(alice.id)
			res, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, tc.name+" over the limit", res, 429, gen.ErrorCodeRateLimited)
			e.unchanged(t, tc.name+" over the limit", alice.id, before)
		}
		r, _ := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: "eleven@example.com"})
		wantRetryAfter(t, "add over the limit", r.HTTPResponse, 1, 60)
		// Reads are not limited; another user is not limited.
		wantStatus(t, "list over the limit", mustList(alice), 200)
		e.addEmail(bob, "bob1@example.com")
		e.clock.Advance(6 * time.Second)
		e.addEmail(alice, "eleven@example.com")
	})
}

func mustList(u *user) *gen.ListEmailsResponse {
	r, _ := u.ListEmailsWithResponse(ctx, u.id)
	return r
}

func TestHostileInputs(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		id := strconv.FormatInt(alice.id, 10)
		huge := strings.Repeat("x", 60<<10)
		cases := []struct {
			name   string
			method string
			path   string
			body   string
			header []string
			status int
			code   gen.ErrorCode
		}{
			{"sign-up, 60 KB address", "POST", "/users/", `{"email":"` + huge + `@example.com","password":"correct horse"}`, nil, 400, gen.ErrorCodeInvalidEmail},
			{"sign-up, 60 KB password", "POST", "/users/", `{"email":"new@example.com","password":"` + huge + `"}`, nil, 400, gen.ErrorCodeValidationError},
			{"sign-up, NUL in the address", "POST", "/users/", `{"email":"new\u0000@example.com","password":"correct horse"}`, nil, 400, gen.ErrorCodeInvalidEmail},
			{"sign-up, raw invalid UTF-8 in the address", "POST", "/users/", "{\"email\":\"n\xffew@example.com\",\"password\":\"correct horse\"}", nil, 400, gen.ErrorCodeValidationError},
			{"sign-up, raw invalid UTF-8 in the password", "POST", "/users/", "{\"email\":\"new@example.com\",\"password\":\"correct \xc3\x28horse\"}", nil, 400, gen.ErrorCodeValidationError},
			{"sign-up, lone surrogate escape", "POST", "/users/", `{"email":"new\ud800@example.com","password":"correct horse"}`, nil, 400, gen.ErrorCodeInvalidEmail},
			{"login, 60 KB address", "POST", "/auth/login/", `{"email":"` + huge + `","password":"x"}`, nil, 400, gen.ErrorCodeValidationError},
			{"login, 60 KB password", "POST", "/auth/login/", `{"email":"alice@example.com","password":"` + huge + `"}`, nil, 400, gen.ErrorCodeValidationError},
			{"login, NUL in the address", "POST", "/auth/login/", `{"email":"alice@example.com\u0000","password":"correct horse battery staple"}`, nil, 400, gen.ErrorCodeInvalidCredentials},
			{"login, NUL in the password", "POST", "/auth/login/", `{"email":"alice@example.com","password":"correct horse battery staple\u0000"}`, nil, 400, gen.ErrorCodeInvalidCredentials},
			{"login, raw invalid UTF-8", "POST", "/auth/login/", "{\"email\":\"alice@example.com\xfe\",\"password\":\"x\"}", nil, 400, gen.ErrorCodeValidationError},
			{"add, 60 KB address", "POST", "/users/" + id + "/emails/", `{"email":"` + huge + `"}`, alice.authHeaders(), 400, gen.ErrorCodeInvalidEmail},
			{"add, NUL", "POST", "/users/" + id + "/emails/", `{"email":"\u0000"}`, alice.authHeaders(), 400, gen.ErrorCodeInvalidEmail},
			{"add, raw invalid UTF-8", "POST", "/users/" + id + "/emails/", "{\"email\":\"a\xffb@example.com\"}", alice.authHeaders(), 400, gen.ErrorCodeValidationError},
			{"change, 60 KB address", "POST", "/users/" + id + "/email-change/", `{"new_email":"` + huge + `","password":"correct horse battery staple"}`, alice.authHeaders(), 400, gen.ErrorCodeInvalidEmail},
			{"change, 60 KB password", "POST", "/users/" + id + "/email-change/", `{"new_email":"new@example.com","password":"` + huge + `"}`, alice.authHeaders(), 400, gen.ErrorCodeValidationError},
			{"change, NUL in the password", "POST", "/users/" + id + "/email-change/", `{"new_email":"new@example.com","password":"\u0000"}`, alice.authHeaders(), 400, gen.ErrorCodeInvalidPassword},
			{"change, raw invalid UTF-8", "POST", "/users/" + id + "/email-change/", "{\"new_email\":\"new@example.com\",\"password\":\"\xff\"}", alice.authHeaders(), 400, gen.ErrorCodeValidationError},
			{"60 KB CSRF header", "POST", "/users/" + id + "/emails/", `{"email":"new@example.com"}`, []string{"Cookie", "sessionid=" + alice.sid, "X-CSRFToken", huge}, 403, gen.ErrorCodeCsrfFailed},
			{"binary CSRF header", "POST", "/users/" + id + "/emails/", `{"email":"new@example.com"}`, []string{"Cookie", "sessionid=" + alice.sid, "X-CSRFToken", "\xff\xfe\x80"}, 403, gen.ErrorCodeCsrfFailed},
			{"60 KB session cookie", "GET", "/users/" + id + "/emails/", "", []string{"Cookie", "sessionid=" + huge}, 401, gen.ErrorCodeSessionInvalid},
			// net/http drops a cookie whose value is not a cookie value: no session.
			{"binary session cookie", "GET", "/users/" + id + "/emails/", "", []string{"Cookie", "sessionid=\xff\xfe\x80"}, 401, gen.ErrorCodeNotAuthenticated},
			{"60 KB Content-Type", "POST", "/users/", `{"email":"new@example.com","password":"correct horse"}`, []string{"Content-Type", "application/" + huge}, 415, gen.ErrorCodeUnsupportedMediaType},
			{"binary Content-Type", "POST", "/users/", `{"email":"new@example.com","password":"correct horse"}`, []string{"Content-Type", "\xff/\xfe"}, 415, gen.ErrorCodeUnsupportedMediaType},
			{"60 KB link token", "POST", "/users/email-verify/" + huge + "/MQ", "", nil, 400, gen.ErrorCodeLinkInvalid},
			{"60 KB user key", "POST", "/users/email-verify/v1.a.b.c/" + huge, "", nil, 400, gen.ErrorCodeLinkInvalid},
			{"60 KB Accept on a bad link", "GET", "/users/email-verify/v1.a.b.c/MQ", "", []string{"Accept", "application/json, " + huge}, 400, gen.ErrorCodeLinkInvalid},
			{"60 KB User-Agent on a failed login", "POST", "/auth/login/", `{"email":"alice@example.com","password":"wrong password"}`, []string{"User-Agent", huge}, 400, gen.ErrorCodeInvalidCredentials},
		}
		for _, tc := range cases {
			before := e.state(alice.id)
			h := tc.header
			if tc.body != "" && !hasHeader(h, "Content-Type") {
				h = append(append([]string{}, h...), "Content-Type", "application/json")
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			res := e.do(tc.method, tc.path, body, h...)
			wantProblem(t, tc.name, res, tc.status, tc.code)
			e.unchanged(t, tc.name, alice.id, before)
		}

		// Long or binary headers that are not judged are ignored, never echoed.
		res := e.do("GET", "/healthz", nil, "X-Request-ID", huge, "User-Agent", huge, "Accept-Language", "\xff\xfe")
		if res.status != 200 || len(res.header.Get("X-Request-ID")) > 128 {
			t.Errorf("/healthz with hostile headers: %d, X-Request-ID %.40q", res.status, res.header.Get("X-Request-ID"))
		}
		if r := e.do("GET", "/healthz", nil, "X-Request-ID", "ok\xffbad"); strings.Contains(r.header.Get("X-Request-ID"), "\xff") {
			t.Errorf("X-Request-ID echoed binary: %q", r.header.Get("X-Request-ID"))
		}
		// A successful login with a 60 KB User-Agent keeps a bounded audit record.
		login := e.do("POST", "/auth/login/", mustJSON(gen.Credentials{Email: "alice@example.com", Password: goodPasswd}),
			"Content-Type", "application/json", "User-Agent", huge)
		wantStatus(t, "login with a 60 KB User-Agent", login, 200)
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE LENGTH(user_agent) > 512`); n != 0 {
			t.Errorf("%d audit records keep a User-Agent over 512 bytes", n)
		}
	})
}

func hasHeader(kv []string, name string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.EqualFold(kv[i], name) {
			return true
		}
	}
	return false
}

func TestSecurityHeaders(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		id := strconv.FormatInt(alice.id, 10)
		v := e.verifyLink("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		c := e.changeLink("alice@new.example")

		// Anything with a session or a token: never cached.
		noStore := map[string]rawResponse{
			"login":               e.do("POST", "/auth/login/", mustJSON(gen.Credentials{Email: "alice@example.com", Password: goodPasswd}), "Content-Type", "application/json"),
			"session":             e.do("GET", "/auth/session/", nil, alice.authHeaders()...),
			"list":                e.do("GET", "/users/"+id+"/emails/", nil, alice.authHeaders()...),
			"verify page":         e.do("GET", linkPath(v), nil, "Accept", browserAccept),
			"set-primary page":    e.do("GET", linkPath(c), nil),
			"link error page":     e.do("GET", "/users/email-verify/x/MQ", nil, "Accept", browserAccept),
			"link error":          e.do("POST", "/users/email-verify/x/MQ", nil),
			"verify":              e.do("POST", linkPath(v), nil),
			"verify form":         e.do("POST", linkPath(v), []byte{}, "Content-Type", "application/x-www-form-urlencoded"),
			"set primary":         e.do("GET", linkPath(c), nil, "Accept", "application/json"),
			"problem 401":         e.do("GET", "/auth/session/", nil),
			"problem 404":         e.do("GET", "/nope", nil),
			"problem 405":         e.do("PUT", "/users/", nil),
			"problem 415":         e.do("POST", "/users/", []byte("x"), "Content-Type", "text/plain"),
			"problem 400 (login)": e.do("POST", "/auth/login/", mustJSON(gen.Credentials{Email: "x", Password: "y"}), "Content-Type", "application/json"),
		}
		for name, res := range noStore {
			if cc := res.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s (%d): Cache-Control %q; want no-store", name, res.status, cc)
			}
			if res.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s (%d): no X-Content-Type-Options: nosniff", name, res.status)
			}
		}
		for _, name := range []string{"verify page", "set-primary page", "link error page", "verify form"} {
			res := noStore[name]
			if !strings.HasPrefix(res.ContentType(), "text/html") {
				t.Errorf("%s: %d %s; want HTML", name, res.status, res.ContentType())
				continue
			}
			wantPageHeaders(t, name, res.header)
			if !strings.Contains(string(res.body), `<meta name="referrer" content="no-referrer">`) {
				t.Errorf("%s: no referrer meta tag", name)
			}
			if strings.Contains(string(res.body), "<script") {
				t.Errorf("%s: a link page runs script", name)
			}
		}
		// Every page styles itself only with the stylesheet of this origin.
		page := noStore["verify page"]
		if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src 'self';") || strings.Contains(csp, "script-src") {
			t.Errorf("verify page CSP %q; want style-src 'self' and no script", csp)
		}
	})
}
