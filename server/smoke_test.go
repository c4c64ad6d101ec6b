package server_test

import (
	"testing"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

func TestSmoke(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		list, err := alice.ListEmailsWithResponse(ctx, alice.id)
		if err != nil || list.JSON200 == nil || len(*list.JSON200) != 1 {
			t.Fatalf("list: %v %d %s", err, list.StatusCode(), list.Body)
		}
		add, err := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: "alice@work.example"})
		if err != nil || add.JSON201 == nil {
			t.Fatalf("add: %v %d %s", err, add.StatusCode(), add.Body)
		}
		dup, _ := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: "ALICE@work.example"})
		if problemCode(dup.ApplicationproblemJSON400) != gen.ErrorCodeEmailTaken {
			t.Fatalf("dup: %d %s", dup.StatusCode(), dup.Body)
		}
		bad, _ := alice.AddEmailWithResponse(ctx, alice.id, gen.AddEmailJSONRequestBody{Email: "nope"})
		t.Logf("bad: %d %s", bad.StatusCode(), bad.Body)
		other, _ := alice.ListEmailsWithResponse(ctx, alice.id+1)
		t.Logf("other: %d %s", other.StatusCode(), other.Body)
		anon, _ := e.anon.ListEmailsWithResponse(ctx, alice.id)
		t.Logf("anon: %d %s", anon.StatusCode(), anon.Body)
		t.Logf("validated %d", e.validator.Count())
	})
}

func TestSmokeLinks(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")
		tok, key := e.link("alice@example.com")
		res, err := e.anon.ConfirmEmailVerificationWithResponse(ctx, tok, key)
		if err != nil || res.JSON200 == nil || !res.JSON200.Verified {
			t.Fatalf("verify: %v %d %s", err, res.StatusCode(), res.Body)
		}
		ch, _ := alice.RequestEmailChangeWithResponse(ctx, alice.id, gen.RequestEmailChangeJSONRequestBody{NewEmail: "alice@new.example", Password: goodPasswd})
		if ch.StatusCode() != 204 {
			t.Fatalf("change: %d %s", ch.StatusCode(), ch.Body)
		}
		tok, key = e.link("alice@new.example")
		sp, _ := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, tok, key)
		if sp.JSON200 == nil || !sp.JSON200.Primary {
			t.Fatalf("set primary: %d %s", sp.StatusCode(), sp.Body)
		}
		html, _ := e.anon.ShowPrimaryEmailChangeWithResponse(ctx, tok, key)
		t.Logf("again (html): %d %.80s", html.StatusCode(), html.Body)
		mails := e.deliver()
		if len(mails) != 1 || mails[0].Kind != "primary_changed" || mails[0].To != "alice@example.com" {
			t.Fatalf("notice: %+v", mails)
		}
	})
}
