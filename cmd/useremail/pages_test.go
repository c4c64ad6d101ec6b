package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store/storetest"
)

// TestServeTemplateDir: serve refuses a broken template of
// USEREMAIL_TEMPLATE_DIR at start, naming its file and line; with good
// ones it serves them, and brands pages and mails with
// USEREMAIL_BRAND_NAME. A sign-up's mail goes in the browser's language,
// with Content-Language.
func TestServeTemplateDir(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			dir := t.TempDir()
			for _, sub := range []string{"pages", "mail"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			broken := filepath.Join(dir, "pages", "login.html")
			if err := os.WriteFile(broken, []byte("{{define \"content\"}}\n<h1>{{.Nope}</h1>\n{{end}}"), 0o644); err != nil {
				t.Fatal(err)
			}
			sink := smtptest.Start(t, smtptest.Options{})
			env := serveEnv(databaseURL(t, d), sink)
			env["USEREMAIL_TEMPLATE_DIR"] = dir
			env["USEREMAIL_BRAND_NAME"] = "ACME Accounts"
			env["USEREMAIL_APP_URL"] = "https://app.example.com/"
			cfg, err := loadConfig(getenv(env))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg, io.Discard)
			err = m.Open(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), broken+":2") {
				t.Fatalf("Open with a broken template: %v; want it to name %s:2", err, broken)
			}

			if err := os.WriteFile(broken, []byte(`{{define "content"}}<h1>ACME sign-in</h1>{{end}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			m = NewMain(cfg, io.Discard)
			t.Cleanup(func() { m.Close() })
			if err := m.Open(context.Background()); err != nil {
				t.Fatalf("Open: %v", err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			ran := make(chan error, 1)
			go func() { ran <- m.Run(ctx) }()

			res, err := http.Get("http://" + m.Addr() + "/account/login/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(string(body), "<h1>ACME sign-in</h1>") || !strings.Contains(string(body), "· ACME Accounts</title>") {
				t.Fatalf("login page: %d\n%s", res.StatusCode, body)
			}

			client, err := gen.NewClientWithResponses("http://"+m.Addr(), gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
				r.Header.Set("Accept-Language", "fr-FR, fr;q=0.9")
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			if created, err := client.SignUpWithResponse(context.Background(), gen.SignUpJSONRequestBody{Email: "amy@example.com", Password: testPassword}); err != nil || created.JSON201 == nil {
				t.Fatalf("sign-up: %v %v", created, err)
			}
			mails := sink.Wait(t, 1, 30*time.Second)
			data := mails[0].Data
			for _, want := range []string{"Content-Language: fr", "ACME Accounts", "Confirmez votre adresse e-mail"} {
				if !strings.Contains(data, want) {
					t.Errorf("the sign-up mail lacks %q:\n%s", want, data)
				}
			}
			stop()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// TestServeDevMailbox: in dev mode without SMTP the mail goes to the dev
// mailbox, whose URL the serving line prints; outside dev mode it is 404.
func TestServeDevMailbox(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			env := serveEnv(databaseURL(t, d), nil)
			env["USEREMAIL_DEV"] = "true"
			env["USEREMAIL_SMTP_URL"] = ""
			cfg, err := loadConfig(getenv(env))
			if err != nil {
				t.Fatal(err)
			}
			var logs lockedBuffer
			m := NewMain(cfg, &logs)
			t.Cleanup(func() { m.Close() })
			if err := m.Open(context.Background()); err != nil {
				t.Fatalf("Open: %v", err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			ran := make(chan error, 1)
			go func() { ran <- m.Run(ctx) }()
			client, err := gen.NewClientWithResponses("http://" + m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if created, err := client.SignUpWithResponse(context.Background(), gen.SignUpJSONRequestBody{Email: "dev@example.com", Password: testPassword}); err != nil || created.JSON201 == nil {
				t.Fatalf("sign-up: %v %v", created, err)
			}
			var body string
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				res, err := http.Get("http://" + m.Addr() + "/dev/mailbox.json")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if body = string(b); res.StatusCode == 200 && strings.Contains(body, "dev@example.com") {
					break
				}
			}
			if !strings.Contains(body, `"kind":"verify"`) || !strings.Contains(body, publicURL+"/users/email-verify/") {
				t.Fatalf("the dev mailbox has no verify mail: %s", body)
			}
			if !strings.Contains(logs.String(), `"mailbox":"`+publicURL+`/dev/mailbox/"`) {
				t.Errorf("the serving line does not print the mailbox:\n%s", logs.String())
			}
			stop()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}
