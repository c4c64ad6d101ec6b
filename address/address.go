// Package address owns the normalization of email addresses: it is the one
// function every entry point (sign-up, add-address, verification, login,
// change of primary address) uses to turn user input into an Address, so that
// two spellings of the same mailbox can never become two accounts.
//
// Addresses are compared after normalization: surrounding white space is
// trimmed, the text is put in Unicode NFC, the domain is converted with IDNA
// (and so lower-cased), and the whole address is case-folded for comparison.
// Control, invisible and bidi characters are rejected rather than stripped,
// because stripping them would let two visibly different inputs collide (or
// two visibly identical ones differ) after the fact.
//
// The accepted syntax is a deliverable subset of the RFC 5321/5322 addr-spec
// with RFC 6532 (UTF-8) local parts: a dot-atom local part without the old
// routing characters '%' and '!', one '@', and a DNS host name, at most 254
// characters in all.
//
// Addresses made to deceive people are refused as well: a domain, taken as
// a whole, or a local part whose letters mix scripts the way UTS #39
// "moderately restrictive" forbids (exаmple.org with a Cyrillic "а",
// аррӏе.com), because lists and notices show them in Unicode.
//
// This package must not import anything else of the project; it depends only
// on the standard library, golang.org/x/text and golang.org/x/net/idna.
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Length limits. The 254 limit on the whole address is the RFC 5321 path
// limit (256 octets including the angle brackets); 64 and 253/63 are the
// RFC 5321 local-part and RFC 1035 domain limits.
const (
	maxAddress = 254
	maxLocal   = 64
	maxDomain  = 253
	maxLabel   = 63

	// maxInput bounds the work done on hostile input before any other
	// check. NFC and the IDNA mapping shrink text by at most a factor of four
	// (a 4-byte rune mapped to one ASCII byte), so no input longer than this
	// can normalize to a valid address; rejecting it early is not a change
	// of the accepted language.
	maxInput = 16 * maxAddress
)

// Address is a normalized email address.
type Address struct {
	// Email is the display form stored and shown: trimmed, NFC, the local
	// part as typed (case preserved), the domain in lower-case Unicode
	// (U-label) form.
	Email string
	// Key is the comparison key: the full Unicode case folding of the NFC
	// local part (normalized to NFC again), "@", and the lower-case ASCII
	// (A-label, punycode) domain. Two addresses are the same mailbox for
	// this service exactly when their Keys are equal.
	Key string
}

// ErrInvalid is wrapped by every rejection; the wrapping error's text says
// why in plain words, e.g. "address: missing @".
var ErrInvalid = errors.New("invalid email address")

// invalidError is the concrete rejection: its text is the reason, and it
// unwraps to ErrInvalid so callers test with errors.Is.
type invalidError struct{ reason string }

func (e *invalidError) Error() string { return "address: " + e.reason }
func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalid(format string, args ...any) error {
	return &invalidError{reason: fmt.Sprintf(format, args...)}
}

// profile converts domains. It is IDNA2008 (non-transitional, so "ß" stays
// "ß" and is not silently turned into "ss") with the UTS #46 lookup mapping,
// which lower-cases and width-folds what users type, plus the label
// validity, hyphen, joiner and Bidi rules. Lengths are checked by Normalize
// itself so that the error says which limit was hit.
var profile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.StrictDomainName(true),
	idna.Transitional(false),
)

// fold returns the comparison form of a local part: full Unicode case
// folding (e.g. "ß" -> "ss", U+212A KELVIN SIGN -> "k"), then NFC again,
// because folding can decompose a character (U+0130 -> "i\u0307") and the
// key must not depend on which canonically equivalent form folding left.
// A cases.Caser is stateful and not safe for concurrent use, so each call
// makes its own.
func fold(s string) string {
	return norm.NFC.String(cases.Fold().String(s))
}

// Normalize validates raw as an email address and returns its normalized
// display form and comparison key. Every rejection wraps ErrInvalid.
func Normalize(raw string) (Address, error) {
	// 1. Encoding, surrounding space, normalization form.
	if !utf8.ValidString(raw) {
		return Address{}, invalid("not valid UTF-8")
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return Address{}, invalid("empty")
	}
	if len(s) > maxInput {
		return Address{}, invalid("longer than %d characters", maxAddress)
	}
	s = norm.NFC.String(s)

	// 2. Characters that must not appear anywhere. This runs before the
	// '@' split so that it also covers the domain before IDNA mapping,
	// which would otherwise silently delete some of them (U+00AD, U+200B).
	if err := checkRunes(s); err != nil {
		return Address{}, err
	}

	// 3. Structure: local "@" domain, exactly one '@'.
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, invalid("missing @")
	}
	local, domain := s[:at], s[at+1:]
	if strings.ContainsRune(local, '"') {
		// Quoted local parts ("a b"@example.com) are legal RFC 5322 but
		// rarely deliverable, and they allow addresses that look like two
		// addresses or hide spaces and '@'; no real user needs one.
		return Address{}, invalid("quoted local parts are not accepted")
	}
	if strings.IndexByte(local, '@') >= 0 {
		return Address{}, invalid("more than one @")
	}
	if err := checkLocal(local); err != nil {
		return Address{}, err
	}
	if err := checkScripts("local part", local); err != nil {
		return Address{}, err
	}

	// 4. Domain.
	ascii, unicodeDomain, err := convertDomain(domain)
	if err != nil {
		return Address{}, err
	}
	if err := checkScripts("domain", unicodeDomain); err != nil {
		return Address{}, err
	}

	// Both length readings of "≤ 254 characters" are enforced: octets of
	// the form that goes on the wire (ASCII domain) and runes of the form
	// people see. The first implies the second (an A-label is never
	// shorter than its U-label in runes), so the second is a backstop.
	wireLen := len(local) + 1 + len(ascii)
	email := local + "@" + unicodeDomain
	if wireLen > maxAddress || utf8.RuneCountInString(email) > maxAddress {
		return Address{}, invalid("longer than %d characters", maxAddress)
	}

	// 5. Display form and comparison key.
	return Address{
		Email: email,
		Key:   fold(local) + "@" + ascii,
	}, nil
}

// ASCII returns the address with the domain in A-label form (for SMTP
// envelopes). The local part is unchanged, so an address with a non-ASCII
// local part still needs an SMTPUTF8-capable server.
func (a Address) ASCII() string {
	at := strings.LastIndexByte(a.Email, '@')
	if at < 0 {
		return a.Email
	}
	// The Key already carries the A-label domain (the folded local part
	// cannot contain '@').
	if k := strings.LastIndexByte(a.Key, '@'); k >= 0 {
		return a.Email[:at+1] + a.Key[k+1:]
	}
	// An Address not made by Normalize: convert on the spot.
	d, err := profile.ToASCII(a.Email[at+1:])
	if err != nil {
		return a.Email
	}
	return a.Email[:at+1] + d
}

// checkRunes rejects the characters that are never allowed in an address:
// white space, controls, format characters (which include the invisible
// joiners and all bidi controls), separators, private use, unassigned code
// points, variation selectors and the other default-ignorable code points
// such as U+034F and the Hangul fillers. Variation selectors are rejected
// too, although emoji use them, because they are invisible and would make
// two addresses that render identically compare different.
func checkRunes(s string) error {
	for _, r := range s {
		if r < utf8.RuneSelf && r > ' ' && r != 0x7f {
			continue // printable ASCII; syntax is checked later
		}
		switch {
		case unicode.Is(unicode.Cc, r):
			return invalid("control or invisible character %U", r)
		case unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
			return invalid("white space character %U", r)
		case isBidiControl(r):
			return invalid("bidirectional control character %U", r)
		case unicode.Is(unicode.Cf, r),
			unicode.Is(unicode.Variation_Selector, r),
			unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
			return invalid("control or invisible character %U", r)
		case r == utf8.RuneError:
			// U+FFFD stands in for bytes that were not text (a JSON "\ud800"
			// escape decodes to it): never part of a real address.
			return invalid("replacement character %U", r)
		case unicode.Is(unicode.Co, r):
			return invalid("private-use character %U", r)
		case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S):
			// What is left is Cs (not representable in valid UTF-8) and
			// Cn: code points unassigned in this Go's Unicode tables.
			return invalid("unassigned character %U", r)
		}
	}
	return nil
}

// isBidiControl reports whether r is one of the explicit bidirectional
// formatting characters, which can make an address display in a different
// order than it is stored ("Trojan Source"-style spoofing).
func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F ||
		(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// checkLocal checks the local part as an RFC 5322 dot-atom whose atext is
// extended with any non-ASCII character (RFC 6532); checkRunes has already
// removed the non-ASCII characters that are not acceptable.
func checkLocal(local string) error {
	switch {
	case local == "":
		return invalid("missing local part before @")
	case len(local) > maxLocal:
		return invalid("local part longer than %d octets", maxLocal)
	case local[0] == '.':
		return invalid("local part starts with a dot")
	case local[len(local)-1] == '.':
		return invalid("local part ends with a dot")
	case strings.Contains(local, ".."):
		return invalid("local part contains two dots in a row")
	}
	for _, r := range local {
		switch {
		case r == '%' || r == '!':
			// a%relay@host and relay!a@host are source routes: some mail
			// servers still forward them to the host they name.
			return invalid("character %q is not accepted in the local part: mail servers may read it as a route to another host", r)
		case r >= utf8.RuneSelf || r == '.' || isAtext(byte(r)):
			continue
		}
		return invalid("character %q is not allowed in the local part", r)
	}
	return nil
}

// isAtext reports whether the ASCII byte c is RFC 5322 atext.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// convertDomain validates domain and returns its lower-case A-label and
// U-label forms.
func convertDomain(domain string) (ascii, uni string, err error) {
	switch {
	case domain == "":
		return "", "", invalid("missing domain after @")
	case domain[0] == '[':
		// Address literals bypass DNS (and so MX policy and any domain
		// block list) and are essentially never used by real mailboxes.
		return "", "", invalid("IP address literals are not accepted")
	}
	ascii, err = profile.ToASCII(domain)
	if err != nil {
		return "", "", invalid("domain is not a valid host name")
	}
	ascii = strings.ToLower(ascii) // the mapping already lower-cases; be explicit.

	// Label checks on the converted form, so that a trailing U+3002
	// IDEOGRAPHIC FULL STOP counts as the trailing dot it maps to.
	if strings.HasSuffix(ascii, ".") {
		return "", "", invalid("domain ends with a dot")
	}
	if len(ascii) > maxDomain {
		return "", "", invalid("domain longer than %d octets", maxDomain)
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 && ascii != "localhost" {
		return "", "", invalid("domain has no dot")
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", "", err
		}
	}
	if allDigits(labels[len(labels)-1]) {
		// Otherwise "a@1.2.3.4" would be an IP address in disguise.
		return "", "", invalid("top-level domain is all digits")
	}

	uni, err = profile.ToUnicode(ascii)
	if err != nil {
		return "", "", invalid("domain is not a valid host name")
	}
	// Why the round trip: an A-label typed by the user must be the
	// canonical encoding of its U-label, otherwise the stored Email would
	// normalize to a different Key than the one stored with it. And the
	// U-label must pass the same character rules as typed input, because
	// IDNA permits e.g. U+200D ZERO WIDTH JOINER in some contexts.
	if back, err := profile.ToASCII(uni); err != nil || back != ascii {
		return "", "", invalid("domain is not in canonical IDNA form")
	}
	if !norm.NFC.IsNormalString(uni) {
		return "", "", invalid("domain is not in canonical IDNA form")
	}
	if err := checkRunes(uni); err != nil {
		return "", "", err
	}
	return ascii, uni, nil
}

// checkLabel checks one A-label: 1..63 octets of letters, digits and
// hyphens, not starting or ending with a hyphen.
func checkLabel(l string) error {
	switch {
	case l == "":
		return invalid("domain has an empty label")
	case len(l) > maxLabel:
		return invalid("domain label longer than %d octets", maxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return invalid("domain label starts or ends with a hyphen")
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return invalid("character %q is not allowed in a domain", c)
		}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
