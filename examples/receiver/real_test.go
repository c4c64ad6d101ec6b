package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/useremail/useremail/examples/internal/testserver"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestReceiverOfRealDeliveries: the example receiver verifies and applies
// the events a real useremail server delivers, on both stores.
func TestReceiverOfRealDeliveries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var mu sync.Mutex
		var applied []string
		r, err := NewReceiver([]string{testserver.WebhookSecret}, func(e Event) error {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, fmt.Sprintf("%s#%d", e.Type, e.Data.Sequence))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		hooks := httptest.NewServer(r)
		t.Cleanup(hooks.Close)
		srv := testserver.Start(t, db, func(c *server.Config) { c.WebhookEndpoints = []string{hooks.URL + "/hooks/useremail"} })

		ctx := context.Background()
		jar, _ := cookiejar.New(nil)
		var csrf string
		c, err := gen.NewClientWithResponses(srv.URL, gen.WithHTTPClient(&http.Client{Jar: jar}),
			gen.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
				req.Header.Set("X-CSRFToken", csrf)
				return nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		const pw = "correct horse battery staple"
		if res, err := c.SignUpWithResponse(ctx, gen.NewUser{Email: "recv@example.com", Password: pw}); err != nil || res.JSON201 == nil {
			t.Fatalf("sign up: %v %s", err, res.Body)
		}
		login, err := c.LoginWithResponse(ctx, gen.Credentials{Email: "recv@example.com", Password: pw})
		if err != nil || login.JSON200 == nil {
			t.Fatalf("login: %v %s", err, login.Body)
		}
		csrf = login.JSON200.CsrfToken
		if res, err := c.AddEmailWithResponse(ctx, login.JSON200.UserId, gen.NewEmail{Email: "recv-2@example.com"}); err != nil || res.JSON201 == nil {
			t.Fatalf("add: %v %s", err, res.Body)
		}
		if _, err := srv.Deliver(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := fmt.Sprint(applied); got != "[user.created#1 email.added#2]" {
			t.Errorf("applied %s", got)
		}
	})
}
