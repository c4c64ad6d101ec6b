package store

import "unicode/utf8"

// maxLastError bounds the error text the outbox keeps of an attempt.
const maxLastError = 1000

// ellipsis ends a text that boundText cut.
const ellipsis = "…"

// boundText returns s if it fits in limit bytes, else its longest prefix
// that ends on a rune boundary and fits with ellipsis appended. The store
// passes every free text it keeps through it, so callers need not bound
// what they hand over; limit must exceed len(ellipsis).
func boundText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	n := limit - len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}
