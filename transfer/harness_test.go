package transfer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/server/servertest"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/transfer"
)

var (
	ctx       = context.Background()
	t0        = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	cheapHash = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
)

// api is a real server on db and the generated client that validates
// every answer against openapi.yaml.
type api struct {
	t      *testing.T
	db     *store.DB
	client *gen.ClientWithResponses
}

func newAPI(t *testing.T, db *store.DB) *api {
	t.Helper()
	sign, err := signer.New([][]byte{[]byte("test-secret-key-0123456789abcdef0123456789")}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		DB:         db,
		Signer:     sign,
		Hasher:     password.NewHasher(cheapHash, 0),
		PublicURL:  "http://useremail.test",
		Sessions:   session.DefaultPolicy,
		RateLimits: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	hc := &http.Client{Transport: &servertest.Validator{T: t}}
	c, err := gen.NewClientWithResponses(ts.URL, gen.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return &api{t: t, db: db, client: c}
}

// login logs in and returns the session's user id, or 0 and the problem
// code when the login fails.
func (a *api) login(email, pw string) (int64, string) {
	a.t.Helper()
	res, err := a.client.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: email, Password: pw})
	if err != nil {
		a.t.Fatalf("login %s: %v", email, err)
	}
	if res.JSON200 != nil {
		return res.JSON200.UserId, ""
	}
	if res.ApplicationproblemJSON400 != nil {
		return 0, string(res.ApplicationproblemJSON400.Code)
	}
	a.t.Fatalf("login %s: %d %s", email, res.StatusCode(), res.Body)
	return 0, ""
}

// mustLogIn logs in and checks the user id.
func (a *api) mustLogIn(email, pw string, want int64) {
	a.t.Helper()
	if id, code := a.login(email, pw); id != want {
		a.t.Errorf("login %s = user %d (%s), want user %d", email, id, code, want)
	}
}

// emails returns a user's addresses through the API, after logging in.
func (a *api) emails(email, pw string) []gen.Email {
	a.t.Helper()
	res, err := a.client.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: email, Password: pw})
	if err != nil || res.JSON200 == nil {
		a.t.Fatalf("login %s: %v %s", email, err, res.Body)
	}
	list, err := a.client.ListEmailsWithResponse(ctx, res.JSON200.UserId, func(_ context.Context, r *http.Request) error {
		for _, c := range res.HTTPResponse.Cookies() {
			r.AddCookie(c)
		}
		return nil
	})
	if err != nil || list.JSON200 == nil {
		a.t.Fatalf("list emails of %s: %v %s", email, err, list.Body)
	}
	return *list.JSON200
}

// signUp creates a user through the API and returns its id.
func (a *api) signUp(email, pw string) int64 {
	a.t.Helper()
	res, err := a.client.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: email, Password: pw})
	if err != nil || res.JSON201 == nil {
		a.t.Fatalf("sign up %s: %v %s", email, err, res.Body)
	}
	return res.JSON201.Id
}

// importFile imports the file at path.
func importFile(t *testing.T, db *store.DB, path string, opts transfer.Options) (transfer.Summary, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return transfer.Import(ctx, db, f, opts)
}

// importJSON imports doc, marshalled.
func importJSON(t *testing.T, db *store.DB, doc any, opts transfer.Options) (transfer.Summary, error) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return transfer.Import(ctx, db, bytes.NewReader(b), opts)
}

// userCount counts the users of db.
func userCount(t *testing.T, db *store.DB) int64 {
	t.Helper()
	n, err := db.CountUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// djangoPython returns Debian's python3 when it has Django, django-allauth,
// argon2-cffi and bcrypt; otherwise the test skips, or fails under
// USEREMAIL_REQUIRE_PYTHON=1.
func djangoPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import django, allauth, argon2, bcrypt").CombinedOutput(); err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_PYTHON") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_PYTHON is set but %s lacks Django, django-allauth, argon2 or bcrypt: %v %s", python, err, out)
		}
		t.Skipf("%s lacks Django, django-allauth, argon2 or bcrypt (USEREMAIL_REQUIRE_PYTHON=1 fails instead): %v", python, err)
	}
	return python
}

// makeDjangoDump has Django make a dump of spec (see
// testdata/django/mkdump.py) and returns its path.
func makeDjangoDump(t *testing.T, spec any) string {
	t.Helper()
	python := djangoPython(t)
	dir := t.TempDir()
	specPath, out := filepath.Join(dir, "spec.json"), filepath.Join(dir, "dump.json")
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/django/mkdump.py", specPath, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkdump.py: %v\n%s", err, msg)
	}
	return out
}

// sameEmails reports whether two address lists hold the same addresses
// in the same states, in the same order.
func sameEmails(a, b []gen.Email) bool {
	strip := func(l []gen.Email) []gen.Email {
		out := slices.Clone(l)
		for i := range out {
			out[i].Id = 0
		}
		return out
	}
	return slices.Equal(strip(a), strip(b))
}
