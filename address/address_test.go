package address

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var acceptCases = []struct {
	name, in, email, key string
}{
	{"trim and case", "  Alice@Example.COM ", "Alice@example.com", "alice@example.com"},
	{"upper local", "ALICE@example.com", "ALICE@example.com", "alice@example.com"},
	{"upper domain", "alice@EXAMPLE.com", "alice@example.com", "alice@example.com"},
	{"sharp s", "straße@example.com", "straße@example.com", "strasse@example.com"},
	{"sharp s upper", "STRASSE@example.com", "STRASSE@example.com", "strasse@example.com"},
	{"nfd", "e\u0301@example.com", "é@example.com", "é@example.com"},
	{"nfc", "é@example.com", "é@example.com", "é@example.com"},
	{"nfd upper", "E\u0301@example.com", "É@example.com", "é@example.com"},
	{"idn upper", "a@BÜCHER.example", "a@bücher.example", "a@xn--bcher-kva.example"},
	{"a-label", "a@xn--bcher-kva.example", "a@bücher.example", "a@xn--bcher-kva.example"},
	{"a-label upper", "a@XN--BCHER-KVA.EXAMPLE", "a@bücher.example", "a@xn--bcher-kva.example"},
	{"fullwidth domain", "a@ｅｘａｍｐｌｅ.com", "a@example.com", "a@example.com"},
	{"ideographic full stop", "a@example\u3002com", "a@example.com", "a@example.com"},
	{"kelvin sign", "\u212Aate@example.com", "Kate@example.com", "kate@example.com"}, // NFC singleton
	{"long s", "\u017Fam@example.com", "\u017Fam@example.com", "sam@example.com"},    // folding only
	{"dotless capital I", "\u0130x@example.com", "\u0130x@example.com", "i\u0307x@example.com"},
	{"atext", "a!#$%&'*+-/=?^_`{|}~z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com"},
	{"dots", "first.middle.last@example.com", "first.middle.last@example.com", "first.middle.last@example.com"},
	{"plus tag", "Bob+Tag@Mail.Example.org", "Bob+Tag@mail.example.org", "bob+tag@mail.example.org"},
	{"utf8 local", "用户@例子.广告", "用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"},
	{"greek", "ΣΊΣΥΦΟΣ@example.gr", "ΣΊΣΥΦΟΣ@example.gr", "σίσυφοσ@example.gr"},
	{"localhost", "root@localhost", "root@localhost", "root@localhost"},
	{"localhost upper", "root@LOCALHOST", "root@localhost", "root@localhost"},
	{"digits in labels", "a@123.example.com", "a@123.example.com", "a@123.example.com"},
	{"hyphen inside label", "a@my-host.example", "a@my-host.example", "a@my-host.example"},
	{"tab trimmed", "\ta@example.com\r\n", "a@example.com", "a@example.com"},
	{"64-octet local", strings.Repeat("l", 64) + "@example.com", strings.Repeat("l", 64) + "@example.com", strings.Repeat("l", 64) + "@example.com"},
	{"254 chars", strings.Repeat("l", 64) + "@" + longDomain(189), strings.Repeat("l", 64) + "@" + longDomain(189), strings.Repeat("l", 64) + "@" + longDomain(189)},
}

var rejectCases = []struct {
	name, in string
}{
	{"empty", ""},
	{"only space", "   "},
	{"no at", "plainaddress"},
	{"no local", "@example.com"},
	{"no domain", "a@"},
	{"double at", "a@@b.com"},
	{"two ats", "a@b@c.com"},
	{"double dot", "a..b@c.com"},
	{"leading dot", ".a@c.com"},
	{"trailing dot local", "a.@c.com"},
	{"single label", "a@c"},
	{"leading hyphen", "a@-c.com"},
	{"trailing hyphen", "a@c-.com"},
	{"trailing dot domain", "a@c.com."},
	{"trailing ideographic full stop", "a@c.com\u3002"},
	{"empty label", "a@c..com"},
	{"leading dot domain", "a@.c.com"},
	{"ip literal", "a@[127.0.0.1]"},
	{"ipv6 literal", "a@[IPv6:::1]"},
	{"quoted", "\"a b\"@c.com"},
	{"quoted with at", "\"a@b\"@c.com"},
	{"quoted plain", "\"ab\"@c.com"},
	{"space inside", "a b@c.com"},
	{"nbsp inside", "a\u00a0b@c.com"},
	{"zwsp", "a\u200b@c.com"},
	{"replacement character", "a\ufffd@c.com"},
	{"zwj", "a\u200d@c.com"},
	{"zwnj", "a\u200c@c.com"},
	{"word joiner", "a\u2060@c.com"},
	{"bom", "\ufeffa@c.com"},
	{"soft hyphen local", "a\u00ad@c.com"},
	{"soft hyphen domain", "a@c\u00adx.com"},
	{"zwsp domain", "a@c\u200bx.com"},
	{"rlo", "a\u202e@c.com"},
	{"lrm", "a\u200e@c.com"},
	{"rlm", "a\u200f@c.com"},
	{"rli", "a\u2067@c.com"},
	{"arabic letter mark", "a\u061c@c.com"},
	{"nul", "a\x00@c.com"},
	{"newline", "a\n@c.com"},
	{"del", "a\x7f@c.com"},
	{"line separator", "a\u2028@c.com"},
	{"private use", "a\ue000@c.com"},
	{"unassigned", "a\U0003FFFD@c.com"},
	{"variation selector", "a\ufe0f@c.com"},
	{"hangul filler", "a\u3164@c.com"},
	{"cgj", "a\u034f@c.com"},
	{"65-octet local", strings.Repeat("l", 65) + "@example.com"},
	{"65-octet utf8 local", strings.Repeat("é", 32) + "l@example.com"},
	{"255 chars", strings.Repeat("l", 64) + "@" + longDomain(190)},
	{"huge", strings.Repeat("a", 100000) + "@example.com"},
	{"label too long", "a@" + strings.Repeat("d", 64) + ".com"},
	{"invalid utf8", "a\xff@c.com"},
	{"invalid utf8 domain", "a@c\xc3.com"},
	{"numeric tld", "a@c.123"},
	{"ip disguised", "a@1.2.3.4"},
	{"comma", "a,b@c.com"},
	{"backslash", "a\\b@c.com"},
	{"angle brackets", "<a@c.com>"},
	{"display name", "Alice <a@c.com>"},
	{"parens comment", "a(comment)@c.com"},
	{"underscore domain", "a@c_d.com"},
	{"bad punycode", "a@xn--a.com"},
	{"fake a-label hyphens", "a@ab--cd.com"},
	{"bidi rule", "a@\u05d0a.com"},
	{"fullwidth at", "a\uff20c.com"},
}

// longDomain returns a valid domain of exactly n octets (n >= 5).
func longDomain(n int) string {
	var b strings.Builder
	for b.Len() < n-4 {
		rem := n - 4 - b.Len()
		if b.Len() > 0 {
			b.WriteByte('.')
			rem--
		}
		if rem > 63 {
			rem = 50
		}
		if rem < 1 {
			// cannot happen for the sizes used here
			break
		}
		b.WriteString(strings.Repeat("d", rem))
	}
	return b.String() + ".com"
}

func TestLongDomain(t *testing.T) {
	for _, n := range []int{189, 190} {
		if d := longDomain(n); len(d) != n {
			t.Fatalf("longDomain(%d) has %d octets: %q", n, len(d), d)
		}
	}
}

func TestNormalizeAccept(t *testing.T) {
	for _, tc := range acceptCases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Normalize(tc.in)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tc.in, err)
			}
			if a.Email != tc.email {
				t.Errorf("Normalize(%q).Email = %q, want %q", tc.in, a.Email, tc.email)
			}
			if a.Key != tc.key {
				t.Errorf("Normalize(%q).Key = %q, want %q", tc.in, a.Key, tc.key)
			}
		})
	}
}

func TestNormalizeReject(t *testing.T) {
	for _, tc := range rejectCases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Normalize(tc.in)
			if err == nil {
				t.Fatalf("Normalize(%q) = %+v, want error", tc.in, a)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Normalize(%q) error %v does not wrap ErrInvalid", tc.in, err)
			}
			if !strings.HasPrefix(err.Error(), "address: ") {
				t.Errorf("Normalize(%q) error text %q lacks the \"address: \" prefix", tc.in, err)
			}
			if a != (Address{}) {
				t.Errorf("Normalize(%q) returned non-zero Address %+v with error", tc.in, a)
			}
		})
	}
}

func TestSameKey(t *testing.T) {
	pairs := [][2]string{
		{"ALICE@example.com", "alice@EXAMPLE.com"},
		{"straße@example.com", "STRASSE@example.com"},
		{"e\u0301@example.com", "é@example.com"},
		{"a@BÜCHER.example", "a@xn--bcher-kva.example"},
		{"a@bücher.example", "a@bu\u0308cher.example"},
	}
	for _, p := range pairs {
		a, err := Normalize(p[0])
		if err != nil {
			t.Fatalf("Normalize(%q): %v", p[0], err)
		}
		b, err := Normalize(p[1])
		if err != nil {
			t.Fatalf("Normalize(%q): %v", p[1], err)
		}
		if a.Key != b.Key {
			t.Errorf("keys differ: %q -> %q, %q -> %q", p[0], a.Key, p[1], b.Key)
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plainaddress", "address: missing @"},
		{"a\u200b@c.com", "address: control or invisible character U+200B"},
		{strings.Repeat("l", 64) + "@" + longDomain(190), "address: longer than 254 characters"},
		{"\"ab\"@c.com", "address: quoted local parts are not accepted"},
		{"a b@c.com", "address: white space character U+0020"},
		{"a@b@c.com", "address: more than one @"},
		{"a@[127.0.0.1]", "address: IP address literals are not accepted"},
	}
	for _, tc := range tests {
		_, err := Normalize(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Normalize(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestASCII(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Alice@Example.COM", "Alice@example.com"},
		{"Ü@BÜCHER.example", "Ü@xn--bcher-kva.example"},
	}
	for _, tc := range tests {
		a, err := Normalize(tc.in)
		if err != nil {
			t.Fatalf("Normalize(%q): %v", tc.in, err)
		}
		if got := a.ASCII(); got != tc.want {
			t.Errorf("Normalize(%q).ASCII() = %q, want %q", tc.in, got, tc.want)
		}
		if got := (Address{Email: a.Email}).ASCII(); got != tc.want {
			t.Errorf("Address{Email: %q}.ASCII() = %q, want %q", a.Email, got, tc.want)
		}
	}
}

// rejectedRune reports whether r belongs to a class Normalize must never
// let through. It is written independently of checkRunes on purpose.
func rejectedRune(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zs, unicode.Zl, unicode.Zp,
		unicode.White_Space, unicode.Bidi_Control, unicode.Join_Control, unicode.Variation_Selector,
		unicode.Other_Default_Ignorable_Code_Point) ||
		!unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) ||
		r == utf8.RuneError
}

func FuzzNormalize(f *testing.F) {
	for _, tc := range acceptCases {
		f.Add(tc.in)
	}
	for _, tc := range rejectCases {
		if len(tc.in) > 1000 {
			continue // the mutator and minimizer crawl on huge seeds
		}
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		a, err := Normalize(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Normalize(%q) error %v does not wrap ErrInvalid", in, err)
			}
			return
		}
		b, err := Normalize(a.Email)
		if err != nil {
			t.Fatalf("Normalize(%q) ok, but Normalize of its Email %q: %v", in, a.Email, err)
		}
		if a != b {
			t.Fatalf("not idempotent: %q -> %+v -> %+v", in, a, b)
		}
		for i := 0; i < len(a.Key); i++ {
			if c := a.Key[i]; 'A' <= c && c <= 'Z' {
				t.Fatalf("Normalize(%q).Key = %q has upper-case ASCII", in, a.Key)
			}
		}
		if !norm.NFC.IsNormalString(a.Email) {
			t.Fatalf("Normalize(%q).Email = %q is not NFC", in, a.Email)
		}
		if !utf8.ValidString(a.Email) || !utf8.ValidString(a.Key) {
			t.Fatalf("Normalize(%q) produced invalid UTF-8: %+v", in, a)
		}
		ascii := a.ASCII()
		at := strings.LastIndexByte(a.Email, '@')
		kat := strings.LastIndexByte(a.Key, '@')
		if at < 1 || kat < 1 || strings.Count(a.Email, "@") != 1 || strings.Count(a.Key, "@") != 1 {
			t.Fatalf("Normalize(%q) = %+v: not exactly one @ with a local part", in, a)
		}
		if at > 64 {
			t.Fatalf("Normalize(%q).Email = %q: local part %d octets", in, a.Email, at)
		}
		if len(ascii) > 254 || utf8.RuneCountInString(a.Email) > 254 {
			t.Fatalf("Normalize(%q) = %+v: longer than 254 (ASCII form %d octets)", in, a, len(ascii))
		}
		domain := a.Key[kat+1:]
		if len(domain) > 253 || !strings.HasSuffix(ascii, "@"+domain) {
			t.Fatalf("Normalize(%q) = %+v: bad ASCII domain %q (ASCII() = %q)", in, a, domain, ascii)
		}
		for _, l := range strings.Split(domain, ".") {
			if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				t.Fatalf("Normalize(%q) = %+v: bad label %q", in, a, l)
			}
		}
		for _, s := range []string{a.Email, a.Key} {
			for _, r := range s {
				if rejectedRune(r) {
					t.Fatalf("Normalize(%q) = %+v contains rejected rune %U", in, a, r)
				}
			}
		}
	})
}
