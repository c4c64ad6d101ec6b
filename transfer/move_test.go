package transfer_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/transfer"
)

// TestSQLiteToPostgres moves a store from SQLite to PostgreSQL, the way
// docs/DEPLOY.md tells: export from the one, import into the other. Every
// user logs in on the new store with the password of the old one and has
// the same addresses there. Without USEREMAIL_TEST_DATABASE_URL it moves
// to a second SQLite file.
func TestSQLiteToPostgres(t *testing.T) {
	src := storetest.Open(t, store.SQLite)
	target := store.SQLite
	if dialects := storetest.Dialects(); len(dialects) > 1 {
		target = store.Postgres
	} else {
		t.Log("USEREMAIL_TEST_DATABASE_URL is not set: moving to another SQLite file")
	}
	dst := storetest.Open(t, target)

	// The old store: Django users not logged in since (their hashes move
	// as Django wrote them), and users who signed up on the API.
	if _, err := importFile(t, src, "testdata/django/dump.json", transfer.Options{Format: transfer.FormatDjango}); err != nil {
		t.Fatal(err)
	}
	old := newAPI(t, src)
	type login struct{ email, password string }
	logins := []login{}
	for _, u := range spec.Users {
		if u.IsActive && u.Email != "" && u.Password != nil {
			email := u.Email
			if u.Username == "judy" {
				email = "judy@new.example"
			}
			logins = append(logins, login{email, *u.Password})
		}
	}
	for _, e := range []string{"signed-up@example.com", "second@example.com"} {
		old.signUp(e, "a password for "+e)
		logins = append(logins, login{e, "a password for " + e})
	}

	path := filepath.Join(t.TempDir(), "export.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	n, err := transfer.Export(ctx, src, f, &progress)
	if err != nil || f.Close() != nil {
		t.Fatalf("export: %v", err)
	}
	// grace, who has no usable password, moves too.
	if n != int64(len(logins)+1) {
		t.Fatalf("exported %d users, want %d", n, len(logins)+1)
	}
	t.Logf("%s", progress.String())
	sum, err := importFile(t, dst, path, transfer.Options{})
	if err != nil || sum.Users != n {
		t.Fatalf("import = %+v, %v", sum, err)
	}

	moved := newAPI(t, dst)
	for _, l := range logins {
		want := old.emails(l.email, l.password)
		got := moved.emails(l.email, l.password)
		if !sameEmails(got, want) {
			t.Errorf("%s: addresses on %s = %+v, on SQLite %+v", l.email, target, got, want)
		}
	}
	// New users on the new store get new ids.
	id := moved.signUp("after-the-move@example.com", "a password after the move")
	if id <= 12 {
		t.Errorf("a sign-up after the move got id %d, one of the moved ones", id)
	}
}
