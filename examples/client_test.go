package examples_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/client"
	"github.com/useremail/useremail/examples/internal/testserver"
	"github.com/useremail/useremail/server/servertest"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestClientModuleAlone builds the Go client module by itself, as an
// application that requires it does, and checks that its module graph and
// its packages' imports hold nothing of the server: no Echo, no
// kin-openapi, no other useremail package.
func TestClientModuleAlone(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = "../client"
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in client/: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("build", "./...")
	run("vet", "./...")
	forbidden := []string{"labstack/echo", "getkin/kin-openapi", "oapi-codegen/oapi-codegen", "jmoiron/sqlx", "modernc.org/sqlite", "lib/pq"}
	modules := strings.Fields(run("list", "-m", "all"))
	for _, m := range modules {
		for _, f := range forbidden {
			if strings.Contains(m, f) {
				t.Errorf("the client module's graph holds %s", m)
			}
		}
		if strings.HasPrefix(m, "github.com/useremail/useremail") && m != "github.com/useremail/useremail/client" {
			t.Errorf("the client module's graph holds %s", m)
		}
	}
	if !strings.Contains(strings.Join(modules, " "), "github.com/oapi-codegen/runtime") {
		t.Errorf("the client module's graph lacks the oapi-codegen runtime: %v", modules)
	}
	// What the client's packages import beyond the standard library: the
	// oapi-codegen runtime and its own few dependencies, nothing else.
	allowed := []string{"github.com/useremail/useremail/client", "github.com/oapi-codegen/runtime",
		"github.com/google/uuid", "github.com/apapsch/go-jsonmerge/"}
	for _, pkg := range strings.Fields(run("list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...")) {
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.HasPrefix(pkg, a) }) {
			t.Errorf("the client imports %s", pkg)
		}
	}
	t.Logf("the client module's graph: %v", modules)
}

// TestGoClient: the client module's Session keeps the cookies and sends
// X-CSRFToken by itself, Check makes problems typed errors, and NewAdmin
// reaches the admin API under each kind of token. Every answer goes
// through the spec's validator.
func TestGoClient(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		srv := testserver.Start(t, db)
		ctx := context.Background()
		hc := &http.Client{Transport: &servertest.Validator{T: t}, Timeout: 30 * time.Second}

		if _, err := client.NewSession("localhost:8080", hc); err == nil {
			t.Error("a base URL without a scheme was taken")
		}
		s, err := client.NewSession(srv.URL+"/", hc)
		if err != nil {
			t.Fatal(err)
		}
		const pw = "correct horse battery staple"
		su, err := s.SignUpWithResponse(ctx, client.SignUpJSONRequestBody{Email: "gina@example.com", Password: pw})
		if err := client.Check(su, err); err != nil {
			t.Fatalf("sign up: %v", err)
		}
		if s.LoggedIn() || s.CSRFToken() != "" {
			t.Error("logged in before login")
		}
		// Without a session the answer is a typed problem.
		list, err := s.ListEmailsWithResponse(ctx, su.JSON201.Id)
		err = client.Check(list, err)
		var pe *client.ProblemError
		if !client.HasCode(err, client.ErrorCodeNotAuthenticated) || !errors.As(err, &pe) || pe.StatusCode != 401 ||
			!strings.Contains(err.Error(), "401 not_authenticated") {
			t.Errorf("list without a session: %v", err)
		}
		lr, err := s.LoginWithResponse(ctx, client.LoginJSONRequestBody{Email: "gina@example.com", Password: pw})
		if err := client.Check(lr, err); err != nil {
			t.Fatalf("login: %v", err)
		}
		if !s.LoggedIn() || s.CSRFToken() != lr.JSON200.CsrfToken {
			t.Errorf("after login: logged in %t, token %q want %q", s.LoggedIn(), s.CSRFToken(), lr.JSON200.CsrfToken)
		}
		id := lr.JSON200.UserId
		// An unsafe request: the session sends X-CSRFToken by itself.
		add, err := s.AddEmailWithResponse(ctx, id, client.AddEmailJSONRequestBody{Email: "gina@work.example"})
		if err := client.Check(add, err); err != nil {
			t.Fatalf("add: %v", err)
		}
		add, err = s.AddEmailWithResponse(ctx, id, client.AddEmailJSONRequestBody{Email: "gina@work.example"})
		if err := client.Check(add, err); !client.HasCode(err, client.ErrorCodeEmailTaken) {
			t.Errorf("add twice: %v", err)
		}

		// The admin API under a read-write and a read-only token.
		if _, err := client.NewAdmin(srv.URL, "", hc); err == nil {
			t.Error("an admin client without a token was made")
		}
		ops, err := client.NewAdmin(srv.URL, adminToken(t, db, "go", false), hc)
		if err != nil {
			t.Fatal(err)
		}
		reader, err := client.NewAdmin(srv.URL, adminToken(t, db, "go-reader", true), hc)
		if err != nil {
			t.Fatal(err)
		}
		email := "gina@work.example"
		found, err := reader.AdminListUsersWithResponse(ctx, &client.AdminListUsersParams{Email: &email})
		if err := client.Check(found, err); err != nil || len(found.JSON200.Items) != 1 || found.JSON200.Items[0].Id != id {
			t.Fatalf("find gina: %v %s", err, found.Body)
		}
		end, err := reader.AdminDeleteSessionsWithResponse(ctx, id)
		if err := client.Check(end, err); !client.HasCode(err, client.ErrorCodeForbidden) {
			t.Errorf("read-only write: %v", err)
		}
		end, err = ops.AdminDeleteSessionsWithResponse(ctx, id)
		if err := client.Check(end, err); err != nil {
			t.Fatalf("end gina's sessions: %v", err)
		}
		list, err = s.ListEmailsWithResponse(ctx, id)
		if err := client.Check(list, err); !client.HasCode(err, client.ErrorCodeSessionInvalid) {
			t.Errorf("list after the sessions ended: %v", err)
		}
		bad, err := client.NewAdmin(srv.URL, "uea_"+strings.Repeat("A", 43), hc)
		if err != nil {
			t.Fatal(err)
		}
		denied, err := bad.AdminListUsersWithResponse(ctx, nil)
		if err := client.Check(denied, err); !client.HasCode(err, client.ErrorCodeTokenInvalid) {
			t.Errorf("unknown token: %v", err)
		}
	})
}
