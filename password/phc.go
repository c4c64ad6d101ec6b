package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformedHash is wrapped by every error Verify returns for an encoded
// hash it cannot use; the wrapping error's text says why.
var ErrMalformedHash = errors.New("password: malformed hash")

const (
	prefix     = "$argon2id$"
	maxEncoded = 4096 // longest encoded hash Verify looks at
)

var b64 = base64.RawStdEncoding.Strict()

// encode writes the PHC string
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>, with salt and
// key in unpadded standard base64.
func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s",
		prefix, argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}

// decode parses a PHC argon2id string strictly: the fields in the order
// encode writes them, canonical decimal numbers and canonical unpadded
// base64, and parameters within the bounds of Params.Validate.
func decode(encoded string) (p Params, salt, key []byte, err error) {
	if len(encoded) > maxEncoded {
		return Params{}, nil, nil, malformed("longer than %d bytes", maxEncoded)
	}
	if !strings.HasPrefix(encoded, prefix) {
		return Params{}, nil, nil, malformed("not an argon2id hash")
	}
	fields := strings.Split(encoded[len(prefix):], "$")
	if len(fields) != 4 {
		return Params{}, nil, nil, malformed("want 4 fields after %q, have %d", prefix, len(fields))
	}
	v, ok := cutNumber(fields[0], "v=", 0xff)
	if !ok {
		return Params{}, nil, nil, malformed("bad version field %q", fields[0])
	}
	if v != argon2.Version {
		return Params{}, nil, nil, malformed("unsupported argon2 version %d", v)
	}
	ps := strings.Split(fields[1], ",")
	if len(ps) != 3 {
		return Params{}, nil, nil, malformed("bad parameter field %q", fields[1])
	}
	m, okM := cutNumber(ps[0], "m=", 1<<32-1)
	t, okT := cutNumber(ps[1], "t=", 1<<32-1)
	par, okP := cutNumber(ps[2], "p=", 0xff)
	if !okM || !okT || !okP {
		return Params{}, nil, nil, malformed("bad parameter field %q", fields[1])
	}
	salt, err = decodeB64(fields[2])
	if err != nil {
		return Params{}, nil, nil, malformed("bad salt: %v", err)
	}
	key, err = decodeB64(fields[3])
	if err != nil {
		return Params{}, nil, nil, malformed("bad key: %v", err)
	}
	p = Params{
		Memory:      uint32(m),
		Iterations:  uint32(t),
		Parallelism: uint8(par),
		SaltLen:     uint32(len(salt)),
		KeyLen:      uint32(len(key)),
	}
	if err := p.Validate(); err != nil {
		return Params{}, nil, nil, malformed("%v", err)
	}
	return p, salt, key, nil
}

// cutNumber parses s as name followed by a canonical decimal number (digits
// only, no sign, no leading zero) of at most limit.
func cutNumber(s, name string, limit uint64) (uint64, bool) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok || digits == "" || len(digits) > 10 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n <= limit
}

// decodeB64 decodes canonical unpadded standard base64. The round trip
// rejects what the decoder would otherwise skip (line breaks).
func decodeB64(s string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if b64.EncodeToString(b) != s {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}
