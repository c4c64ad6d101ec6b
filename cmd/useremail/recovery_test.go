package main

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/server/servertest"
	"github.com/useremail/useremail/store/storetest"
)

var resetLinkPattern = regexp.MustCompile(regexp.QuoteMeta(publicURL) + `/auth/password-reset/([A-Za-z0-9_-]+)/([A-Za-z0-9_.-]+)/`)

// TestRecoveryOverSMTP runs the recovery flows in a Main as serve runs it,
// with its mail through a real SMTP server: a reset link arrives by mail
// and sets the password, and a deletion's notice arrives once, after the
// account and its unsent mail are gone.
func TestRecoveryOverSMTP(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			sink := smtptest.Start(t, smtptest.Options{})
			cfg, err := loadConfig(getenv(serveEnv(databaseURL(t, d), sink)))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg, &lockedBuffer{})
			t.Cleanup(func() { m.Close() })
			if err := m.Open(ctx); err != nil {
				t.Fatalf("Open: %v", err)
			}
			runCtx, stop := context.WithCancel(ctx)
			ran := make(chan error, 1)
			go func() { ran <- m.Run(runCtx) }()
			t.Cleanup(func() {
				stop()
				<-ran
				_ = m.Shutdown()
			})
			jar, _ := cookiejar.New(nil)
			client, err := gen.NewClientWithResponses("http://"+m.Addr(), gen.WithHTTPClient(&http.Client{Jar: jar, Transport: &servertest.Validator{T: t}}))
			if err != nil {
				t.Fatal(err)
			}

			if r, err := client.SignUpWithResponse(ctx, gen.NewUser{Email: "ann@example.com", Password: testPassword}); err != nil || r.JSON201 == nil {
				t.Fatalf("sign-up: %v %v", r, err)
			}
			for _, addr := range []string{"ann@example.com", "nobody@example.com"} {
				if r, err := client.RequestPasswordResetWithResponse(ctx, gen.PasswordResetStart{Email: addr}); err != nil || r.StatusCode() != 202 {
					t.Fatalf("reset of %s: %v %v", addr, r, err)
				}
			}
			mails := sink.Wait(t, 2, 30*time.Second)
			var match []string
			for _, msg := range mails {
				if strings.Contains(msg.Data, "Subject: [useremail] Reset your password") {
					if len(msg.To) != 1 || msg.To[0] != "ann@example.com" {
						t.Fatalf("the reset mail went to %v", msg.To)
					}
					match = resetLinkPattern.FindStringSubmatch(strings.ReplaceAll(msg.Data, "=\r\n", ""))
				}
			}
			if match == nil {
				t.Fatalf("no reset link in the mails:\n%v", mails)
			}
			const fresh = "purple monkey dishwasher lamp"
			if r, err := client.ConfirmPasswordResetWithResponse(ctx, match[1], match[2], gen.NewPassword{Password: fresh}); err != nil || r.StatusCode() != 204 {
				t.Fatalf("the mailed reset link: %v %v", r, err)
			}
			login, err := client.LoginWithResponse(ctx, gen.Credentials{Email: "ann@example.com", Password: fresh})
			if err != nil || login.JSON200 == nil {
				t.Fatalf("login with the new password: %v %v", login, err)
			}
			sink.Wait(t, 3, 30*time.Second) // the password_changed notice

			csrf := func(_ context.Context, r *http.Request) error {
				r.Header.Set("X-CSRFToken", login.JSON200.CsrfToken)
				return nil
			}
			del, err := client.DeleteAccountWithResponse(ctx, login.JSON200.UserId, gen.AccountDeletion{Password: fresh}, csrf)
			if err != nil || del.StatusCode() != 204 {
				t.Fatalf("delete: %v %v", del, err)
			}
			all := sink.Wait(t, 4, 30*time.Second)
			if last := all[len(all)-1]; len(last.To) != 1 || last.To[0] != "ann@example.com" || !strings.Contains(last.Data, "Your account was deleted") {
				t.Errorf("the last mail: to %v\n%.300s", last.To, last.Data)
			}
			waitOutboxSent(t, m.DB, 30*time.Second)
			if n := len(sink.Mails()); n != 4 {
				t.Errorf("%d mails; want 4, each once", n)
			}
		})
	}
}
