package server_test

// Suite 1: every row of the endpoint table of API.md and every error code a
// client can reach through it, on every store.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// browserAccept is what a browser sends when it opens a link.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

func TestSignUp(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		res, err := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: "  Alice@EXAMPLE.com ", Password: goodPasswd})
		if err != nil || res.JSON201 == nil {
			t.Fatalf("sign up: %v %d %s", err, res.StatusCode(), res.Body)
		}
		u := *res.JSON201
		if u.Id <= 0 || u.Email != "Alice@example.com" || !u.DateJoined.Equal(t0) {
			t.Errorf("user = %+v; want a new id, Alice@example.com, joined %v", u, t0)
		}
		emails := e.emails(u.Id)
		if len(emails) != 1 || !emails[0].Primary || emails[0].Verified || emails[0].Email != "Alice@example.com" {
			t.Errorf("addresses after sign-up = %+v; want one primary, unverified", emails)
		}
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindVerify || mails[0].To != "Alice@example.com" || len(mails[0].Links) != 1 {
			t.Fatalf("mails after sign-up = %+v; want one verification mail", mails)
		}
		wantVerifyLink(t, mails[0].Links[0], u.Id)

		// Another user's verified secondary address blocks sign-up; an
		// unverified one blocks nobody.
		carol := e.newUser("carol@example.com")
		e.addEmail(carol, "shared@example.com")
		e.confirmVerify("shared@example.com")
		e.addEmail(carol, "loose@example.com")
		e.signUp("zoë@example.com")
		e.signUp("bob@bücher.example")

		refusals := []struct {
			name, email, password string
			status                int
			code                  gen.ErrorCode
		}{
			{"same address", "Alice@example.com", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"lower case", "alice@example.com", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"upper case", "ALICE@EXAMPLE.COM", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"surrounding space", "\talice@example.com  ", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"NFD of an NFC address", "zoe\u0308@example.com", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"upper-case Unicode", "ZOË@Example.COM", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"A-label of a U-label domain", "bob@xn--bcher-kva.example", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"upper-case U-label", "BOB@BÜCHER.example", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"verified secondary of another user", "Shared@Example.com", goodPasswd, 400, gen.ErrorCodeEmailTaken},
			{"not an address", "alice", goodPasswd, 400, gen.ErrorCodeInvalidEmail},
			{"empty address", "", goodPasswd, 400, gen.ErrorCodeInvalidEmail},
			{"no dot in the domain", "dave@localdomain", goodPasswd, 400, gen.ErrorCodeInvalidEmail},
			{"short password", "dave@example.com", "short", 400, gen.ErrorCodeValidationError},
			{"empty password", "dave@example.com", "", 400, gen.ErrorCodeValidationError},
		}
		for _, tc := range refusals {
			before := e.state(0)
			res, err := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: tc.email, Password: tc.password})
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, tc.name, res, tc.status, tc.code)
			e.unchanged(t, tc.name, 0, before)
		}

		missing := []struct{ name, body string }{
			{"missing password", `{"email":"dave@example.com"}`},
			{"missing email", `{"password":"correct horse battery staple"}`},
			{"empty object", `{}`},
		}
		for _, tc := range missing {
			before := e.state(0)
			res, err := e.anon.SignUpWithBodyWithResponse(ctx, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, tc.name, res, 400, gen.ErrorCodeValidationError)
			if p.Errors == nil || len(*p.Errors) == 0 || (*p.Errors)[0].Code != "required" {
				t.Errorf("%s: field errors %+v; want a required field", tc.name, p.Errors)
			}
			e.unchanged(t, tc.name, 0, before)
		}

		// No squatting: another user's unverified secondary address is free.
		e.clock.Advance(3*time.Minute + time.Second) // its verification mail went out just now
		if got := e.signUp("loose@example.com"); got.Email != "loose@example.com" {
			t.Errorf("sign up with another user's unverified address: %+v", got)
		}
	})
}

// wantVerifyLink checks a mailed verification link: the public URL, then
// /users/email-verify/{signed_email}/{uidb64} with no trailing slash.
func wantVerifyLink(t *testing.T, link string, userID int64) {
	t.Helper()
	prefix := publicURL + "/users/email-verify/"
	suffix := "/" + signer.EncodeUserID(userID)
	tok := strings.TrimSuffix(strings.TrimPrefix(link, prefix), suffix)
	if !strings.HasPrefix(link, prefix) || !strings.HasSuffix(link, suffix) || tok == "" || strings.Contains(tok, "/") {
		t.Errorf("verify link %q; want %s{signed}%s", link, prefix, suffix)
	}
}

// wantChangeLink checks a mailed set-primary link: the public URL, then
// /users/email-set-primary/{signed_email}/{uidb64}/ with a trailing slash.
func wantChangeLink(t *testing.T, link string, userID int64) {
	t.Helper()
	prefix := publicURL + "/users/email-set-primary/"
	suffix := "/" + signer.EncodeUserID(userID) + "/"
	tok := strings.TrimSuffix(strings.TrimPrefix(link, prefix), suffix)
	if !strings.HasPrefix(link, prefix) || !strings.HasSuffix(link, suffix) || tok == "" || strings.Contains(tok, "/") {
		t.Errorf("set-primary link %q; want %s{signed}%s", link, prefix, suffix)
	}
}

func TestLogin(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for _, secure := range []bool{false, true} {
			e := newEnv(t, db, withCookieSecure(secure))
			addr := "alice" + strconv.FormatBool(secure) + "@example.com"
			alice := e.signUp(addr)

			res, err := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: strings.ToUpper(addr), Password: goodPasswd})
			if err != nil || res.JSON200 == nil {
				t.Fatalf("login: %v %d %s", err, res.StatusCode(), res.Body)
			}
			s := res.JSON200
			if s.UserId != alice.Id || s.CsrfToken == "" || !s.ExpiresAt.Equal(t0.Add(session.DefaultPolicy.Idle)) {
				t.Errorf("session = %+v; want user %d, a CSRF token, expiry after the idle limit", s, alice.Id)
			}
			if cc := res.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("login Cache-Control %q; want no-store", cc)
			}
			cookies := map[string]*http.Cookie{}
			for _, c := range res.HTTPResponse.Cookies() {
				cookies[c.Name] = c
			}
			sid, osid, csrf := cookies[session.Cookie], cookies[session.OldCookie], cookies[session.CSRFCookie]
			if sid == nil || osid == nil || csrf == nil {
				t.Fatalf("login cookies %v; want sessionid, osessionid, csrftoken", res.HTTPResponse.Header.Values("Set-Cookie"))
			}
			if sid.Value == "" || sid.Value != osid.Value {
				t.Errorf("sessionid %q, osessionid %q; want one non-empty value", sid.Value, osid.Value)
			}
			if csrf.Value != s.CsrfToken {
				t.Errorf("csrftoken cookie %q, body %q; want the same", csrf.Value, s.CsrfToken)
			}
			for _, c := range []*http.Cookie{sid, osid, csrf} {
				wantHTTPOnly := c.Name != session.CSRFCookie
				if c.HttpOnly != wantHTTPOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != secure || c.Path != "/" || c.MaxAge <= 0 {
					t.Errorf("cookie %s: HttpOnly=%v SameSite=%v Secure=%v Path=%q MaxAge=%d; want HttpOnly=%v Lax Secure=%v / positive",
						c.Name, c.HttpOnly, c.SameSite, c.Secure, c.Path, c.MaxAge, wantHTTPOnly, secure)
				}
			}

			// A fresh session id and CSRF token on every login; both work.
			again, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: addr, Password: goodPasswd})
			var sid2 string
			for _, c := range again.HTTPResponse.Cookies() {
				if c.Name == session.Cookie {
					sid2 = c.Value
				}
			}
			if again.JSON200 == nil || sid2 == "" || sid2 == sid.Value || again.JSON200.CsrfToken == s.CsrfToken {
				t.Errorf("second login: %d, id %q (first %q); want a fresh id and token", again.StatusCode(), sid2, sid.Value)
			}
			for _, id := range []string{sid.Value, sid2} {
				got := e.do("GET", "/auth/session/", nil, "Cookie", "sessionid="+id)
				wantStatus(t, "session of a login", got, 200)
			}
		}

		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		e.addEmail(alice, "alice@work.example")
		e.confirmVerify("alice@work.example")
		e.addEmail(alice, "alice@home.example")

		// Same answer for an unknown address and a wrong password.
		var bodies [][]byte
		for _, c := range []gen.LoginJSONRequestBody{
			{Email: "nobody@example.com", Password: goodPasswd},
			{Email: "alice@example.com", Password: "wrong password"},
			{Email: "alice@home.example", Password: goodPasswd}, // unverified secondary
			{Email: "not an address", Password: goodPasswd},
		} {
			before := e.state(0)
			res, err := e.anon.LoginWithResponse(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, "login "+c.Email, res, 400, gen.ErrorCodeInvalidCredentials)
			if len(res.HTTPResponse.Cookies()) != 0 {
				t.Errorf("login %s: refused login set cookies %v", c.Email, res.HTTPResponse.Cookies())
			}
			e.unchanged(t, "login "+c.Email, 0, before)
			bodies = append(bodies, res.Body)
		}
		for _, b := range bodies[1:] {
			if !bytes.Equal(b, bodies[0]) {
				t.Errorf("refused logins answer differently:\n%s\n%s", bodies[0], b)
			}
		}

		// A verified secondary address logs in to its user.
		res, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "Alice@Work.Example", Password: goodPasswd})
		if res.JSON200 == nil || res.JSON200.UserId != alice.id {
			t.Errorf("login by a verified secondary: %d %s", res.StatusCode(), res.Body)
		}
	})
}

func TestLogout(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		res, err := alice.LogoutWithResponse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "logout", res, 204)
		expired := map[string]bool{}
		for _, c := range res.HTTPResponse.Cookies() {
			if c.MaxAge < 0 && c.Value == "" {
				expired[c.Name] = true
			}
		}
		for _, name := range []string{session.Cookie, session.OldCookie, session.CSRFCookie} {
			if !expired[name] {
				t.Errorf("logout did not expire cookie %s: %v", name, res.HTTPResponse.Header.Values("Set-Cookie"))
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM sessions`); n != 0 {
			t.Errorf("%d sessions after logout; want 0", n)
		}
		// The browser dropped the cookies; a replayed cookie names nothing.
		s, _ := alice.GetSessionWithResponse(ctx)
		wantProblem(t, "session after logout", s, 401, gen.ErrorCodeNotAuthenticated)
		wantProblem(t, "replayed cookie after logout", e.do("GET", "/auth/session/", nil, alice.authHeaders()...), 401, gen.ErrorCodeSessionInvalid)
		wantProblem(t, "logout again", e.do("POST", "/auth/logout/", nil, alice.authHeaders()...), 401, gen.ErrorCodeSessionInvalid)
	})
}

func TestGetSession(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		res, err := alice.GetSessionWithResponse(ctx)
		if err != nil || res.JSON200 == nil {
			t.Fatalf("session: %v %d %s", err, res.StatusCode(), res.Body)
		}
		s := res.JSON200
		if s.UserId != alice.id || s.CsrfToken != alice.csrf || s.CsrfToken != alice.cookie(e.srv.URL, session.CSRFCookie) ||
			!s.ExpiresAt.Equal(t0.Add(session.DefaultPolicy.Idle)) {
			t.Errorf("session = %+v; want user %d, the login's CSRF token, expiry %v", s, alice.id, t0.Add(session.DefaultPolicy.Idle))
		}
		if cc := res.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("session Cache-Control %q; want no-store", cc)
		}
		// Use moves the idle limit on.
		e.clock.Advance(time.Hour)
		res, _ = alice.GetSessionWithResponse(ctx)
		if res.JSON200 == nil || !res.JSON200.ExpiresAt.Equal(t0.Add(time.Hour+session.DefaultPolicy.Idle)) {
			t.Errorf("session after an hour: %d %s; want expiry %v", res.StatusCode(), res.Body, t0.Add(time.Hour+session.DefaultPolicy.Idle))
		}
		// Either cookie name alone is enough.
		for _, name := range []string{session.Cookie, session.OldCookie} {
			wantStatus(t, "session by "+name, e.do("GET", "/auth/session/", nil, "Cookie", name+"="+alice.sid), 200)
		}
	})
}

func TestListEmails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		work := e.addEmail(alice, "alice@work.example")
		home := e.addEmail(alice, "alice@home.example")
		// Make the newest address primary: it must come first all the same.
		e.requestChange(alice, "alice@new.example")
		l := e.changeLink("alice@new.example")
		sp, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
		if sp.JSON200 == nil {
			t.Fatalf("set primary: %d %s", sp.StatusCode(), sp.Body)
		}
		res, err := alice.ListEmailsWithResponse(ctx, alice.id)
		if err != nil || res.JSON200 == nil {
			t.Fatalf("list: %v %d %s", err, res.StatusCode(), res.Body)
		}
		var got []string
		for _, m := range *res.JSON200 {
			got = append(got, m.Email)
		}
		want := []string{"alice@new.example", "alice@example.com", work.Email, home.Email}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("list = %v; want %v (primary first, then by age)", got, want)
		}
		list := *res.JSON200
		if !list[0].Primary || !list[0].Verified || list[1].Primary || !list[1].Verified || list[2].Verified || list[3].Verified {
			t.Errorf("list flags = %+v", list)
		}
	})
}

func TestAddEmail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		e.newUser("bob@example.com")
		carol := e.verifiedUser("carol@example.com")
		e.addEmail(carol, "carol@shared.example")
		e.confirmVerify("carol@shared.example")
		e.addEmail(carol, "carol@loose.example")
		e.deliver()

		res, err := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: " Alice@Work.EXAMPLE "})
		if err != nil || res.JSON201 == nil {
			t.Fatalf("add: %v %d %s", err, res.StatusCode(), res.Body)
		}
		added := *res.JSON201
		if added.Id <= 0 || added.Email != "Alice@work.example" || added.Verified || added.Primary {
			t.Errorf("added = %+v; want Alice@work.example, unverified, not primary", added)
		}
		mails := e.deliver()
		var verify, notice *mail.Message
		for i := range mails {
			switch {
			case mails[i].Kind == mail.KindVerify && mails[i].To == "Alice@work.example":
				verify = &mails[i]
			case mails[i].Kind == mail.KindEmailAdded && mails[i].To == "alice@example.com":
				notice = &mails[i]
			}
		}
		if len(mails) != 2 || verify == nil || notice == nil || len(verify.Links) != 1 || len(notice.Links) != 0 {
			t.Fatalf("mails after add = %+v; want a verification mail to the address and a notice to the primary", mails)
		}
		wantVerifyLink(t, verify.Links[0], alice.id)
		if !strings.Contains(notice.Text, "Alice@work.example") {
			t.Errorf("notice does not name the added address:\n%s", notice.Text)
		}

		refusals := []struct {
			name, email string
			code        gen.ErrorCode
		}{
			{"own address, other case", "alice@WORK.example", gen.ErrorCodeEmailTaken},
			{"own primary", "ALICE@example.com", gen.ErrorCodeEmailTaken},
			{"another user's unverified primary", "Bob@Example.com", gen.ErrorCodeEmailTaken},
			{"another user's verified secondary", "carol@SHARED.example", gen.ErrorCodeEmailTaken},
			{"not an address", "not an address", gen.ErrorCodeInvalidEmail},
		}
		for _, tc := range refusals {
			before := e.state(alice.id)
			res, err := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: tc.email})
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, tc.name, res, 400, tc.code)
			e.unchanged(t, tc.name, alice.id, before)
		}

		// Another user's unverified secondary address blocks nobody (once
		// its resend interval has passed).
		e.clock.Advance(3*time.Minute + time.Second)
		if got := e.addEmail(alice, "carol@loose.example"); got.Verified || got.Primary {
			t.Errorf("added another user's unverified address: %+v", got)
		}
	})
}

func TestGetEmail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		bob := e.newUser("bob@example.com")
		work := e.addEmail(alice, "alice@work.example")
		bobWork := e.addEmail(bob, "bob@work.example")

		res, err := alice.GetEmailWithResponse(ctx, alice.id, work.Id)
		if err != nil || res.JSON200 == nil || !reflect.DeepEqual(*res.JSON200, work) {
			t.Fatalf("get: %v %d %s; want %+v", err, res.StatusCode(), res.Body, work)
		}
		for _, id := range []int64{bobWork.Id, e.emails(bob.id)[0].ID, 1 << 40} {
			res, err := alice.GetEmailWithResponse(ctx, alice.id, id)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, "get address "+strconv.FormatInt(id, 10)+" not alice's", res, 404, gen.ErrorCodeNotFound)
		}
		p, _ := alice.GetPrimaryEmailWithResponse(ctx, alice.id)
		if p.JSON200 == nil || !p.JSON200.Primary || p.JSON200.Email != "alice@example.com" || p.JSON200.Verified {
			t.Errorf("primary: %d %s", p.StatusCode(), p.Body)
		}
	})
}

func TestDeleteEmail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		bob := e.newUser("bob@example.com")
		work := e.addEmail(alice, "alice@work.example")
		bobWork := e.addEmail(bob, "bob@work.example")
		e.deliver()

		res, err := alice.DeleteEmailWithResponse(ctx, alice.id, work.Id)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "delete", res, 204)
		if got := e.emails(alice.id); len(got) != 1 || got[0].Email != "alice@example.com" {
			t.Errorf("addresses after delete = %+v", got)
		}
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindEmailRemoved || mails[0].To != "alice@example.com" ||
			!strings.Contains(mails[0].Text, "alice@work.example") {
			t.Errorf("mails after delete = %+v; want a removal notice to the primary", mails)
		}

		primary := e.emails(alice.id)[0]
		refusals := []struct {
			name    string
			emailID int64
			status  int
			code    gen.ErrorCode
		}{
			{"the primary", primary.ID, 400, gen.ErrorCodePrimaryEmailUndeletable},
			{"deleted already", work.Id, 404, gen.ErrorCodeNotFound},
			{"another user's address", bobWork.Id, 404, gen.ErrorCodeNotFound},
		}
		for _, tc := range refusals {
			before, bobBefore := e.state(alice.id), e.state(bob.id)
			res, err := alice.DeleteEmailWithResponse(ctx, alice.id, tc.emailID)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, "delete "+tc.name, res, tc.status, tc.code)
			e.unchanged(t, "delete "+tc.name, alice.id, before)
			e.unchanged(t, "delete "+tc.name, bob.id, bobBefore)
		}
	})
}

func TestSendVerification(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		primary := e.emails(alice.id)[0]
		e.deliver()

		// The sign-up mail went out just now: within the resend interval.
		before := e.state(alice.id)
		res, err := alice.SendVerificationWithResponse(ctx, alice.id, primary.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, "resend at once", res, 429, gen.ErrorCodeRateLimited)
		wantRetryAfter(t, "resend at once", res.HTTPResponse, 1, 180)
		e.unchanged(t, "resend at once", alice.id, before)

		e.clock.Advance(2 * time.Minute)
		res, _ = alice.SendVerificationWithResponse(ctx, alice.id, primary.ID)
		wantProblem(t, "resend after 2m", res, 429, gen.ErrorCodeRateLimited)
		wantRetryAfter(t, "resend after 2m", res.HTTPResponse, 1, 60)

		e.clock.Advance(time.Minute + time.Second)
		res, _ = alice.SendVerificationWithResponse(ctx, alice.id, primary.ID)
		wantStatus(t, "resend after 3m", res, 202)
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindVerify || mails[0].To != "alice@example.com" {
			t.Fatalf("mails after resend = %+v; want one verification mail", mails)
		}
		wantVerifyLink(t, mails[0].Links[0], alice.id)
		e.confirmVerify("alice@example.com")

		before = e.state(alice.id)
		res, _ = alice.SendVerificationWithResponse(ctx, alice.id, primary.ID)
		wantProblem(t, "resend for a verified address", res, 400, gen.ErrorCodeAlreadyVerified)
		e.unchanged(t, "resend for a verified address", alice.id, before)

		res, _ = alice.SendVerificationWithResponse(ctx, alice.id, primary.ID+1000)
		wantProblem(t, "resend for no address", res, 404, gen.ErrorCodeNotFound)
	})
}

// wantRetryAfter checks a 429's Retry-After: whole seconds in [lo, hi].
func wantRetryAfter(t *testing.T, what string, res *http.Response, lo, hi int) {
	t.Helper()
	n, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || n < lo || n > hi {
		t.Errorf("%s: Retry-After %q; want %d..%d seconds", what, res.Header.Get("Retry-After"), lo, hi)
	}
}

func TestEmailChange(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		e.newUser("bob@example.com")
		carol := e.newUser("carol@example.com")
		e.addEmail(carol, "carol@shared.example")
		e.confirmVerify("carol@shared.example")
		e.deliver()

		before := e.state(alice.id)
		res, err := alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: "Alice@New.Example", Password: goodPasswd})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "change", res, 204)
		after := e.state(alice.id)
		if !reflect.DeepEqual(after.emails, before.emails) || after.seq != before.seq+1 {
			t.Errorf("change request: addresses %+v, seq %d → %d; want no new address until confirmed, seq moved on", after.emails, before.seq, after.seq)
		}
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindChangeEmail || mails[0].To != "Alice@new.example" || len(mails[0].Links) != 1 {
			t.Fatalf("mails after change = %+v; want one confirmation mail to the new address", mails)
		}
		wantChangeLink(t, mails[0].Links[0], alice.id)

		refusals := []struct {
			name, email, password string
			code                  gen.ErrorCode
		}{
			{"the current primary", "alice@example.com", goodPasswd, gen.ErrorCodeEmailSameAsCurrent},
			{"the current primary, other case", "ALICE@Example.COM", goodPasswd, gen.ErrorCodeEmailSameAsCurrent},
			{"another user's primary", "bob@example.com", goodPasswd, gen.ErrorCodeEmailTaken},
			{"another user's verified address", "Carol@shared.example", goodPasswd, gen.ErrorCodeEmailTaken},
			{"wrong password", "alice@other.example", "not my password", gen.ErrorCodeInvalidPassword},
			{"not an address", "alice at example", goodPasswd, gen.ErrorCodeInvalidEmail},
		}
		for _, tc := range refusals {
			before := e.state(alice.id)
			res, err := alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: tc.email, Password: tc.password})
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, tc.name, res, 400, tc.code)
			e.unchanged(t, tc.name, alice.id, before)
		}
	})
}

func TestTooManyEmails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withMaxEmails(3))
		alice := e.verifiedUser("alice@example.com")
		e.addEmail(alice, "alice@one.example")
		// A change request made with room to spare, confirmed when full.
		e.requestChange(alice, "alice@later.example")
		pending := e.changeLink("alice@later.example")
		e.addEmail(alice, "alice@two.example")

		for _, tc := range []struct {
			name string
			call func() response
		}{
			{"add at the limit", func() response {
				r, _ := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: "alice@three.example"})
				return r
			}},
			{"change to a new address at the limit", func() response {
				r, _ := alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: "alice@three.example", Password: goodPasswd})
				return r
			}},
			{"confirm a change to a new address at the limit", func() response {
				r, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, pending.token, pending.userKey)
				return r
			}},
		} {
			before := e.state(alice.id)
			wantProblem(t, tc.name, tc.call(), 400, gen.ErrorCodeTooManyEmails)
			e.unchanged(t, tc.name, alice.id, before)
		}

		// A change to an address the user holds needs no room.
		e.clock.Advance(3*time.Minute + time.Second) // its verification mail went out just now
		e.requestChange(alice, "ALICE@two.example")
		l := e.changeLink("ALICE@two.example")
		res, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
		if res.JSON200 == nil || res.JSON200.Email != "alice@two.example" || !res.JSON200.Primary || !res.JSON200.Verified {
			t.Fatalf("change to a held address: %d %s", res.StatusCode(), res.Body)
		}
		if got := e.emails(alice.id); len(got) != 3 {
			t.Errorf("addresses = %+v; want 3", got)
		}
	})
}

func TestVerifyLink(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		work := e.addEmail(alice, "alice@work.example")
		l := e.verifyLink("alice@work.example")
		e.deliver()

		// Opened by a browser, a scanner, or anything not asking for JSON:
		// a page whose button POSTs, and no change.
		for _, accept := range []string{browserAccept, "", "*/*", "text/html", "application/json;q=0.5, text/html"} {
			before := e.state(alice.id)
			res := e.do("GET", linkPath(l), nil, "Accept", accept)
			wantHTMLPage(t, "GET with Accept "+strconv.Quote(accept), res, 200, "alice@work.example", true)
			e.unchanged(t, "GET with Accept "+strconv.Quote(accept), alice.id, before)
		}

		res, err := e.anon.ConfirmEmailVerificationWithResponse(ctx, l.token, l.userKey)
		if err != nil {
			t.Fatal(err)
		}
		want := gen.Email{Id: work.Id, Email: "alice@work.example", Verified: true, Primary: false}
		if res.JSON200 == nil || *res.JSON200 != want {
			t.Fatalf("verify: %d %s; want %+v", res.StatusCode(), res.Body, want)
		}
		if cc := res.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("verify Cache-Control %q; want no-store", cc)
		}
		if got := e.emails(alice.id)[1]; !got.Verified {
			t.Errorf("stored address %+v; want verified", got)
		}
		// Again, by POST and by a JSON GET: idempotent.
		again, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, l.token, l.userKey)
		if again.JSON200 == nil || *again.JSON200 != want {
			t.Errorf("verify again: %d %s", again.StatusCode(), again.Body)
		}
		show, _ := e.anon.ShowEmailVerificationWithResponse(ctx, l.token, l.userKey, withHeaders("Accept", "application/json"))
		if show.JSON200 == nil || *show.JSON200 != want {
			t.Errorf("JSON GET of a used verify link: %d %s", show.StatusCode(), show.Body)
		}

		// A JSON GET acts, as the original API did.
		home := e.addEmail(alice, "alice@home.example")
		lh := e.verifyLink("alice@home.example")
		show, _ = e.anon.ShowEmailVerificationWithResponse(ctx, lh.token, lh.userKey, withHeaders("Accept", "application/json"))
		if show.JSON200 == nil || show.JSON200.Id != home.Id || !show.JSON200.Verified {
			t.Errorf("JSON GET: %d %s", show.StatusCode(), show.Body)
		}

		// The page's form posts back and gets a page.
		e.addEmail(alice, "alice@form.example")
		lf := e.verifyLink("alice@form.example")
		form := e.do("POST", linkPath(lf), []byte{}, "Content-Type", "application/x-www-form-urlencoded", "Accept", browserAccept)
		wantHTMLPage(t, "form POST", form, 200, "alice@form.example", false)
		if got := e.emails(alice.id)[3]; got.Email != "alice@form.example" || !got.Verified {
			t.Errorf("after the form POST: %+v; want verified", got)
		}

		// The sign-up link verifies the primary address.
		lp := e.verifyLink("alice@example.com")
		res, _ = e.anon.ConfirmEmailVerificationWithResponse(ctx, lp.token, lp.userKey)
		if res.JSON200 == nil || !res.JSON200.Primary || !res.JSON200.Verified {
			t.Errorf("verify the primary: %d %s", res.StatusCode(), res.Body)
		}
	})
}

// linkPath is the path of a mailed link.
func linkPath(l mailedLink) string { return strings.TrimPrefix(l.url, publicURL) }

// wantHTMLPage checks a link page: status, HTML, the address shown, a form
// that POSTs back (or none), and the headers that keep its token private.
func wantHTMLPage(t *testing.T, what string, res rawResponse, status int, shows string, form bool) {
	t.Helper()
	body := string(res.body)
	if res.status != status || !strings.HasPrefix(res.ContentType(), "text/html") || !strings.HasPrefix(body, "<!doctype html>") {
		t.Errorf("%s: %d %s %.200s; want %d HTML", what, res.status, res.ContentType(), body, status)
		return
	}
	if shows != "" && !strings.Contains(body, shows) {
		t.Errorf("%s: page does not show %q", what, shows)
	}
	if hasForm := strings.Contains(body, `<form method="post"`); hasForm != form {
		t.Errorf("%s: form %v; want %v", what, hasForm, form)
	}
	wantPageHeaders(t, what, res.header)
}

// wantPageHeaders checks the security headers of a link page.
func wantPageHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	if h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" ||
		csp == "" || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("%s: headers Referrer-Policy %q, Cache-Control %q, CSP %q; want no-referrer, no-store, a strict CSP",
			what, h.Get("Referrer-Policy"), h.Get("Cache-Control"), csp)
	}
}

func TestSetPrimaryLink(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		old := e.emails(alice.id)[0]
		e.requestChange(alice, "alice@new.example")
		l := e.changeLink("alice@new.example")

		for _, accept := range []string{browserAccept, "", "*/*"} {
			before := e.state(alice.id)
			res := e.do("GET", linkPath(l), nil, "Accept", accept)
			wantHTMLPage(t, "GET with Accept "+strconv.Quote(accept), res, 200, "alice@new.example", true)
			e.unchanged(t, "GET with Accept "+strconv.Quote(accept), alice.id, before)
		}

		res, err := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
		if err != nil || res.JSON200 == nil {
			t.Fatalf("set primary: %v %d %s", err, res.StatusCode(), res.Body)
		}
		if got := res.JSON200; got.Email != "alice@new.example" || !got.Primary || !got.Verified {
			t.Errorf("set primary = %+v; want alice@new.example, primary, verified", got)
		}
		if cc := res.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("set primary Cache-Control %q; want no-store", cc)
		}
		emails := e.emails(alice.id)
		if len(emails) != 2 || !emails[0].Primary || emails[0].Email != "alice@new.example" || !emails[0].Verified {
			t.Fatalf("addresses = %+v; want the new one primary and verified first", emails)
		}
		if o := emails[1]; o.ID != old.ID || o.Primary || !o.Verified {
			t.Errorf("old primary = %+v; want a verified secondary", o)
		}
		if n := e.count(`SELECT COUNT(*) FROM emails WHERE user_id = ? AND is_primary`, alice.id); n != 1 {
			t.Errorf("%d primary addresses; want 1", n)
		}
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindPrimaryChanged || mails[0].To != "alice@example.com" ||
			!strings.Contains(mails[0].Text, "alice@new.example") {
			t.Errorf("mails after set primary = %+v; want a notice to the old address", mails)
		}
		p, _ := alice.GetPrimaryEmailWithResponse(ctx, alice.id)
		if p.JSON200 == nil || p.JSON200.Email != "alice@new.example" {
			t.Errorf("primary after the change: %d %s", p.StatusCode(), p.Body)
		}

		// Single use, whichever way it is opened again.
		before := e.state(alice.id)
		again, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
		wantProblem(t, "set primary again", again, 400, gen.ErrorCodeLinkUsed)
		show, _ := e.anon.ShowPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey, withHeaders("Accept", "application/json"))
		wantProblem(t, "JSON GET of a used link", show, 400, gen.ErrorCodeLinkUsed)
		wantHTMLPage(t, "browser GET of a used link", e.do("GET", linkPath(l), nil, "Accept", browserAccept), 400, "", false)
		e.unchanged(t, "a used link", alice.id, before)

		// A newer request retires the older link.
		e.requestChange(alice, "alice@third.example")
		older := e.changeLink("alice@third.example")
		e.requestChange(alice, "alice@fourth.example")
		newer := e.changeLink("alice@fourth.example")
		before = e.state(alice.id)
		res, _ = e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, older.token, older.userKey)
		wantProblem(t, "older link after a newer request", res, 400, gen.ErrorCodeLinkUsed)
		e.unchanged(t, "older link after a newer request", alice.id, before)
		res, _ = e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, newer.token, newer.userKey)
		if res.JSON200 == nil || res.JSON200.Email != "alice@fourth.example" {
			t.Errorf("newer link: %d %s", res.StatusCode(), res.Body)
		}

		// A JSON GET acts; an existing unverified secondary becomes the
		// verified primary without a second row.
		home := e.addEmail(alice, "alice@home.example")
		e.clock.Advance(3*time.Minute + time.Second) // its verification mail went out just now
		e.requestChange(alice, "alice@HOME.example")
		lh := e.changeLink("alice@home.example")
		show, _ = e.anon.ShowPrimaryEmailChangeWithResponse(ctx, lh.token, lh.userKey, withHeaders("Accept", "application/json"))
		if show.JSON200 == nil || show.JSON200.Id != home.Id || !show.JSON200.Primary || !show.JSON200.Verified {
			t.Errorf("JSON GET of a set-primary link: %d %s; want address %d primary and verified", show.StatusCode(), show.Body, home.Id)
		}
		if n := e.count(`SELECT COUNT(*) FROM emails WHERE user_id = ?`, alice.id); n != 4 {
			t.Errorf("%d addresses; want 4 (no duplicate row)", n)
		}

		// The page's form posts back and gets a page.
		e.requestChange(alice, "alice@form.example")
		lf := e.changeLink("alice@form.example")
		form := e.do("POST", linkPath(lf), []byte{}, "Content-Type", "application/x-www-form-urlencoded")
		wantHTMLPage(t, "form POST", form, 200, "alice@form.example", false)
		if p := e.emails(alice.id)[0]; p.Email != "alice@form.example" || !p.Primary {
			t.Errorf("primary after the form POST = %+v", p)
		}
	})
}

// The contract says the old primary "stays as a verified secondary"; that
// holds for a primary that was verified. An old primary that was never
// verified keeps its state: a set-primary link proves the new address, not
// the old one, so it stays an unverified secondary (and, being unverified,
// no longer logs in and blocks nobody).
func TestSetPrimaryKeepsUnverifiedOldPrimary(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		l := e.changeLink("alice@new.example")
		res, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
		if res.JSON200 == nil {
			t.Fatalf("set primary: %d %s", res.StatusCode(), res.Body)
		}
		emails := e.emails(alice.id)
		if len(emails) != 2 || emails[1].Email != "alice@example.com" || emails[1].Primary || emails[1].Verified {
			t.Fatalf("addresses = %+v; want the old primary as an unverified secondary", emails)
		}
		login, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "alice@example.com", Password: goodPasswd})
		wantProblem(t, "login by the unverified old primary", login, 400, gen.ErrorCodeInvalidCredentials)
		// Its sign-up link still verifies it.
		v := e.confirmVerify("alice@example.com")
		if !v.Verified || v.Primary {
			t.Errorf("verify the old primary: %+v", v)
		}
	})
}

func TestLinkErrorPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		v := e.verifyLink("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		c := e.changeLink("alice@new.example")
		bad := func(l mailedLink) string {
			return strings.Replace(linkPath(l), l.token, l.token[:len(l.token)-1], 1)
		}
		before := e.state(alice.id)
		for _, path := range []string{bad(v), bad(c)} {
			wantHTMLPage(t, "browser GET "+path, e.do("GET", path, nil, "Accept", browserAccept), 400, "", false)
			wantHTMLPage(t, "form POST "+path, e.do("POST", path, []byte("x=1"), "Content-Type", "application/x-www-form-urlencoded"), 400, "", false)
			wantProblem(t, "JSON GET "+path, e.do("GET", path, nil, "Accept", "application/json"), 400, gen.ErrorCodeLinkInvalid)
			wantProblem(t, "POST "+path, e.do("POST", path, nil), 400, gen.ErrorCodeLinkInvalid)
		}
		e.unchanged(t, "bad links", alice.id, before)
	})
}

func TestOperations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		y, err := e.anon.GetSpecYAMLWithResponse(ctx)
		if err != nil || y.StatusCode() != 200 || y.HTTPResponse.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(y.Body, useremail.SpecYAML) {
			t.Errorf("/openapi.yaml: %v; want openapi.yaml byte for byte", err)
		} else if y.YAML200 == nil || (*y.YAML200)["openapi"] != "3.0.3" {
			t.Errorf("/openapi.yaml: the client decoded %v", y.YAML200)
		}
		j, err := e.anon.GetSpecJSONWithResponse(ctx)
		want, _ := gen.GetSpecJSON()
		var got, wantDoc any
		if err != nil || j.StatusCode() != 200 || json.Unmarshal(j.Body, &got) != nil || json.Unmarshal(want, &wantDoc) != nil ||
			!reflect.DeepEqual(got, wantDoc) {
			t.Errorf("/openapi.json: %v %d; want gen.GetSpecJSON()", err, j.StatusCode())
		}
		h, _ := e.anon.GetHealthWithResponse(ctx)
		if h.JSON200 == nil || h.JSON200.Status != gen.Ok {
			t.Errorf("/healthz: %d %s", h.StatusCode(), h.Body)
		}
		r, _ := e.anon.GetReadinessWithResponse(ctx)
		if r.JSON200 == nil || r.JSON200.Status != gen.Ok {
			t.Errorf("/readyz: %d %s", r.StatusCode(), r.Body)
		}
	})
}

func TestRouting(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		id := strconv.FormatInt(alice.id, 10)
		notFound := []struct{ method, path string }{
			{"GET", "/nope"},
			{"GET", "/users/" + id + "/emails"},
			{"POST", "/users"},
			{"GET", "/auth/session"},
			{"GET", "/users/email-verify/a/b/"},
			{"POST", "/users/email-verify/a/b/"},
			{"POST", "/users/email-set-primary/a/b"},
			{"GET", "/users/email-set-primary/a/b"},
			{"GET", "/users/email-verify/a"},
			{"GET", "/users/email-verify/a/b/c"},
			{"GET", "/users/" + id + "/emails/1/extra/"},
		}
		for _, tc := range notFound {
			res := e.do(tc.method, tc.path, nil, alice.authHeaders()...)
			wantProblem(t, tc.method+" "+tc.path, res, 404, gen.ErrorCodeNotFound)
		}
		wrongMethod := []struct{ method, path, allow string }{
			{"PUT", "/users/", "POST"},
			{"GET", "/users/", "POST"},
			{"DELETE", "/auth/login/", "POST"},
			{"GET", "/auth/logout/", "POST"},
			{"PATCH", "/users/" + id + "/emails/", "GET, POST"},
			{"POST", "/users/" + id + "/emails/1/", "GET, DELETE"},
			{"DELETE", "/users/email-verify/a/b", "GET, POST"},
			{"PUT", "/users/email-set-primary/a/b/", "GET, POST"},
			{"POST", "/healthz", "GET"},
		}
		for _, tc := range wrongMethod {
			res := e.do(tc.method, tc.path, nil, alice.authHeaders()...)
			wantProblem(t, tc.method+" "+tc.path, res, 405, gen.ErrorCodeMethodNotAllowed)
			if got := res.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q; want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})
}
