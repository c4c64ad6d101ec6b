package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// logBuffer collects log output from concurrent handlers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsHoldNoSecrets runs every flow with the server and the mail
// dispatcher logging to one buffer at Debug level, and checks that no
// password, session id, CSRF token, link token or link path reached it.
func TestLogsHoldNoSecrets(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var buf logBuffer
		for _, format := range []string{"json", "text"} {
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			var h slog.Handler = slog.NewJSONHandler(&buf, opts)
			if format == "text" {
				h = slog.NewTextHandler(&buf, opts)
			}
			e := newEnv(t, db, withLogger(slog.New(h)))
			secrets := []string{goodPasswd, "wrong horse battery staple"}

			local := "alice." + format
			alice := e.newUser(local + "@example.com")
			secrets = append(secrets, alice.sid, alice.csrf)
			v := e.verifyLink(local + "@example.com")
			e.do("GET", linkPath(v), nil, "Accept", browserAccept)
			e.confirmVerify(local + "@example.com")
			e.addEmail(alice, local+"@work.example")
			w := e.verifyLink(local + "@work.example")
			e.do("POST", linkPath(w), []byte{}, "Content-Type", "application/x-www-form-urlencoded")
			e.requestChange(alice, local+"@new.example")
			c := e.changeLink(local + "@new.example")
			e.do("GET", linkPath(c), nil)
			if r, _ := e.anon.ShowPrimaryEmailChangeWithResponse(ctx, c.token, c.userKey, withHeaders("Accept", "application/json")); r.JSON200 == nil {
				t.Fatalf("set primary: %d %s", r.StatusCode(), r.Body)
			}
			// Failures log too: a used link, a tampered one, a CSRF failure,
			// a wrong password, a failed login.
			e.do("POST", linkPath(c), nil)
			e.do("GET", strings.Replace(linkPath(v), v.token, v.token[:len(v.token)-2], 1), nil, "Accept", browserAccept)
			e.do("POST", "/auth/logout/", nil, "Cookie", "sessionid="+alice.sid, "X-CSRFToken", "wrong")
			alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: local + "@other.example", Password: "wrong horse battery staple"})
			second := e.login(local + "@new.example")
			secrets = append(secrets, second.sid, second.csrf)
			if r, _ := alice.LogoutWithResponse(ctx); r.StatusCode() != 204 {
				t.Fatalf("logout: %d %s", r.StatusCode(), r.Body)
			}
			e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: local + "@new.example", Password: "wrong horse battery staple"})
			e.do("GET", "/auth/session/", nil, "Cookie", "sessionid="+alice.sid)
			e.deliver()

			for _, m := range e.outbox.all() {
				for _, l := range m.Links {
					ml := mailedLink{url: l}
					parts := strings.Split(strings.Trim(strings.TrimPrefix(l, publicURL), "/"), "/")
					secrets = append(secrets, parts[2], linkPath(ml), l)
				}
			}
			out := buf.String()
			if !strings.Contains(out, "request") || !strings.Contains(out, "mail: sent") {
				t.Fatalf("%s: the log holds no request or mail records:\n%.2000s", format, out)
			}
			for _, s := range secrets {
				if s != "" && strings.Contains(out, s) {
					t.Errorf("%s: the log holds a secret %.60q:\n%s", format, s, excerpt(out, s))
				}
			}
			// No record of a link route carries the path itself.
			if strings.Contains(out, "/users/email-verify/v1.") || strings.Contains(out, "/users/email-set-primary/v1.") {
				t.Errorf("%s: the log holds a link path", format)
			}
		}
	})
}

// excerpt returns the line of out that holds s.
func excerpt(out, s string) string {
	i := strings.Index(out, s)
	start := strings.LastIndexByte(out[:i], '\n') + 1
	end := strings.IndexByte(out[i:], '\n')
	if end < 0 {
		return out[start:]
	}
	return out[start : i+end]
}
