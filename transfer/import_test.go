package transfer_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/transfer"
)

// pbkdf2Hash is Django's PBKDF2SHA1PasswordHasher().encode("correct horse
// battery staple", "salt", 1000).
const pbkdf2Hash = "pbkdf2_sha1$1000$salt$j2l+3IQw/Z8IgenAKUMlxdujbbo="

func doc(users ...transfer.User) transfer.Document {
	return transfer.Document{Format: transfer.Format, Users: users}
}

func user(id int64, emails ...transfer.Email) transfer.User {
	return transfer.User{ID: id, DateJoined: t0, PasswordHash: pbkdf2Hash, Language: "en", Emails: emails}
}

func primary(addr string) transfer.Email {
	return transfer.Email{Email: addr, Verified: true, Primary: true}
}
func verified(addr string) transfer.Email {
	return transfer.Email{Email: addr, Verified: true}
}
func unverified(addr string) transfer.Email { return transfer.Email{Email: addr} }

// TestImportRefused: a refused record is named, with its code, and nothing
// of the file is written.
func TestImportRefused(t *testing.T) {
	tests := []struct {
		name       string
		doc        transfer.Document
		code       string
		record     string
		reasonPart string
	}{
		{"id in the database", doc(user(10, primary("a@example.com")), user(1, primary("b@example.com"))),
			"import_conflict", "users[1] (id 1)", "user id 1 is taken"},
		{"id twice in the file", doc(user(10, primary("a@example.com")), user(10, primary("b@example.com"))),
			"import_conflict", "users[1] (id 10)", "user id 10 is taken"},
		{"address verified in the database", doc(user(10, primary("a@example.com"), verified("Owner@Example.com"))),
			"import_conflict", "users[0] (id 10)", "Owner@example.com is verified or primary for user 1"},
		{"two users verifying one address", doc(user(10, primary("a@example.com"), verified("x@example.com")), user(11, primary("b@example.com"), verified("X@EXAMPLE.COM"))),
			"import_conflict", "users[1] (id 11)", "is verified or primary for user 10"},
		{"no primary", doc(user(10, verified("a@example.com"))), "import_invalid", "users[0] (id 10)", "0 primary"},
		{"two primaries", doc(user(10, primary("a@example.com"), primary("b@example.com"))), "import_invalid", "users[0] (id 10)", "2 primary"},
		{"bad address", doc(user(10, primary("not an address"))), "import_invalid", "users[0] (id 10)", "not an address"},
		{"bad hash", doc(transfer.User{ID: 10, DateJoined: t0, PasswordHash: "md5$x$y", Emails: []transfer.Email{primary("a@example.com")}}),
			"import_invalid", "users[0] (id 10)", `"md5"`},
		{"hash over the cost limit", doc(transfer.User{ID: 10, DateJoined: t0, PasswordHash: "pbkdf2_sha256$99000000$salt$udG1SsHMIaotxU9sHd+t7XXTRSIY+LM2iBJkvKuJhrA=", Emails: []transfer.Email{primary("a@example.com")}}),
			"import_invalid", "users[0] (id 10)", "iterations"},
		{"bad language", doc(transfer.User{ID: 10, DateJoined: t0, Language: "not a tag!", Emails: []transfer.Email{primary("a@example.com")}}),
			"import_invalid", "users[0] (id 10)", "language"},
		{"no id", doc(user(0, primary("a@example.com"))), "import_invalid", "users[0] (id 0)", "id"},
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newAPI(t, db)
		owner := a.signUp("owner@example.com", "the owner's password")
		if _, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(`UPDATE emails SET verified = TRUE, verified_at = ? WHERE user_id = ?`), t0, owner); err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := importJSON(t, db, tc.doc, transfer.Options{})
				var re *transfer.RecordError
				if !errors.As(err, &re) {
					t.Fatalf("import = %v, want a RecordError", err)
				}
				if re.Code != tc.code || re.Record != tc.record || !strings.Contains(re.Reason, tc.reasonPart) {
					t.Errorf("error %q: want code %s, record %q, reason with %q", err, tc.code, tc.record, tc.reasonPart)
				}
				if n := userCount(t, db); n != 1 {
					t.Errorf("%d users after a refused import, want 1", n)
				}
			})
		}
	})
}

// TestImportMalformed: documents that are not an export are refused
// whole, never half imported.
func TestImportMalformed(t *testing.T) {
	good := `{"id":5,"date_joined":"2026-12-04T09:00:00Z","password_hash":"","language":"en","emails":[{"email":"a@example.com","verified":false,"primary":true}]}`
	tests := []struct{ name, doc, want string }{
		{"empty", ``, "not valid JSON"},
		{"not JSON", `hello`, "not valid JSON"},
		{"an array", `[]`, "want"},
		{"no format", `{"users":[]}`, "must come before"},
		{"other format", `{"format":"useremail-export/2","users":[]}`, "is not"},
		{"unknown member", `{"format":"useremail-export/1","extra":1}`, "unknown member"},
		{"unknown field", `{"format":"useremail-export/1","users":[{"id":1,"admin":true}]}`, "users[0]"},
		{"truncated", `{"format":"useremail-export/1","users":[` + good + `,`, "users[1]"},
		{"trailing data", `{"format":"useremail-export/1","users":[` + good + `]} {}`, "after the end"},
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := transfer.Import(ctx, db, strings.NewReader(tc.doc), transfer.Options{})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("import = %v, want an error with %q", err, tc.want)
				}
				if n := userCount(t, db); n != 0 {
					t.Errorf("%d users after a refused import, want 0", n)
				}
			})
		}
	})
}

// TestImportDryRun checks everything and writes nothing.
func TestImportDryRun(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		d := doc(user(7, primary("a@example.com"), unverified("b@example.com")), user(9, primary("c@example.com")))
		sum, err := importJSON(t, db, d, transfer.Options{DryRun: true})
		if err != nil || sum.Users != 2 || sum.Addresses != 3 || !sum.DryRun || sum.Hashes["pbkdf2_sha1"] != 2 {
			t.Fatalf("dry run = %+v, %v", sum, err)
		}
		if !strings.Contains(sum.String(), "dry run") {
			t.Errorf("summary %q does not say dry run", sum)
		}
		if n := userCount(t, db); n != 0 {
			t.Fatalf("%d users after a dry run, want 0", n)
		}
		// The real run afterwards imports the same.
		if sum, err := importJSON(t, db, d, transfer.Options{}); err != nil || sum.Users != 2 {
			t.Fatalf("import = %+v, %v", sum, err)
		}
		a := newAPI(t, db)
		a.mustLogIn("a@example.com", "correct horse battery staple", 7)
		a.mustLogIn("c@example.com", "correct horse battery staple", 9)
		if got, _ := a.login("b@example.com", "correct horse battery staple"); got != 0 {
			t.Error("an unverified secondary address logs in")
		}
	})
}

// TestExportRoundTrip: what import reads from an export, export writes
// again byte for byte.
func TestExportRoundTrip(t *testing.T) {
	storetest.Run(t, func(t *testing.T, src *store.DB) {
		a := newAPI(t, src)
		a.signUp("first@example.com", "the first password")
		d := doc(user(40, primary("Ünï@Example.com"), verified("v@example.com"), unverified("u@example.com")),
			transfer.User{ID: 41, DateJoined: t0.Add(time.Microsecond), Language: "de", Emails: []transfer.Email{{Email: "none@example.com", Primary: true}}})
		if _, err := importJSON(t, src, d, transfer.Options{}); err != nil {
			t.Fatal(err)
		}
		var first bytes.Buffer
		n, err := transfer.Export(ctx, src, &first, nil)
		if err != nil || n != 3 {
			t.Fatalf("export = %d, %v", n, err)
		}
		for _, want := range []string{`{"format":"useremail-export/1","users":[` + "\n", `"id":40`, `"language":"de"`, `"email":"Ünï@example.com","verified":true,"primary":true`, "]}\n"} {
			if !strings.Contains(first.String(), want) {
				t.Errorf("export lacks %q:\n%s", want, first.String())
			}
		}
		dst := storetest.Open(t, src.Dialect())
		if _, err := transfer.Import(ctx, dst, bytes.NewReader(first.Bytes()), transfer.Options{}); err != nil {
			t.Fatal(err)
		}
		var second bytes.Buffer
		if _, err := transfer.Export(ctx, dst, &second, nil); err != nil {
			t.Fatal(err)
		}
		if first.String() != second.String() {
			t.Errorf("export after import differs:\n%s\n%s", first.String(), second.String())
		}
	})
}
