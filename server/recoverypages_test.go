package server_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestRecoveryPages walks the account page's password, sessions and
// deletion forms and the signed-out reset request, in French, without
// JavaScript: each refused without its token, each error next to its
// field, each done through the API's code.
func TestRecoveryPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		p := e.person(t, "fr-FR,fr;q=0.9")
		body := p.signUpForm("zoe@example.com")
		csrf := formToken(t, body)
		for _, want := range []string{`action="/account/password/"`, `action="/account/sessions/end/"`, `action="/account/delete/"`,
			"Changer le mot de passe", "Se déconnecter partout", "Supprimer mon compte"} {
			if !strings.Contains(body, want) {
				t.Fatalf("the account page lacks %q:\n%s", want, body)
			}
		}
		e.deliver()
		other := e.login("zoe@example.com")

		// Change the password.
		change := func(token, current, pw, pw2 string) (*http.Response, string) {
			return p.post("/account/password/", url.Values{"csrfmiddlewaretoken": {token}, "password": {current},
				"new_password": {pw}, "new_password2": {pw2}})
		}
		if res, body := change("wrong", goodPasswd, newPasswd, newPasswd); res.StatusCode != http.StatusForbidden {
			t.Fatalf("change with a wrong token: %d\n%s", res.StatusCode, body)
		}
		res, body := change(csrf, goodPasswd, newPasswd, newPasswd+"!")
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="new-password2-error"`) ||
			!strings.Contains(body, "Les deux mots de passe sont différents.") {
			t.Fatalf("change with two different passwords: %d\n%s", res.StatusCode, body)
		}
		res, body = change(csrf, "wrong password", newPasswd, newPasswd)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="current-password-error"`) ||
			!regexp.MustCompile(`id="current-password"[^>]*autofocus`).MatchString(body) {
			t.Fatalf("change with a wrong current password: %d\n%s", res.StatusCode, body)
		}
		res, body = change(csrf, goodPasswd, "password1", "password1")
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="new-password-error"`) ||
			!strings.Contains(body, "fait partie des plus courants") {
			t.Fatalf("change to a common password: %d\n%s", res.StatusCode, body)
		}
		if !other.alive(t) {
			t.Fatal("a refused change ended a session")
		}
		res, body = change(csrf, goodPasswd, newPasswd, newPasswd)
		wantRedirect(t, res, body, "/account/")
		res, body = p.get("/account/")
		if res.StatusCode != http.StatusOK || !strings.Contains(body, "Votre mot de passe est modifié.") {
			t.Fatalf("the account page after the change: %d\n%s", res.StatusCode, body)
		}
		if other.alive(t) {
			t.Error("the other session outlived the change")
		}
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindPasswordChanged || m[0].Language != "fr" ||
			!strings.Contains(m[0].Text, publicURL+mail.DefaultResetRequestPath) {
			t.Fatalf("the change mailed %+v", m)
		}
		if got := e.loginWith("zoe@example.com", newPasswd); got != 200 {
			t.Fatalf("API login with the new password: %d", got)
		}

		// Sign out everywhere, this session included.
		other = e.loginAs("zoe@example.com", newPasswd)
		csrf = formToken(t, body)
		if res, _ := p.post("/account/sessions/end/", url.Values{}); res.StatusCode != http.StatusForbidden || !other.alive(t) {
			t.Fatalf("sign out everywhere without a token: %d", res.StatusCode)
		}
		res, body = p.post("/account/sessions/end/", url.Values{"csrfmiddlewaretoken": {csrf}})
		wantRedirect(t, res, body, "/account/login/")
		if p.cookie(session.Cookie) != "" || other.alive(t) {
			t.Fatal("a session outlived sign out everywhere")
		}
		_, body = p.get("/account/login/")
		if !strings.Contains(body, "Vous êtes déconnecté partout.") || !strings.Contains(body, `href="/account/password-reset/"`) {
			t.Fatalf("the sign-in page after sign out everywhere:\n%s", body)
		}

		// Ask for a reset link, signed out: the same answer for anyone.
		res, body = p.get("/account/password-reset/")
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `<html lang="fr">`) {
			t.Fatalf("the reset request page: %d\n%s", res.StatusCode, body)
		}
		token := formToken(t, body)
		if res, body := p.post("/account/password-reset/", url.Values{"email": {"zoe@example.com"}}); res.StatusCode != http.StatusForbidden {
			t.Fatalf("a reset request without its token: %d\n%s", res.StatusCode, body)
		}
		res, body = p.post("/account/password-reset/", url.Values{"csrfmiddlewaretoken": {token}, "email": {"not an address"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="email-error"`) {
			t.Fatalf("a reset request for a bad address: %d\n%s", res.StatusCode, body)
		}
		if m := e.deliver(); len(m) != 0 {
			t.Fatalf("refused requests mailed %+v", m)
		}
		for _, addr := range []string{"nobody@example.com", "zoe@example.com"} {
			res, body = p.post("/account/password-reset/", url.Values{"csrfmiddlewaretoken": {token}, "email": {addr}})
			wantRedirect(t, res, body, "/account/password-reset/")
			_, body = p.get("/account/password-reset/")
			if !strings.Contains(body, "Si "+addr+" appartient à un compte") {
				t.Fatalf("the reset request's answer for %s:\n%s", addr, body)
			}
		}
		l := e.newestLink(mail.KindPasswordReset, "zoe@example.com")
		if len(e.links(mail.KindPasswordReset, "nobody@example.com")) != 0 {
			t.Fatal("a reset link went to an address nobody holds")
		}

		// The link's page, in the person's language.
		res, body = p.get(linkPath(l))
		if res.StatusCode != http.StatusOK || !strings.Contains(body, "Choisissez un nouveau mot de passe") || !strings.Contains(body, "zoe@example.com") {
			t.Fatalf("the reset link's page: %d\n%s", res.StatusCode, body)
		}
		const third = "seven silent swans gliding"
		res, body = p.post(linkPath(l), url.Values{"password": {third}, "password2": {third}})
		if res.StatusCode != http.StatusOK || !strings.Contains(body, "Mot de passe modifié") {
			t.Fatalf("the reset form: %d\n%s", res.StatusCode, body)
		}
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindPasswordChanged || !strings.Contains(m[0].Text, "zoe@example.com") {
			t.Fatalf("the reset mailed %+v", m)
		}

		// Sign in with it, and delete the account: asks for the password.
		_, body = p.get("/account/login/")
		res, body = p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {formToken(t, body)}, "email": {"zoe@example.com"}, "password": {third}})
		wantRedirect(t, res, body, "/account/")
		_, body = p.get("/account/")
		csrf = formToken(t, body)
		res, body = p.post("/account/delete/", url.Values{"csrfmiddlewaretoken": {csrf}, "password": {"wrong password"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="delete-password-error"`) ||
			!regexp.MustCompile(`<details open>\s*<summary>Supprimer mon compte`).MatchString(body) {
			t.Fatalf("delete with a wrong password: %d\n%s", res.StatusCode, body)
		}
		if n := e.count(`SELECT COUNT(*) FROM users`); n != 1 {
			t.Fatalf("a refused deletion left %d users", n)
		}
		res, body = p.post("/account/delete/", url.Values{"csrfmiddlewaretoken": {csrf}, "password": {third}})
		wantRedirect(t, res, body, "/account/login/")
		if n := e.count(`SELECT COUNT(*) FROM users`); n != 0 || p.cookie(session.Cookie) != "" {
			t.Fatalf("after the deletion: %d users, session cookie %q", n, p.cookie(session.Cookie))
		}
		_, body = p.get("/account/login/")
		if !strings.Contains(body, "Votre compte est supprimé.") {
			t.Fatalf("the sign-in page after the deletion:\n%s", body)
		}
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindAccountDeleted || m[0].Language != "fr" || !strings.Contains(m[0].Subject, "supprimé") {
			t.Fatalf("the deletion mailed %+v", m)
		}
	})
}
