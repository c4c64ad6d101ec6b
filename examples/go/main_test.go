package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/useremail/useremail/examples/internal/testserver"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestExample runs the example against a real server, twice: the second
// run finds the user and the address there already.
func TestExample(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		srv := testserver.Start(t, db)
		ctx := context.Background()
		var out bytes.Buffer
		if err := run(ctx, &out, srv.URL, "alice@example.com", "correct horse battery staple", "alice@work.example"); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		t.Logf("output:\n%s", out.String())
		m := regexp.MustCompile(`logged in: user (\d+),`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no user id in the output:\n%s", out.String())
		}
		user, _ := strconv.ParseInt(m[1], 10, 64)
		for _, want := range []string{
			"signed up: user " + m[1] + ", alice@example.com",
			"added: alice@work.example (id ",
			", verified false)",
			"alice@example.com              primary=true  verified=false",
			"alice@work.example             primary=false verified=false",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		// The address was really added, and its verification mailed.
		emails, err := db.EmailsByUser(ctx, user)
		if err != nil || len(emails) != 2 {
			t.Fatalf("store: %v %+v", err, emails)
		}
		sent, err := srv.Deliver(ctx)
		if err != nil {
			t.Fatal(err)
		}
		verify := 0
		for _, m := range sent {
			if m.Kind == "verify" && m.To == "alice@work.example" {
				verify++
			}
		}
		if verify != 1 {
			t.Errorf("%d verification mails to alice@work.example, want 1", verify)
		}

		out.Reset()
		if err := run(ctx, &out, srv.URL+"/", "alice@example.com", "correct horse battery staple", "alice@work.example"); err != nil {
			t.Fatalf("second run: %v\n%s", err, out.String())
		}
		for _, want := range []string{"signed up already", "added already"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("second run: output lacks %q:\n%s", want, out.String())
			}
		}

		// A wrong password is reported with the problem's code.
		err = run(ctx, &out, srv.URL, "alice@example.com", "not the password", "x@example.com")
		if err == nil || !strings.Contains(err.Error(), "invalid_credentials") {
			t.Errorf("wrong password: %v", err)
		}
	})
}
