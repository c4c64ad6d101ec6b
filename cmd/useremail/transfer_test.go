package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestExportImportCommands moves users from SQLite to PostgreSQL (to
// another SQLite file without USEREMAIL_TEST_DATABASE_URL) with the real
// binary: export --output, import --dry-run, import, and a second import
// that is refused whole, naming the record.
func TestExportImportCommands(t *testing.T) {
	srcURL := databaseURL(t, store.SQLite)
	target := store.SQLite
	if len(storetest.Dialects()) > 1 {
		target = store.Postgres
	}
	dstURL := databaseURL(t, target)
	src, dst := serveEnv(srcURL, nil), serveEnv(dstURL, nil)
	for _, env := range []map[string]string{src, dst} {
		if r := runBinary(t, t.TempDir(), env, "", "migrate"); r.code != 0 {
			t.Fatalf("migrate: %v", r)
		}
	}
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if r := runBinary(t, t.TempDir(), src, testPassword+"\n", "user", "create", "--email", email, "--verified", "--password-stdin"); r.code != 0 {
			t.Fatalf("user create: %v", r)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "users.json")
	r := runBinary(t, dir, src, "", "export", "--output", out)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "export: 2 users written") {
		t.Fatalf("export: %v", r)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v, want mode 0600", fi, err)
	}
	if r := runBinary(t, dir, src, "", "export"); r.code != 0 || !strings.HasPrefix(r.stdout, `{"format":"useremail-export/1","users":[`) {
		t.Fatalf("export to stdout: %v", r)
	}

	r = runBinary(t, dir, dst, "", "import", "--dry-run", out)
	if r.code != 0 || !strings.Contains(r.stdout, "would import (dry run, nothing written) 2 users with 2 addresses") {
		t.Fatalf("import --dry-run: %v", r)
	}
	r = runBinary(t, dir, dst, "", "import", out)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "import: imported 2 users with 2 addresses") || !strings.Contains(r.stdout, "argon2id 2") {
		t.Fatalf("import: %v", r)
	}
	r = runBinary(t, dir, dst, "", "import", out)
	want := "useremail: import: import_conflict: users[0] (id 1): user id 1 is taken (by a user in the database or earlier in the file); nothing was imported\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("second import: want exit 1 and %q; %v", want, r)
	}
	db := openDB(t, dstURL)
	if n, err := db.CountUsers(t.Context()); err != nil || n != 2 {
		t.Fatalf("%d users after the imports, %v; want 2", n, err)
	}

	// A Django dump (made by Django: see package transfer's tests) goes into
	// a fresh store.
	django := serveEnv(databaseURL(t, target), nil)
	if r := runBinary(t, dir, django, "", "migrate"); r.code != 0 {
		t.Fatalf("migrate: %v", r)
	}
	dump, err := filepath.Abs("../../transfer/testdata/django/dump.json")
	if err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, dir, django, "", "import", "--format", "django", dump)
	const summary = "import: imported 8 users with 11 addresses; skipped 1 inactive, 1 without an address; " +
		"passwords: argon2 1, bcrypt 1, bcrypt_sha256 1, none 1, pbkdf2_sha1 1, pbkdf2_sha256 2, scrypt 1\n"
	if r.code != 0 || r.stdout != summary {
		t.Fatalf("import --format django: want %q; %v", summary, r)
	}
}

// TestImportBesideServe: an import into an SQLite file that a server holds
// is refused at once, naming the server, and writes nothing.
func TestImportBesideServe(t *testing.T) {
	url := databaseURL(t, store.SQLite)
	env := serveEnv(url, nil)
	startServe(t, "serve", env)
	dir := t.TempDir()
	file := filepath.Join(dir, "users.json")
	doc := `{"format":"useremail-export/1","users":[{"id":7,"date_joined":"2026-12-04T09:00:00Z","password_hash":"","language":"en","emails":[{"email":"a@example.com","verified":false,"primary":true}]}]}`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, dir, env, "", "import", file)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "useremail: import: useremail serve (pid ") || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("import beside serve: %v", r)
	}
	if n, err := openDB(t, url).CountUsers(t.Context()); err != nil || n != 0 {
		t.Fatalf("%d users, %v; want none", n, err)
	}
}
