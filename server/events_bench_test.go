package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkAddEmailEvents measures what events cost the add-email request:
// the same request on one database with events off (EventsOff, no event
// written) and on (the email.added event and its delivery to one
// endpoint, in the request's transaction). Compare on/off in one run.
func BenchmarkAddEmailEvents(b *testing.B) {
	seq := 0
	for _, dialect := range storetest.Dialects() {
		b.Run(string(dialect), func(b *testing.B) {
			db := storetest.Open(b, dialect)
			sign, err := signer.New([][]byte{testKey}, nil)
			if err != nil {
				b.Fatal(err)
			}
			add := map[string]func(){}
			for _, mode := range []string{"off", "on"} {
				cfg := server.Config{
					Logger:    slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
					DB:        db,
					Signer:    sign,
					Hasher:    password.NewHasher(cheapHash, 0),
					PublicURL: publicURL,
					Sessions:  session.DefaultPolicy,
					MaxEmails: 1 << 30,
					EventsOff: mode == "off",
				}
				if mode == "on" {
					cfg.WebhookEndpoints = []string{"https://app.example.com/hooks/useremail"}
				}
				srv, err := server.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				h := srv.Handler()
				do := func(method, path string, body []byte, header ...string) *httptest.ResponseRecorder {
					req := httptest.NewRequest(method, path, bytes.NewReader(body))
					for i := 0; i+1 < len(header); i += 2 {
						req.Header.Set(header[i], header[i+1])
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					return rec
				}
				email := "bench-events-" + mode + "@example.com"
				creds, _ := json.Marshal(gen.Credentials{Email: email, Password: goodPasswd})
				if rec := do("POST", "/users/", creds, "Content-Type", "application/json"); rec.Code != 201 {
					b.Fatalf("sign up: %d %s", rec.Code, rec.Body)
				}
				rec := do("POST", "/auth/login/", creds, "Content-Type", "application/json")
				var sess gen.Session
				if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &sess) != nil {
					b.Fatalf("login: %d %s", rec.Code, rec.Body)
				}
				var sid string
				for _, c := range rec.Result().Cookies() {
					if c.Name == session.Cookie {
						sid = c.Value
					}
				}
				cookie := "sessionid=" + sid + "; osessionid=" + sid + "; csrftoken=" + sess.CsrfToken
				path := "/users/" + strconv.FormatInt(sess.UserId, 10) + "/emails/"
				add[mode] = func() {
					seq++
					body, _ := json.Marshal(gen.NewEmail{Email: fmt.Sprintf("ev%d-%s@bench.example", seq, mode)})
					if rec := do("POST", path, body, "Cookie", cookie, "X-CSRFToken", sess.CsrfToken, "Content-Type", "application/json"); rec.Code != 201 {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				}
			}
			for _, mode := range []string{"off", "on"} {
				b.Run("events="+mode, func(b *testing.B) { loopCPU(b, add[mode]) })
			}
			// The two alternate within one loop, so that the load of a
			// shared machine and the growth of the tables fall on both.
			b.Run("alternating", func(b *testing.B) {
				var wall, cpu [2]time.Duration
				for b.Loop() {
					for i, mode := range []string{"off", "on"} {
						start, startCPU := time.Now(), cpuTime(b)
						add[mode]()
						wall[i] += time.Since(start)
						cpu[i] += cpuTime(b) - startCPU
					}
				}
				n := float64(b.N)
				b.ReportMetric(float64(wall[0])/n, "off-ns/op")
				b.ReportMetric(float64(wall[1])/n, "on-ns/op")
				b.ReportMetric(float64(cpu[0])/n, "off-cpu-ns/op")
				b.ReportMetric(float64(cpu[1])/n, "on-cpu-ns/op")
				b.ReportMetric(float64(wall[1])/float64(wall[0]), "on/off")
				b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "on/off-cpu")
			})
		})
	}
}
