package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store/storetest"
)

// TestMainInProcess starts a Main in the test's own process on
// 127.0.0.1:0, as useremail serve does: it migrates, answers the generated
// client, delivers the mail a sign-up queued, and once ctx ends Shutdown
// drains it and closes the listener.
func TestMainInProcess(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := databaseURL(t, d)
			sink := smtptest.Start(t, smtptest.Options{})
			cfg, err := loadConfig(getenv(serveEnv(url, sink)))
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
			ready, err := client.GetReadinessWithResponse(context.Background())
			if err != nil || ready.StatusCode() != http.StatusOK {
				t.Fatalf("/readyz: %v %v", ready, err)
			}
			created, err := client.SignUpWithResponse(context.Background(), gen.SignUpJSONRequestBody{Email: "ann@example.com", Password: testPassword})
			if err != nil || created.JSON201 == nil {
				t.Fatalf("sign-up: %v %v", created, err)
			}
			if mails := sink.Wait(t, 1, 30*time.Second); len(mails[0].To) != 1 || mails[0].To[0] != "ann@example.com" {
				t.Errorf("the verification mail went to %v", mails[0].To)
			}

			stop()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := m.Shutdown(); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if _, err := net.DialTimeout("tcp", m.Addr(), 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dialing the API after Shutdown: %v, want connection refused", err)
			}
			waitOutboxSent(t, m.DB, 0)
			for _, msg := range []string{`"msg":"serving"`, `"msg":"shutting down"`, `"msg":"stopped"`} {
				if !strings.Contains(logs.String(), msg) {
					t.Errorf("no %s log record:\n%s", msg, logs.String())
				}
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// TestMainNoMigrate: with NoMigrate, Open refuses a database without the
// schema and creates no table; once migrated, it opens it.
func TestMainNoMigrate(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := databaseURL(t, d)
			cfg, err := loadConfig(getenv(serveEnv(url, nil)))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg, &lockedBuffer{})
			m.NoMigrate = true
			err = m.Open(context.Background())
			var se schemaError
			if !errors.As(err, &se) {
				t.Errorf("Open without the schema: %v, want a schemaError", err)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}

			db := openDB(t, url)
			if pending, err := db.PendingMigrations(context.Background()); err != nil || !pending {
				t.Fatalf("after the refused Open: PendingMigrations = %v, %v; want the schema still missing", pending, err)
			}
			if _, err := db.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			m = NewMain(cfg, &lockedBuffer{})
			m.NoMigrate = true
			if err := m.Open(context.Background()); err != nil {
				t.Errorf("Open of a migrated database: %v", err)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}
