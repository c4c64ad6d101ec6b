package transfer_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/transfer"
)

// djangoUser is a user of a mkdump.py spec, with the password it was made
// with.
type djangoUser struct {
	Username  string          `json:"username"`
	Email     string          `json:"email"`
	Password  *string         `json:"password"`
	Hasher    string          `json:"hasher,omitempty"`
	IsActive  bool            `json:"is_active"`
	Addresses []djangoAddress `json:"addresses,omitempty"`
}

type djangoAddress struct {
	Email    string `json:"email"`
	Verified bool   `json:"verified"`
	Primary  bool   `json:"primary"`
}

type djangoSpec struct {
	Users   []djangoUser `json:"users"`
	Allauth bool         `json:"allauth"`
}

func pw(s string) *string { return &s }

// spec is one user per hasher and the cases of the join; pk i+1 is
// Users[i].
var spec = djangoSpec{Allauth: true, Users: []djangoUser{
	{Username: "alice", Email: "Alice@Example.COM", Password: pw("alice's pbkdf2 password"), Hasher: "pbkdf2_sha256", IsActive: true,
		Addresses: []djangoAddress{{"Alice@Example.COM", true, true}, {"alice@work.example", true, false}, {"alice-old@example.com", false, false}}},
	{Username: "bob", Email: "bob@example.com", Password: pw("bob's sha1 password"), Hasher: "pbkdf2_sha1", IsActive: true},
	{Username: "carol", Email: "carol@example.com", Password: pw("carol's argon2 password"), Hasher: "argon2", IsActive: true,
		Addresses: []djangoAddress{{"carol@example.com", true, false}}},
	{Username: "dave", Email: "dave@example.com", Password: pw("pässwörd Ünïcode 🔑 bcrypt_sha256"), Hasher: "bcrypt_sha256", IsActive: true},
	{Username: "erin", Email: "erin@example.com", Password: pw(strings.Repeat("erin's long bcrypt password ", 3)), Hasher: "bcrypt", IsActive: true},
	{Username: "frank", Email: "frank@example.com", Password: pw("frank's scrypt password"), Hasher: "scrypt", IsActive: true},
	{Username: "grace", Email: "grace@example.com", Password: nil, IsActive: true},
	{Username: "heidi", Email: "heidi@example.com", Password: pw("heidi is inactive"), Hasher: "pbkdf2_sha256", IsActive: false},
	{Username: "ivan", Email: "", Password: pw("ivan has no address"), Hasher: "pbkdf2_sha256", IsActive: true},
	{Username: "judy", Email: "judy@old.example", Password: pw("judy's password"), Hasher: "pbkdf2_sha256", IsActive: true,
		Addresses: []djangoAddress{{"judy@new.example", true, true}}},
}}

// TestDjangoDump has Django make users with each hasher and allauth
// addresses, dumps them with manage.py dumpdata, imports the dump, and logs
// every user in through the API with the password Django hashed.
func TestDjangoDump(t *testing.T) {
	path := makeDjangoDump(t, spec)
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		checkDjangoImport(t, db, path, spec)
	})
}

// TestDjangoCommittedDump does what TestDjangoDump does without Python, on
// testdata/django/dump.json: written by mkdump.py from
// testdata/django/spec.json, the spec above (TestDjangoSpecCommitted keeps
// the two equal).
func TestDjangoCommittedDump(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		checkDjangoImport(t, db, "testdata/django/dump.json", spec)
	})
}

// TestDjangoSpecCommitted checks that testdata/django/spec.json is spec;
// with UPDATE_DJANGO_DUMP=1 it writes spec.json and has Django make
// dump.json from it again.
func TestDjangoSpecCommitted(t *testing.T) {
	if os.Getenv("UPDATE_DJANGO_DUMP") == "1" {
		b, _ := json.MarshalIndent(spec, "", " ")
		if err := os.WriteFile("testdata/django/spec.json", append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		dump, err := os.ReadFile(makeDjangoDump(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/django/dump.json", dump, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("testdata/django/spec.json")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(spec)
	var committed djangoSpec
	if err := json.Unmarshal(b, &committed); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(committed); string(got) != string(want) {
		t.Fatalf("testdata/django/spec.json differs from spec: make it again with\n%s\nand dump.json with mkdump.py", want)
	}
}

func checkDjangoImport(t *testing.T, db *store.DB, path string, spec djangoSpec) {
	sum, err := importFile(t, db, path, transfer.Options{Format: transfer.FormatDjango})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Users != 8 || sum.Inactive != 1 || sum.NoAddress != 1 || sum.Addresses != 11 {
		t.Errorf("summary %+v: want 8 users, 11 addresses, 1 inactive, 1 without an address", sum)
	}
	wantHashes := map[string]int64{"pbkdf2_sha256": 2, "pbkdf2_sha1": 1, "argon2": 1, "bcrypt_sha256": 1, "bcrypt": 1, "scrypt": 1, "none": 1}
	for k, v := range wantHashes {
		if sum.Hashes[k] != v {
			t.Errorf("summary hashes %v, want %v", sum.Hashes, wantHashes)
			break
		}
	}
	a := newAPI(t, db)
	for i, u := range spec.Users {
		id := int64(i + 1)
		switch {
		case !u.IsActive || u.Email == "" || u.Password == nil:
			if u.Email != "" {
				if got, code := a.login(u.Email, "anything at all"); got != 0 || code != "invalid_credentials" {
					t.Errorf("%s (inactive, or no usable password): login = %d %s, want invalid_credentials", u.Username, got, code)
				}
			}
			continue
		case u.Username == "judy":
			a.mustLogIn("judy@new.example", *u.Password, id)
			if got, code := a.login("judy@old.example", *u.Password); got != 0 {
				t.Errorf("judy's old, unverified address logs in: %d %s", got, code)
			}
		default:
			a.mustLogIn(u.Email, *u.Password, id)
		}
		if got, code := a.login(u.Email, *u.Password+"!"); got != 0 || code != "invalid_credentials" {
			t.Errorf("%s: a wrong password logs in: %d %s", u.Username, got, code)
		}
		stored, err := db.UserByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored.PasswordHash, "$argon2id$") {
			t.Errorf("%s: after the login the hash is %.20q…, want a rehash to argon2id", u.Username, stored.PasswordHash)
		}
	}
	// The rehashed passwords log in again.
	a.mustLogIn("frank@example.com", "frank's scrypt password", 6)
	a.mustLogIn("alice@work.example", "alice's pbkdf2 password", 1)
	if got, _ := a.login("alice-old@example.com", "alice's pbkdf2 password"); got != 0 {
		t.Errorf("an unverified secondary address logs in")
	}
	alice := a.emails("alice@example.com", "alice's pbkdf2 password")
	if len(alice) != 3 || alice[0].Email != "Alice@example.com" || !alice[0].Primary || !alice[0].Verified ||
		alice[1].Email != "alice@work.example" || !alice[1].Verified || alice[2].Verified {
		t.Errorf("alice's addresses = %+v", alice)
	}
	if bob := a.emails("bob@example.com", "bob's sha1 password"); len(bob) != 1 || !bob[0].Primary || bob[0].Verified {
		t.Errorf("bob's addresses (no allauth rows) = %+v, want his email, primary and unverified", bob)
	}
	if carol := a.emails("carol@example.com", "carol's argon2 password"); len(carol) != 1 || !carol[0].Primary || !carol[0].Verified {
		t.Errorf("carol's addresses = %+v, want her email, primary and verified", carol)
	}
	// The id sequence has moved past the imported ids.
	if id := a.signUp("new@example.com", "a brand new password"); id <= int64(len(spec.Users)) {
		t.Errorf("sign-up after the import got id %d, want more than %d", id, len(spec.Users))
	}
	// No mail was queued by the import.
	var queued int64
	if err := db.SQL().GetContext(ctx, &queued, `SELECT count(*) FROM outbox WHERE user_id <= 10`); err != nil || queued != 0 {
		t.Errorf("outbox rows for imported users = %d, %v; want none", queued, err)
	}
}

// TestDjangoWithoutAllauth imports auth.user alone: each user's email is
// the primary address, unverified.
func TestDjangoWithoutAllauth(t *testing.T) {
	path := makeDjangoDump(t, djangoSpec{Allauth: false, Users: spec.Users[:2]})
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		sum, err := importFile(t, db, path, transfer.Options{Format: transfer.FormatDjango})
		if err != nil || sum.Users != 2 || sum.Addresses != 2 {
			t.Fatalf("import = %+v, %v; want 2 users with 2 addresses", sum, err)
		}
		a := newAPI(t, db)
		l := a.emails("alice@example.com", "alice's pbkdf2 password")
		if len(l) != 1 || !l[0].Primary || l[0].Verified {
			t.Errorf("alice's addresses = %+v, want one, primary and unverified", l)
		}
	})
}

// djangoDump writes a dump of the given records (model, pk, fields).
func djangoDump(records ...map[string]any) string {
	b, _ := json.Marshal(records)
	return string(b)
}

func djUser(pk int, email string, active bool) map[string]any {
	return map[string]any{"model": "auth.user", "pk": pk, "fields": map[string]any{
		"password": "!unusable", "email": email, "is_active": active, "date_joined": "2020-01-02T03:04:05.123Z", "username": email}}
}

func djAddress(pk, user int, email string, verified, primary bool) map[string]any {
	return map[string]any{"model": "account.emailaddress", "pk": pk, "fields": map[string]any{
		"user": user, "email": email, "verified": verified, "primary": primary}}
}

// TestDjangoDumpShapes: addresses may come before their users, other
// models are counted and ignored, an address of an inactive user is
// skipped with it, and one of a user not in the file is refused.
func TestDjangoDumpShapes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		dump := djangoDump(
			djAddress(1, 2, "two@example.com", true, true),
			map[string]any{"model": "sites.site", "pk": 1, "fields": map[string]any{"domain": "example.com"}},
			djUser(1, "one@example.com", true),
			djUser(2, "Two@Example.com", true),
			djUser(3, "three@example.com", false),
			djAddress(2, 3, "three@example.com", true, true),
			djAddress(3, 1, "one@work.example", false, false),
		)
		sum, err := transfer.Import(ctx, db, strings.NewReader(dump), transfer.Options{Format: transfer.FormatDjango})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Users != 2 || sum.Addresses != 3 || sum.Inactive != 1 || sum.Ignored != 1 || sum.Hashes["none"] != 2 {
			t.Errorf("summary %+v", sum)
		}
		emails, err := db.EmailsByUser(ctx, 2)
		if err != nil || len(emails) != 1 || !emails[0].Verified || !emails[0].Primary || emails[0].Email != "two@example.com" {
			t.Errorf("user 2's addresses = %+v, %v; want two@example.com, verified and primary", emails, err)
		}
		joined, err := db.UserByID(ctx, 1)
		if err != nil || !joined.DateJoined.Equal(time.Date(2020, 1, 2, 3, 4, 5, 123e6, time.UTC)) || joined.PasswordHash != "" {
			t.Errorf("user 1 = %+v, %v", joined, err)
		}

		for _, tc := range []struct{ name, dump, want string }{
			{"address of a user not in the file", djangoDump(djUser(10, "ten@example.com", true), djAddress(1, 11, "x@example.com", true, true)),
				"import: import_invalid: record 2 (account.emailaddress pk 1): its user 11 is not in the file"},
			{"user twice", djangoDump(djUser(10, "ten@example.com", true), djUser(10, "other@example.com", true)),
				"import: import_conflict: record 2 (auth.user pk 10): user id 10 is taken"},
			{"user already in the database", djangoDump(djUser(1, "ten@example.com", true)),
				"import: import_conflict: record 1 (auth.user pk 1): user id 1 is taken"},
			{"bad address", djangoDump(djUser(10, "not an address", true)), "import: import_invalid: record 1 (auth.user pk 10): address"},
			{"bad date", djangoDump(map[string]any{"model": "auth.user", "pk": 10, "fields": map[string]any{"password": "", "email": "a@example.com", "date_joined": "yesterday"}}),
				"import: import_invalid: record 1 (auth.user pk 10): date_joined"},
			{"md5 hash", djangoDump(map[string]any{"model": "auth.user", "pk": 10, "fields": map[string]any{"password": "md5$salt$0123", "email": "a@example.com", "date_joined": "2020-01-02T03:04:05"}}),
				`import: import_invalid: record 1 (auth.user pk 10): password hash of scheme "md5"`},
			{"not an array", `{"model": "auth.user"}`, "import: a Django dump: want [, found {"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := transfer.Import(ctx, db, strings.NewReader(tc.dump), transfer.Options{Format: transfer.FormatDjango})
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("import = %v, want %q…", err, tc.want)
				}
				if n := userCount(t, db); n != 2 {
					t.Errorf("%d users after a refused import, want 2", n)
				}
			})
		}
	})
}
