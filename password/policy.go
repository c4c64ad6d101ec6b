package password

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// The policy's length bounds, in characters (Unicode code points).
const (
	MinLength = 8
	MaxLength = 1024
)

// Weakness names the rule of the policy a password breaks.
type Weakness string

// The rules of the policy.
const (
	TooShort    Weakness = "too_short"
	TooLong     Weakness = "too_long"
	Common      Weakness = "common"
	LikeAddress Weakness = "like_address"
)

// WeakError is a password that breaks the policy, and which rule it breaks.
type WeakError struct {
	Weakness Weakness
}

func (e *WeakError) Error() string {
	switch e.Weakness {
	case TooShort:
		return fmt.Sprintf("the password needs at least %d characters", MinLength)
	case TooLong:
		return fmt.Sprintf("the password may have at most %d characters", MaxLength)
	case Common:
		return "the password is one of the most common passwords"
	default:
		return "the password is the email address or its local part"
	}
}

// CheckPolicy reports how password breaks the policy, as a *WeakError, or
// nil: it must have MinLength to MaxLength characters, must not be among
// Django's common passwords (compared as Django does, trimmed and
// lower-cased), and must not equal, ignoring case, any of addresses or
// the part of one before its last '@'.
func CheckPolicy(password string, addresses ...string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinLength:
		return &WeakError{Weakness: TooShort}
	case n > MaxLength:
		return &WeakError{Weakness: TooLong}
	}
	if IsCommon(password) {
		return &WeakError{Weakness: Common}
	}
	for _, a := range addresses {
		local := a
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			local = a[:i]
		}
		if strings.EqualFold(password, a) || strings.EqualFold(password, local) {
			return &WeakError{Weakness: LikeAddress}
		}
	}
	return nil
}

//go:embed commonpasswords/common-passwords.txt.gz
var commonGzip []byte

// commonPasswords is Django's list, lower-cased and sorted, read once.
var commonPasswords = sync.OnceValue(func() []string {
	zr, err := gzip.NewReader(bytes.NewReader(commonGzip))
	if err != nil {
		panic("password: the embedded common-password list: " + err.Error())
	}
	list := make([]string, 0, 20000)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if w := strings.ToLower(strings.TrimSpace(sc.Text())); w != "" {
			list = append(list, w)
		}
	}
	if err := sc.Err(); err != nil {
		panic("password: the embedded common-password list: " + err.Error())
	}
	slices.Sort(list)
	return slices.Compact(list)
})

// IsCommon reports whether password is on Django's list of common
// passwords, after trimming white space and lower-casing it as Django's
// CommonPasswordValidator does. It looks it up by binary search.
func IsCommon(password string) bool {
	_, found := slices.BinarySearch(commonPasswords(), strings.ToLower(strings.TrimSpace(password)))
	return found
}

// CommonCount is how many distinct passwords the common list holds.
func CommonCount() int { return len(commonPasswords()) }
