package signer_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/signer"
)

var (
	fixedNow  = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	goldenKey = []byte("golden-key-0123456789abcdef0123456789")
	otherKey  = []byte("other-key-0123456789abcdef0123456789")
)

const (
	day      = 24 * time.Hour
	alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
)

// newSigner returns a Signer over keys whose clock is fixedNow+offset.
func newSigner(t testing.TB, offset time.Duration, keys ...[]byte) *signer.Signer {
	t.Helper()
	s, err := signer.New(keys, func() time.Time { return fixedNow.Add(offset) })
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustSign(t testing.TB, s *signer.Signer, c signer.Claims) string {
	t.Helper()
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatalf("Sign(%+v): %v", c, err)
	}
	return tok
}

func sameClaims(a, b signer.Claims) bool {
	return a.Purpose == b.Purpose && a.UserID == b.UserID && a.Email == b.Email &&
		a.State == b.State && a.IssuedAt.Equal(b.IssuedAt) && a.IssuedAt.Location() == b.IssuedAt.Location()
}

var aliceVerify = signer.Claims{Purpose: signer.PurposeVerify, UserID: 42, Email: "alice@example.com", State: 7}

func TestRoundTrip(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	tests := []signer.Claims{
		aliceVerify,
		{Purpose: signer.PurposeSetPrimary, UserID: 42, Email: "alice@example.com", State: 3},
		{Purpose: signer.PurposeVerify, UserID: 1, Email: "josé.müller@bücher.de", State: 0},
		{Purpose: signer.PurposeVerify, UserID: 1<<63 - 1, Email: "用户@例子.广告", State: 1<<63 - 1},
		{Purpose: signer.PurposeSetPrimary, UserID: 9, Email: "😀+tag@xn--ls8h.la", State: -1},
		{Purpose: signer.PurposeVerify, UserID: 5, Email: "\"a<b>&c\"\u2028\\@example.com", State: 5},
	}
	for _, c := range tests {
		c.IssuedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) // must be ignored
		tok := mustSign(t, s, c)
		if url.PathEscape(tok) != tok || strings.Count(tok, ".") != 3 {
			t.Errorf("token %q is not a single URL-safe path segment", tok)
		}
		got, err := s.Verify(tok, c.Purpose, day)
		if err != nil {
			t.Fatalf("Verify(%+v): %v", c, err)
		}
		want := c
		want.IssuedAt = fixedNow
		if !sameClaims(got, want) {
			t.Errorf("Verify = %+v, want %+v", got, want)
		}
	}
}

func TestGolden(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	tests := []struct {
		claims signer.Claims
		want   string
	}{
		{aliceVerify, "v1.zu8nCEYT.eyJwIjoidmVyaWZ5IiwidSI6NDIsImUiOiJhbGljZUBleGFtcGxlLmNvbSIsInMiOjcsInQiOjE3OTU4NTgyMDB9.VXFobezn3qdHuZAsszXAVQXG6f0Vr9XKa8EdbZpd4eY"},
		{signer.Claims{Purpose: signer.PurposeSetPrimary, UserID: 42, Email: "alice@example.com", State: 3},
			"v1.zu8nCEYT.eyJwIjoic2V0LXByaW1hcnkiLCJ1Ijo0MiwiZSI6ImFsaWNlQGV4YW1wbGUuY29tIiwicyI6MywidCI6MTc5NTg1ODIwMH0.qF5YKUfzeoCAOX2bgeNsA35VMO8gwiUkX3QvbX9Jo3A"},
		{signer.Claims{Purpose: signer.PurposeVerify, UserID: 9007199254740993, Email: "josé.müller@bücher.例え.jp", State: 123456789},
			"v1.zu8nCEYT.eyJwIjoidmVyaWZ5IiwidSI6OTAwNzE5OTI1NDc0MDk5MywiZSI6Impvc8OpLm3DvGxsZXJAYsO8Y2hlci7kvovjgYguanAiLCJzIjoxMjM0NTY3ODksInQiOjE3OTU4NTgyMDB9.Wf-k_zaT5skPdb4nZCjSWIc0zt7hdtPG0pQEoInnidg"},
	}
	for _, tt := range tests {
		if got := mustSign(t, s, tt.claims); got != tt.want {
			t.Errorf("Sign(%+v) =\n%s\nwant\n%s", tt.claims, got, tt.want)
		}
		// An independent implementation of the documented format must agree.
		if got := forge(goldenKey, strings.Split(tt.want, ".")[2]); got != tt.want {
			t.Errorf("documented format gives\n%s\nwant\n%s", got, tt.want)
		}
	}
}

// forge builds a v1 token for an already-encoded payload from the format
// documentation alone, so payloads the Signer never writes get a valid MAC.
func forge(key []byte, payload string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	h := sha256.Sum256(append([]byte("useremail/signer/kid\x00"), key...))
	kid := b64(h[:6])
	m := hmac.New(sha256.New, key)
	m.Write([]byte("useremail/link/v1." + kid + "." + payload))
	return "v1." + kid + "." + payload + "." + b64(m.Sum(nil))
}

func forgeJSON(key []byte, js string) string {
	return forge(key, base64.RawURLEncoding.EncodeToString([]byte(js)))
}

func TestVerifyRejects(t *testing.T) {
	base := newSigner(t, 0, goldenKey)
	tok := mustSign(t, base, aliceVerify)
	parts := strings.Split(tok, ".")
	other := mustSign(t, newSigner(t, 0, otherKey), aliceVerify)
	tests := []struct {
		name    string
		token   string
		purpose signer.Purpose
		offset  time.Duration // verifier clock minus signing clock
		maxAge  time.Duration
		want    error // nil means accepted
	}{
		{"valid", tok, signer.PurposeVerify, 0, day, nil},
		{"wrong purpose", tok, signer.PurposeSetPrimary, 0, day, signer.ErrInvalid},
		{"empty purpose", tok, "", 0, day, signer.ErrInvalid},
		{"age equals max age", tok, signer.PurposeVerify, day, day, nil},
		{"just over max age", tok, signer.PurposeVerify, day + time.Second, day, signer.ErrExpired},
		{"long expired", tok, signer.PurposeVerify, 400 * day, day, signer.ErrExpired},
		{"expired and wrong purpose", tok, signer.PurposeSetPrimary, 2 * day, day, signer.ErrInvalid},
		{"expired and tampered", tok[:len(tok)-2] + "AA", signer.PurposeVerify, 2 * day, day, signer.ErrInvalid},
		{"zero max age", tok, signer.PurposeVerify, 0, 0, signer.ErrExpired},
		{"negative max age", tok, signer.PurposeVerify, 0, -time.Hour, signer.ErrExpired},
		{"future within skew", tok, signer.PurposeVerify, -5 * time.Minute, day, nil},
		{"future beyond skew", tok, signer.PurposeVerify, -5*time.Minute - time.Second, day, signer.ErrInvalid},
		{"empty", "", signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"huge", tok + strings.Repeat("A", 1<<20), signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"huge dots", strings.Repeat(".", 1<<20), signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"extra dot at end", tok + ".", signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"extra dot at start", "." + tok, signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"extra part", tok + ".AAAA", signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"double dot", strings.Replace(tok, ".", "..", 1), signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"missing part", strings.Join(parts[1:], "."), signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"empty mac", strings.Join(parts[:3], ".") + ".", signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"unknown version", "v2" + tok[2:], signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"uppercase version", "V1" + tok[2:], signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"unknown kid", strings.Replace(tok, parts[1], "AAAAAAAA", 1), signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"other key", other, signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"other key's mac", strings.Join(parts[:3], ".") + "." + strings.Split(other, ".")[3], signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"short mac", tok[:len(tok)-4], signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"padded mac", tok + "=", signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"std base64 chars", strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+", signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"newline in payload", strings.Replace(tok, parts[2], parts[2][:10]+"\n"+parts[2][10:], 1), signer.PurposeVerify, 0, day, signer.ErrInvalid},
		{"non-ascii", tok + "é", signer.PurposeVerify, 0, day, signer.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newSigner(t, tt.offset, goldenKey)
			c, err := v.Verify(tt.token, tt.purpose, tt.maxAge)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want success", err)
				}
				want := aliceVerify
				want.IssuedAt = fixedNow
				if !sameClaims(c, want) {
					t.Fatalf("Verify = %+v, want %+v", c, want)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify err = %v, want %v", err, tt.want)
			}
			if c != (signer.Claims{}) {
				t.Fatalf("Verify returned claims %+v with error", c)
			}
		})
	}
}

// TestEveryByteChange flips each position of valid tokens to every other
// character of the token alphabet (dot included): none may be accepted.
func TestEveryByteChange(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	for _, c := range []signer.Claims{aliceVerify, {Purpose: signer.PurposeSetPrimary, UserID: 1, Email: "ü@例え.jp", State: 2}} {
		tok := mustSign(t, s, c)
		for i := 0; i < len(tok); i++ {
			for j := 0; j < len(alphabet); j++ {
				if alphabet[j] == tok[i] {
					continue
				}
				m := tok[:i] + alphabet[j:j+1] + tok[i+1:]
				if _, err := s.Verify(m, c.Purpose, day); !errors.Is(err, signer.ErrInvalid) {
					t.Errorf("Verify(%q) err = %v, want ErrInvalid", m, err)
				}
			}
		}
	}
}

func TestTruncatedAndExtended(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	tok := mustSign(t, s, aliceVerify)
	for n := 0; n < len(tok); n++ {
		if _, err := s.Verify(tok[:n], signer.PurposeVerify, day); !errors.Is(err, signer.ErrInvalid) {
			t.Errorf("Verify(prefix %d) err = %v, want ErrInvalid", n, err)
		}
		if _, err := s.Verify(tok[n+1:], signer.PurposeVerify, day); !errors.Is(err, signer.ErrInvalid) {
			t.Errorf("Verify(suffix from %d) err = %v, want ErrInvalid", n+1, err)
		}
	}
	for j := 0; j < len(alphabet); j++ {
		if _, err := s.Verify(tok+alphabet[j:j+1], signer.PurposeVerify, day); !errors.Is(err, signer.ErrInvalid) {
			t.Errorf("Verify(token+%q) err = %v, want ErrInvalid", alphabet[j], err)
		}
	}
}

// TestStrictPayload gives payloads a valid MAC, so only claims decoding can
// reject them.
func TestStrictPayload(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	const canonical = `{"p":"verify","u":42,"e":"alice@example.com","s":70,"t":1795858200}` // 67 bytes
	good := base64.RawURLEncoding.EncodeToString([]byte(canonical))
	// The last character carries padding bits (the payload length is not a
	// multiple of 3): setting the lowest one keeps the decoded bytes.
	last := strings.IndexByte(alphabet, good[len(good)-1])
	nonCanonical := good[:len(good)-1] + alphabet[last|1:last|1+1]
	if b, err := base64.RawURLEncoding.DecodeString(nonCanonical); err != nil || string(b) != canonical || nonCanonical == good {
		t.Fatalf("test setup: %q is not a non-canonical encoding of the payload (%q, %v)", nonCanonical, b, err)
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"canonical", forgeJSON(goldenKey, canonical), true},
		{"non-canonical base64", forge(goldenKey, nonCanonical), false},
		{"unknown field", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"alice@example.com","s":7,"t":1795858200,"x":1}`), false},
		{"duplicate field", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"alice@example.com","e":"mallory@example.com","s":7,"t":1795858200}`), false},
		{"duplicate same value", forgeJSON(goldenKey, `{"p":"verify","u":42,"u":42,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"missing state", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"alice@example.com","t":1795858200}`), false},
		{"missing time", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"alice@example.com","s":7}`), false},
		{"null state", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"alice@example.com","s":null,"t":1795858200}`), false},
		{"reordered", forgeJSON(goldenKey, `{"u":42,"p":"verify","e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"uppercase name", forgeJSON(goldenKey, `{"P":"verify","u":42,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"whitespace", forgeJSON(goldenKey, `{"p":"verify", "u":42,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"escaped char", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"\u0061lice@example.com","s":7,"t":1795858200}`), false},
		{"user id as string", forgeJSON(goldenKey, `{"p":"verify","u":"42","e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"float user id", forgeJSON(goldenKey, `{"p":"verify","u":42.0,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"user id overflow", forgeJSON(goldenKey, `{"p":"verify","u":9223372036854775808,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"zero user id", forgeJSON(goldenKey, `{"p":"verify","u":0,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"negative user id", forgeJSON(goldenKey, `{"p":"verify","u":-42,"e":"alice@example.com","s":7,"t":1795858200}`), false},
		{"empty email", forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"","s":7,"t":1795858200}`), false},
		{"invalid utf-8 email", forgeJSON(goldenKey, "{\"p\":\"verify\",\"u\":42,\"e\":\"al\xffce@example.com\",\"s\":7,\"t\":1795858200}"), false},
		{"trailing data", forgeJSON(goldenKey, canonical+`{}`), false},
		{"trailing space", forgeJSON(goldenKey, canonical+" "), false},
		{"array", forgeJSON(goldenKey, `["verify",42,"alice@example.com",7,1795858200]`), false},
		{"not json", forgeJSON(goldenKey, "verify 42 alice@example.com"), false},
		{"empty object", forgeJSON(goldenKey, `{}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Verify(tt.token, signer.PurposeVerify, day)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v, want success", err)
			}
			if !tt.ok && !errors.Is(err, signer.ErrInvalid) {
				t.Fatalf("Verify err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := []byte("old-key-0123456789abcdef0123456789"), []byte("new-key-0123456789abcdef0123456789")
	oldTok := mustSign(t, newSigner(t, 0, oldKey), aliceVerify)
	rotated := newSigner(t, 0, newKey, oldKey)
	if _, err := rotated.Verify(oldTok, signer.PurposeVerify, day); err != nil {
		t.Errorf("[new, old] Verify(old token): %v", err)
	}
	newTok := mustSign(t, rotated, aliceVerify)
	if newTok == oldTok || strings.Split(newTok, ".")[1] == strings.Split(oldTok, ".")[1] {
		t.Errorf("[new, old] signed with the old key: %q", newTok)
	}
	// Verification finds the key by kid, whatever the key order.
	if _, err := newSigner(t, 0, oldKey, newKey).Verify(newTok, signer.PurposeVerify, day); err != nil {
		t.Errorf("[old, new] Verify(new token): %v", err)
	}
	if _, err := newSigner(t, 0, newKey).Verify(oldTok, signer.PurposeVerify, day); !errors.Is(err, signer.ErrInvalid) {
		t.Errorf("[new] Verify(old token) err = %v, want ErrInvalid", err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte
		ok   bool
	}{
		{"one key", [][]byte{goldenKey}, true},
		{"two keys", [][]byte{goldenKey, otherKey}, true},
		{"nil", nil, false},
		{"no keys", [][]byte{}, false},
		{"empty key", [][]byte{goldenKey, {}}, false},
		{"nil key", [][]byte{nil}, false},
		{"duplicate key", [][]byte{goldenKey, otherKey, []byte(string(goldenKey))}, false},
	}
	for _, tt := range tests {
		s, err := signer.New(tt.keys, nil)
		if tt.ok != (err == nil) || tt.ok != (s != nil) {
			t.Errorf("%s: New = %v, %v; want ok=%v", tt.name, s, err, tt.ok)
		}
	}
}

func TestNewCopiesKeys(t *testing.T) {
	key := []byte(string(goldenKey))
	s := newSigner(t, 0, key)
	key[0] ^= 1
	if got := mustSign(t, s, aliceVerify); got != mustSign(t, newSigner(t, 0, goldenKey), aliceVerify) {
		t.Errorf("changing the caller's key slice changed the Signer")
	}
}

func TestNilClockUsesTimeNow(t *testing.T) {
	s, err := signer.New([][]byte{goldenKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	c, err := s.Verify(mustSign(t, s, aliceVerify), signer.PurposeVerify, time.Minute)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.IssuedAt.Before(before) || c.IssuedAt.After(time.Now()) || c.IssuedAt.Location() != time.UTC || c.IssuedAt.Nanosecond() != 0 {
		t.Errorf("IssuedAt = %v, want now in UTC to the second", c.IssuedAt)
	}
}

func TestSignRejects(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	tests := []struct {
		name   string
		claims signer.Claims
	}{
		{"empty purpose", signer.Claims{UserID: 42, Email: "a@example.com"}},
		{"zero user id", signer.Claims{Purpose: signer.PurposeVerify, Email: "a@example.com"}},
		{"negative user id", signer.Claims{Purpose: signer.PurposeVerify, UserID: -1, Email: "a@example.com"}},
		{"empty email", signer.Claims{Purpose: signer.PurposeVerify, UserID: 42}},
		{"invalid utf-8 email", signer.Claims{Purpose: signer.PurposeVerify, UserID: 42, Email: "a\xff@example.com"}},
		{"email too long", signer.Claims{Purpose: signer.PurposeVerify, UserID: 42, Email: strings.Repeat("a", 1500) + "@example.com"}},
	}
	for _, tt := range tests {
		if tok, err := s.Sign(tt.claims); err == nil {
			t.Errorf("%s: Sign = %q, want error", tt.name, tok)
		}
	}
	// The longest plausible address (254 characters of 4-byte UTF-8) still fits.
	long := signer.Claims{Purpose: signer.PurposeSetPrimary, UserID: 1<<63 - 1, Email: strings.Repeat("😀", 250) + "@x.y", State: -1 << 63}
	if _, err := s.Verify(mustSign(t, s, long), long.Purpose, day); err != nil {
		t.Errorf("Verify(long address): %v", err)
	}
}

func TestUserID(t *testing.T) {
	tests := []struct {
		id  int64
		enc string
	}{
		{1, "MQ"},
		{42, "NDI"},
		{999, "OTk5"},
		{1<<63 - 1, "OTIyMzM3MjAzNjg1NDc3NTgwNw"},
	}
	for _, tt := range tests {
		if got := signer.EncodeUserID(tt.id); got != tt.enc {
			t.Errorf("EncodeUserID(%d) = %q, want %q", tt.id, got, tt.enc)
		}
		if got, err := signer.DecodeUserID(tt.enc); err != nil || got != tt.id {
			t.Errorf("DecodeUserID(%q) = %d, %v; want %d", tt.enc, got, err, tt.id)
		}
	}
}

func TestDecodeUserIDRejects(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		"",
		"MA",   // "0"
		"LTE",  // "-1"
		"KzQy", // "+42"
		"MDQy", // "042"
		"NDI=", // padded
		"NDJ",  // non-canonical: stray padding bits
		"ND",   // "4" with wrong length bits
		"N",    // impossible length
		"NDI\n",
		" NDI",
		"ND.I",
		"NDI+",
		"NDI/",
		"bmFu",                       // "nan"
		b64([]byte("4 2")),           // space
		b64([]byte("42\x00")),        // NUL
		b64([]byte("1_000")),         // underscore
		b64([]byte("0x2a")),          // hex
		b64([]byte("٤٢")),            // Arabic-Indic digits
		"OTIyMzM3MjAzNjg1NDc3NTgwOA", // 9223372036854775808
		b64([]byte("18446744073709551616")),
		b64([]byte(strings.Repeat("9", 100))),
		strings.Repeat("A", 1<<20),
	} {
		if id, err := signer.DecodeUserID(s); !errors.Is(err, signer.ErrInvalid) || id != 0 {
			t.Errorf("DecodeUserID(%q) = %d, %v; want ErrInvalid", s, id, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	s := newSigner(f, 0, goldenKey)
	for _, c := range []signer.Claims{
		aliceVerify,
		{Purpose: signer.PurposeSetPrimary, UserID: 1, Email: "ü@例え.jp", State: -3},
	} {
		tok := mustSign(f, s, c)
		f.Add(tok, string(c.Purpose))
		f.Add(tok, "verify ")
		f.Add(tok[:len(tok)-1]+"B", string(c.Purpose))
		f.Add(tok[:len(tok)/2], string(c.Purpose))
		f.Add(tok+".", string(c.Purpose))
		f.Add("v2"+tok[2:], string(c.Purpose))
	}
	f.Add(forgeJSON(goldenKey, `{"p":"verify","u":42,"e":"a@b","s":7,"t":1795858200,"e":"x"}`), "verify")
	f.Add("", "verify")
	f.Add("v1....", "")
	f.Add("v1.AAAAAAAA.AA.AA", "set-primary")
	f.Fuzz(func(t *testing.T, token, purpose string) {
		c, err := s.Verify(token, signer.Purpose(purpose), day)
		if err != nil {
			if !errors.Is(err, signer.ErrInvalid) && !errors.Is(err, signer.ErrExpired) {
				t.Fatalf("Verify err = %v, want ErrInvalid or ErrExpired", err)
			}
			return
		}
		if string(c.Purpose) != purpose {
			t.Fatalf("Verify(%q, %q) returned purpose %q", token, purpose, c.Purpose)
		}
		// Re-signing the claims at their issue time gives a token that
		// verifies to the same claims; with one key it is the same token,
		// as each set of claims has exactly one encoding.
		again, err := signer.New([][]byte{goldenKey}, func() time.Time { return c.IssuedAt })
		if err != nil {
			t.Fatal(err)
		}
		tok2, err := again.Sign(c)
		if err != nil {
			t.Fatalf("Sign(%+v): %v", c, err)
		}
		c2, err := s.Verify(tok2, c.Purpose, day)
		if err != nil || !sameClaims(c, c2) {
			t.Fatalf("re-signed token verifies to %+v, %v; want %+v", c2, err, c)
		}
		if tok2 != token {
			t.Fatalf("accepted non-canonical token %q; canonical is %q", token, tok2)
		}
	})
}

func FuzzDecodeUserID(f *testing.F) {
	for _, s := range []string{"NDI", "MQ", "MA", "LTE", "MDQy", "NDI=", "NDJ", "OTIyMzM3MjAzNjg1NDc3NTgwNw", "OTIyMzM3MjAzNjg1NDc3NTgwOA", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := signer.DecodeUserID(s)
		if err != nil {
			if !errors.Is(err, signer.ErrInvalid) || id != 0 {
				t.Fatalf("DecodeUserID(%q) = %d, %v", s, id, err)
			}
			return
		}
		if id <= 0 || signer.EncodeUserID(id) != s {
			t.Fatalf("DecodeUserID(%q) = %d, which encodes as %q", s, id, signer.EncodeUserID(id))
		}
	})
}

// TestPasswordState pins PasswordState to its documented definition
// (values from Python's hashlib) and checks that every hash change moves it.
func TestPasswordState(t *testing.T) {
	const hash = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0"
	for _, tt := range []struct {
		hash string
		want int64
	}{{hash, 4822352720646439091}, {"", 6696727898460687313}} {
		if got := signer.PasswordState(tt.hash); got != tt.want {
			t.Errorf("PasswordState(%q) = %d, want %d", tt.hash, got, tt.want)
		}
	}
	if signer.PasswordState(hash) == signer.PasswordState(hash[:len(hash)-1]+"1") {
		t.Error("a changed hash keeps its state")
	}
}

// TestPasswordResetPurpose: a reset token is good for nothing else, and
// nothing else is good as a reset token.
func TestPasswordResetPurpose(t *testing.T) {
	s := newSigner(t, 0, goldenKey)
	reset := mustSign(t, s, signer.Claims{Purpose: signer.PurposePasswordReset, UserID: 42, Email: "alice@example.com", State: 4822352720646439091})
	if got := forge(goldenKey, strings.Split(reset, ".")[2]); got != reset {
		t.Errorf("documented format gives\n%s\nwant\n%s", got, reset)
	}
	for _, p := range []signer.Purpose{signer.PurposeVerify, signer.PurposeSetPrimary} {
		if _, err := s.Verify(reset, p, time.Hour); !errors.Is(err, signer.ErrInvalid) {
			t.Errorf("a reset token verified for %s: %v", p, err)
		}
		other := mustSign(t, s, signer.Claims{Purpose: p, UserID: 42, Email: "alice@example.com", State: 4822352720646439091})
		if _, err := s.Verify(other, signer.PurposePasswordReset, time.Hour); !errors.Is(err, signer.ErrInvalid) {
			t.Errorf("a %s token verified as a reset token: %v", p, err)
		}
	}
	if c, err := s.Verify(reset, signer.PurposePasswordReset, time.Hour); err != nil || c.State != 4822352720646439091 {
		t.Errorf("Verify = %+v, %v", c, err)
	}
}
