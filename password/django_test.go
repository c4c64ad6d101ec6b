package password

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// vector is one Django hash: what Django's make_password wrote for
// password under the hasher named scheme.
type vector struct {
	Scheme   string `json:"scheme"`
	Password string `json:"password"`
	Encoded  string `json:"encoded"`
}

// checkVectors verifies each vector with its password (a match that asks
// for a rehash) and with a wrong one (no match).
func checkVectors(t *testing.T, vectors []vector) {
	t.Helper()
	h := NewHasher(cheap, 1)
	ctx := context.Background()
	seen := map[string]bool{}
	for _, v := range vectors {
		seen[v.Scheme] = true
		if got, err := Identify(v.Encoded); err != nil || got != v.Scheme {
			t.Errorf("Identify(%q) = %q, %v; want %q", v.Encoded, got, err, v.Scheme)
		}
		ok, rehash, err := h.Verify(ctx, v.Password, v.Encoded)
		if err != nil || !ok || !rehash {
			t.Errorf("Verify(%q, %s) = %v, %v, %v; want true, true, nil", v.Password, v.Encoded, ok, rehash, err)
		}
		ok, _, err = h.Verify(ctx, v.Password+"x", v.Encoded)
		wantOK := v.Scheme == SchemeBcrypt && len(v.Password) >= 72 // bcrypt sees 72 bytes, as in Django
		if err != nil || ok != wantOK {
			t.Errorf("Verify(wrong, %s) = %v, %v; want %v, nil", v.Encoded, ok, err, wantOK)
		}
	}
	for _, s := range []string{SchemePBKDF2SHA256, SchemePBKDF2SHA1, SchemeDjangoArgon2, SchemeBcryptSHA256, SchemeBcrypt, SchemeScrypt} {
		if !seen[s] {
			t.Errorf("no vector for %s", s)
		}
	}
}

// TestDjangoHashes verifies the committed vectors of
// testdata/django_hashes.json, written by testdata/django_hashes.py with
// Debian's Django 3.2 (scrypt: Django 4.0's hasher).
func TestDjangoHashes(t *testing.T) {
	b, err := os.ReadFile("testdata/django_hashes.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []vector
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	checkVectors(t, vectors)
}

// TestDjangoHashesFresh has Django make new vectors (new salts) and
// verifies them. It fails rather than skips without Django when
// USEREMAIL_REQUIRE_PYTHON=1.
func TestDjangoHashesFresh(t *testing.T) {
	python := djangoPython(t)
	out, err := exec.Command(python, "testdata/django_hashes.py").Output()
	if err != nil {
		t.Fatalf("django_hashes.py: %v", err)
	}
	var vectors []vector
	if err := json.Unmarshal(out, &vectors); err != nil {
		t.Fatal(err)
	}
	checkVectors(t, vectors)
}

// djangoPython returns Debian's python3 when it has Django, argon2-cffi and
// bcrypt; otherwise the test skips, or fails under USEREMAIL_REQUIRE_PYTHON=1.
func djangoPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import django, argon2, bcrypt").CombinedOutput(); err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_PYTHON") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_PYTHON is set but %s has no Django, argon2 or bcrypt: %v %s", python, err, out)
		}
		t.Skipf("%s has no Django, argon2 or bcrypt (set USEREMAIL_REQUIRE_PYTHON=1 to fail): %v", python, err)
	}
	return python
}

func TestDjangoRefused(t *testing.T) {
	const b64key32 = "udG1SsHMIaotxU9sHd+t7XXTRSIY+LM2iBJkvKuJhrA="
	const bcryptBody = "$2b$12$Y0MLNBl9TX.wBTq3aOE/qu0OAJ4hRjQ/HG3Shha6R4jj.4Pv7Qdra"
	scryptKey := strings.Repeat("A", 86) + "=="
	tests := []struct{ name, encoded string }{
		{"unusable", "!Oh0qZKER28sjXCw2AHBjBCbehSWRzonrwAqZGNzY"},
		{"md5", "md5$salt$0123456789abcdef0123456789abcdef"},
		{"unsalted sha1", "sha1$$0123456789abcdef0123456789abcdef01234567"},
		{"crypt", "crypt$$abN0vP5pN2k3E"},
		{"bare bcrypt", bcryptBody},
		{"pbkdf2 over the limit", "pbkdf2_sha256$3000001$salt$" + b64key32},
		{"pbkdf2 zero iterations", "pbkdf2_sha256$0$salt$" + b64key32},
		{"pbkdf2 leading zero", "pbkdf2_sha256$0260000$salt$" + b64key32},
		{"pbkdf2 signed", "pbkdf2_sha256$+260000$salt$" + b64key32},
		{"pbkdf2 empty salt", "pbkdf2_sha256$260000$$" + b64key32},
		{"pbkdf2 short key", "pbkdf2_sha256$260000$salt$AAAA"},
		{"pbkdf2 sha1 with a sha256 key", "pbkdf2_sha1$260000$salt$" + b64key32},
		{"pbkdf2 bad base64", "pbkdf2_sha256$260000$salt$!!!!"},
		{"pbkdf2 extra field", "pbkdf2_sha256$260000$salt$" + b64key32 + "$x"},
		{"bcrypt over the limit", "bcrypt$$2b$15$Y0MLNBl9TX.wBTq3aOE/qu0OAJ4hRjQ/HG3Shha6R4jj.4Pv7Qdra"},
		{"bcrypt cost 31", "bcrypt_sha256$$2b$31$Y0MLNBl9TX.wBTq3aOE/qu0OAJ4hRjQ/HG3Shha6R4jj.4Pv7Qdra"},
		{"bcrypt truncated", "bcrypt$" + bcryptBody[:50]},
		{"bcrypt missing empty field", "bcrypt" + bcryptBody},
		{"bcrypt other version", "bcrypt$$2x$12$Y0MLNBl9TX.wBTq3aOE/qu0OAJ4hRjQ/HG3Shha6R4jj.4Pv7Qdra"},
		{"scrypt memory over the limit", "scrypt$1048576$salt$8$1$" + scryptKey},
		{"scrypt work over the limit", "scrypt$16384$salt$8$32$" + scryptKey},
		{"scrypt N not a power of two", "scrypt$16383$salt$8$1$" + scryptKey},
		{"scrypt r zero", "scrypt$16384$salt$0$1$" + scryptKey},
		{"scrypt missing field", "scrypt$16384$salt$8$" + scryptKey},
		{"argon2 memory over 1 GiB", "argon2$argon2id$v=19$m=1048577,t=1,p=8$MDEyMzQ1Njc4OWFiY2RlZg$pO/CTi5Ouq58UD3UHbfsng"},
		{"argon2 work over the limit", "argon2$argon2id$v=19$m=524288,t=3,p=8$MDEyMzQ1Njc4OWFiY2RlZg$pO/CTi5Ouq58UD3UHbfsng"},
		{"argon2 variety d", "argon2$argon2d$v=19$m=102400,t=2,p=8$MDEyMzQ1Njc4OWFiY2RlZg$pO/CTi5Ouq58UD3UHbfsng"},
		{"argon2 version 1.0", "argon2$argon2i$m=512,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$pO/CTi5Ouq58UD3UHbfsng"},
	}
	h := NewHasher(cheap, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Identify(tc.encoded); !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Identify(%q) = %q, %v; want ErrMalformedHash", tc.encoded, s, err)
			}
			ok, rehash, err := h.Verify(context.Background(), "pw", tc.encoded)
			if !errors.Is(err, ErrMalformedHash) || ok || rehash {
				t.Errorf("Verify(%q) = %v, %v, %v; want ErrMalformedHash", tc.encoded, ok, rehash, err)
			}
		})
	}
}

// TestDjangoLimitsAccepted checks that the limits themselves are accepted.
func TestDjangoLimitsAccepted(t *testing.T) {
	for _, enc := range []string{
		"pbkdf2_sha256$3000000$salt$udG1SsHMIaotxU9sHd+t7XXTRSIY+LM2iBJkvKuJhrA=",
		"bcrypt$$2b$14$Y0MLNBl9TX.wBTq3aOE/qu0OAJ4hRjQ/HG3Shha6R4jj.4Pv7Qdra",
		"scrypt$262144$salt$8$1$" + strings.Repeat("A", 86) + "==",
		"argon2$argon2id$v=19$m=524288,t=2,p=8$MDEyMzQ1Njc4OWFiY2RlZg$pO/CTi5Ouq58UD3UHbfsng",
	} {
		if _, err := Identify(enc); err != nil {
			t.Errorf("Identify(%q) = %v, want nil", enc, err)
		}
	}
}

// TestDjangoRehash: after a Django hash verifies, Hash gives this
// package's own argon2id, which verifies without asking for a rehash.
func TestDjangoRehash(t *testing.T) {
	h := NewHasher(cheap, 1)
	ctx := context.Background()
	const pw = "correct horse battery staple"
	const django = "pbkdf2_sha1$1000$salt$"
	// Django's PBKDF2SHA1PasswordHasher().encode(pw, "salt", 1000).
	enc := django + "j2l+3IQw/Z8IgenAKUMlxdujbbo="
	ok, rehash, err := h.Verify(ctx, pw, enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify(django) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	fresh, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := Identify(fresh); s != SchemeArgon2id {
		t.Fatalf("Identify(rehash) = %q, want %q", s, SchemeArgon2id)
	}
	if ok, rehash, err := h.Verify(ctx, pw, fresh); err != nil || !ok || rehash {
		t.Fatalf("Verify(rehash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

// BenchmarkDjangoAtLimits verifies a hash of each scheme at its cost
// limit: the most one login can cost.
func BenchmarkDjangoAtLimits(b *testing.B) {
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), MaxBcryptCost)
	if err != nil {
		b.Fatal(err)
	}
	key := strings.Repeat("A", 86) + "=="
	for _, tc := range []struct{ name, encoded string }{
		{"pbkdf2_sha256 3M", "pbkdf2_sha256$3000000$salt$udG1SsHMIaotxU9sHd+t7XXTRSIY+LM2iBJkvKuJhrA="},
		{"pbkdf2_sha1 3M", "pbkdf2_sha1$3000000$salt$j2l+3IQw/Z8IgenAKUMlxdujbbo="},
		{"bcrypt 14", "bcrypt$" + string(bc)},
		{"scrypt 256MiB", "scrypt$262144$salt$8$1$" + key},
		{"argon2 256MiB×4", "argon2$argon2id$v=19$m=262144,t=4,p=8$MDEyMzQ1Njc4OWFiY2RlZg$pO/CTi5Ouq58UD3UHbfsng"},
		{"django defaults pbkdf2_sha256 260k", "pbkdf2_sha256$260000$salt$udG1SsHMIaotxU9sHd+t7XXTRSIY+LM2iBJkvKuJhrA="},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := NewHasher(cheap, 1)
			for range b.N {
				if _, _, err := h.Verify(context.Background(), "pw", tc.encoded); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
