// Package password owns password hashing: argon2id in the PHC string format,
// constant-time verification, a dummy verification for unknown accounts, and
// a bound on how many hashes run at once.
//
// Argon2id is computed by this package's own implementation (argon2.go),
// byte for byte the same as golang.org/x/crypto/argon2, because that one
// allocates its whole working memory (19 MiB at the default parameters) on
// every call: under a burst of logins the heap filled with 19 MiB garbage
// blocks and the process's memory grew to several times what the hashes
// running at once need. Here each hashing slot keeps one buffer and every
// hash in that slot reuses it, so the memory stays flat.
//
// This package must not import anything else of the project; it depends only
// on the standard library, golang.org/x/crypto/blake2b and golang.org/x/text
// (the tests also use golang.org/x/crypto/argon2 as the reference).
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes
}

// DefaultParams follow current OWASP guidance for argon2id in memory and
// passes (m=19456 KiB (19 MiB), t=2), with a 16-byte salt and a 32-byte
// key, but with p=2 lanes where OWASP says p=1: the same memory and passes,
// so the same cost to an attacker, while a login takes half the wall time
// on two cores. (RFC 9106 recommends p=4 for its own parameter sets.)
// Hashes stored with p=1 keep verifying, and Verify reports that they need
// a rehash.
var DefaultParams = Params{
	Memory:      19456,
	Iterations:  2,
	Parallelism: 2,
	SaltLen:     16,
	KeyLen:      32,
}

// ErrMalformedHash is wrapped by every error Verify returns for an encoded
// hash it cannot use; the wrapping error's text says why.
var ErrMalformedHash = errors.New("password: malformed hash")

// Bounds on parameters, both for a Hasher's own and for those read from a
// stored hash. Why: the parameters of a stored hash decide how much memory
// and time Verify spends, so a corrupted or tampered row must not be able
// to make the process allocate gigabytes or spin for minutes.
const (
	maxMemory     = 1 << 20 // KiB, 1 GiB
	maxIterations = 100
	minBytes      = 8 // salt and key length, bytes
	maxBytes      = 1024
	maxEncoded    = 4096 // longest encoded hash Verify looks at
)

const (
	prefix  = "$argon2id$"
	version = argonVersion // 0x13 = 19
)

// validate reports why p is unusable, or nil.
func (p Params) validate() error {
	switch {
	case p.Parallelism == 0:
		return errors.New("parallelism is 0")
	case p.Iterations == 0 || p.Iterations > maxIterations:
		return fmt.Errorf("iterations %d not in 1..%d", p.Iterations, maxIterations)
	case p.Memory > maxMemory:
		return fmt.Errorf("memory %d KiB over %d KiB", p.Memory, maxMemory)
	case p.Memory < 8*uint32(p.Parallelism):
		// argon2 would silently raise it; a hash claiming less is not one
		// any conforming implementation wrote.
		return fmt.Errorf("memory %d KiB under 8 KiB per lane", p.Memory)
	case p.SaltLen < minBytes || p.SaltLen > maxBytes:
		return fmt.Errorf("salt length %d not in %d..%d", p.SaltLen, minBytes, maxBytes)
	case p.KeyLen < minBytes || p.KeyLen > maxBytes:
		return fmt.Errorf("key length %d not in %d..%d", p.KeyLen, minBytes, maxBytes)
	}
	return nil
}

// Hasher hashes and verifies passwords; it bounds how many hashes run at
// once (each needs Memory KiB), so a burst of logins cannot exhaust memory.
// Each of its hashing slots keeps one working-memory buffer, allocated at
// the slot's first hash and reused by every later one, so the process
// holds at most one buffer per slot instead of leaving Memory KiB of
// garbage per login for the garbage collector. On Unix that memory is
// mapped outside the Go heap (newSlotMemory): the process's RSS counts it,
// GOMEMLIMIT and runtime.MemStats do not. A stored hash with more memory
// than h's parameters is verified in a heap buffer of its own, allocated
// for that call. A Hasher is safe for concurrent use. Make one with
// NewHasher; the zero value is not usable.
type Hasher struct {
	params Params
	// slots holds the free hashing slots, each as its working memory
	// (nil until the slot's first hash): a hash takes one out and puts it
	// back, so at most cap(slots) hashes run at once.
	slots chan []block
	dummy string // encoded hash with h's params that no password matches
	// timing equalises verifications of hashes with different parameters
	// (equalizer); pause is how a verification waits, replaced in tests.
	timing equalizer
	pause  func(context.Context, time.Duration)
}

// NewHasher returns a Hasher that hashes with p and runs at most
// maxConcurrent hashes at once. A zero (or negative) limit means
// ceil(runtime.GOMAXPROCS(0) / p.Parallelism): each hash runs its
// Parallelism lanes on as many cores, so that many hashes at once keep the
// CPUs busy, and more would only hold more memory. (Stored hashes with
// fewer lanes than p, such as p=1 ones written before the default became
// p=2, use fewer cores each, so while many of them are verified at once the
// CPUs are not all busy: a login then waits a little longer, and no more
// memory is held. Each is rehashed with p at its first successful login.)
// NewHasher panics if p is outside the bounds that Verify accepts from
// stored hashes (memory ≤ 1 GiB and ≥ 8 KiB per lane, 1..100 iterations,
// parallelism ≥ 1, salt and key 8..1024 bytes): that is a configuration
// error.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	if err := p.validate(); err != nil {
		panic("password: invalid params: " + err.Error())
	}
	if maxConcurrent <= 0 {
		procs, lanes := runtime.GOMAXPROCS(0), int(p.Parallelism)
		maxConcurrent = (procs + lanes - 1) / lanes
	}
	slots := make(chan []block, maxConcurrent)
	for range maxConcurrent {
		slots <- nil // the buffer is allocated at the slot's first hash
	}
	// The dummy hash has a random salt and a random key, so it costs
	// exactly what a real hash with these parameters costs to verify and
	// no password can be known to match it.
	h := &Hasher{
		params: p,
		slots:  slots,
		dummy:  encode(p, randomBytes(p.SaltLen), randomBytes(p.KeyLen)),
		pause:  wait,
	}
	// The slots' memory is not the collector's (newSlotMemory): give it
	// back when h goes. By then every slot is in the channel, since a hash
	// in progress keeps h reachable until its release.
	runtime.AddCleanup(h, func(slots chan []block) {
		for range cap(slots) {
			freeSlotMemory(<-slots)
		}
	}, slots)
	return h
}

// Hash returns a PHC string for password:
// $argon2id$v=19$m=19456,t=2,p=2$<salt>$<key>, with salt and key in
// unpadded standard base64. It waits for a hashing slot, and returns
// ctx.Err() if ctx ends first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	mem, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer h.release(mem)
	return hashInto(mem, password, randomBytes(h.params.SaltLen), h.params), nil
}

// Verify reports whether password matches encoded, in constant time. It
// uses the parameters stored in encoded; needsRehash is true when they
// differ from h's (callers should act on it only when ok, by storing a new
// Hash). A malformed or out-of-bounds encoded hash is an error wrapping
// ErrMalformedHash. Verify waits for a hashing slot, and returns ctx.Err()
// if ctx ends first. While stored hashes with different parameters are in
// use, Verify takes as long as verifying one of the slowest kind would
// (equalizer), so that its time does not tell which kind encoded is.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok bool, needsRehash bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	mem, err := h.acquire(ctx)
	if err != nil {
		return false, false, err
	}
	start := time.Now()
	// A stored hash needing more memory than h's params gets a buffer of
	// its own for this call (deriveID allocates it); the slot keeps its
	// buffer of h's size. One needing less uses the buffer's start.
	got := deriveID(mem, prepare(password), salt, nil, nil, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	took := time.Since(start)
	h.release(mem)
	// Why constant time: a comparison that stops at the first differing
	// byte would tell an attacker how much of the derived key is right.
	ok = subtle.ConstantTimeCompare(got, key) == 1
	// Take as long as a hash of the slowest kind in use would (equalizer),
	// after giving the slot back: waiting needs no working memory.
	h.pause(ctx, h.timing.observe(costOf(p), took))
	return ok, p != h.params, nil
}

// VerifyDummy spends the same time as a Verify against a real hash with h's
// parameters, padded like every Verify to the slowest kind of stored hash
// in use (equalizer), and always reports false; login calls it for unknown
// users so that timing does not reveal which accounts exist. Like Verify,
// it waits for a hashing slot and returns early if ctx ends first.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	// Same code path as a real login, against a hash no password matches.
	_, _, _ = h.Verify(ctx, password, h.dummy)
}

// acquire takes a hashing slot and returns its working memory, enough for
// h's params, or returns ctx.Err(). An already ended ctx never gets a
// slot, even a free one, so no hash starts for a caller that has gone.
// The caller must give the memory back with release.
func (h *Hasher) acquire(ctx context.Context) ([]block, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case mem := <-h.slots:
		if mem == nil {
			// The slot's first hash: allocated here, once, and kept.
			mem = newSlotMemory(memoryBlocks(h.params.Memory, h.params.Parallelism))
		}
		return mem, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release gives back the slot whose memory acquire returned.
func (h *Hasher) release(mem []block) { h.slots <- mem }

// prepare turns a password into the bytes that are hashed. Why NFKC: the
// same password typed on different systems can arrive in different Unicode
// forms (a precomposed "é" or "e" plus a combining accent, full-width
// digits from an East Asian keyboard), and the user must still be able to
// log in; NIST SP 800-63B recommends NFKC or NFKD for this. ASCII passwords
// are unchanged.
func prepare(password string) []byte {
	return []byte(norm.NFKC.String(password))
}

// hashWithSalt derives the key for password with salt and p and encodes it,
// in memory allocated for the call. Hash does the same in a slot's memory
// with a random salt (hashInto); the tests use it with a fixed one.
func hashWithSalt(password string, salt []byte, p Params) string {
	return hashInto(nil, password, salt, p)
}

// hashInto is hashWithSalt working in mem (see deriveID).
func hashInto(mem []block, password string, salt []byte, p Params) string {
	key := deriveID(mem, prepare(password), salt, nil, nil, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	return encode(p, salt, key)
}

var b64 = base64.RawStdEncoding.Strict()

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s",
		prefix, version, p.Memory, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}

// decode parses a PHC argon2id string strictly: the fields in the order
// encode writes them, canonical decimal numbers and canonical unpadded
// base64, and parameters within the bounds of Params.validate.
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
	if v != version {
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
	if err := p.validate(); err != nil {
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

// randomBytes returns n bytes from crypto/rand, which never fails on the
// platforms Go supports (and crashes the program if it does).
func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("password: crypto/rand: " + err.Error())
	}
	return b
}
