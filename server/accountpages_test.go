package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// person is a browser without JavaScript: a cookie jar, forms posted as
// application/x-www-form-urlencoded with the page's Origin, redirects
// shown rather than followed.
type person struct {
	t    *testing.T
	e    *env
	jar  *cookiejar.Jar
	c    *http.Client
	lang string // Accept-Language
}

func (e *env) person(t *testing.T, lang string) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, e: e, jar: jar, lang: lang, c: &http.Client{
		Transport:     commonHeaders{t: t, base: http.DefaultTransport},
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (p *person) do(req *http.Request) (*http.Response, string) {
	p.t.Helper()
	if p.lang != "" {
		req.Header.Set("Accept-Language", p.lang)
	}
	res, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (p *person) get(path string) (*http.Response, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.e.srv.URL+path, nil)
	return p.do(req)
}

// post posts form to path from a page of the service (its Origin).
func (p *person) post(path string, form url.Values) (*http.Response, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.e.srv.URL)
	return p.do(req)
}

// cookie returns the value of the jar's cookie name.
func (p *person) cookie(name string) string {
	u, _ := url.Parse(p.e.srv.URL)
	for _, ck := range p.jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

var csrfFieldRE = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]*)"`)

// formToken is the csrfmiddlewaretoken of the first form of a page.
func formToken(t *testing.T, body string) string {
	t.Helper()
	m := csrfFieldRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrfmiddlewaretoken in:\n%s", body)
	}
	return m[1]
}

// wantRedirect checks a 303 to target.
func wantRedirect(t *testing.T, res *http.Response, body, target string) {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != target {
		t.Fatalf("answer %d to %q; want 303 to %q\n%s", res.StatusCode, res.Header.Get("Location"), target, body)
	}
}

// signUpForm signs a person up through the page and returns the account
// page it lands on.
func (p *person) signUpForm(addr string) string {
	p.t.Helper()
	_, body := p.get("/account/signup/")
	res, body := p.post("/account/signup/", url.Values{"csrfmiddlewaretoken": {formToken(p.t, body)}, "email": {addr}, "password": {goodPasswd}})
	wantRedirect(p.t, res, body, "/account/")
	_, body = p.get("/account/")
	return body
}

// TestAccountPages walks the account pages without JavaScript: sign up in
// German, the one-time message, add, resend, make primary, remove, the
// language of the mails, sign out and in; every form refused without its
// token.
func TestAccountPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		p := e.person(t, "de-DE,de;q=0.9,en;q=0.5")

		res, body := p.get("/account/")
		wantRedirect(t, res, body, "/account/login/?next=%2Faccount%2F")

		// Sign-up: refused without the double-submit token, then done.
		res, body = p.get("/account/signup/")
		if res.StatusCode != 200 || res.Header.Get("Content-Language") != "de" || !strings.Contains(body, `<html lang="de">`) {
			t.Fatalf("sign-up page: %d %q\n%s", res.StatusCode, res.Header.Get("Content-Language"), body)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
			t.Errorf("page CSP %q", csp)
		}
		if p.cookie(session.CSRFCookie) == "" || p.cookie(session.CSRFCookie) != formToken(t, body) {
			t.Fatalf("the form's token %q is not the csrftoken cookie %q", formToken(t, body), p.cookie(session.CSRFCookie))
		}
		res, body = p.post("/account/signup/", url.Values{"email": {"anna@example.com"}, "password": {goodPasswd}})
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "Das Formular war zu alt") {
			t.Fatalf("sign-up without csrfmiddlewaretoken: %d\n%s", res.StatusCode, body)
		}
		if n := e.count(`SELECT COUNT(*) FROM emails`); n != 0 {
			t.Fatalf("a refused sign-up made %d addresses", n)
		}
		res, body = p.post("/account/signup/", url.Values{"csrfmiddlewaretoken": {p.cookie(session.CSRFCookie)}, "email": {"anna@example.com"}, "password": {"short"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="password-error"`) ||
			!strings.Contains(body, "8 bis 1024 Zeichen") || !strings.Contains(body, `value="anna@example.com"`) {
			t.Fatalf("sign-up with a short password: %d\n%s", res.StatusCode, body)
		}
		if !regexp.MustCompile(`id="password"[^>]*autofocus`).MatchString(body) {
			t.Errorf("the field with the error does not get the focus:\n%s", body)
		}
		body = p.signUpForm("anna@example.com")
		if !strings.Contains(body, "Willkommen!") || !strings.Contains(body, "anna@example.com") {
			t.Fatalf("account page after sign-up lacks the message or the address:\n%s", body)
		}
		var uid int64
		var lang string
		if err := e.db.SQL().QueryRowContext(ctx, `SELECT id, language FROM users`).Scan(&uid, &lang); err != nil || lang != "de" {
			t.Fatalf("the new user's language = %q (%v); want de from Accept-Language", lang, err)
		}
		csrf := formToken(t, body)
		if !strings.Contains(body, `<meta name="csrf-token" content="`+csrf+`">`) {
			t.Errorf("the signed-in page lacks the csrf-token meta tag of its session")
		}
		if _, again := p.get("/account/"); strings.Contains(again, "Willkommen!") {
			t.Errorf("the one-time message shows twice")
		}
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindVerify || m[0].Language != "de" || !strings.Contains(m[0].Subject, "Bestätigen Sie") {
			t.Fatalf("the sign-up mail: %+v", m)
		}

		// Add an address: refused without the field, with a wrong one, then done.
		res, body = p.post("/account/emails/", url.Values{"email": {"anna@work.example"}})
		if res.StatusCode != http.StatusForbidden || len(e.emails(uid)) != 1 {
			t.Fatalf("add without csrfmiddlewaretoken: %d, %d addresses\n%s", res.StatusCode, len(e.emails(uid)), body)
		}
		res, _ = p.post("/account/emails/", url.Values{"csrfmiddlewaretoken": {"wrong"}, "email": {"anna@work.example"}})
		if res.StatusCode != http.StatusForbidden || len(e.emails(uid)) != 1 {
			t.Fatalf("add with a wrong csrfmiddlewaretoken: %d", res.StatusCode)
		}
		res, body = p.post("/account/emails/", url.Values{"csrfmiddlewaretoken": {csrf}, "email": {"not an address"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="add-email-error"`) || !strings.Contains(body, "gültige E-Mail-Adresse") {
			t.Fatalf("add of a bad address: %d\n%s", res.StatusCode, body)
		}
		res, body = p.post("/account/emails/", url.Values{"csrfmiddlewaretoken": {csrf}, "email": {"anna@work.example"}})
		wantRedirect(t, res, body, "/account/")
		_, body = p.get("/account/")
		if !strings.Contains(body, "anna@work.example wurde hinzugefügt") || !strings.Contains(body, "Nicht bestätigt") {
			t.Fatalf("after add:\n%s", body)
		}
		work := e.emails(uid)[1]
		mails := e.deliver()
		if len(mails) != 2 || mails[0].Language != "de" {
			t.Fatalf("add mailed %+v", mails)
		}

		// Resend, as the API's.
		res, body = p.post("/account/emails/"+itoa(work.ID)+"/resend/", url.Values{"csrfmiddlewaretoken": {csrf}})
		wantRedirect(t, res, body, "/account/")
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindVerify || m[0].To != "anna@work.example" {
			t.Fatalf("resend mailed %+v", m)
		}

		// Make primary: asks for the password.
		res, body = p.post("/account/emails/"+itoa(work.ID)+"/primary/", url.Values{"csrfmiddlewaretoken": {csrf}, "password": {"wrong password"}})
		id := "password-" + itoa(work.ID)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `aria-describedby="`+id+`-error"`) ||
			!strings.Contains(body, "Das Passwort ist nicht richtig.") || !regexp.MustCompile(`id="`+id+`"[^>]*autofocus`).MatchString(body) {
			t.Fatalf("make primary with a wrong password: %d\n%s", res.StatusCode, body)
		}
		res, body = p.post("/account/emails/"+itoa(work.ID)+"/primary/", url.Values{"csrfmiddlewaretoken": {csrf}, "password": {goodPasswd}})
		wantRedirect(t, res, body, "/account/")
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindChangeEmail || m[0].To != "anna@work.example" {
			t.Fatalf("make primary mailed %+v", m)
		}

		// The language of the mails.
		res, body = p.post("/account/language/", url.Values{"csrfmiddlewaretoken": {"wrong"}, "language": {"fr"}})
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("language with a wrong token: %d", res.StatusCode)
		}
		res, body = p.post("/account/language/", url.Values{"csrfmiddlewaretoken": {csrf}, "language": {"fr"}})
		wantRedirect(t, res, body, "/account/")
		_, body = p.get("/account/")
		if !strings.Contains(body, "Français") || !regexp.MustCompile(`value="fr"[^>]*selected`).MatchString(body) {
			t.Fatalf("after the language change:\n%s", body)
		}

		// Remove: the notice goes out in the user's new language.
		res, body = p.post("/account/emails/"+itoa(work.ID)+"/remove/", url.Values{"csrfmiddlewaretoken": {csrf}})
		wantRedirect(t, res, body, "/account/")
		if m := e.deliver(); len(m) != 1 || m[0].Kind != mail.KindEmailRemoved || m[0].Language != "fr" || !strings.Contains(m[0].Subject, "supprimée") {
			t.Fatalf("remove mailed %+v", m)
		}
		if len(e.emails(uid)) != 1 {
			t.Fatalf("remove left %d addresses", len(e.emails(uid)))
		}

		// Sign out, then in again.
		res, _ = p.post("/account/logout/", url.Values{})
		if res.StatusCode != http.StatusForbidden || p.cookie(session.Cookie) == "" {
			t.Fatalf("sign-out without its token: %d", res.StatusCode)
		}
		res, body = p.post("/account/logout/", url.Values{"csrfmiddlewaretoken": {csrf}})
		wantRedirect(t, res, body, "/account/login/")
		if p.cookie(session.Cookie) != "" {
			t.Fatalf("the session cookie outlived sign-out")
		}
		res, body = p.get("/account/login/")
		if !strings.Contains(body, "Sie sind abgemeldet.") {
			t.Errorf("sign-in page after sign-out lacks the message:\n%s", body)
		}
		res, body = p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {formToken(t, body)}, "email": {"anna@example.com"}, "password": {"wrong password"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "E-Mail-Adresse oder Passwort sind nicht richtig.") {
			t.Fatalf("sign-in with a wrong password: %d\n%s", res.StatusCode, body)
		}
		res, body = p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {formToken(t, body)}, "email": {"anna@example.com"}, "password": {goodPasswd}})
		wantRedirect(t, res, body, "/account/")
		if p.cookie(session.Cookie) == "" {
			t.Fatal("no session after sign-in")
		}
	})
}

// TestFormTooLarge: a posted form is bounded like an API body.
func TestFormTooLarge(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		p := e.person(t, "")
		_, body := p.get("/account/login/")
		res, body := p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {formToken(t, body)}, "email": {strings.Repeat("a", 70<<10)}})
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "<html") {
			t.Fatalf("a 70 KiB form: %d\n%s", res.StatusCode, body)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLoginCSRF: no other site can sign a person in: the sign-in form
// needs the csrftoken cookie's value, and a trusted Origin.
func TestLoginCSRF(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.signUp("bo@example.com")
		p := e.person(t, "")
		_, body := p.get("/account/login/")
		token := formToken(t, body)
		for _, tt := range []struct {
			name string
			form url.Values
		}{
			{"no field", url.Values{"email": {"bo@example.com"}, "password": {goodPasswd}}},
			{"another value", url.Values{"csrfmiddlewaretoken": {token + "x"}, "email": {"bo@example.com"}, "password": {goodPasswd}}},
		} {
			res, body := p.post("/account/login/", tt.form)
			if res.StatusCode != http.StatusForbidden || p.cookie(session.Cookie) != "" {
				t.Errorf("%s: %d, session %q\n%s", tt.name, res.StatusCode, p.cookie(session.Cookie), body)
			}
		}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/account/login/", strings.NewReader(url.Values{
			"csrfmiddlewaretoken": {token}, "email": {"bo@example.com"}, "password": {goodPasswd}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if res, body := p.do(req); res.StatusCode != http.StatusForbidden || p.cookie(session.Cookie) != "" {
			t.Errorf("from another origin: %d\n%s", res.StatusCode, body)
		}
	})
}

// TestOpenRedirect: ?next= is followed only to this service, the app and
// the trusted origins.
func TestOpenRedirect(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits(), withBrand("ACME", "https://app.example.com/home"), withTrustedOrigins("https://admin.example.com"))
		e.signUp("cy@example.com")
		for _, tt := range []struct{ next, want string }{
			{"", "https://app.example.com/home"},
			{"/account/", "/account/"},
			{"/account/../docs/?a=1", "/docs/?a=1"},
			{"https://app.example.com/settings?tab=2", "https://app.example.com/settings?tab=2"},
			{"https://admin.example.com/x", "https://admin.example.com/x"},
			{publicURL + "/account/", publicURL + "/account/"},
			{"https://evil.example/", "https://app.example.com/home"},
			{"//evil.example/", "https://app.example.com/home"},
			{"/\\evil.example/", "https://app.example.com/home"},
			{"/%2F/evil.example/", "/evil.example/"},
			{"/%5Cevil.example", "/%5Cevil.example"},
			{"\\\\evil.example", "https://app.example.com/home"},
			{"https://app.example.com.evil.example/", "https://app.example.com/home"},
			{"https://user@app.example.com/", "https://app.example.com/home"},
			{"javascript:alert(1)", "https://app.example.com/home"},
			{"http://app.example.com/", "https://app.example.com/home"},
			{"evil.example", "https://app.example.com/home"},
		} {
			p := e.person(t, "")
			_, body := p.get("/account/login/?next=" + url.QueryEscape(tt.next))
			res, body := p.post("/account/login/?next="+url.QueryEscape(tt.next), url.Values{
				"csrfmiddlewaretoken": {formToken(t, body)}, "email": {"cy@example.com"}, "password": {goodPasswd}})
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
				t.Errorf("next=%q: %d to %q; want %q", tt.next, res.StatusCode, res.Header.Get("Location"), tt.want)
			}
			_ = body
		}
	})
}

// TestDevMailbox: the mailbox lists what the dispatcher sent, newest
// first; without it (outside dev mode) both paths are 404.
func TestDevMailbox(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		plain := newEnv(t, db)
		p := plain.person(t, "")
		for _, path := range []string{"/dev/mailbox/", "/dev/mailbox.json", "/dev/mailbox"} {
			if res, _ := p.get(path); res.StatusCode != http.StatusNotFound {
				t.Errorf("outside dev mode %s answers %d", path, res.StatusCode)
			}
		}

		e := newEnv(t, db, withMailbox())
		u := e.newUser("dee@example.com")
		e.deliver()
		e.addEmail(u, "dee@work.example")
		e.deliver()
		p = e.person(t, "")
		res, body := p.get("/dev/mailbox.json")
		var got []struct {
			ID        int64    `json:"id"`
			To        string   `json:"to"`
			Subject   string   `json:"subject"`
			Kind      string   `json:"kind"`
			Links     []string `json:"links"`
			CreatedAt string   `json:"created_at"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || res.StatusCode != 200 {
			t.Fatalf("mailbox.json: %d %v\n%s", res.StatusCode, err, body)
		}
		if len(got) != 3 || got[0].ID <= got[2].ID || got[2].To != "dee@example.com" || got[2].Kind != mail.KindVerify ||
			len(got[2].Links) != 1 || !strings.HasPrefix(got[2].Links[0], publicURL+"/users/email-verify/") || got[0].Links == nil || got[0].CreatedAt == "" {
			t.Fatalf("mailbox.json, newest first: %+v", got)
		}
		res, body = p.get("/dev/mailbox/")
		if res.StatusCode != 200 || !strings.Contains(body, `<a href="`+got[2].Links[0]+`">`) {
			t.Fatalf("the mailbox page lacks the clickable link: %d\n%s", res.StatusCode, body)
		}
		if strings.Index(body, got[0].Subject) > strings.Index(body, got[2].Subject) {
			t.Errorf("the mailbox page is not newest first")
		}
	})
}

// TestLinkPages: the link pages name the account, partly masked, and lead
// on to the account page and the app; pages follow Accept-Language.
func TestLinkPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withBrand("ACME", "https://app.example.com/"))
		u := e.newUser("eve.smith@example.com")
		e.addEmail(u, "eve@work.example")
		l := e.verifyLink("eve@work.example")
		p := e.person(t, "es")
		path := strings.TrimPrefix(l.url, publicURL)
		res, body := p.get(path)
		if res.StatusCode != 200 || !strings.Contains(body, "e•••h@example.com") || !strings.Contains(body, "Verificar esta dirección") ||
			!strings.Contains(body, `<html lang="es">`) || !strings.Contains(body, "· ACME</title>") {
			t.Fatalf("verify page: %d\n%s", res.StatusCode, body)
		}
		if strings.Contains(body, "eve.smith@example.com") {
			t.Errorf("the link page shows the whole primary address")
		}
		res, body = p.post(path, url.Values{})
		if res.StatusCode != 200 || !strings.Contains(body, "Dirección verificada") || !strings.Contains(body, `href="/account/"`) ||
			!strings.Contains(body, `href="https://app.example.com/"`) || !strings.Contains(body, "Volver a ACME") {
			t.Fatalf("after the click: %d\n%s", res.StatusCode, body)
		}
		res, body = p.post(path+"x", url.Values{})
		if res.StatusCode != 400 || !strings.Contains(body, "Enlace no válido") || !strings.Contains(body, `href="/account/"`) {
			t.Fatalf("a bad link: %d\n%s", res.StatusCode, body)
		}
		res, body = p.get("/account/nowhere")
		if res.StatusCode != 404 || !strings.Contains(body, "Página no encontrada") || res.Header.Get("Content-Type") != "text/html; charset=UTF-8" {
			t.Fatalf("a page that is not there: %d %s\n%s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	})
}

// TestPagesInEveryLanguage serves every page in each language that
// Accept-Language asks for: its <html lang>, its Content-Language, and no
// message id left unsaid.
func TestPagesInEveryLanguage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withMailbox(), withoutLimits())
		u := e.newUser("lang@example.com")
		e.addEmail(u, "lang@work.example")
		verify := strings.TrimPrefix(e.verifyLink("lang@work.example").url, publicURL)
		reset := linkPath(e.resetLink("lang@example.com"))
		for _, tt := range []struct{ header, lang string }{
			{"en-US,en;q=0.9", "en"}, {"de-AT", "de"}, {"fr-CH, fr;q=0.9", "fr"}, {"es-419", "es"}, {"ja", "en"},
		} {
			p := e.person(t, tt.header)
			pages := map[string]string{}
			for _, path := range []string{"/account/login/", "/account/signup/", verify, verify + "x", "/account/nowhere", "/dev/mailbox/",
				"/account/password-reset/", reset, strings.TrimSuffix(reset, "/") + "x/"} {
				_, pages[path] = p.get(path)
			}
			_, body := p.get("/account/login/")
			res, _ := p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {formToken(t, body)}, "email": {"lang@example.com"}, "password": {goodPasswd}})
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("%s: sign-in answered %d", tt.lang, res.StatusCode)
			}
			res, pages["/account/"] = p.get("/account/")
			if got := res.Header.Get("Content-Language"); got != tt.lang {
				t.Errorf("%s: /account/ has Content-Language %q", tt.header, got)
			}
			for path, body := range pages {
				if !strings.Contains(body, `<html lang="`+tt.lang+`">`) {
					t.Errorf("%s: %s is not in %s", tt.header, path, tt.lang)
				}
				if m := unsaidID.FindString(body); m != "" {
					t.Errorf("%s: %s shows the message id %q", tt.header, path, m)
				}
			}
		}
	})
}

var unsaidID = regexp.MustCompile(`\b(page|error|mail|duration)\.[a-z_]+\.?[a-z_]*`)

// TestPageLimits: the sign-in page meets the API's limits: past the failed
// logins an address may have, 429 with Retry-After, said in the person's
// language, and no session.
func TestPageLimits(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.signUp("lim@example.com")
		p := e.person(t, "fr")
		_, body := p.get("/account/login/")
		token := formToken(t, body)
		var res *http.Response
		for range 11 {
			res, body = p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {token}, "email": {"lim@example.com"}, "password": {"wrong password"}})
		}
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || !strings.Contains(body, "Trop de tentatives.") {
			t.Fatalf("the 11th failed sign-in: %d, Retry-After %q\n%s", res.StatusCode, res.Header.Get("Retry-After"), body)
		}
		res, _ = p.post("/account/login/", url.Values{"csrfmiddlewaretoken": {token}, "email": {"lim@example.com"}, "password": {goodPasswd}})
		if res.StatusCode != http.StatusTooManyRequests || p.cookie(session.Cookie) != "" {
			t.Fatalf("the right password inside the limit: %d", res.StatusCode)
		}
	})
}

// TestAPIStaysEnglish: the API's problems are for developers and stay
// English whatever Accept-Language asks; a sign-up through the API records
// the language it asks for.
func TestAPIStaysEnglish(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		res := e.do("POST", "/users/", mustJSON(map[string]string{"email": "not an address", "password": goodPasswd}),
			"Content-Type", "application/json", "Accept-Language", "de")
		var p struct{ Title, Code string }
		if err := json.Unmarshal(res.body, &p); err != nil || res.status != 400 || p.Title != "Invalid email address" {
			t.Fatalf("problem under Accept-Language de: %d %s", res.status, res.body)
		}
		res = e.do("POST", "/users/", mustJSON(map[string]string{"email": "api@example.com", "password": goodPasswd}),
			"Content-Type", "application/json", "Accept-Language", "es-ES,es;q=0.9")
		if res.status != 201 {
			t.Fatalf("sign-up: %d %s", res.status, res.body)
		}
		var lang string
		if err := e.db.SQL().QueryRowContext(ctx, `SELECT language FROM users`).Scan(&lang); err != nil || lang != "es" {
			t.Fatalf("language %q (%v); want es", lang, err)
		}
		if m := e.deliver(); len(m) != 1 || m[0].Language != "es" || !strings.Contains(m[0].Text, "Hola:") {
			t.Fatalf("the sign-up mail: %+v", m)
		}
	})
}
