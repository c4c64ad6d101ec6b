package address

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// checkScripts refuses an identifier (a whole domain, or a local part) whose
// letters mix writing systems beyond what UTS #39 "moderately restrictive"
// allows: one script; Latin with Han, Hiragana and Katakana, with Han and
// Bopomofo, or with Han and Hangul; or Latin and one other Recommended
// script (UAX #31 Table 4) but Cyrillic and Greek. Common and Inherited
// characters (digits, '-', '.', combining marks) go with every script.
//
// The script of a character is its Unicode Script property from the
// standard library's tables; Go has no Script_Extensions, so the few
// characters whose extensions span scripts (U+0660..U+0669 in Thaana
// text) count for their own script alone.
func checkScripts(part, s string) error {
	scripts := mixedScripts(s)
	if scripts == nil {
		return nil
	}
	names := make([]string, len(scripts))
	for i, sc := range scripts {
		names[i] = strings.ReplaceAll(sc, "_", " ")
	}
	list := strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	return invalid("%s mixes %s letters, so it could pass for another address", part, list)
}

// mixedScripts returns the scripts of s, in the order they first appear,
// when their mix is refused, and nil when it is allowed.
func mixedScripts(s string) []string {
	var scripts []string
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		sc := scriptOf(r)
		if sc == "Common" || sc == "Inherited" || slices.Contains(scripts, sc) {
			continue
		}
		scripts = append(scripts, sc)
	}
	if len(scripts) <= 1 {
		return nil
	}
	others := slices.DeleteFunc(slices.Clone(scripts), func(sc string) bool { return sc == "Latin" })
	for _, set := range eastAsian {
		if subset(others, set) {
			return nil
		}
	}
	// Two scripts, one of them not Latin: Latin and that one.
	if len(others) == 1 && recommended[others[0]] && others[0] != "Cyrillic" && others[0] != "Greek" {
		return nil
	}
	return scripts
}

// eastAsian are the script sets that are written together (UTS #39's
// Jpan, Hanb and Kore), each allowed beside Latin.
var eastAsian = [][]string{
	{"Han", "Hiragana", "Katakana"},
	{"Han", "Bopomofo"},
	{"Han", "Hangul"},
}

// recommended are the scripts of UAX #31 Table 4 (Recommended Scripts),
// Common and Inherited left out.
var recommended = map[string]bool{
	"Arabic": true, "Armenian": true, "Bengali": true, "Bopomofo": true,
	"Cyrillic": true, "Devanagari": true, "Ethiopic": true, "Georgian": true,
	"Greek": true, "Gujarati": true, "Gurmukhi": true, "Han": true,
	"Hangul": true, "Hebrew": true, "Hiragana": true, "Kannada": true,
	"Katakana": true, "Khmer": true, "Lao": true, "Latin": true,
	"Malayalam": true, "Myanmar": true, "Oriya": true, "Sinhala": true,
	"Tamil": true, "Telugu": true, "Thaana": true, "Thai": true,
	"Tibetan": true,
}

func subset(s, of []string) bool {
	for _, x := range s {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}

// scriptRange is a run of code points of one script.
type scriptRange struct {
	lo, hi rune
	script string
}

// scriptRanges is unicode.Scripts as one sorted list of disjoint ranges,
// so that finding a character's script is one binary search rather than a
// search of each of the 160 tables.
var scriptRanges = sync.OnceValue(func() []scriptRange {
	var rs []scriptRange
	add := func(lo, hi, stride rune, name string) {
		if stride == 1 {
			rs = append(rs, scriptRange{lo, hi, name})
			return
		}
		for r := lo; r <= hi; r += stride {
			rs = append(rs, scriptRange{r, r, name})
		}
	}
	for name, t := range unicode.Scripts {
		for _, r := range t.R16 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride), name)
		}
		for _, r := range t.R32 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride), name)
		}
	}
	slices.SortFunc(rs, func(a, b scriptRange) int { return cmp.Compare(a.lo, b.lo) })
	return rs
})

// scriptOf returns the Unicode Script property of r, as named in
// unicode.Scripts ("Unknown" for an unassigned code point).
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return "Common"
	}
	rs := scriptRanges()
	i, found := slices.BinarySearchFunc(rs, r, func(sr scriptRange, r rune) int {
		switch {
		case sr.hi < r:
			return -1
		case sr.lo > r:
			return 1
		}
		return 0
	})
	if !found {
		return "Unknown"
	}
	return rs[i].script
}
