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
	{"atext", "a#$&'*+-/=?^_`{|}~z@example.com", "a#$&'*+-/=?^_`{|}~z@example.com", "a#$&'*+-/=?^_`{|}~z@example.com"},
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

// scriptCases are the rules against deceiving addresses: mixed scripts in a
// domain (taken whole) or a local part, and the old routing characters.
// reason is a part of the refusal's text; "" means the address must pass.
var scriptCases = []struct {
	name, in, reason string
}{
	{"cyrillic a in latin domain", "a@ex\u0430mple.org", "domain mixes Latin and Cyrillic letters"},
	{"cyrillic label beside latin", "a@\u0430\u0440\u0440\u04cf\u0435.com", "domain mixes Cyrillic and Latin letters"},
	{"cyrillic label beside latin, a-label", "a@xn--e1afmkfd.com", "domain mixes Cyrillic and Latin letters"},
	{"greek omicron in latin domain", "a@g\u03bfogle.com", "domain mixes Latin and Greek letters"},
	{"cyrillic a in latin local", "p\u0430ypal@example.com", "local part mixes Latin and Cyrillic letters"},
	{"greek alpha in latin local", "\u03b1lice@example.com", "local part mixes Greek and Latin letters"},
	{"three scripts local", "a\u0431\u03b3@example.com", "local part mixes Latin, Cyrillic and Greek letters"},
	{"hangul and hiragana", "\ud55c\uad6d\u3072\u3089@example.com", "local part mixes Hangul and Hiragana letters"},
	{"latin and cherokee", "\u13aapple@example.com", "local part mixes Cherokee and Latin letters"},
	{"cyrillic and armenian domain", "a@\u0430\u0562.example", "domain mixes Cyrillic, Armenian and Latin letters"},
	{"percent route", "a%evil.example@example.com", "character '%' is not accepted in the local part"},
	{"bang path", "evil.example!a@example.com", "character '!' is not accepted in the local part"},
	{"percent alone", "%@example.com", "character '%' is not accepted"},

	{"japanese", "\u3084\u307e\u3060.\u592a\u90ce@\u4f8b\u3048.\u30c6\u30b9\u30c8", ""},
	{"japanese with latin", "tanaka\u592a\u90ce\u30fc@example.jp", ""},
	{"japanese domain under latin tld", "a@\u4f8b\u3048.jp", ""},
	{"chinese", "\u5f20\u4f1f@\u516c\u53f8.\u4e2d\u56fd", ""},
	{"chinese with bopomofo", "\u3105\u3106\u4e2d\u6587@example.com", ""},
	{"korean", "\uc0ac\uc6a9\uc790@\uc608\uc2dc.\ud55c\uad6d", ""},
	{"korean domain under latin tld", "a@\ud55c\uad6d.kr", ""},
	{"greek", "\u03c7\u03c1\u03ae\u03c3\u03c4\u03b7\u03c2@\u03c0\u03b1\u03c1\u03ac\u03b4\u03b5\u03b9\u03b3\u03bc\u03b1.\u03b5\u03bb", ""},
	{"greek local, latin domain", "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3@example.gr", ""},
	{"cyrillic only", "\u043f\u043e\u043b\u044c\u0437\u043e\u0432\u0430\u0442\u0435\u043b\u044c@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", ""},
	{"cyrillic local, latin domain", "\u0438\u0432\u0430\u043d@example.com", ""},
	{"cyrillic with digits and hyphens", "\u0438\u0432\u0430\u043d-1990@\u043f\u0440\u0438\u043c\u0435\u0440-2.\u0440\u0444", ""},
	{"german umlauts", "J\u00fcrgen.M\u00fcller@b\u00fccher.de", ""},
	{"digits and hyphens", "user-2024@my-host-1.example", ""},
	{"thai", "\u0e1c\u0e39\u0e49\u0e43\u0e0a\u0e49@\u0e15\u0e31\u0e27\u0e2d\u0e22\u0e48\u0e32\u0e07.\u0e44\u0e17\u0e22", ""},
	{"latin and devanagari", "ram\u0930\u093e\u092e@example.in", ""},
	{"combining mark on latin", "e\u0301cole@example.fr", ""},
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

func TestScripts(t *testing.T) {
	for _, tc := range scriptCases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Normalize(tc.in)
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("Normalize(%q): %v", tc.in, err)
			case tc.reason == "":
				local := norm.NFC.String(tc.in[:strings.LastIndexByte(tc.in, '@')])
				if !strings.HasPrefix(a.Email, local+"@") {
					t.Errorf("Normalize(%q).Email = %q, want the local part %q as typed", tc.in, a.Email, local)
				}
			case err == nil:
				t.Fatalf("Normalize(%q) = %+v, want an error containing %q", tc.in, a, tc.reason)
			case !errors.Is(err, ErrInvalid):
				t.Fatalf("Normalize(%q) error %v does not wrap ErrInvalid", tc.in, err)
			case !strings.Contains(err.Error(), tc.reason):
				t.Errorf("Normalize(%q) error %q, want it to contain %q", tc.in, err, tc.reason)
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
	for _, tc := range scriptCases {
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
		if strings.ContainsAny(a.Email[:at], "%!") {
			t.Fatalf("Normalize(%q).Email = %q has a routing character in its local part", in, a.Email)
		}
		for _, part := range []string{a.Email[:at], a.Email[at+1:]} {
			if lookAlike(part) {
				t.Fatalf("Normalize(%q).Email = %q mixes Latin with Cyrillic or Greek in %q", in, a.Email, part)
			}
		}
	})
}

// lookAlike reports whether s has Latin letters beside Cyrillic or Greek
// ones, the mix behind most look-alike addresses. It is written
// independently of checkScripts on purpose.
func lookAlike(s string) bool {
	var latin, other bool
	for _, r := range s {
		latin = latin || unicode.Is(unicode.Latin, r)
		other = other || unicode.In(r, unicode.Cyrillic, unicode.Greek)
	}
	return latin && other
}
