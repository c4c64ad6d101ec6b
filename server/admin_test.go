package server_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// admin is a client of the admin API under one token.
type admin struct {
	*gen.ClientWithResponses
	name, token string
}

// newAdmin makes an admin token as useremail admin-token create does and
// returns a client that sends it.
func (e *env) newAdmin(name string, readOnly bool) *admin {
	e.t.Helper()
	token, hash := server.NewAdminToken()
	if _, err := e.db.CreateAdminToken(ctx, name, hash, readOnly, e.clock.Now()); err != nil {
		e.t.Fatalf("admin token %s: %v", name, err)
	}
	return &admin{ClientWithResponses: e.client(nil, bearer(token)), name: name, token: token}
}

func bearer(token string) gen.RequestEditorFn { return withHeaders("Authorization", "Bearer "+token) }

// auditActions returns the actions and actors of a user's audit trail,
// oldest first.
func (e *env) auditTrail(userID int64) []store.AuditEvent {
	e.t.Helper()
	events, err := e.db.EventsByUser(ctx, userID, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

// TestAdminAuth: the token kinds and every authentication answer, on every
// admin operation: no header, a malformed, unknown or revoked token, a
// read-only token on a write, and session cookies, which count for nothing
// under /admin/.
func TestAdminAuth(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.verifiedUser("alice@example.com")
		rw := e.newAdmin("ops", false)
		ro := e.newAdmin("support", true)
		revoked := e.newAdmin("old", false)
		if err := db.RevokeAdminToken(ctx, "old", e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		emailID := e.emails(alice.id)[0].ID

		type call func(c *gen.ClientWithResponses) (response, error)
		ops := []struct {
			name  string
			write bool
			do    call
		}{
			{"list users", false, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminListUsersWithResponse(ctx, nil)
			}},
			{"get user", false, func(c *gen.ClientWithResponses) (response, error) { return c.AdminGetUserWithResponse(ctx, alice.id) }},
			{"list outbox", false, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminListOutboxWithResponse(ctx, nil)
			}},
			{"list audit", false, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminListAuditWithResponse(ctx, nil)
			}},
			{"list events", false, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminListEventsWithResponse(ctx, nil)
			}},
			{"create user", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminCreateUserWithResponse(ctx, gen.AdminCreateUserJSONRequestBody{Email: "new@example.com"})
			}},
			{"add email", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminAddEmailWithResponse(ctx, alice.id, gen.AdminAddEmailJSONRequestBody{Email: "a2@example.com"})
			}},
			{"make primary", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminMakePrimaryWithResponse(ctx, alice.id, emailID)
			}},
			{"delete email", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminDeleteEmailWithResponse(ctx, alice.id, emailID)
			}},
			{"delete sessions", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminDeleteSessionsWithResponse(ctx, alice.id)
			}},
			{"delete user", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminDeleteUserWithResponse(ctx, alice.id)
			}},
			{"retry mail", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminRetryOutboxWithResponse(ctx, 1)
			}},
			{"redeliver event", true, func(c *gen.ClientWithResponses) (response, error) {
				return c.AdminRedeliverEventWithResponse(ctx, 1)
			}},
		}
		sessionCookies := withHeaders("Cookie", "sessionid="+alice.sid+"; csrftoken="+alice.csrf, "X-CSRFToken", alice.csrf)
		refusals := []struct {
			name   string
			client *gen.ClientWithResponses
			writes bool // refused on writes only
			status int
			code   gen.ErrorCode
		}{
			{"no header", e.anon, false, 401, gen.ErrorCodeNotAuthenticated},
			{"a user's session", e.client(nil, sessionCookies), false, 401, gen.ErrorCodeNotAuthenticated},
			{"basic scheme", e.client(nil, withHeaders("Authorization", "Basic b3BzOnNlY3JldA==")), false, 401, gen.ErrorCodeTokenInvalid},
			{"malformed token", e.client(nil, bearer("uea_short")), false, 401, gen.ErrorCodeTokenInvalid},
			{"unknown token", e.client(nil, bearer(func() string { tk, _ := server.NewAdminToken(); return tk }())), false, 401, gen.ErrorCodeTokenInvalid},
			{"revoked token", revoked.ClientWithResponses, false, 401, gen.ErrorCodeTokenInvalid},
			{"read-only token", ro.ClientWithResponses, true, 403, gen.ErrorCodeForbidden},
		}
		for _, r := range refusals {
			for _, op := range ops {
				if r.writes && !op.write {
					continue
				}
				t.Run(r.name+"/"+op.name, func(t *testing.T) {
					before := e.state(alice.id)
					res, err := op.do(r.client)
					if err != nil {
						t.Fatal(err)
					}
					wantProblem(t, op.name, res, r.status, r.code)
					e.unchanged(t, op.name, alice.id, before)
				})
			}
		}
		// The read-only token reads; the read-write one reads and writes
		// with cookies of a user beside it, which change nothing.
		for _, op := range ops {
			if op.write {
				continue
			}
			for _, c := range []*gen.ClientWithResponses{ro.ClientWithResponses, e.client(nil, bearer(rw.token), sessionCookies)} {
				res, err := op.do(c)
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, op.name, res, http.StatusOK)
			}
		}
		res, err := rw.AdminAddEmailWithResponse(ctx, alice.id, gen.AdminAddEmailJSONRequestBody{Email: "a2@example.com"},
			withHeaders("Cookie", "sessionid="+alice.sid))
		if err != nil || res.JSON201 == nil {
			t.Fatalf("add email with a token and a stray cookie: %v %d %s", err, res.StatusCode(), res.Body)
		}
		// The Bearer scheme name is case-insensitive (RFC 9110).
		lower := e.client(nil, withHeaders("Authorization", "bearer "+rw.token))
		if res, _ := lower.AdminListUsersWithResponse(ctx, nil); res == nil || res.StatusCode() != 200 {
			t.Errorf("lower-case bearer: %v", res)
		}

		// Every use is recorded at most once a minute.
		tokens, err := db.AdminTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tokens {
			switch tk.Name {
			case "ops", "support":
				if tk.LastUsedAt == nil || !tk.LastUsedAt.Equal(e.clock.Now()) {
					t.Errorf("token %s last used %v, want %v", tk.Name, tk.LastUsedAt, e.clock.Now())
				}
			case "old":
				if tk.LastUsedAt != nil {
					t.Errorf("revoked token recorded as used at %v", tk.LastUsedAt)
				}
			}
		}
	})
}

// TestAdminUsers: create (with and without password, verified or not),
// get, list with keyset pages and the email lookup, across the address
// states; every write audited with its actor.
func TestAdminUsers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ops := e.newAdmin("ops", false)

		// Created with a password and verified: logs in at once, no mail.
		res, err := ops.AdminCreateUserWithResponse(ctx, gen.AdminCreateUserJSONRequestBody{
			Email: " Bob@Example.COM ", Password: ptr(goodPasswd), Verified: ptr(true)})
		if err != nil || res.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, res.StatusCode(), res.Body)
		}
		bob := *res.JSON201
		if bob.Email != "Bob@example.com" || len(bob.Emails) != 1 || !bob.Emails[0].Verified || !bob.Emails[0].Primary || !bob.DateJoined.Equal(t0) {
			t.Errorf("created %+v", bob)
		}
		if sent := e.deliver(); len(sent) != 0 {
			t.Errorf("a verified user got %d mails", len(sent))
		}
		e.login("bob@example.com")

		// Without a password and unverified: the verification mail goes,
		// and no password logs in.
		res, err = ops.AdminCreateUserWithResponse(ctx, gen.AdminCreateUserJSONRequestBody{Email: "carol@example.com"})
		if err != nil || res.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, res.StatusCode(), res.Body)
		}
		carol := *res.JSON201
		if carol.Emails[0].Verified {
			t.Errorf("carol verified: %+v", carol)
		}
		if l := e.verifyLink("carol@example.com"); l.to != "carol@example.com" {
			t.Errorf("verify link %+v", l)
		}
		u, err := db.UserByID(ctx, carol.Id)
		if err != nil || u.PasswordHash != "" {
			t.Errorf("carol's password hash %q, %v; want ''", u.PasswordHash, err)
		}
		for _, pw := range []string{"", goodPasswd, "x"} {
			lr, err := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "carol@example.com", Password: pw + "12345678"})
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, "login without a password", lr, 400, gen.ErrorCodeInvalidCredentials)
		}

		for _, tt := range []struct {
			name string
			body gen.AdminCreateUserJSONRequestBody
			code gen.ErrorCode
		}{
			{"taken", gen.AdminCreateUserJSONRequestBody{Email: "BOB@example.com"}, gen.ErrorCodeEmailTaken},
			{"invalid address", gen.AdminCreateUserJSONRequestBody{Email: "bob@"}, gen.ErrorCodeInvalidEmail},
			{"short password", gen.AdminCreateUserJSONRequestBody{Email: "dan@example.com", Password: ptr("short")}, gen.ErrorCodeValidationError},
			{"common password", gen.AdminCreateUserJSONRequestBody{Email: "dan@example.com", Password: ptr("password123")}, gen.ErrorCodePasswordTooWeak},
			{"password is the address", gen.AdminCreateUserJSONRequestBody{Email: "dan.dandridge@example.com", Password: ptr("Dan.Dandridge")}, gen.ErrorCodePasswordTooWeak},
		} {
			before := e.state(0)
			res, err := ops.AdminCreateUserWithResponse(ctx, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, tt.name, res, 400, tt.code)
			e.unchanged(t, tt.name, 0, before)
		}
		unknownField := e.do("POST", "/admin/users/", []byte(`{"email":"dan@example.com","admin":true}`),
			"Content-Type", "application/json", "Authorization", "Bearer "+ops.token)
		wantProblem(t, "unknown field", unknownField, 400, gen.ErrorCodeValidationError)
		res, err = ops.AdminCreateUserWithResponse(ctx, gen.AdminCreateUserJSONRequestBody{Email: "dan@example.com", SendPasswordReset: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		if res.JSON201 == nil {
			t.Fatalf("create with an invitation: %d %s", res.StatusCode(), res.Body)
		}
		// The invitation is a reset link, which stands in for the
		// verification mail: using it proves the address.
		invite := e.resetLink("dan@example.com")
		if vs := e.links(mail.KindVerify, "dan@example.com"); len(vs) != 0 {
			t.Errorf("an invited user got %d verification mails too", len(vs))
		}
		if r, err := e.anon.ConfirmPasswordResetWithResponse(ctx, invite.userKey, invite.token, gen.ConfirmPasswordResetJSONRequestBody{Password: "a fine long passphrase"}); err != nil || r.StatusCode() != 204 {
			t.Fatalf("the invitation's reset: %v %d %s", err, r.StatusCode(), r.Body)
		}
		if em := e.emails(res.JSON201.Id); len(em) != 1 || !em[0].Verified {
			t.Errorf("after the invitation's reset: %+v, want the address verified", em)
		}
		e.loginAs("dan@example.com", "a fine long passphrase")

		// Get: the user with every address, primary first.
		bobUser := e.login("bob@example.com")
		e.addEmail(bobUser, "bob@work.example")
		gr, err := ops.AdminGetUserWithResponse(ctx, bob.Id)
		if err != nil || gr.JSON200 == nil {
			t.Fatalf("get: %v %s", err, gr.Body)
		}
		if got := gr.JSON200; len(got.Emails) != 2 || !got.Emails[0].Primary || got.Emails[1].Email != "bob@work.example" || got.Email != "Bob@example.com" {
			t.Errorf("get %+v", got)
		}
		gr, _ = ops.AdminGetUserWithResponse(ctx, 999999)
		wantProblem(t, "get unknown", gr, 404, gen.ErrorCodeNotFound)
		gr, _ = ops.AdminGetUserWithResponse(ctx, 0)
		wantProblem(t, "get id 0", gr, 400, gen.ErrorCodeValidationError)

		// The email lookup finds the holders of an address in any state:
		// bob's unverified secondary is also erin's.
		erin := e.newUser("erin@example.com")
		e.addEmail(erin, "BOB@work.example")
		lr, err := ops.AdminListUsersWithResponse(ctx, &gen.AdminListUsersParams{Email: ptr("bob@WORK.example")})
		if err != nil || lr.JSON200 == nil {
			t.Fatalf("list by email: %v %s", err, lr.Body)
		}
		if ids := adminUserIDs(lr.JSON200.Items); len(ids) != 2 || ids[0] != bob.Id || ids[1] != erin.id || lr.JSON200.NextAfter != nil {
			t.Errorf("holders of bob@work.example: %v next %v", ids, lr.JSON200.NextAfter)
		}
		lr, _ = ops.AdminListUsersWithResponse(ctx, &gen.AdminListUsersParams{Email: ptr("nobody@example.com")})
		if lr.JSON200 == nil || len(lr.JSON200.Items) != 0 {
			t.Errorf("holders of nobody: %s", lr.Body)
		}
		lr, _ = ops.AdminListUsersWithResponse(ctx, &gen.AdminListUsersParams{Email: ptr("not an address")})
		wantProblem(t, "list by a bad address", lr, 400, gen.ErrorCodeInvalidEmail)

		// Keyset pages: all users, two at a time, in id order, each once.
		for i := range 5 {
			e.signUp("page" + string(rune('a'+i)) + "@example.com")
		}
		var all []int64
		var after *int64
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pages do not end")
			}
			lr, err := ops.AdminListUsersWithResponse(ctx, &gen.AdminListUsersParams{After: after, Limit: ptr(2)})
			if err != nil || lr.JSON200 == nil {
				t.Fatalf("page: %v %s", err, lr.Body)
			}
			all = append(all, adminUserIDs(lr.JSON200.Items)...)
			if after = lr.JSON200.NextAfter; after == nil {
				break
			}
		}
		if len(all) != 9 || !increasing(all) {
			t.Errorf("paged ids %v, want 9 increasing", all)
		}
		lr, _ = ops.AdminListUsersWithResponse(ctx, nil)
		if lr.JSON200 == nil || len(lr.JSON200.Items) != 9 || lr.JSON200.NextAfter != nil {
			t.Errorf("default page: %s", lr.Body)
		}
		for _, q := range []string{"limit=0", "limit=501", "limit=x", "after=-1"} {
			r := e.do("GET", "/admin/users/?"+q, nil, "Authorization", "Bearer "+ops.token)
			wantProblem(t, q, r, 400, gen.ErrorCodeValidationError)
		}
		r := e.do("GET", "/admin/users/?limit=500", nil, "Authorization", "Bearer "+ops.token)
		wantStatus(t, "limit=500", r, 200)

		// The writes are audited with the token's name.
		trail := e.auditTrail(bob.Id)
		if len(trail) < 2 || trail[0].Event != "user_created" || trail[0].Actor != "admin:ops" ||
			trail[1].Event != "email_verified" || trail[1].Actor != "admin:ops" {
			t.Errorf("bob's trail %+v", trail)
		}
		for _, ev := range trail[2:] {
			if ev.Actor != "user" {
				t.Errorf("bob's own event %s has actor %q", ev.Event, ev.Actor)
			}
		}
	})
}

// TestAdminEmails: add (verified or not), make primary, remove, end
// sessions, with their mails, notices, refusals and audit events.
func TestAdminEmails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withMaxEmails(3))
		ops := e.newAdmin("ops", false)
		alice := e.verifiedUser("alice@example.com")
		e.deliver()

		// Verified: no verification mail, a notice to the primary.
		ar, err := ops.AdminAddEmailWithResponse(ctx, alice.id, gen.AdminAddEmailJSONRequestBody{Email: "alice@work.example", Verified: ptr(true)})
		if err != nil || ar.JSON201 == nil {
			t.Fatalf("add: %v %s", err, ar.Body)
		}
		work := *ar.JSON201
		if !work.Verified || work.Primary {
			t.Errorf("added %+v", work)
		}
		sent := e.deliver()
		if len(sent) != 1 || sent[0].Kind != mail.KindEmailAdded || sent[0].To != "alice@example.com" {
			t.Errorf("mails after a verified add: %+v", sent)
		}
		// Unverified: the verification mail to it, and the notice.
		ar, err = ops.AdminAddEmailWithResponse(ctx, alice.id, gen.AdminAddEmailJSONRequestBody{Email: "alice@home.example"})
		if err != nil || ar.JSON201 == nil {
			t.Fatalf("add: %v %s", err, ar.Body)
		}
		home := *ar.JSON201
		if l := e.verifyLink("alice@home.example"); l.to != "alice@home.example" {
			t.Errorf("no verify link: %+v", l)
		}

		bob := e.verifiedUser("bob@example.com")
		for _, tt := range []struct {
			name   string
			userID int64
			email  string
			status int
			code   gen.ErrorCode
		}{
			{"own address", alice.id, "ALICE@work.example", 400, gen.ErrorCodeEmailTaken},
			{"another's verified address", alice.id, "bob@example.com", 400, gen.ErrorCodeEmailTaken},
			{"invalid", alice.id, "alice@@example.com", 400, gen.ErrorCodeInvalidEmail},
			{"too many", alice.id, "alice@fourth.example", 400, gen.ErrorCodeTooManyEmails},
			{"unknown user", 999999, "x@example.com", 404, gen.ErrorCodeNotFound},
		} {
			before := e.state(alice.id)
			res, err := ops.AdminAddEmailWithResponse(ctx, tt.userID, gen.AdminAddEmailJSONRequestBody{Email: tt.email})
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, tt.name, res, tt.status, tt.code)
			e.unchanged(t, tt.name, alice.id, before)
		}

		// Make primary: unverified refused; verified swaps and notifies
		// the old primary; the primary already is a no-op.
		mr, _ := ops.AdminMakePrimaryWithResponse(ctx, alice.id, home.Id)
		wantProblem(t, "make an unverified address primary", mr, 400, gen.ErrorCodeEmailNotVerified)
		mr, _ = ops.AdminMakePrimaryWithResponse(ctx, alice.id, bob.primaryEmailID(t, e))
		wantProblem(t, "make another's address primary", mr, 404, gen.ErrorCodeNotFound)
		mr, _ = ops.AdminMakePrimaryWithResponse(ctx, 999999, home.Id)
		wantProblem(t, "make primary of an unknown user", mr, 404, gen.ErrorCodeNotFound)
		e.deliver()
		mr, err = ops.AdminMakePrimaryWithResponse(ctx, alice.id, work.Id)
		if err != nil || mr.JSON200 == nil || !mr.JSON200.Primary || mr.JSON200.Id != work.Id {
			t.Fatalf("make primary: %v %s", err, mr.Body)
		}
		sent = e.deliver()
		if len(sent) != 1 || sent[0].Kind != mail.KindPrimaryChanged || sent[0].To != "alice@example.com" {
			t.Errorf("mails after make-primary: %+v", sent)
		}
		list, _ := alice.ListEmailsWithResponse(ctx, alice.id)
		if list.JSON200 == nil || (*list.JSON200)[0].Id != work.Id {
			t.Errorf("alice's addresses after make-primary: %s", list.Body)
		}
		mr, _ = ops.AdminMakePrimaryWithResponse(ctx, alice.id, work.Id)
		wantStatus(t, "make the primary primary", mr, 200)
		if sent := e.deliver(); len(sent) != 0 {
			t.Errorf("a no-op make-primary sent %d mails", len(sent))
		}

		// Remove: the primary is refused, a secondary goes with a notice.
		dr, _ := ops.AdminDeleteEmailWithResponse(ctx, alice.id, work.Id)
		wantProblem(t, "delete the primary", dr, 400, gen.ErrorCodePrimaryEmailUndeletable)
		dr, _ = ops.AdminDeleteEmailWithResponse(ctx, alice.id, 999999)
		wantProblem(t, "delete an unknown address", dr, 404, gen.ErrorCodeNotFound)
		dr, _ = ops.AdminDeleteEmailWithResponse(ctx, alice.id, home.Id)
		wantStatus(t, "delete", dr, 204)
		sent = e.deliver()
		if len(sent) != 1 || sent[0].Kind != mail.KindEmailRemoved || sent[0].To != "alice@work.example" {
			t.Errorf("mails after delete: %+v", sent)
		}

		// End every session: alice's client is logged out, bob's is not.
		second := e.login("alice@work.example")
		sr, _ := ops.AdminDeleteSessionsWithResponse(ctx, alice.id)
		wantStatus(t, "delete sessions", sr, 204)
		for _, u := range []*user{alice, second} {
			r, _ := u.ListEmailsWithResponse(ctx, alice.id)
			wantProblem(t, "alice after her sessions ended", r, 401, gen.ErrorCodeSessionInvalid)
		}
		if r, _ := bob.ListEmailsWithResponse(ctx, bob.id); r.StatusCode() != 200 {
			t.Errorf("bob after alice's sessions ended: %d", r.StatusCode())
		}
		sr, _ = ops.AdminDeleteSessionsWithResponse(ctx, 999999)
		wantProblem(t, "delete sessions of an unknown user", sr, 404, gen.ErrorCodeNotFound)

		// Deletion as self-deletion does: the addresses are free at once.
		del, _ := ops.AdminDeleteUserWithResponse(ctx, alice.id)
		wantStatus(t, "delete user", del, 204)
		if em := e.emails(alice.id); len(em) != 0 {
			t.Errorf("alice's addresses after her deletion: %+v", em)
		}
		e.signUp("alice@example.com")
		del, _ = ops.AdminDeleteUserWithResponse(ctx, alice.id)
		wantProblem(t, "delete a deleted user", del, 404, gen.ErrorCodeNotFound)
		del, _ = ops.AdminDeleteUserWithResponse(ctx, 999999)
		wantProblem(t, "delete unknown user", del, 404, gen.ErrorCodeNotFound)

		var admin []string
		for _, ev := range e.auditTrail(alice.id) {
			if ev.Actor == "admin:ops" {
				admin = append(admin, ev.Event)
			}
		}
		want := []string{"email_added", "email_verified", "email_added", "primary_changed", "email_removed", "sessions_ended", "account_deleted"}
		if !slices.Equal(admin, want) {
			t.Errorf("alice's admin events %v, want %v", admin, want)
		}
	})
}

// primaryEmailID is the id of u's primary address.
func (u *user) primaryEmailID(t *testing.T, e *env) int64 {
	t.Helper()
	return e.emails(u.id)[0].ID
}

// TestAdminOutboxAndAudit: the outbox list with its filters and pages,
// never a payload; retry of a failed mail only; the audit list.
func TestAdminOutboxAndAudit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		ops := e.newAdmin("ops", false)
		ro := e.newAdmin("support", true)
		alice := e.newUser("alice@example.com")
		e.addEmail(alice, "alice@work.example")
		e.deliver()
		bob := e.newUser("bob@example.com")

		or, err := ro.AdminListOutboxWithResponse(ctx, nil)
		if err != nil || or.JSON200 == nil {
			t.Fatalf("outbox: %v %s", err, or.Body)
		}
		items := or.JSON200.Items
		// alice: verify; add: verify + notice; bob: verify (queued).
		if len(items) != 4 || !increasing(outboxIDs(items)) {
			t.Fatalf("outbox %+v", items)
		}
		for _, m := range items[:3] {
			if m.Status != gen.Sent || m.SentAt == nil || m.NextAttemptAt != nil {
				t.Errorf("sent mail %+v", m)
			}
		}
		if m := items[3]; m.Status != gen.Queued || m.Recipient != "bob@example.com" || m.UserId != bob.id || m.NextAttemptAt == nil || m.Kind != mail.KindVerify {
			t.Errorf("queued mail %+v", m)
		}
		if body := string(or.Body); strings.Contains(body, "payload") || strings.Contains(body, "/users/email-verify/") {
			t.Errorf("the outbox list shows a payload or link: %s", body)
		}
		filtered := func(p gen.AdminListOutboxParams) []int64 {
			t.Helper()
			r, err := ro.AdminListOutboxWithResponse(ctx, &p)
			if err != nil || r.JSON200 == nil {
				t.Fatalf("outbox %+v: %v %s", p, err, r.Body)
			}
			return outboxIDs(r.JSON200.Items)
		}
		if got := filtered(gen.AdminListOutboxParams{Recipient: ptr("ALICE@Work.example")}); len(got) != 1 || got[0] != items[1].Id {
			t.Errorf("to alice@work.example: %v", got)
		}
		if got := filtered(gen.AdminListOutboxParams{Status: ptr(gen.Queued)}); len(got) != 1 || got[0] != items[3].Id {
			t.Errorf("queued: %v", got)
		}
		if got := filtered(gen.AdminListOutboxParams{Kind: ptr(mail.KindEmailAdded)}); len(got) != 1 || got[0] != items[2].Id {
			t.Errorf("email_added: %v", got)
		}
		if got := filtered(gen.AdminListOutboxParams{Kind: ptr(mail.KindVerify), Recipient: ptr("alice@example.com")}); len(got) != 1 || got[0] != items[0].Id {
			t.Errorf("verify to alice: %v", got)
		}
		if got := filtered(gen.AdminListOutboxParams{After: &items[1].Id, Limit: ptr(1)}); len(got) != 1 || got[0] != items[2].Id {
			t.Errorf("after the second, one: %v", got)
		}
		r := e.do("GET", "/admin/outbox/?status=lost", nil, "Authorization", "Bearer "+ro.token)
		wantProblem(t, "status=lost", r, 400, gen.ErrorCodeValidationError)

		// Retry: only a failed mail.
		failed := items[3].Id
		if _, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(`UPDATE outbox SET status = 'failed', attempts = 8, last_error = '550 no such user' WHERE id = ?`), failed); err != nil {
			t.Fatal(err)
		}
		rr, _ := ops.AdminRetryOutboxWithResponse(ctx, items[0].Id)
		wantProblem(t, "retry a sent mail", rr, 400, gen.ErrorCodeValidationError)
		rr, _ = ops.AdminRetryOutboxWithResponse(ctx, 999999)
		wantProblem(t, "retry an unknown mail", rr, 404, gen.ErrorCodeNotFound)
		rr, _ = ro.AdminRetryOutboxWithResponse(ctx, failed)
		wantProblem(t, "retry read-only", rr, 403, gen.ErrorCodeForbidden)
		if got := filtered(gen.AdminListOutboxParams{Status: ptr(gen.Failed)}); len(got) != 1 {
			t.Errorf("failed: %v", got)
		}
		rr, _ = ops.AdminRetryOutboxWithResponse(ctx, failed)
		wantStatus(t, "retry", rr, 202)
		m, err := db.MessageByID(ctx, failed)
		if err != nil || m.Status != store.StatusQueued || m.Attempts != 0 || m.LastError != "" {
			t.Errorf("retried mail %+v %v", m, err)
		}
		if l := e.verifyLink("bob@example.com"); l.to != "bob@example.com" {
			t.Errorf("retried mail not delivered")
		}

		// The audit trail: all, one user's, pages; admin writes named.
		ar, err := ro.AdminListAuditWithResponse(ctx, &gen.AdminListAuditParams{UserId: &bob.id})
		if err != nil || ar.JSON200 == nil {
			t.Fatalf("audit: %v %s", err, ar.Body)
		}
		var actions []string
		for _, ev := range ar.JSON200.Items {
			if ev.UserId == nil || *ev.UserId != bob.id {
				t.Errorf("bob's trail holds %+v", ev)
			}
			actions = append(actions, ev.Action+" "+ev.Actor)
		}
		if want := []string{"signup user", "login user", "mail_retried admin:ops"}; !slices.Equal(actions, want) {
			t.Errorf("bob's trail %v, want %v", actions, want)
		}
		// A failed login for an unknown address has no user.
		lr, _ := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "ghost@example.com", Password: goodPasswd})
		wantProblem(t, "login ghost", lr, 400, gen.ErrorCodeInvalidCredentials)
		var seen int
		var after *int64
		var last gen.AuditEntry
		for {
			ar, err := ro.AdminListAuditWithResponse(ctx, &gen.AdminListAuditParams{After: after, Limit: ptr(3)})
			if err != nil || ar.JSON200 == nil {
				t.Fatalf("audit page: %v %s", err, ar.Body)
			}
			seen += len(ar.JSON200.Items)
			if n := len(ar.JSON200.Items); n > 0 {
				last = ar.JSON200.Items[n-1]
			}
			if after = ar.JSON200.NextAfter; after == nil {
				break
			}
		}
		if total := e.count(`SELECT COUNT(*) FROM audit_events`); int64(seen) != total {
			t.Errorf("paged %d events, %d in the trail", seen, total)
		}
		if last.Action != "login_failed" || last.UserId != nil || last.Email != "ghost@example.com" || last.Actor != "user" {
			t.Errorf("last event %+v", last)
		}
	})
}

// TestAdminTokenUse: last_used_at is written at most once a minute.
func TestAdminTokenUse(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ops := e.newAdmin("ops", true)
		used := func() time.Time {
			t.Helper()
			tokens, err := db.AdminTokens(ctx)
			if err != nil || len(tokens) != 1 || tokens[0].LastUsedAt == nil {
				t.Fatalf("tokens %+v %v", tokens, err)
			}
			return tokens[0].LastUsedAt.UTC()
		}
		list := func() {
			t.Helper()
			if r, err := ops.AdminListUsersWithResponse(ctx, nil); err != nil || r.StatusCode() != 200 {
				t.Fatalf("list: %v %v", err, r)
			}
		}
		list()
		first := used()
		e.clock.Advance(30 * time.Second)
		list()
		if got := used(); !got.Equal(first) {
			t.Errorf("last used moved within the minute: %v -> %v", first, got)
		}
		e.clock.Advance(31 * time.Second)
		list()
		if got := used(); !got.Equal(e.clock.Now().UTC()) {
			t.Errorf("last used %v, want %v", got, e.clock.Now())
		}
	})
}

func ptr[T any](v T) *T { return &v }

func adminUserIDs(users []gen.AdminUser) []int64 {
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.Id
	}
	return ids
}

func outboxIDs(msgs []gen.OutboxMessage) []int64 {
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Id
	}
	return ids
}

func increasing(ids []int64) bool {
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			return false
		}
	}
	return true
}

// TestAdminBadInput: what the admin API refuses before any change, with
// its code, and nothing changed.
func TestAdminBadInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ops := e.newAdmin("ops", false)
		alice := e.newUser("alice@example.com")
		auth := []string{"Authorization", "Bearer " + ops.token}
		json := append([]string{"Content-Type", "application/json"}, auth...)
		users := "/admin/users/"
		emails := "/admin/users/" + strconv.FormatInt(alice.id, 10) + "/emails/"
		big := []byte(`{"email":"` + strings.Repeat("a", 70<<10) + `@example.com"}`)
		for _, tt := range []struct {
			name, method, path string
			body               []byte
			header             []string
			status             int
			code               gen.ErrorCode
		}{
			{"create as text", "POST", users, []byte(`email=a@example.com`), append([]string{"Content-Type", "text/plain"}, auth...), 415, gen.ErrorCodeUnsupportedMediaType},
			{"create too large", "POST", users, big, json, 413, gen.ErrorCodeBodyTooLarge},
			{"create malformed", "POST", users, []byte(`{"email":`), json, 400, gen.ErrorCodeValidationError},
			{"create no email", "POST", users, []byte(`{"verified":true}`), json, 400, gen.ErrorCodeValidationError},
			{"create verified as a string", "POST", users, []byte(`{"email":"b@example.com","verified":"yes"}`), json, 400, gen.ErrorCodeValidationError},
			{"add as form", "POST", emails, []byte(`email=b@example.com`), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, auth...), 415, gen.ErrorCodeUnsupportedMediaType},
			{"add unknown field", "POST", emails, []byte(`{"email":"b@example.com","primary":true}`), json, 400, gen.ErrorCodeValidationError},
			{"add too long", "POST", emails, []byte(`{"email":"` + strings.Repeat("a", 250) + `@example.com"}`), json, 400, gen.ErrorCodeInvalidEmail},
			{"user id not a number", "GET", "/admin/users/x/", nil, auth, 400, gen.ErrorCodeValidationError},
			{"outbox bad recipient", "GET", "/admin/outbox/?recipient=nobody", nil, auth, 400, gen.ErrorCodeInvalidEmail},
			{"outbox after not a number", "GET", "/admin/outbox/?after=x", nil, auth, 400, gen.ErrorCodeValidationError},
			{"audit user 0", "GET", "/admin/audit/?user_id=0", nil, auth, 400, gen.ErrorCodeValidationError},
			{"audit limit 0", "GET", "/admin/audit/?limit=0", nil, auth, 400, gen.ErrorCodeValidationError},
			{"retry id 0", "POST", "/admin/outbox/0/retry/", nil, auth, 400, gen.ErrorCodeValidationError},
			{"no such admin route", "GET", "/admin/nothing/", nil, auth, 404, gen.ErrorCodeNotFound},
			{"wrong method", "PUT", users, nil, auth, 405, gen.ErrorCodeMethodNotAllowed},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := e.state(alice.id)
				res := e.do(tt.method, tt.path, tt.body, tt.header...)
				wantProblem(t, tt.name, res, tt.status, tt.code)
				e.unchanged(t, tt.name, alice.id, before)
			})
		}
	})
}
