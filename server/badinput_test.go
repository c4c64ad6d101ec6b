package server_test

// Suite 3: bad input. Each request gets its 4xx problem with the documented
// code, never a 5xx, and changes nothing.

import (
	"encoding/base64"
	"fmt"
	"io"
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

// jsonEndpoint is an operation that takes a JSON body.
type jsonEndpoint struct {
	name       string
	path       string
	header     []string // the session's, for the operations that need one
	emailField string
	password   bool // the body has a password field too
}

func (ep jsonEndpoint) body(email string) []byte {
	if ep.password {
		return mustJSON(map[string]string{ep.emailField: email, "password": goodPasswd})
	}
	return mustJSON(map[string]string{ep.emailField: email})
}

func jsonEndpoints(alice *user) []jsonEndpoint {
	id := strconv.FormatInt(alice.id, 10)
	return []jsonEndpoint{
		{"sign-up", "/users/", nil, "email", true},
		{"login", "/auth/login/", nil, "email", true},
		{"add", "/users/" + id + "/emails/", alice.authHeaders(), "email", false},
		{"change", "/users/" + id + "/email-change/", alice.authHeaders(), "new_email", true},
	}
}

func TestMalformedBodies(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		for _, ep := range jsonEndpoints(alice) {
			f, pw := ep.emailField, ""
			if ep.password {
				pw = `,"password":"correct horse battery staple"`
			}
			bodies := []struct {
				name, body, fieldCode string
			}{
				{"malformed JSON", `{"` + f + `":`, "malformed_json"},
				{"trailing data", `{"` + f + `":"new@example.com"` + pw + `} {}`, "malformed_json"},
				{"single quotes", `{'` + f + `':'new@example.com'}`, "malformed_json"},
				{"an array", `[{"` + f + `":"new@example.com"` + pw + `}]`, "type"},
				{"a string", `"new@example.com"`, "type"},
				{"null", `null`, "nullable"},
				{"a number for the address", `{"` + f + `":5` + pw + `}`, "type"},
				{"an object for the address", `{"` + f + `":{"a":1}` + pw + `}`, "type"},
				{"missing fields", `{}`, "required"},
				{"an unknown field", `{"` + f + `":"new@example.com"` + pw + `,"admin":true}`, "unknown_field"},
				{"the field in upper case too", `{"` + f + `":"new@example.com","` + strings.ToUpper(f) + `":"other@example.com"` + pw + `}`, "unknown_field"},
				{"only the field in upper case", `{"` + strings.ToUpper(f) + `":"new@example.com"` + pw + `}`, ""},
				{"white space only", "  \n", "malformed_json"},
				{"no body", "", "required"},
			}
			if ep.password {
				bodies = append(bodies, struct{ name, body, fieldCode string }{
					"a number for the password", `{"` + f + `":"new@example.com","password":12345678}`, "type"})
			}
			for _, b := range bodies {
				what := ep.name + ": " + b.name
				before := e.state(alice.id)
				res := e.do("POST", ep.path, []byte(b.body), append([]string{"Content-Type", "application/json"}, ep.header...)...)
				p := wantProblem(t, what, res, 400, gen.ErrorCodeValidationError)
				if b.fieldCode != "" && (p.Errors == nil || !hasFieldCode(*p.Errors, b.fieldCode)) {
					t.Errorf("%s: field errors %+v; want one with code %s", what, p.Errors, b.fieldCode)
				}
				e.unchanged(t, what, alice.id, before)
			}
		}
	})
}

func hasFieldCode(errs []gen.FieldError, code string) bool {
	for _, fe := range errs {
		if fe.Code == code {
			return true
		}
	}
	return false
}

// chunked hides a body's length, so that it is sent chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBodyTooLarge(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		big := strings.Repeat("a", 70<<10) + "@example.com"
		for _, ep := range jsonEndpoints(alice) {
			for _, sent := range []string{"with Content-Length", "chunked"} {
				what := ep.name + " " + sent
				before := e.state(alice.id)
				var body io.Reader = strings.NewReader(string(ep.body(big)))
				if sent == "chunked" {
					body = chunked{body}
				}
				req := e.request("POST", ep.path, body, append([]string{"Content-Type", "application/json"}, ep.header...)...)
				if sent == "chunked" && req.ContentLength != 0 {
					t.Fatalf("%s: Content-Length %d", what, req.ContentLength)
				}
				wantProblem(t, what, e.send(req), 413, gen.ErrorCodeBodyTooLarge)
				e.unchanged(t, what, alice.id, before)
			}
		}
		// An operation without a body ignores one, however large: it is
		// never read, and the answer is the operation's own.
		for _, sent := range []string{"with Content-Length", "chunked"} {
			var body io.Reader = strings.NewReader(big)
			if sent == "chunked" {
				body = chunked{body}
			}
			req := e.request("POST", "/auth/logout/", body, append([]string{"Content-Type", "application/json"}, alice.authHeaders()...)...)
			wantStatus(t, "logout with a large body "+sent, e.send(req), 204)
			alice = e.login("alice@example.com")
		}
	})
}

func TestContentType(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		for _, ep := range jsonEndpoints(alice) {
			for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
				"application/jsonx", "application/xml", "text/json", "application/json-patch+json", "garbage/\xff\xfe"} {
				what := fmt.Sprintf("%s with Content-Type %q", ep.name, ct)
				before := e.state(alice.id)
				h := append([]string{}, ep.header...)
				if ct != "" {
					h = append(h, "Content-Type", ct)
				}
				wantProblem(t, what, e.do("POST", ep.path, ep.body("new@example.com"), h...), 415, gen.ErrorCodeUnsupportedMediaType)
				e.unchanged(t, what, alice.id, before)
			}
		}
		// Parameters and case do not matter.
		for i, ct := range []string{"application/json; charset=utf-8", "Application/JSON"} {
			res := e.do("POST", "/users/", mustJSON(gen.NewUser{Email: fmt.Sprintf("ct%d@example.com", i), Password: goodPasswd}), "Content-Type", ct)
			wantStatus(t, "sign up with Content-Type "+ct, res, 201)
		}
	})
}

func TestBadPathIDs(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		work := e.addEmail(alice, "alice@work.example")
		id, eid := strconv.FormatInt(alice.id, 10), strconv.FormatInt(work.Id, 10)
		bad := []string{"abc", "0", "-1", "-9223372036854775808", "9223372036854775808", "99999999999999999999999", "1.5", "1e3", "0x1", "%20", "1%00"}
		routes := []struct {
			method string
			path   func(id, eid string) string
			body   []byte
		}{
			{"GET", func(id, _ string) string { return "/users/" + id + "/emails/" }, nil},
			{"POST", func(id, _ string) string { return "/users/" + id + "/emails/" }, mustJSON(gen.NewEmail{Email: "new@example.com"})},
			{"GET", func(id, eid string) string { return "/users/" + id + "/emails/" + eid + "/" }, nil},
			{"DELETE", func(id, eid string) string { return "/users/" + id + "/emails/" + eid + "/" }, nil},
			{"POST", func(id, eid string) string { return "/users/" + id + "/emails/" + eid + "/send-verification/" }, nil},
			{"GET", func(id, _ string) string { return "/users/" + id + "/primary-email/" }, nil},
			{"POST", func(id, _ string) string { return "/users/" + id + "/email-change/" },
				mustJSON(gen.EmailChange{NewEmail: "new@example.com", Password: goodPasswd})},
		}
		for _, r := range routes {
			for _, b := range bad {
				paths := []string{r.path(b, eid)}
				if p := r.path(id, b); p != r.path(id, eid) {
					paths = append(paths, p)
				}
				for _, path := range paths {
					before := e.state(alice.id)
					h := alice.authHeaders()
					if r.body != nil {
						h = append(h, "Content-Type", "application/json")
					}
					wantProblem(t, r.method+" "+path, e.do(r.method, path, r.body, h...), 400, gen.ErrorCodeValidationError)
					e.unchanged(t, r.method+" "+path, alice.id, before)
				}
			}
		}
	})
}

// adversarialAddresses are inputs that are not a deliverable address.
var adversarialAddresses = []struct{ name, email string }{
	{"empty", ""},
	{"spaces only", "   "},
	{"missing @", "alice.example.com"},
	{"two @", "alice@home@example.com"},
	{"nothing before @", "@example.com"},
	{"nothing after @", "alice@"},
	{"quoted local part", `"alice"@example.com`},
	{"quoted local part with a space", `"alice smith"@example.com`},
	{"quoted local part with an @", `"alice@evil.example"@example.com`},
	{"IPv4 literal", "alice@[127.0.0.1]"},
	{"IPv6 literal", "alice@[IPv6:::1]"},
	{"bare IPv4 domain", "alice@127.0.0.1"},
	{"no dot in the domain", "alice@example"},
	{"space inside", "alice smith@example.com"},
	{"two dots", "alice..smith@example.com"},
	{"leading dot", ".alice@example.com"},
	{"empty domain label", "alice@example..com"},
	{"hyphen-led label", "alice@-example.com"},
	{"NUL", "alice\x00@example.com"},
	{"control character", "ali\x01ce@example.com"},
	{"bell in the domain", "alice@exam\x07ple.com"},
	{"CRLF header injection", "alice@example.com\r\nBcc: victim@example.com"},
	{"DEL", "alice\x7f@example.com"},
	{"bidi override U+202E", "alice\u202Emoc.elpmaxe@example.com"},
	{"bidi isolate U+2066", "alice\u2066@example.com"},
	{"zero-width space U+200B", "ali\u200Bce@example.com"},
	{"zero-width space in the domain", "alice@exam\u200Bple.com"},
	{"zero-width joiner", "ali\u200Dce@example.com"},
	{"byte order mark", "\uFEFFalice@example.com"},
	{"soft hyphen in the domain", "alice@exam\u00ADple.com"},
	{"line separator", "alice\u2028@example.com"},
	{"no-break space", "alice\u00A0@example.com"},
	{"private use", "alice\uE000@example.com"},
	{"variation selector", "alice\uFE0F@example.com"},
	{"300 characters", strings.Repeat("a", 288) + "@example.com"},
	{"255 characters", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example"},
	{"local part of 65", strings.Repeat("a", 65) + "@example.com"},
	{"60 KB", strings.Repeat("a", 60<<10) + "@example.com"},
}

func TestInvalidAddresses(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		alice := e.verifiedUser("alice@example.com")
		for _, ep := range jsonEndpoints(alice) {
			for _, a := range adversarialAddresses {
				what := ep.name + ": " + a.name
				before := e.state(alice.id)
				res := e.do("POST", ep.path, ep.body(a.email), append([]string{"Content-Type", "application/json"}, ep.header...)...)
				switch {
				case ep.name != "login":
					wantProblem(t, what, res, 400, gen.ErrorCodeInvalidEmail)
				case a.email == "" || len([]rune(a.email)) > 254:
					// Login takes any text up to 254 characters.
					wantProblem(t, what, res, 400, gen.ErrorCodeValidationError)
				default:
					wantProblem(t, what, res, 400, gen.ErrorCodeInvalidCredentials)
				}
				e.unchanged(t, what, alice.id, before)
			}
		}
	})
}

func TestBadLinks(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		bob := e.newUser("bob@example.com")
		v := e.verifyLink("alice@example.com")
		e.requestChange(alice, "alice@new.example")
		c := e.changeLink("alice@new.example")
		bobKey := signer.EncodeUserID(bob.id)

		for _, l := range []mailedLink{v, c} {
			base := "/users/email-verify/"
			end := ""
			if l.kind != "verify" {
				base, end = "/users/email-set-primary/", "/"
			}
			tok, key := l.token, l.userKey
			cases := []struct{ name, token, key string }{
				{"a changed character", tok[:20] + flip(tok[20]) + tok[21:], key},
				{"truncated by one", tok[:len(tok)-1], key},
				{"truncated to half", tok[:len(tok)/2], key},
				{"one character more", tok + "A", key},
				{"the MAC dropped", tok[:strings.LastIndexByte(tok, '.')], key},
				{"another user's key", tok, bobKey},
				{"user key padded", tok, key + "="},
				{"user key with a leading zero", tok, base64.RawURLEncoding.EncodeToString([]byte("0" + strconv.FormatInt(alice.id, 10)))},
				{"user key of -1", tok, "LTE"},
				{"user key of 0", tok, "MA"},
				{"user key too long", tok, strings.Repeat("MT", 20)},
				{"user key garbage", tok, "!!!"},
				{"long token", strings.Repeat("A", 5000), key},
				{"binary token", "%00%FF%FE%01", key},
				{"binary key", tok, "%00%FF"},
				{"percent-encoded slash in the token", tok[:10] + "%2F" + tok[10:], key},
				{"percent-encoded slash in the key", tok, key + "%2F" + key},
				{"dots only", "...", key},
				{"version 2", "v2" + tok[2:], key},
				{"unicode", "v1.%C3%A9.%E2%80%AE", key},
			}
			for _, tc := range cases {
				path := base + tc.token + "/" + tc.key + end
				what := l.kind + " link, " + tc.name
				before := e.state(alice.id)
				wantProblem(t, what+" (POST)", e.do("POST", path, nil), 400, gen.ErrorCodeLinkInvalid)
				wantProblem(t, what+" (JSON GET)", e.do("GET", path, nil, "Accept", "application/json"), 400, gen.ErrorCodeLinkInvalid)
				wantHTMLPage(t, what+" (browser GET)", e.do("GET", path, nil, "Accept", browserAccept), 400, "", false)
				e.unchanged(t, what, alice.id, before)
			}
		}
		// The genuine links still work.
		if r, _ := e.anon.ConfirmEmailVerificationWithResponse(ctx, v.token, v.userKey); r.JSON200 == nil {
			t.Errorf("genuine verify link: %d %s", r.StatusCode(), r.Body)
		}
		if r, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, c.token, c.userKey); r.JSON200 == nil {
			t.Errorf("genuine set-primary link: %d %s", r.StatusCode(), r.Body)
		}
	})
}

// urlSafe is the alphabet of link tokens.
const urlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// flip returns another URL-safe character than c.
func flip(c byte) string {
	i := strings.IndexByte(urlSafe, c)
	return string(urlSafe[(i+1+len(urlSafe))%len(urlSafe)])
}

func TestSessionErrors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		second := e.login("alice@example.com")
		bob := e.newUser("bob@example.com")
		id := strconv.FormatInt(alice.id, 10)
		unknown := strings.Repeat("A", 43) // well-formed, names nothing
		add := mustJSON(gen.NewEmail{Email: "new@example.com"})

		cases := []struct {
			name   string
			header []string
			status int
			code   gen.ErrorCode
		}{
			{"no cookie", []string{"X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeNotAuthenticated},
			{"empty sessionid", []string{"Cookie", "sessionid=", "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeNotAuthenticated},
			{"only a csrftoken cookie", []string{"Cookie", "csrftoken=" + alice.csrf, "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeNotAuthenticated},
			{"two sessions of one user", []string{"Cookie", "sessionid=" + alice.sid + "; osessionid=" + second.sid, "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeSessionInvalid},
			{"sessions of two users", []string{"Cookie", "sessionid=" + alice.sid + "; osessionid=" + bob.sid, "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeSessionInvalid},
			{"osessionid unknown", []string{"Cookie", "sessionid=" + alice.sid + "; osessionid=" + unknown, "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeSessionInvalid},
			{"sessionid twice, differing", []string{"Cookie", "sessionid=" + alice.sid + "; sessionid=" + second.sid, "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeSessionInvalid},
			{"unknown session id", []string{"Cookie", "sessionid=" + unknown, "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeSessionInvalid},
			{"malformed session id", []string{"Cookie", "sessionid=x", "X-CSRFToken", alice.csrf}, 401, gen.ErrorCodeSessionInvalid},
			{"no CSRF header", []string{"Cookie", "sessionid=" + alice.sid}, 403, gen.ErrorCodeCsrfFailed},
			{"wrong CSRF header", []string{"Cookie", "sessionid=" + alice.sid, "X-CSRFToken", strings.Repeat("x", 43)}, 403, gen.ErrorCodeCsrfFailed},
			{"another user's id", alice.authHeaders(), 403, gen.ErrorCodeForbidden},
		}
		for _, tc := range cases {
			path := "/users/" + id + "/emails/"
			if tc.code == gen.ErrorCodeForbidden {
				path = "/users/" + strconv.FormatInt(bob.id, 10) + "/emails/"
			}
			before, bobBefore := e.state(alice.id), e.state(bob.id)
			res := e.do("POST", path, add, append([]string{"Content-Type", "application/json"}, tc.header...)...)
			wantProblem(t, "add, "+tc.name, res, tc.status, tc.code)
			if tc.code != gen.ErrorCodeCsrfFailed {
				res = e.do("GET", path, nil, tc.header...)
				wantProblem(t, "list, "+tc.name, res, tc.status, tc.code)
			}
			e.unchanged(t, tc.name, alice.id, before)
			e.unchanged(t, tc.name, bob.id, bobBefore)
		}
	})
}

func TestSessionExpiry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		policy := session.DefaultPolicy

		// Idle: unused for the idle limit.
		idle := e.newUser("idle@example.com")
		e.clock.Advance(policy.Idle - time.Second)
		wantStatus(t, "just before the idle limit", e.do("GET", "/auth/session/", nil, idle.authHeaders()...), 200)
		e.clock.Advance(policy.Idle)
		for i := range 2 { // and it stays so: an expired session does not turn "unknown"
			res := e.do("GET", "/auth/session/", nil, idle.authHeaders()...)
			wantProblem(t, "past the idle limit, request "+strconv.Itoa(i+1), res, 401, gen.ErrorCodeNotAuthenticated)
		}
		before := e.state(idle.id)
		res := e.do("POST", "/users/"+strconv.FormatInt(idle.id, 10)+"/emails/", mustJSON(gen.NewEmail{Email: "new@example.com"}),
			idle.authHeaders("Content-Type", "application/json")...)
		wantProblem(t, "add past the idle limit", res, 401, gen.ErrorCodeNotAuthenticated)
		e.unchanged(t, "add past the idle limit", idle.id, before)

		// Absolute: used regularly, it still ends after the absolute limit.
		busy := e.newUser("busy@example.com")
		start := e.clock.Now()
		step := policy.Idle - 10*time.Minute
		for e.clock.Now().Add(step).Before(start.Add(policy.Absolute)) {
			e.clock.Advance(step)
			res, _ := busy.GetSessionWithResponse(ctx)
			if res.JSON200 == nil {
				t.Fatalf("regular use at %v: %d %s", e.clock.Now().Sub(start), res.StatusCode(), res.Body)
			}
			if want := minTime(e.clock.Now().Add(policy.Idle), start.Add(policy.Absolute)); !res.JSON200.ExpiresAt.Equal(want) {
				t.Fatalf("expires_at at %v = %v; want %v", e.clock.Now().Sub(start), res.JSON200.ExpiresAt, want)
			}
		}
		e.clock.Advance(step)
		res2, _ := busy.GetSessionWithResponse(ctx)
		wantProblem(t, "past the absolute limit", res2, 401, gen.ErrorCodeNotAuthenticated)
	})
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
