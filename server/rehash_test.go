package server_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// djangoHash is Django's PBKDF2SHA1PasswordHasher().encode(goodPasswd,
// "salt", 1000), as an imported user has it.
const djangoHash = "pbkdf2_sha1$1000$salt$j2l+3IQw/Z8IgenAKUMlxdujbbo="

// setHash sets a user's stored password hash, as an import leaves it.
func setHash(t *testing.T, db *store.DB, id int64, hash string) {
	t.Helper()
	if _, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(`UPDATE users SET password_hash = ? WHERE id = ?`), hash, id); err != nil {
		t.Fatal(err)
	}
}

func storedHash(t *testing.T, db *store.DB, id int64) string {
	t.Helper()
	u, err := db.UserByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

// TestLoginRehashesDjangoHash: a Django hash logs in as it is and is
// replaced by argon2id at that login.
func TestLoginRehashesDjangoHash(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.signUp("django@example.com")
		setHash(t, db, u.Id, djangoHash)
		e.login("django@example.com")
		if h := storedHash(t, db, u.Id); !strings.HasPrefix(h, "$argon2id$") {
			t.Fatalf("hash after the login %q, want argon2id", h)
		}
		e.login("django@example.com")
	})
}

// TestLoginRehashFailure: when the new hash cannot be stored, the login
// succeeds all the same, the failure is logged, and the old hash stays.
func TestLoginRehashFailure(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var logs logBuffer
		e := newEnv(t, db, withLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		u := e.signUp("django@example.com")
		setHash(t, db, u.Id, djangoHash)
		// The database refuses every change of a password hash.
		refuse := []string{`CREATE TRIGGER refuse_rehash BEFORE UPDATE OF password_hash ON users
			BEGIN SELECT RAISE(ABORT, 'password hashes are read-only here'); END`}
		if db.Dialect() == store.Postgres {
			refuse = []string{`CREATE FUNCTION refuse_rehash() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'password hashes are read-only here'; END $$`,
				`CREATE TRIGGER refuse_rehash BEFORE UPDATE OF password_hash ON users
				FOR EACH ROW EXECUTE FUNCTION refuse_rehash()`}
		}
		for _, q := range refuse {
			if _, err := db.SQL().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		e.login("django@example.com")
		if h := storedHash(t, db, u.Id); h != djangoHash {
			t.Errorf("hash after a failed rehash %q, want the old one", h)
		}
		if !strings.Contains(logs.String(), "password rehash failed") {
			t.Errorf("no log of the failed rehash in:\n%s", logs.String())
		}
		e.login("django@example.com")
	})
}

// TestLoginWithoutPassword: a user without a usable password (an import
// of Django's "!…") gets the unknown address's answer.
func TestLoginWithoutPassword(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.signUp("nopassword@example.com")
		setHash(t, db, u.Id, "")
		for _, pw := range []string{goodPasswd, ""} {
			res, err := e.anon.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: "nopassword@example.com", Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			if p := res.ApplicationproblemJSON400; pw != "" && (p == nil || p.Code != "invalid_credentials") {
				t.Errorf("login without a password: %d %s, want invalid_credentials", res.StatusCode(), res.Body)
			}
		}
	})
}
