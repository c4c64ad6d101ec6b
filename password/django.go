package password

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// The schemes of stored hashes, as Identify names them. Argon2id is this
// package's own PHC string; the others are Django's encoded passwords
// (django/contrib/auth/hashers.py), kept as Django wrote them so that
// imported users log in with their old passwords until they are rehashed.
const (
	SchemeArgon2id     = "argon2id"      // $argon2id$v=19$m=…,t=…,p=…$salt$key
	SchemePBKDF2SHA256 = "pbkdf2_sha256" // pbkdf2_sha256$iterations$salt$base64(key)
	SchemePBKDF2SHA1   = "pbkdf2_sha1"   // pbkdf2_sha1$iterations$salt$base64(key)
	SchemeDjangoArgon2 = "argon2"        // argon2$argon2id$v=19$m=…,t=…,p=…$b64salt$b64key (or argon2i)
	SchemeBcryptSHA256 = "bcrypt_sha256" // bcrypt_sha256$$2b$12$… over hex(sha256(password))
	SchemeBcrypt       = "bcrypt"        // bcrypt$$2b$12$…
	SchemeScrypt       = "scrypt"        // scrypt$N$salt$r$p$base64(key), Django 4.0+
)

// Cost limits on Django hashes. Why: a stored hash's parameters decide how
// much CPU and memory a login spends, so a crafted or corrupted row must not
// turn one login into minutes of work. Each limit is a few times the work of
// the current Django default: one to two seconds of a core at most
// (BenchmarkDjangoAtLimits).
const (
	// MaxPBKDF2Iterations is 2.5 times Django 6.0's 1,200,000.
	MaxPBKDF2Iterations = 3_000_000
	// MaxBcryptCost is 4 times the work of Django's cost 12.
	MaxBcryptCost = 14
	// MaxScryptMemory bounds scrypt's 128·N·r bytes (Django's default,
	// N=2^14 and r=8, uses 16 MiB) and MaxScryptWork its 128·N·r·p.
	MaxScryptMemory = 256 << 20
	MaxScryptWork   = 256 << 20
	// maxArgon2Work bounds argon2's memory × passes, in KiB: 5 times
	// Django's default of 100 MiB × 2 passes (see Params.Validate).
	maxArgon2Work = 1 << 20
)

// Identify reports the scheme of a stored hash (one of the Scheme
// constants) after checking it as Verify would, without deriving a key: a
// malformed hash, an unknown scheme or one over the cost limits is an error
// wrapping ErrMalformedHash. Import uses it to refuse what could never log in.
func Identify(encoded string) (string, error) {
	s, err := parseStored(encoded)
	if err != nil {
		return "", err
	}
	return s.scheme, nil
}

// storedHash is a parsed stored hash of any scheme.
type storedHash struct {
	scheme string
	cost   cost   // what decides the verification's time (equalizer)
	memory uint32 // KiB of working memory, for the hashing slots
	params Params // SchemeArgon2id only: to tell whether a rehash is due
	// matches derives the key of password and compares it with the stored
	// one in constant time.
	matches func(password string) bool
}

// parseStored parses encoded by its scheme prefix.
func parseStored(encoded string) (storedHash, error) {
	if len(encoded) > maxEncoded {
		return storedHash{}, malformed("longer than %d bytes", maxEncoded)
	}
	if strings.HasPrefix(encoded, prefix) {
		p, salt, key, err := decode(encoded)
		if err != nil {
			return storedHash{}, err
		}
		return storedHash{
			scheme: SchemeArgon2id, cost: costOf(p), memory: p.Memory, params: p,
			matches: func(password string) bool {
				got := argon2.IDKey(prepare(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
				return subtle.ConstantTimeCompare(got, key) == 1
			},
		}, nil
	}
	scheme, rest, _ := strings.Cut(encoded, "$")
	switch scheme {
	case SchemePBKDF2SHA256:
		return parsePBKDF2(scheme, rest, sha256.New, sha256.Size)
	case SchemePBKDF2SHA1:
		return parsePBKDF2(scheme, rest, sha1.New, sha1.Size)
	case SchemeDjangoArgon2:
		return parseDjangoArgon2(rest)
	case SchemeBcryptSHA256, SchemeBcrypt:
		return parseBcrypt(scheme, rest)
	case SchemeScrypt:
		return parseScrypt(rest)
	}
	return storedHash{}, malformed("not a hash of a known scheme")
}

// parsePBKDF2 parses Django's "<iterations>$<salt>$<base64 key>". Django
// hashes the password's UTF-8 bytes as they are (no normalization), with a
// key as long as the digest.
func parsePBKDF2(scheme, rest string, h func() hash.Hash, size int) (storedHash, error) {
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return storedHash{}, malformed("%s: want 3 fields, have %d", scheme, len(fields))
	}
	iter, ok := number(fields[0], MaxPBKDF2Iterations)
	if !ok || iter == 0 {
		return storedHash{}, malformed("%s: iterations %q not in 1..%d", scheme, fields[0], MaxPBKDF2Iterations)
	}
	salt := fields[1]
	if salt == "" {
		return storedHash{}, malformed("%s: empty salt", scheme)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(fields[2])
	if err != nil || len(key) != size {
		return storedHash{}, malformed("%s: key is not %d bytes of base64", scheme, size)
	}
	return storedHash{
		scheme: scheme, cost: cost{iterations: uint32(iter), scheme: scheme}, memory: 1,
		matches: func(password string) bool {
			got, err := pbkdf2.Key(h, password, []byte(salt), int(iter), size)
			return err == nil && subtle.ConstantTimeCompare(got, key) == 1
		},
	}, nil
}

// parseDjangoArgon2 parses what argon2-cffi writes after Django's "argon2":
// "$argon2id$v=19$m=…,t=…,p=…$salt$key" (argon2i before Django 2.0), with
// the salt and key in unpadded base64. Django hands argon2 the password's
// UTF-8 bytes as they are.
func parseDjangoArgon2(rest string) (storedHash, error) {
	variant, phc, _ := strings.Cut(rest, "$")
	var derive func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
	switch variant {
	case "argon2id":
		derive = argon2.IDKey
	case "argon2i":
		derive = argon2.Key
	default:
		return storedHash{}, malformed("argon2: unsupported variety %q", variant)
	}
	// The same strict parser as for this package's own hashes: the rest of
	// the string has the same PHC layout.
	p, salt, key, err := decode(prefix + phc)
	if err != nil {
		return storedHash{}, err
	}
	return storedHash{
		scheme: SchemeDjangoArgon2, cost: cost{p.Memory, p.Iterations, p.Parallelism, variant}, memory: p.Memory,
		matches: func(password string) bool {
			got := derive([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
			return subtle.ConstantTimeCompare(got, key) == 1
		},
	}, nil
}

// parseBcrypt parses Django's "bcrypt$<modular crypt bcrypt>" and
// "bcrypt_sha256$<…>". bcrypt_sha256 hashes the lower-case hex SHA-256 of
// the password; plain bcrypt sees only the first 72 bytes of the password,
// as Python's bcrypt did when it wrote the hash.
func parseBcrypt(scheme, mcf string) (storedHash, error) {
	if !strings.HasPrefix(mcf, "$2a$") && !strings.HasPrefix(mcf, "$2b$") && !strings.HasPrefix(mcf, "$2y$") {
		return storedHash{}, malformed("%s: not a $2a$, $2b$ or $2y$ bcrypt hash", scheme)
	}
	if len(mcf) != 60 {
		return storedHash{}, malformed("%s: bcrypt hash is %d bytes, want 60", scheme, len(mcf))
	}
	c, err := bcrypt.Cost([]byte(mcf))
	if err != nil {
		return storedHash{}, malformed("%s: %v", scheme, err)
	}
	if c > MaxBcryptCost {
		return storedHash{}, malformed("%s: cost %d over %d", scheme, c, MaxBcryptCost)
	}
	stored := []byte(mcf)
	return storedHash{
		scheme: scheme, cost: cost{iterations: uint32(c), scheme: scheme}, memory: 1,
		matches: func(password string) bool {
			pw := []byte(password)
			if scheme == SchemeBcryptSHA256 {
				sum := sha256.Sum256(pw)
				pw = []byte(hex.EncodeToString(sum[:]))
			} else if len(pw) > 72 {
				pw = pw[:72]
			}
			// CompareHashAndPassword compares in constant time.
			return bcrypt.CompareHashAndPassword(stored, pw) == nil
		},
	}, nil
}

// parseScrypt parses Django's "<N>$<salt>$<r>$<p>$<base64 key>" (a 64-byte
// key over the password's UTF-8 bytes).
func parseScrypt(rest string) (storedHash, error) {
	fields := strings.Split(rest, "$")
	if len(fields) != 5 {
		return storedHash{}, malformed("scrypt: want 5 fields, have %d", len(fields))
	}
	n, okN := number(fields[0], 1<<30)
	r, okR := number(fields[2], 1<<10)
	p, okP := number(fields[3], 255)
	if !okN || !okR || !okP || n < 2 || n&(n-1) != 0 || r == 0 || p == 0 {
		return storedHash{}, malformed("scrypt: bad parameters N=%q r=%q p=%q", fields[0], fields[2], fields[3])
	}
	if mem := 128 * n * r; mem > MaxScryptMemory {
		return storedHash{}, malformed("scrypt: memory 128·N·r = %d bytes over %d", mem, MaxScryptMemory)
	}
	if work := 128 * n * r * p; work > MaxScryptWork {
		return storedHash{}, malformed("scrypt: work 128·N·r·p = %d over %d", work, MaxScryptWork)
	}
	salt := fields[1]
	if salt == "" {
		return storedHash{}, malformed("scrypt: empty salt")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(fields[4])
	if err != nil || len(key) < minBytes || len(key) > maxBytes {
		return storedHash{}, malformed("scrypt: key is not %d..%d bytes of base64", minBytes, maxBytes)
	}
	return storedHash{
		scheme: SchemeScrypt, cost: cost{uint32(n), uint32(r), uint8(p), SchemeScrypt}, memory: uint32(128 * n * r >> 10),
		matches: func(password string) bool {
			got, err := scrypt.Key([]byte(password), []byte(salt), int(n), int(r), int(p), len(key))
			return err == nil && subtle.ConstantTimeCompare(got, key) == 1
		},
	}, nil
}

// number parses a canonical decimal number (digits only, no leading zero)
// of at most limit.
func number(s string, limit uint64) (uint64, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n <= limit
}
