package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestCORS: the CORS table of API.md. A trusted origin's preflight gets
// 204 with the path's methods and credentials; its requests get the headers
// that let its scripts read the answers; an untrusted origin and /admin/
// get no CORS header at all. Preflights are not API operations (the spec
// has no OPTIONS), so their answers are checked here by hand; every other
// answer goes through the spec's validator.
func TestCORS(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		const app = "https://app.example.test"
		e := newEnv(t, db, withTrustedOrigins(app))
		alice := e.verifiedUser("alice@example.com")
		ops := e.newAdmin("ops", false)
		emails := "/users/" + strconv.FormatInt(alice.id, 10) + "/emails/"
		one := emails + strconv.FormatInt(e.emails(alice.id)[0].ID, 10) + "/"

		preflights := []struct {
			name, origin, path, method string
			status                     int
			methods                    string // Access-Control-Allow-Methods; "" for no CORS headers
		}{
			{"trusted, list and add", app, emails, "POST", 204, "GET, POST"},
			{"trusted, one address", app, one, "DELETE", 204, "GET, DELETE"},
			{"trusted, login", app, "/auth/login/", "POST", 204, "POST"},
			{"trusted, origin in upper case", "HTTPS://APP.example.test", emails, "POST", 204, "GET, POST"},
			{"trusted, no such path", app, "/nowhere/", "GET", 404, ""},
			{"trusted, admin", app, "/admin/users/", "GET", 405, ""},
			{"untrusted", "https://evil.example", emails, "POST", 405, ""},
			{"untrusted sibling", "https://app.example.test.evil.example", emails, "POST", 405, ""},
			{"other scheme", "http://app.example.test", emails, "POST", 405, ""},
			{"null origin", "null", emails, "POST", 405, ""},
		}
		for _, p := range preflights {
			t.Run("preflight "+p.name, func(t *testing.T) {
				req := e.request("OPTIONS", p.path, nil, "Origin", p.origin, "Access-Control-Request-Method", p.method,
					"Access-Control-Request-Headers", "content-type, x-csrftoken")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				h := res.Header
				if res.StatusCode != p.status {
					t.Errorf("status %d, want %d", res.StatusCode, p.status)
				}
				if p.methods == "" {
					for name := range h {
						if strings.HasPrefix(name, "Access-Control-") {
							t.Errorf("CORS header %s: %q", name, h.Get(name))
						}
					}
					return
				}
				want := map[string]string{
					"Access-Control-Allow-Origin":      p.origin,
					"Access-Control-Allow-Credentials": "true",
					"Access-Control-Allow-Methods":     p.methods,
					"Access-Control-Allow-Headers":     "Content-Type, X-CSRFToken",
				}
				for name, v := range want {
					if got := h.Get(name); got != v {
						t.Errorf("%s %q, want %q", name, got, v)
					}
				}
				if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
					t.Errorf("Vary %q lacks Origin", h.Values("Vary"))
				}
			})
		}

		// The requests themselves, through the validator, with the cookies
		// and the CSRF token a browser app sends.
		requests := []struct {
			name, origin, method, path string
			body                       []byte
			auth                       []string
			status                     int
			cors                       bool
		}{
			{"trusted read", app, "GET", emails, nil, alice.authHeaders(), 200, true},
			{"trusted write", app, "POST", emails, []byte(`{"email":"alice@work.example"}`), alice.authHeaders("Content-Type", "application/json"), 201, true},
			{"trusted problem", app, "GET", emails, nil, nil, 401, true},
			{"untrusted read", "https://evil.example", "GET", emails, nil, alice.authHeaders(), 200, false},
			{"untrusted write", "https://evil.example", "POST", emails, []byte(`{"email":"alice@evil.example"}`), alice.authHeaders("Content-Type", "application/json"), 403, false},
			{"trusted admin", app, "GET", "/admin/users/", nil, []string{"Authorization", "Bearer " + ops.token}, 200, false},
		}
		for _, r := range requests {
			t.Run(r.name, func(t *testing.T) {
				res := e.do(r.method, r.path, r.body, append([]string{"Origin", r.origin}, r.auth...)...)
				if res.status != r.status {
					t.Errorf("status %d %s, want %d", res.status, res.body, r.status)
				}
				got := res.header.Get("Access-Control-Allow-Origin")
				switch {
				case r.cors && (got != r.origin || res.header.Get("Access-Control-Allow-Credentials") != "true" ||
					!strings.Contains(res.header.Get("Access-Control-Expose-Headers"), "Retry-After")):
					t.Errorf("CORS headers %v", res.header)
				case !r.cors && got != "":
					t.Errorf("Access-Control-Allow-Origin %q on %s", got, r.name)
				}
			})
		}
		if res := e.do("POST", emails, []byte(`{"email":"alice@evil.example"}`), alice.authHeaders("Content-Type", "application/json", "Origin", "https://evil.example")...); res.status == 403 {
			wantProblem(t, "untrusted write", res, 403, gen.ErrorCodeCsrfFailed)
		}

		// Without trusted origins nothing is CORS, not even Vary.
		plain := newEnv(t, db)
		req := plain.request("OPTIONS", emails, nil, "Origin", app, "Access-Control-Request-Method", "POST")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 405 || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight without trusted origins: %d %v", res.StatusCode, res.Header)
		}
	})
}

// TestCookieDomain: USEREMAIL_COOKIE_DOMAIN puts Domain on the three
// session cookies, at login and when they are expired at logout.
func TestCookieDomain(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for _, domain := range []string{"", "useremail.test"} {
			e := newEnv(t, db, func(c *server.Config) { c.CookieDomain = domain })
			addr := "d" + strconv.Itoa(len(domain)) + "@example.com"
			e.signUp(addr) // a cookie jar would refuse a Domain beside 127.0.0.1
			res := e.do("POST", "/auth/login/", mustJSON(gen.Credentials{Email: addr, Password: goodPasswd}), "Content-Type", "application/json")
			wantStatus(t, "login", res, 200)
			cookies := (&http.Response{Header: res.header}).Cookies()
			if len(cookies) != 3 {
				t.Fatalf("%d cookies", len(cookies))
			}
			var sid, csrf string
			for _, c := range cookies {
				if c.Domain != domain {
					t.Errorf("cookie %s Domain %q, want %q", c.Name, c.Domain, domain)
				}
				switch c.Name {
				case "sessionid":
					sid = c.Value
				case "csrftoken":
					csrf = c.Value
				}
			}
			res = e.do("POST", "/auth/logout/", nil, "Cookie", "sessionid="+sid, "X-CSRFToken", csrf)
			wantStatus(t, "logout", res, 204)
			for _, c := range (&http.Response{Header: res.header}).Cookies() {
				if c.Domain != domain || c.MaxAge >= 0 {
					t.Errorf("expired cookie %s Domain %q MaxAge %d", c.Name, c.Domain, c.MaxAge)
				}
			}
		}
	})
}
