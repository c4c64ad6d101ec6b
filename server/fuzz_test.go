package server_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/server/servertest"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// fuzzRoutes are the link routes the fuzzer picks from; the reset link
// takes the user key first (Django's order) and a new password.
var fuzzRoutes = []struct {
	base, end string
	keyFirst  bool
}{
	{"/users/email-verify/", "", false},
	{"/users/email-set-primary/", "/", false},
	{"/auth/password-reset/", "/", true},
}

// fuzzMethods are the methods the fuzzer picks from: the link routes'
// own, and others that must get 405.
var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// FuzzLinkEndpoints drives the six link routes (GET and POST of
// email-verify, email-set-primary and password-reset) with fuzzed tokens, user keys,
// methods, Accept headers and form posts, on one SQLite store for the whole
// run. Whatever comes in, the answer is 200, 204, 400, 404 or 405, never a 5xx,
// with a JSON, problem or HTML body that matches openapi.yaml.
func FuzzLinkEndpoints(f *testing.F) {
	db := storetest.Open(f, store.SQLite)
	clock := servertest.NewClock(t0)
	sign, err := signer.New([][]byte{testKey}, clock.Now)
	if err != nil {
		f.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Config{
		Logger: logger, DB: db, Signer: sign, Hasher: password.NewHasher(cheapHash, 0),
		PublicURL: publicURL, Sessions: session.DefaultPolicy, Notices: true, Now: clock.Now,
	})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	sender := &captureSender{}
	disp, err := mail.NewDispatcher(mail.Config{DB: db, Signer: sign, Sender: sender, PublicURL: publicURL, Now: clock.Now, Logger: logger})
	if err != nil {
		f.Fatal(err)
	}

	// Seeds: the genuine links of a user, and mutations of them.
	serve := func(method, target string, body []byte, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, bytes.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := serve("POST", "/users/", mustJSON(gen.NewUser{Email: "alice@example.com", Password: goodPasswd}), "Content-Type", "application/json"); rec.Code != 201 {
		f.Fatalf("sign up: %d %s", rec.Code, rec.Body)
	}
	login := serve("POST", "/auth/login/", mustJSON(gen.Credentials{Email: "alice@example.com", Password: goodPasswd}), "Content-Type", "application/json")
	var cookies []string
	var csrf string
	for _, c := range login.Result().Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
		if c.Name == session.CSRFCookie {
			csrf = c.Value
		}
	}
	auth := []string{"Cookie", strings.Join(cookies, "; "), "X-CSRFToken", csrf, "Content-Type", "application/json"}
	if rec := serve("POST", "/users/1/emails/", mustJSON(gen.NewEmail{Email: "alice@work.example"}), auth...); rec.Code != 201 {
		f.Fatalf("add: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("POST", "/users/1/email-change/", mustJSON(gen.EmailChange{NewEmail: "alice@new.example", Password: goodPasswd}), auth...); rec.Code != 204 {
		f.Fatalf("change: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("POST", "/auth/password-reset/", mustJSON(gen.PasswordResetStart{Email: "alice@example.com"}), "Content-Type", "application/json"); rec.Code != 202 {
		f.Fatalf("reset: %d %s", rec.Code, rec.Body)
	}
	for {
		n, err := disp.RunOnce(ctx)
		if err != nil {
			f.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var links [][2]string
	for _, m := range sender.all() {
		for _, l := range m.Links {
			parts := strings.Split(strings.Trim(strings.TrimPrefix(l, publicURL), "/"), "/")
			if m.Kind == mail.KindPasswordReset {
				parts[2], parts[3] = parts[3], parts[2]
			}
			links = append(links, [2]string{parts[2], parts[3]})
		}
	}
	if len(links) != 4 {
		f.Fatalf("%d links mailed; want 4", len(links))
	}
	for _, l := range links {
		tok, key := l[0], l[1]
		for route := range len(fuzzRoutes) {
			for method := range 2 {
				for _, accept := range []string{"", "application/json", browserAccept} {
					f.Add(uint8(route), uint8(method), tok, key, accept, false)
				}
				f.Add(uint8(route), uint8(method), tok, key, "", true)
			}
		}
		f.Add(uint8(0), uint8(1), tok[:len(tok)-1], key, "", false)
		f.Add(uint8(1), uint8(1), tok[:len(tok)/2], key, "application/json", false)
		f.Add(uint8(0), uint8(0), tok+"A", key, "application/json", false)
		f.Add(uint8(0), uint8(1), tok, key+"=", "", false)
		f.Add(uint8(1), uint8(0), tok[:8]+"/"+tok[8:], key, browserAccept, false)
		f.Add(uint8(1), uint8(2), tok, key, "", false)
		f.Add(uint8(0), uint8(5), tok, key, "application/json", false)
		f.Add(uint8(2), uint8(1), tok, key, "application/json", false)
		f.Add(uint8(2), uint8(1), tok[:len(tok)-2], key, browserAccept, true)
		f.Add(uint8(2), uint8(0), key, tok, "application/json", false)
	}
	f.Add(uint8(0), uint8(1), "", "", "", false)
	f.Add(uint8(1), uint8(0), "v1...", "MQ", "application/json;q=0.9, text/html;q=0.9", false)
	f.Add(uint8(0), uint8(0), "\x00\xff", "\xfe", "*/*", true)
	f.Add(uint8(1), uint8(1), strings.Repeat("A", 3000), "MQ", "application/json", false)

	f.Fuzz(func(t *testing.T, route, method uint8, token, key, accept string, form bool) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		first, second := token, key
		if r.keyFirst {
			first, second = key, token
		}
		target := r.base + url.PathEscape(first) + "/" + url.PathEscape(second) + r.end
		var body io.Reader
		switch {
		case form && r.keyFirst:
			body = strings.NewReader(url.Values{"password": {token}, "password2": {key}}.Encode())
		case form:
			body = strings.NewReader("")
		case r.keyFirst:
			body = bytes.NewReader(mustJSON(gen.NewPassword{Password: key + token}))
		}
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], target, body)
		if err != nil {
			t.Skip()
		}
		req.Host = "useremail.test"
		req.RemoteAddr = "192.0.2.1:1234"
		if accept != "" {
			req.Header["Accept"] = []string{accept}
		}
		if form {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		clock.Advance(time.Second)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		switch res.StatusCode {
		case 200, 204, 400, 404, 405:
		default:
			t.Fatalf("%s %s (Accept %q, form %v): status %d %s", req.Method, target, accept, form, res.StatusCode, rec.Body)
		}
		ct := res.Header.Get("Content-Type")
		switch {
		case ct == "application/problem+json", strings.HasPrefix(ct, "text/html"):
		case ct == "application/json" && res.StatusCode == 200:
		case ct == "" && res.StatusCode == 204:
		default:
			t.Fatalf("%s %s: %d with Content-Type %q", req.Method, target, res.StatusCode, ct)
		}
		if err := servertest.ValidateResponse(req, res, rec.Body.Bytes()); err != nil {
			t.Fatalf("%s %s (Accept %q, form %v) -> %d: response does not match openapi.yaml: %v\n%.300s",
				req.Method, target, accept, form, res.StatusCode, err, rec.Body)
		}
	})
}
