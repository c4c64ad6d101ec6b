package server_test

// The endpoints of API.md's "Accounts: recovery and lifecycle", through the
// generated client on every store.

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

const newPasswd = "purple monkey dishwasher lamp"

var jsonAccept = withHeaders("Accept", "application/json")

// loginWith logs in as email with pw and reports the status.
func (e *env) loginWith(email, pw string) int {
	e.t.Helper()
	res, err := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: email, Password: pw})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode()
}

// alive reports whether u's session still works.
func (u *user) alive(t *testing.T) bool {
	t.Helper()
	res, err := u.GetSessionWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switch res.StatusCode() {
	case 200:
		return true
	case 401:
		return false
	}
	t.Fatalf("session of %s: %d %s", u.email, res.StatusCode(), res.Body)
	return false
}

// mailsOf returns the delivered mails of kind to addr.
func mailsOf(mails []mail.Message, kind, addr string) []mail.Message {
	var out []mail.Message
	for _, m := range mails {
		if m.Kind == kind && m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// summary lists mails as kind→recipient, for failure messages.
func summary(mails []mail.Message) []string {
	out := make([]string, len(mails))
	for i, m := range mails {
		out[i] = m.Kind + "→" + m.To
	}
	return out
}

// wantFieldError checks that a problem names field with code.
func wantFieldError(t *testing.T, what string, p gen.Problem, field, code string) {
	t.Helper()
	if p.Errors == nil || len(*p.Errors) != 1 || (*p.Errors)[0].Field != field || (*p.Errors)[0].Code != code {
		t.Errorf("%s: errors %+v; want one on %s with code %s", what, p.Errors, field, code)
	}
}

func TestPasswordPolicy(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		signUps := []struct {
			name, email, password, code string
		}{
			{"common", "dave@example.com", "password123", "common"},
			{"common in capitals", "dave@example.com", "PASSWORD123", "common"},
			{"the address", "dave.smith@example.com", "Dave.Smith@Example.com", "like_address"},
			{"the local part", "dave.smith@example.com", "DAVE.SMITH", "like_address"},
		}
		for _, tc := range signUps {
			before := e.state(0)
			res, err := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: tc.email, Password: tc.password})
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, "sign-up, "+tc.name, res, 400, gen.ErrorCodePasswordTooWeak)
			wantFieldError(t, "sign-up, "+tc.name, p, "body.password", tc.code)
			e.unchanged(t, "sign-up, "+tc.name, 0, before)
		}
		// Short and long passwords are the schema's validation_error.
		res, _ := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: "dave@example.com", Password: "x7!kq2z"})
		wantProblem(t, "sign-up, 7 characters", res, 400, gen.ErrorCodeValidationError)

		// A change: the new password against every address of the user.
		alice := e.verifiedUser("alice@example.com")
		e.addEmail(alice, "madhatter1865@rabbit.example")
		for _, tc := range []struct{ name, pw, code string }{
			{"common", "iloveyou1", "common"},
			{"a secondary address's local part", "MadHatter1865", "like_address"},
			{"the primary", "alice@example.com", "like_address"},
		} {
			before := e.state(alice.id)
			r, _ := alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: tc.pw})
			p := wantProblem(t, "change, "+tc.name, r, 400, gen.ErrorCodePasswordTooWeak)
			wantFieldError(t, "change, "+tc.name, p, "body.new_password", tc.code)
			e.unchanged(t, "change, "+tc.name, alice.id, before)
		}

		// A reset: the same rules, and the link stays usable.
		l := e.resetLink("alice@example.com")
		before := e.state(alice.id)
		r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: "qwertyuiop"})
		p := wantProblem(t, "reset, common", r, 400, gen.ErrorCodePasswordTooWeak)
		wantFieldError(t, "reset, common", p, "body.password", "common")
		r, _ = e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: "MADHATTER1865@rabbit.example"})
		p = wantProblem(t, "reset, a secondary address", r, 400, gen.ErrorCodePasswordTooWeak)
		wantFieldError(t, "reset, a secondary address", p, "body.password", "like_address")
		e.unchanged(t, "refused resets", alice.id, before)
		r, _ = e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: "rabbit.example@madhatter1865"})
		wantStatus(t, "reset, a password that merely holds address parts", r, 204)
	})
}

func TestPasswordReset(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		second := e.login("alice@example.com")
		e.deliver()

		l := e.resetLink("alice@example.com")
		if !strings.HasPrefix(l.url, publicURL+"/auth/password-reset/"+l.userKey+"/") || !strings.HasSuffix(l.url, "/") || l.userKey != "MQ" {
			t.Fatalf("reset link %s; want %s/auth/password-reset/MQ/<token>/", l.url, publicURL)
		}

		// GET never uses the link: JSON tells the address and expiry, a
		// browser gets the form.
		for range 2 {
			show, err := e.anon.ShowPasswordResetWithResponse(ctx, l.userKey, l.token, jsonAccept)
			if err != nil || show.JSON200 == nil {
				t.Fatalf("GET JSON: %v %d %s", err, show.StatusCode(), show.Body)
			}
			if show.JSON200.Email != "alice@example.com" || !show.JSON200.ExpiresAt.Equal(t0.Add(time.Hour)) {
				t.Errorf("GET JSON = %+v; want alice@example.com, expiring %v", *show.JSON200, t0.Add(time.Hour))
			}
			page := e.do("GET", linkPath(l), nil, "Accept", browserAccept)
			wantHTMLPage(t, "GET (browser)", page, 200, "alice@example.com", true)
			if !strings.Contains(string(page.body), `name="password2"`) {
				t.Errorf("the reset page has no second password field: %.300s", page.body)
			}
		}
		if !alice.alive(t) || !second.alive(t) {
			t.Fatal("opening the link ended a session")
		}

		res, err := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: newPasswd})
		if err != nil || res.StatusCode() != 204 {
			t.Fatalf("POST: %v %d %s", err, res.StatusCode(), res.Body)
		}
		if got := res.HTTPResponse.Header.Values("Set-Cookie"); len(got) != 0 {
			t.Errorf("the reset set cookies %q; it never creates a session", got)
		}
		if alice.alive(t) || second.alive(t) {
			t.Error("a session outlived the reset")
		}
		if n := e.count(`SELECT COUNT(*) FROM sessions`); n != 0 {
			t.Errorf("%d sessions after the reset", n)
		}
		if got := e.loginWith("alice@example.com", goodPasswd); got != 400 {
			t.Errorf("old password after the reset: %d", got)
		}
		if got := e.loginWith("alice@example.com", newPasswd); got != 200 {
			t.Errorf("new password after the reset: %d", got)
		}
		mails := e.deliver()
		if n := len(mailsOf(mails, mail.KindPasswordChanged, "alice@example.com")); n != 1 || len(mails) != 1 {
			t.Errorf("mails after the reset: %+v; want one password_changed notice", summary(mails))
		} else if !strings.Contains(mails[0].Text, publicURL+mail.DefaultResetRequestPath) {
			t.Errorf("the notice does not point to the reset request:\n%s", mails[0].Text)
		}

		// Used: the link, and its page, say so.
		before := e.state(alice.id)
		again, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: "another fine password"})
		wantProblem(t, "reset link used twice", again, 400, gen.ErrorCodeLinkUsed)
		show, _ := e.anon.ShowPasswordResetWithResponse(ctx, l.userKey, l.token, jsonAccept)
		wantProblem(t, "used reset link (JSON GET)", show, 400, gen.ErrorCodeLinkUsed)
		wantHTMLPage(t, "used reset link (browser)", e.do("GET", linkPath(l), nil, "Accept", browserAccept), 400, "", false)
		e.unchanged(t, "used reset link", alice.id, before)
		if len(e.deliver()) != 0 {
			t.Error("a refused reset queued mail")
		}
	})
}

func TestPasswordResetSingleUse(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		e.addEmail(alice, "alice@work.example")
		e.confirmVerify("alice@work.example")
		first := e.resetLink("alice@example.com")
		second := e.resetLink("alice@work.example") // a verified secondary gets one too
		e.clock.Advance(3*time.Minute + time.Second)
		third := e.resetLink("alice@example.com")
		if first.token == third.token {
			t.Fatal("two requests mailed the same link")
		}
		res, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, second.userKey, second.token, gen.NewPassword{Password: newPasswd})
		wantStatus(t, "the second link", res, 204)
		for _, l := range []mailedLink{first, second, third} {
			before := e.state(alice.id)
			r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: "another fine password"})
			wantProblem(t, "an outstanding link after another was used", r, 400, gen.ErrorCodeLinkUsed)
			e.unchanged(t, "an outstanding link after another was used", alice.id, before)
		}
		if got := e.loginWith("alice@example.com", newPasswd); got != 200 {
			t.Errorf("login with the password of the used link: %d", got)
		}
	})
}

func TestPasswordResetRequestRevealsNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		e.addEmail(alice, "alice@unverified.example")
		e.deliver()

		// Every well-formed address: 202, no body, and a mail only to a
		// primary or verified address.
		for _, addr := range []string{"alice@example.com", " ALICE@Example.COM ", "nobody@example.com", "alice@unverified.example"} {
			e.requestReset(addr)
		}
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindPasswordReset || mails[0].To != "alice@example.com" {
			t.Fatalf("mails = %+v; want one reset mail to alice@example.com", summary(mails))
		}

		// The reset mails' interval: more requests inside it send nothing,
		// and verification mails count apart.
		e.requestReset("alice@example.com")
		if got := e.deliver(); len(got) != 0 {
			t.Errorf("a second request within the interval sent %d mails", len(got))
		}
		// A sign-up's verification mail does not hold back a reset mail.
		e.signUp("carol@example.com")
		e.requestReset("carol@example.com")
		if got := summary(e.deliver()); !slices.Contains(got, mail.KindPasswordReset+"→carol@example.com") || len(got) != 2 {
			t.Errorf("mails after a sign-up and a reset request: %v; want the verification and the reset", got)
		}
		e.clock.Advance(3*time.Minute + time.Second)
		e.requestReset("alice@example.com")
		if got := mailsOf(e.deliver(), mail.KindPasswordReset, "alice@example.com"); len(got) != 1 {
			t.Errorf("a request after the interval sent %d reset mails", len(got))
		}

		// Malformed: invalid_email.
		res, _ := e.anon.RequestPasswordResetWithResponse(ctx, gen.PasswordResetStart{Email: "alice"})
		wantProblem(t, "not an address", res, 400, gen.ErrorCodeInvalidEmail)

		// 10 per 15 minutes per address, whether anyone holds it or not.
		for _, addr := range []string{"bob@example.com", "nobody@else.example"} {
			if addr == "bob@example.com" {
				e.verifiedUser(addr)
				e.deliver()
			}
			for i := range 10 {
				r, _ := e.anon.RequestPasswordResetWithResponse(ctx, gen.PasswordResetStart{Email: addr})
				wantStatus(t, addr+" request "+strconv.Itoa(i+1), r, 202)
			}
			before := e.state(0)
			r, _ := e.anon.RequestPasswordResetWithResponse(ctx, gen.PasswordResetStart{Email: addr})
			wantProblem(t, addr+" request 11", r, 429, gen.ErrorCodeRateLimited)
			if r.HTTPResponse.Header.Get("Retry-After") == "" {
				t.Errorf("%s request 11: no Retry-After", addr)
			}
			e.unchanged(t, addr+" request 11", 0, before)
		}
		e.clock.Advance(15 * time.Minute)
		e.requestReset("nobody@else.example")
	})
}

// emailID is the id of u's address addr.
func (u *user) emailID(t *testing.T, addr string) int64 {
	t.Helper()
	res, err := u.ListEmailsWithResponse(ctx, u.id)
	if err != nil || res.JSON200 == nil {
		t.Fatalf("list: %v", err)
	}
	for _, e := range *res.JSON200 {
		if e.Email == addr {
			return e.Id
		}
	}
	t.Fatalf("%s has no address %s", u.email, addr)
	return 0
}

// TestPasswordResetTakeover: an unverified sign-up with someone else's
// address is taken over by that address's owner through a reset.
func TestPasswordResetTakeover(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		squatter := e.newUser("victim@example.com")
		e.addEmail(squatter, "squatter@evil.example")
		e.confirmVerify("squatter@evil.example")
		e.deliver()
		res, _ := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: "victim@example.com", Password: newPasswd})
		wantProblem(t, "the owner's sign-up", res, 400, gen.ErrorCodeEmailTaken)

		l := e.resetLink("victim@example.com")
		r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: newPasswd})
		wantStatus(t, "the owner's reset", r, 204)

		if squatter.alive(t) {
			t.Error("the squatter's session outlived the takeover")
		}
		emails := e.emails(squatter.id)
		if len(emails) != 1 || emails[0].Email != "victim@example.com" || !emails[0].Primary || !emails[0].Verified {
			t.Errorf("addresses after the takeover: %+v; want the owner's, verified, alone", emails)
		}
		if got := e.loginWith("victim@example.com", goodPasswd); got != 400 {
			t.Errorf("the squatter's password after the takeover: %d", got)
		}
		if got := e.loginWith("squatter@evil.example", goodPasswd); got != 400 {
			t.Errorf("the squatter's address after the takeover: %d", got)
		}
		owner := e.client(nil)
		if r, _ := owner.LoginWithResponse(ctx, gen.Credentials{Email: "victim@example.com", Password: newPasswd}); r.JSON200 == nil || r.JSON200.UserId != squatter.id {
			t.Errorf("the owner's login: %d %s", r.StatusCode(), r.Body)
		}
		// The squatter's address is free, and gets no reset mail for the account.
		e.deliver()
		e.requestReset("squatter@evil.example")
		if got := e.deliver(); len(got) != 0 {
			t.Errorf("a reset request for the removed address sent %+v", summary(got))
		}
	})
}

func TestPasswordResetLinkErrors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		bob := e.verifiedUser("bob@example.com")
		l := e.resetLink("alice@example.com")
		bobs := e.resetLink("bob@example.com")
		before := e.state(alice.id)
		cases := []struct {
			name           string
			userKey, token string
			code           gen.ErrorCode
		}{
			{"tampered token", l.userKey, l.token[:20] + flip(l.token[20]) + l.token[21:], gen.ErrorCodeLinkInvalid},
			{"another user's key", bobs.userKey, l.token, gen.ErrorCodeLinkInvalid},
			{"keys swapped", l.token, l.userKey, gen.ErrorCodeLinkInvalid},
			{"truncated", l.userKey, l.token[:len(l.token)-1], gen.ErrorCodeLinkInvalid},
		}
		for _, tc := range cases {
			r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, tc.userKey, tc.token, gen.NewPassword{Password: newPasswd})
			wantProblem(t, tc.name, r, 400, tc.code)
			s, _ := e.anon.ShowPasswordResetWithResponse(ctx, tc.userKey, tc.token, jsonAccept)
			wantProblem(t, tc.name+" (JSON GET)", s, 400, tc.code)
		}
		e.unchanged(t, "bad reset links", alice.id, before)

		// A password change under a session ends the link.
		if r, _ := bob.ChangePasswordWithResponse(ctx, bob.id, gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd}); r.StatusCode() != 204 {
			t.Fatalf("change: %d %s", r.StatusCode(), r.Body)
		}
		r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, bobs.userKey, bobs.token, gen.NewPassword{Password: "another fine password"})
		wantProblem(t, "reset link after a password change", r, 400, gen.ErrorCodeLinkUsed)

		// The address it went to left the account: used.
		e.addEmail(alice, "alice@work.example")
		e.confirmVerify("alice@work.example")
		e.clock.Advance(3*time.Minute + time.Second)
		work := e.resetLink("alice@work.example")
		if r, _ := alice.DeleteEmailWithResponse(ctx, alice.id, alice.emailID(t, "alice@work.example")); r.StatusCode() != 204 {
			t.Fatalf("delete: %d", r.StatusCode())
		}
		r, _ = e.anon.ConfirmPasswordResetWithResponse(ctx, work.userKey, work.token, gen.NewPassword{Password: newPasswd})
		wantProblem(t, "reset link of a removed address", r, 400, gen.ErrorCodeLinkUsed)

		// An hour: expired.
		e.clock.Advance(time.Hour + time.Second)
		before = e.state(alice.id)
		r, _ = e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: newPasswd})
		wantProblem(t, "reset link after an hour", r, 400, gen.ErrorCodeLinkExpired)
		s, _ := e.anon.ShowPasswordResetWithResponse(ctx, l.userKey, l.token, jsonAccept)
		wantProblem(t, "reset link after an hour (JSON GET)", s, 400, gen.ErrorCodeLinkExpired)
		wantHTMLPage(t, "reset link after an hour (browser)", e.do("GET", linkPath(l), nil, "Accept", browserAccept), 400, "", false)
		e.unchanged(t, "expired reset link", alice.id, before)
	})
}

// TestPasswordResetForm drives the link's page as a browser does.
func TestPasswordResetForm(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		l := e.resetLink("alice@example.com")
		form := func(pw, pw2 string) rawResponse {
			body := url.Values{"password": {pw}, "password2": {pw2}}.Encode()
			return e.do("POST", linkPath(l), []byte(body), "Content-Type", "application/x-www-form-urlencoded", "Accept", browserAccept)
		}
		before := e.state(alice.id)
		differ := form(newPasswd, newPasswd+"!")
		wantHTMLPage(t, "two different passwords", differ, 400, "differ", true)
		weak := form("password1", "password1")
		wantHTMLPage(t, "a common password", weak, 400, "common", true)
		e.unchanged(t, "refused forms", alice.id, before)

		done := form(newPasswd, newPasswd)
		wantHTMLPage(t, "the form", done, 200, "alice@example.com", false)
		if !strings.Contains(string(done.body), "Password changed") {
			t.Errorf("result page: %.400s", done.body)
		}
		if got := e.loginWith("alice@example.com", newPasswd); got != 200 {
			t.Errorf("login after the form: %d", got)
		}
		// The primary was unverified: the click proved it.
		if emails := e.emails(alice.id); !emails[0].Verified {
			t.Errorf("the link's address after the reset: %+v; want verified", emails[0])
		}
		again := form("another fine password", "another fine password")
		wantHTMLPage(t, "the form again", again, 400, "", false)
	})
}

func TestChangePassword(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		other := e.login("alice@example.com")
		bob := e.verifiedUser("bob@example.com")
		e.requestChange(alice, "alice@new.example")
		setPrimary := e.changeLink("alice@new.example")
		reset := e.resetLink("alice@example.com")
		e.deliver()

		before := e.state(alice.id)
		r, _ := bob.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd})
		wantProblem(t, "another user's password", r, 403, gen.ErrorCodeForbidden)
		r, _ = e.anon.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd})
		wantProblem(t, "no session", r, 401, gen.ErrorCodeNotAuthenticated)
		raw := e.do("POST", "/users/"+strconv.FormatInt(alice.id, 10)+"/password/", mustJSON(gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd}),
			"Cookie", "sessionid="+alice.sid, "Content-Type", "application/json")
		wantProblem(t, "no CSRF header", raw, 403, gen.ErrorCodeCsrfFailed)
		r, _ = alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: "short"})
		wantProblem(t, "a short new password", r, 400, gen.ErrorCodeValidationError)
		r, _ = alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: "wrong horse battery staple", NewPassword: newPasswd})
		wantProblem(t, "a wrong current password", r, 400, gen.ErrorCodeInvalidPassword)
		if n := e.count(`SELECT COUNT(*) FROM outbox WHERE status = 'queued'`); n != 0 {
			t.Errorf("%d mails queued by refused changes", n)
		}
		e.unchanged(t, "refused changes", alice.id, before)

		r, _ = alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd})
		wantStatus(t, "change", r, 204)
		if !alice.alive(t) || other.alive(t) || !bob.alive(t) {
			t.Errorf("sessions after the change: this %v, other %v, bob's %v; want true, false, true", alice.alive(t), other.alive(t), bob.alive(t))
		}
		if got := e.loginWith("alice@example.com", newPasswd); got != 200 {
			t.Errorf("login with the new password: %d", got)
		}
		mails := e.deliver()
		if got := mailsOf(mails, mail.KindPasswordChanged, "alice@example.com"); len(got) != 1 || len(mails) != 1 {
			t.Errorf("mails after the change: %+v; want one password_changed notice", summary(mails))
		}
		sp, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, setPrimary.token, setPrimary.userKey)
		wantProblem(t, "set-primary link after a password change", sp, 400, gen.ErrorCodeLinkUsed)
		rs, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, reset.userKey, reset.token, gen.NewPassword{Password: "another fine password"})
		wantProblem(t, "reset link after a password change", rs, 400, gen.ErrorCodeLinkUsed)

		// The wrong-password limit of an email change: 5 per 15 minutes.
		e.clock.Advance(15 * time.Minute)
		for i := range 5 {
			r, _ := alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: "wrong horse " + strconv.Itoa(i), NewPassword: "yet another password"})
			wantProblem(t, "wrong password "+strconv.Itoa(i+1), r, 400, gen.ErrorCodeInvalidPassword)
		}
		r, _ = alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: newPasswd, NewPassword: "yet another password"})
		wantProblem(t, "after 5 wrong passwords", r, 429, gen.ErrorCodeRateLimited)
		ec, _ := alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.EmailChange{NewEmail: "alice@other.example", Password: newPasswd})
		wantProblem(t, "an email change after 5 wrong passwords", ec, 429, gen.ErrorCodeRateLimited)
	})
}

func TestEndSessions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		other := e.login("alice@example.com")
		bob := e.newUser("bob@example.com")

		r, _ := bob.EndSessionsWithResponse(ctx, alice.id)
		wantProblem(t, "another user's sessions", r, 403, gen.ErrorCodeForbidden)
		raw := e.do("DELETE", "/users/"+strconv.FormatInt(alice.id, 10)+"/sessions/", nil, "Cookie", "sessionid="+alice.sid)
		wantProblem(t, "no CSRF header", raw, 403, gen.ErrorCodeCsrfFailed)
		if !alice.alive(t) || !other.alive(t) {
			t.Fatal("a refused request ended sessions")
		}

		r, _ = alice.EndSessionsWithResponse(ctx, alice.id)
		wantStatus(t, "sign out everywhere", r, 204)
		expired := map[string]bool{}
		for _, c := range r.HTTPResponse.Cookies() {
			if c.MaxAge < 0 {
				expired[c.Name] = true
			}
		}
		if !expired[session.Cookie] || !expired[session.OldCookie] || !expired[session.CSRFCookie] {
			t.Errorf("cookies of the answer: %q; want all three expired", r.HTTPResponse.Header.Values("Set-Cookie"))
		}
		if alice.alive(t) || other.alive(t) || !bob.alive(t) {
			t.Error("sign out everywhere: want alice's sessions ended and bob's kept")
		}
		if n := e.count(`SELECT COUNT(*) FROM sessions WHERE user_id = ?`, alice.id); n != 0 {
			t.Errorf("%d sessions of alice left", n)
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE user_id = ? AND event = 'sessions_ended'`, alice.id); n != 1 {
			t.Errorf("%d audit events of the sign-out", n)
		}
	})
}

func TestDeleteAccount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		other := e.login("alice@example.com")
		e.addEmail(alice, "alice@work.example")
		e.addEmail(alice, "alice@verified.example")
		e.confirmVerify("alice@verified.example")
		bob := e.newUser("bob@example.com")
		e.deliver()
		e.clock.Advance(3*time.Minute + time.Second)
		if r, _ := alice.SendVerificationWithResponse(ctx, alice.id, alice.emailID(t, "alice@work.example")); r.StatusCode() != 202 {
			t.Fatalf("resend: %d %s", r.StatusCode(), r.Body)
		}

		before := e.state(alice.id)
		r, _ := bob.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: goodPasswd})
		wantProblem(t, "another user's account", r, 403, gen.ErrorCodeForbidden)
		r, _ = alice.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: "wrong horse battery staple"})
		wantProblem(t, "a wrong password", r, 400, gen.ErrorCodeInvalidPassword)
		raw := e.do("DELETE", "/users/"+strconv.FormatInt(alice.id, 10)+"/", mustJSON(gen.AccountDeletion{Password: goodPasswd}),
			"Cookie", "sessionid="+alice.sid, "Content-Type", "application/json")
		wantProblem(t, "no CSRF header", raw, 403, gen.ErrorCodeCsrfFailed)
		e.unchanged(t, "refused deletions", alice.id, before)

		r, _ = alice.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: goodPasswd})
		wantStatus(t, "delete", r, 204)
		expired := 0
		for _, c := range r.HTTPResponse.Cookies() {
			if c.MaxAge < 0 {
				expired++
			}
		}
		if expired != 3 {
			t.Errorf("cookies of the answer: %q; want all three expired", r.HTTPResponse.Header.Values("Set-Cookie"))
		}
		if alice.alive(t) || other.alive(t) || !bob.alive(t) {
			t.Error("want alice's sessions ended, bob's kept")
		}
		for _, q := range []string{`SELECT COUNT(*) FROM users WHERE id = ?`, `SELECT COUNT(*) FROM emails WHERE user_id = ?`, `SELECT COUNT(*) FROM sessions WHERE user_id = ?`} {
			if n := e.count(q, alice.id); n != 0 {
				t.Errorf("%s: %d after the deletion", q, n)
			}
		}
		// The unsent verification mail is cancelled and kept without a user;
		// the notice goes to the old primary, once.
		if n := e.count(`SELECT COUNT(*) FROM outbox WHERE status = 'cancelled' AND user_id IS NULL AND recipient = 'alice@work.example'`); n != 1 {
			t.Errorf("%d cancelled mails to alice@work.example; want 1", n)
		}
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != mail.KindAccountDeleted || mails[0].To != "alice@example.com" {
			t.Errorf("mails after the deletion: %+v; want one account_deleted notice to alice@example.com", summary(mails))
		}
		if len(e.deliver()) != 0 {
			t.Error("mail delivered twice")
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE user_id = ? AND event = 'account_deleted' AND email = 'alice@example.com'`, alice.id); n != 1 {
			t.Errorf("%d audit events of the deletion; want 1", n)
		}

		// The addresses are free at once; the old session and password are not.
		if got := e.loginWith("alice@example.com", goodPasswd); got != 400 {
			t.Errorf("login after the deletion: %d", got)
		}
		for _, addr := range []string{"alice@example.com", "alice@verified.example"} {
			res, _ := e.anon.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: addr, Password: newPasswd})
			wantStatus(t, "sign-up with "+addr+" after the deletion", res, 201)
		}
		e.requestReset("alice@verified.example")
		if l := e.newestLink(mail.KindPasswordReset, "alice@verified.example"); l.userKey == alice.userKey() {
			t.Error("a reset link for the deleted user")
		}
		r, _ = alice.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: goodPasswd})
		wantProblem(t, "the deleted user's session", r, 401, gen.ErrorCodeNotAuthenticated)
	})
}

// userKey is u's user_id_key.
func (u *user) userKey() string { return signer.EncodeUserID(u.id) }

// TestServerFunctions: the work of deletion, sign-out-everywhere and a
// reset mail, as the admin API calls it, without a session.
func TestServerFunctions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		e.deliver()
		if err := db.WithTx(ctx, func(q *store.Queries) error { return e.server.QueuePasswordReset(ctx, q, alice.id) }); err != nil {
			t.Fatal(err)
		}
		l := e.newestLink(mail.KindPasswordReset, "alice@example.com")
		if r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: newPasswd}); r.StatusCode() != 204 {
			t.Fatalf("the queued reset link: %d %s", r.StatusCode(), r.Body)
		}
		e.deliver()
		alice = e.loginAs("alice@example.com", newPasswd)
		if err := db.WithTx(ctx, func(q *store.Queries) error { return e.server.EndUserSessions(ctx, q, alice.id) }); err != nil {
			t.Fatal(err)
		}
		if alice.alive(t) {
			t.Error("a session outlived EndUserSessions")
		}
		if err := db.WithTx(ctx, func(q *store.Queries) error { return e.server.DeleteUser(ctx, q, alice.id) }); err != nil {
			t.Fatal(err)
		}
		if got := summary(e.deliver()); len(got) != 1 || got[0] != mail.KindAccountDeleted+"→alice@example.com" {
			t.Errorf("mails after DeleteUser: %v", got)
		}
		err := db.WithTx(ctx, func(q *store.Queries) error { return e.server.DeleteUser(ctx, q, alice.id) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteUser of no user: %v; want ErrNotFound", err)
		}
	})
}

// TestRecoveryBadInput: the error codes of the new endpoints that the
// flows above do not meet, each leaving everything as it was.
func TestRecoveryBadInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		l := e.resetLink("alice@example.com")
		id := strconv.FormatInt(alice.id, 10)
		huge := []byte(`{"email":"` + strings.Repeat("a", 70<<10) + `"}`)
		cases := []struct {
			name         string
			method, path string
			body         []byte
			header       []string
			status       int
			code         gen.ErrorCode
		}{
			{"reset request without an address", "POST", "/auth/password-reset/", []byte(`{}`), []string{"Content-Type", "application/json"}, 400, gen.ErrorCodeValidationError},
			{"reset request with an unknown field", "POST", "/auth/password-reset/", []byte(`{"email":"alice@example.com","user_id":1}`), []string{"Content-Type", "application/json"}, 400, gen.ErrorCodeValidationError},
			{"reset request as text", "POST", "/auth/password-reset/", []byte(`alice@example.com`), []string{"Content-Type", "text/plain"}, 415, gen.ErrorCodeUnsupportedMediaType},
			{"reset request too large", "POST", "/auth/password-reset/", huge, []string{"Content-Type", "application/json"}, 413, gen.ErrorCodeBodyTooLarge},
			{"reset link, 7 characters", "POST", linkPath(l), []byte(`{"password":"x7!kq2z"}`), []string{"Content-Type", "application/json"}, 400, gen.ErrorCodeValidationError},
			{"reset link, 1025 characters", "POST", linkPath(l), mustJSON(gen.NewPassword{Password: strings.Repeat("é", 1025)}), []string{"Content-Type", "application/json"}, 400, gen.ErrorCodeValidationError},
			{"reset link, no body", "POST", linkPath(l), nil, nil, 400, gen.ErrorCodeValidationError},
			{"reset link, text", "POST", linkPath(l), []byte(`purple monkey dishwasher lamp`), []string{"Content-Type", "text/plain"}, 415, gen.ErrorCodeUnsupportedMediaType},
			{"change as text", "POST", "/users/" + id + "/password/", []byte(`x`), alice.authHeaders("Content-Type", "text/plain"), 415, gen.ErrorCodeUnsupportedMediaType},
			{"change without the current password", "POST", "/users/" + id + "/password/", []byte(`{"new_password":"purple monkey dishwasher lamp"}`), alice.authHeaders("Content-Type", "application/json"), 400, gen.ErrorCodeValidationError},
			{"sign out everywhere without a session", "DELETE", "/users/" + id + "/sessions/", nil, nil, 401, gen.ErrorCodeNotAuthenticated},
			{"deletion without a session", "DELETE", "/users/" + id + "/", []byte(`{"password":"x"}`), []string{"Content-Type", "application/json"}, 401, gen.ErrorCodeNotAuthenticated},
			{"deletion without the password", "DELETE", "/users/" + id + "/", []byte(`{}`), alice.authHeaders("Content-Type", "application/json"), 400, gen.ErrorCodeValidationError},
			{"deletion of user 0", "DELETE", "/users/0/", []byte(`{"password":"x"}`), alice.authHeaders("Content-Type", "application/json"), 400, gen.ErrorCodeValidationError},
		}
		for _, tc := range cases {
			before := e.state(alice.id)
			wantProblem(t, tc.name, e.do(tc.method, tc.path, tc.body, tc.header...), tc.status, tc.code)
			e.unchanged(t, tc.name, alice.id, before)
		}

		// A deletion's wrong passwords count with those of a change.
		for i := range 5 {
			r, _ := alice.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: "wrong horse " + strconv.Itoa(i)})
			wantProblem(t, "wrong password "+strconv.Itoa(i+1), r, 400, gen.ErrorCodeInvalidPassword)
		}
		before := e.state(alice.id)
		r, _ := alice.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: goodPasswd})
		wantProblem(t, "deletion after 5 wrong passwords", r, 429, gen.ErrorCodeRateLimited)
		c, _ := alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd})
		wantProblem(t, "a change after 5 wrong passwords", c, 429, gen.ErrorCodeRateLimited)
		e.unchanged(t, "refused after 5 wrong passwords", alice.id, before)
		if len(e.deliver()) != 0 {
			t.Error("refused requests queued mail")
		}
	})
}

// TestPasswordResetConcurrent: of two outstanding links, each posted
// twice at once, exactly one request sets a password; the others answer
// link_used, and one notice goes out.
func TestPasswordResetConcurrent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.verifiedUser("alice@example.com")
		first := e.resetLink("alice@example.com")
		e.clock.Advance(3*time.Minute + time.Second)
		second := e.resetLink("alice@example.com")
		e.deliver()
		type result struct {
			status int
			code   gen.ErrorCode
			pw     string
		}
		results := make(chan result, 4)
		start := make(chan struct{})
		for i, l := range []mailedLink{first, second, first, second} {
			pw := "concurrent password " + strconv.Itoa(i)
			go func() {
				<-start
				r, err := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: pw})
				if err != nil {
					results <- result{status: -1}
					return
				}
				results <- result{status: r.StatusCode(), code: problemCode(r.ApplicationproblemJSON400), pw: pw}
			}()
		}
		close(start)
		var won []string
		for range 4 {
			r := <-results
			switch {
			case r.status == 204:
				won = append(won, r.pw)
			case r.status != 400 || r.code != gen.ErrorCodeLinkUsed:
				t.Errorf("a concurrent reset answered %d %s; want 204 once, link_used otherwise", r.status, r.code)
			}
		}
		if len(won) != 1 {
			t.Fatalf("%d resets succeeded; want 1", len(won))
		}
		if got := e.loginWith("alice@example.com", won[0]); got != 200 {
			t.Errorf("login with the winning password: %d", got)
		}
		if got := mailsOf(e.deliver(), mail.KindPasswordChanged, "alice@example.com"); len(got) != 1 {
			t.Errorf("%d password_changed notices; want 1", len(got))
		}
	})
}

// TestNoUsablePassword: a user whose password is unusable (an empty hash, as an
// import or an admin leaves it) fails every current-password check, and
// gets a usable one through a reset.
func TestNoUsablePassword(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		if err := db.SetPasswordHash(ctx, alice.id, ""); err != nil {
			t.Fatal(err)
		}
		r, _ := alice.ChangePasswordWithResponse(ctx, alice.id, gen.PasswordChange{Password: goodPasswd, NewPassword: newPasswd})
		wantProblem(t, "change without a usable password", r, 400, gen.ErrorCodeInvalidPassword)
		d, _ := alice.DeleteAccountWithResponse(ctx, alice.id, gen.AccountDeletion{Password: ""})
		wantProblem(t, "deletion with an empty password", d, 400, gen.ErrorCodeValidationError)
		l := e.resetLink("alice@example.com")
		if r, _ := e.anon.ConfirmPasswordResetWithResponse(ctx, l.userKey, l.token, gen.NewPassword{Password: newPasswd}); r.StatusCode() != 204 {
			t.Fatalf("reset: %d %s", r.StatusCode(), r.Body)
		}
		if got := e.loginWith("alice@example.com", newPasswd); got != 200 {
			t.Errorf("login after the reset: %d", got)
		}
	})
}
