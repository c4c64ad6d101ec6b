package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkRequests measures the service's own cost per request, in process
// (no network, no load generator): the middleware, the validation against
// the spec, the handler, the store and the request log, as the hot
// endpoints meet them. It complements go run ./bench, whose ratios are
// noisy on a shared machine; allocs/op here are exact.
func BenchmarkRequests(b *testing.B) {
	benchSeq := 0 // makes every added address new, across runs on one database
	for _, dialect := range storetest.Dialects() {
		b.Run(string(dialect), func(b *testing.B) {
			db := storetest.Open(b, dialect)
			sign, err := signer.New([][]byte{testKey}, nil)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := server.New(server.Config{
				// The request log as in production: JSON, one line per request.
				Logger:    slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
				DB:        db,
				Signer:    sign,
				Hasher:    password.NewHasher(cheapHash, 0),
				PublicURL: publicURL,
				Sessions:  session.DefaultPolicy,
				MaxEmails: 1 << 30,
			})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.Handler()
			do := func(method, path string, body []byte, header ...string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(method, path, bytes.NewReader(body))
				if body == nil {
					req = httptest.NewRequest(method, path, nil)
				}
				for i := 0; i+1 < len(header); i += 2 {
					req.Header.Set(header[i], header[i+1])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			jsonBody := func(v any) []byte {
				data, _ := json.Marshal(v)
				return data
			}
			if rec := do("POST", "/users/", jsonBody(gen.NewUser{Email: "bench@example.com", Password: goodPasswd}), "Content-Type", "application/json"); rec.Code != 201 {
				b.Fatalf("sign up: %d %s", rec.Code, rec.Body)
			}
			rec := do("POST", "/auth/login/", jsonBody(gen.Credentials{Email: "bench@example.com", Password: goodPasswd}), "Content-Type", "application/json")
			if rec.Code != 200 {
				b.Fatalf("login: %d %s", rec.Code, rec.Body)
			}
			var sess gen.Session
			if err := json.Unmarshal(rec.Body.Bytes(), &sess); err != nil {
				b.Fatal(err)
			}
			var sid string
			for _, c := range rec.Result().Cookies() {
				if c.Name == session.Cookie {
					sid = c.Value
				}
			}
			cookie := "sessionid=" + sid + "; osessionid=" + sid + "; csrftoken=" + sess.CsrfToken
			id := strconv.FormatInt(sess.UserId, 10)

			b.Run("list", func(b *testing.B) {
				loopCPU(b, func() {
					if rec := do("GET", "/users/"+id+"/emails/", nil, "Cookie", cookie); rec.Code != 200 {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				})
			})
			b.Run("primary", func(b *testing.B) {
				loopCPU(b, func() {
					if rec := do("GET", "/users/"+id+"/primary-email/", nil, "Cookie", cookie); rec.Code != 200 {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				})
			})
			// The account page: two API calls in process, a read of the
			// user's language and the page's rendering.
			b.Run("account_page", func(b *testing.B) {
				loopCPU(b, func() {
					if rec := do("GET", "/account/", nil, "Cookie", cookie); rec.Code != 200 {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				})
			})
			b.Run("add", func(b *testing.B) {
				loopCPU(b, func() {
					benchSeq++
					body := jsonBody(gen.NewEmail{Email: fmt.Sprintf("add%d@bench.example", benchSeq)})
					rec := do("POST", "/users/"+id+"/emails/", body, "Cookie", cookie, "X-CSRFToken", sess.CsrfToken, "Content-Type", "application/json")
					if rec.Code != 201 {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				})
			})
			b.Run("verify", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					benchSeq++
					b.StopTimer()
					addr := fmt.Sprintf("verify%d@bench.example", benchSeq)
					body := jsonBody(gen.NewEmail{Email: addr})
					rec := do("POST", "/users/"+id+"/emails/", body, "Cookie", cookie, "X-CSRFToken", sess.CsrfToken, "Content-Type", "application/json")
					var e gen.Email
					if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &e) != nil {
						b.Fatalf("add: %d %s", rec.Code, rec.Body)
					}
					token, err := sign.Sign(signer.Claims{Purpose: signer.PurposeVerify, UserID: sess.UserId, Email: addr, State: e.Id})
					if err != nil {
						b.Fatal(err)
					}
					path := "/users/email-verify/" + token + "/" + signer.EncodeUserID(sess.UserId)
					b.StartTimer()
					if rec := do("POST", path, nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"verified":true`) {
						b.Fatalf("verify: %d %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}

// cpuTime is the CPU time the process has used so far, in all its threads.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopCPU runs op in a b.Loop and reports, besides the wall time, the
// process's CPU time per op (the garbage collector's included): on a
// machine shared with other work it moves less than the wall time.
func loopCPU(b *testing.B, op func()) {
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkPipeline measures the request pipeline alone, on requests that
// reach no database: the facts and the log line (healthz), the security
// check (a malformed session cookie, 401), and the validation and its field
// errors (a sign-up body the spec refuses, 400).
func BenchmarkPipeline(b *testing.B) {
	sign, err := signer.New([][]byte{testKey}, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Logger:    slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
		DB:        storetest.Open(b, store.SQLite),
		Signer:    sign,
		Hasher:    password.NewHasher(cheapHash, 0),
		PublicURL: publicURL,
	})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, bc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
	}{
		{"healthz", "GET", "/healthz", "", nil, 200},
		{"refused", "GET", "/users/1/emails/", "", []string{"Cookie", "sessionid=x; csrftoken=y"}, 401},
		{"invalid", "POST", "/users/", `{"email":"ann@example.com","admin":true}`, []string{"Content-Type", "application/json"}, 400},
	} {
		b.Run(bc.name, func(b *testing.B) {
			loopCPU(b, func() {
				var body io.Reader
				if bc.body != "" {
					body = strings.NewReader(bc.body)
				}
				req := httptest.NewRequest(bc.method, bc.path, body)
				for i := 0; i+1 < len(bc.header); i += 2 {
					req.Header.Set(bc.header[i], bc.header[i+1])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != bc.status {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			})
		})
	}
}

// BenchmarkLoginFailurePaths times login's two failures through the
// handler, on each store: a wrong password for an address with an account,
// and an address without one, one right after the other and which goes
// first alternating, so that the machine's load falls on both alike. The
// hash is cheap, so that the database work, where the paths once differed,
// decides the time. It reports each path's median and the median of the
// pairs' ratios. The limits are on, as in production; the clock moves a
// minute between pairs, so that they never refuse.
func BenchmarkLoginFailurePaths(b *testing.B) {
	for _, dialect := range storetest.Dialects() {
		b.Run(string(dialect), func(b *testing.B) {
			sign, err := signer.New([][]byte{testKey}, nil)
			if err != nil {
				b.Fatal(err)
			}
			now := t0
			srv, err := server.New(server.Config{
				Logger:     slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
				DB:         storetest.Open(b, dialect),
				Signer:     sign,
				Hasher:     password.NewHasher(cheapHash, 0),
				PublicURL:  publicURL,
				RateLimits: true,
				Now:        func() time.Time { return now },
			})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.Handler()
			login := func(addr string, status int) func() time.Duration {
				body := fmt.Sprintf(`{"email":%q,"password":"a wrong password"}`, addr)
				return func() time.Duration {
					req := httptest.NewRequest("POST", "/auth/login/", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					start := time.Now()
					h.ServeHTTP(rec, req)
					took := time.Since(start)
					if rec.Code != status {
						b.Fatalf("login as %s: %d %s", addr, rec.Code, rec.Body)
					}
					return took
				}
			}
			req := httptest.NewRequest("POST", "/users/", strings.NewReader(`{"email":"alice@example.com","password":"`+goodPasswd+`"}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 201 {
				b.Fatalf("sign up: %d %s", rec.Code, rec.Body)
			}
			knownPath, unknownPath := login("alice@example.com", 400), login("nobody@example.com", 400)
			var known, unknown []time.Duration
			var ratios []float64
			i := 0
			for b.Loop() {
				now = now.Add(time.Minute)
				var k, u time.Duration
				if i%2 == 0 {
					k, u = knownPath(), unknownPath()
				} else {
					u, k = unknownPath(), knownPath()
				}
				i++
				known, unknown = append(known, k), append(unknown, u)
				ratios = append(ratios, float64(u)/float64(k))
			}
			slices.Sort(known)
			slices.Sort(unknown)
			slices.Sort(ratios)
			b.ReportMetric(float64(known[len(known)/2].Nanoseconds()), "known-ns/login")
			b.ReportMetric(float64(unknown[len(unknown)/2].Nanoseconds()), "unknown-ns/login")
			b.ReportMetric(ratios[len(ratios)/2], "unknown/known")
		})
	}
}

// BenchmarkPasswordResetPaths times POST /auth/password-reset/ for an
// address a user holds and for one nobody holds, in alternating order:
// the answers are the same, and so must be the work, or the time would
// tell which addresses have accounts. The known path queues a reset mail
// every time (the clock moves past the resend interval and within every
// limit between pairs). It reports each path's median and the median of
// the pairs' ratios; run it with -benchtime 1000x for 1,000 requests each.
func BenchmarkPasswordResetPaths(b *testing.B) {
	for _, dialect := range storetest.Dialects() {
		b.Run(string(dialect), func(b *testing.B) {
			sign, err := signer.New([][]byte{testKey}, nil)
			if err != nil {
				b.Fatal(err)
			}
			now := t0
			db := storetest.Open(b, dialect)
			srv, err := server.New(server.Config{
				Logger:         slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
				DB:             db,
				Signer:         sign,
				Hasher:         password.NewHasher(cheapHash, 0),
				PublicURL:      publicURL,
				RateLimits:     true,
				ResendInterval: 3 * time.Minute,
				Notices:        true,
				Now:            func() time.Time { return now },
			})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.Handler()
			reset := func(addr string) func() time.Duration {
				body := fmt.Sprintf(`{"email":%q}`, addr)
				return func() time.Duration {
					req := httptest.NewRequest("POST", "/auth/password-reset/", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					start := time.Now()
					h.ServeHTTP(rec, req)
					took := time.Since(start)
					if rec.Code != 202 || rec.Body.Len() != 0 {
						b.Fatalf("reset of %s: %d %s", addr, rec.Code, rec.Body)
					}
					return took
				}
			}
			req := httptest.NewRequest("POST", "/users/", strings.NewReader(`{"email":"alice@example.com","password":"`+goodPasswd+`"}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 201 {
				b.Fatalf("sign up: %d %s", rec.Code, rec.Body)
			}
			knownPath, unknownPath := reset("alice@example.com"), reset("nobody@example.com")
			var known, unknown []time.Duration
			var ratios []float64
			i := 0
			for b.Loop() {
				now = now.Add(5 * time.Minute)
				var k, u time.Duration
				if i%2 == 0 {
					k, u = knownPath(), unknownPath()
				} else {
					u, k = unknownPath(), knownPath()
				}
				i++
				known, unknown = append(known, k), append(unknown, u)
				ratios = append(ratios, float64(u)/float64(k))
			}
			b.StopTimer()
			var mails int64
			if err := db.SQL().GetContext(ctx, &mails, `SELECT COUNT(*) FROM outbox WHERE kind = 'password_reset'`); err != nil || mails != int64(i) {
				b.Fatalf("%d reset mails queued for %d requests of the known address (%v)", mails, i, err)
			}
			slices.Sort(known)
			slices.Sort(unknown)
			slices.Sort(ratios)
			b.ReportMetric(float64(known[len(known)/2].Nanoseconds()), "known-ns/req")
			b.ReportMetric(float64(unknown[len(unknown)/2].Nanoseconds()), "unknown-ns/req")
			b.ReportMetric(float64(unknown[len(unknown)/2])/float64(known[len(known)/2]), "median-unknown/known")
			b.ReportMetric(ratios[len(ratios)/2], "unknown/known")
		})
	}
}
