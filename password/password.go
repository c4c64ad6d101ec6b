// Package password owns password hashing: Argon2id from
// golang.org/x/crypto/argon2 in the PHC string format, constant-time
// verification, a dummy verification that answers for unknown accounts
// like a real one, equal verification times across kinds of stored hashes
// (timing.go), a bound on how many hashes, and so how much hashing
// memory, are in use at once, and one on how many callers wait for them.
// It also verifies the hashes Django writes (django.go), so that imported
// users log in with their old passwords and are rehashed to argon2id.
//
// This package must not import anything else of the project; it depends
// only on the standard library and golang.org/x/{crypto,sync,text}.
package password

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sync/semaphore"
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

// Bounds on parameters, both for a Hasher's own and for those read from a
// stored hash. Why: the parameters of a stored hash decide how much memory
// and time Verify spends, so a corrupted or tampered row must not be able
// to make the process allocate gigabytes or spin for minutes.
const (
	maxMemory     = 1 << 20 // KiB, 1 GiB
	maxIterations = 100
	minBytes      = 8 // salt and key length, bytes
	maxBytes      = 1024
)

// collectMinMemory is the working memory, in KiB, from which a hash is
// followed by a garbage collection (see Hasher.derive). Below it the
// collector's minimum heap of 4 MiB takes a dead buffer in its stride.
const collectMinMemory = 4 << 10

// Validate reports why p is unusable, or nil: memory above 1 GiB or under
// 8 KiB per lane, iterations outside 1..100, memory × iterations above
// 1 GiB, no lanes, or a salt or key length outside 8..1024 bytes.
func (p Params) Validate() error {
	switch {
	case p.Parallelism == 0:
		return errors.New("parallelism is 0")
	case p.Iterations == 0 || p.Iterations > maxIterations:
		return fmt.Errorf("iterations %d not in 1..%d", p.Iterations, maxIterations)
	case p.Memory > maxMemory:
		return fmt.Errorf("memory %d KiB over %d KiB", p.Memory, maxMemory)
	case uint64(p.Memory)*uint64(p.Iterations) > maxArgon2Work:
		return fmt.Errorf("memory × iterations %d KiB over %d KiB", uint64(p.Memory)*uint64(p.Iterations), maxArgon2Work)
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

// ErrBusy is the error of a Hash or Verify that found the Hasher's queue
// full (see Hasher.SetMaxWaiting): it returns at once instead of waiting.
var ErrBusy = errors.New("password: too many hashes are waiting for a slot")

// DefaultWaitingPerSlot is how many callers per slot NewHasher lets wait.
// Why so few: a queue longer than a few dozen hashes per slot is a flood,
// not a busy hour, and refusing its tail at once keeps every other login's
// wait short instead of letting the queue run into the request deadline.
const DefaultWaitingPerSlot = 32

// Hasher hashes and verifies passwords, holding a slot per running hash;
// a stored hash needing more memory than its parameters holds as many as
// its memory fills (all at most), so hashing memory stays within slots ×
// Memory KiB, or one stored hash's own. It is safe for concurrent use; make
// one with NewHasher.
type Hasher struct {
	params Params
	slots  int64
	sem    *semaphore.Weighted // one unit per slot
	// inflight counts the callers that hold or wait for slots; beyond
	// slots+maxWaiting (when that is not negative) a caller gets ErrBusy.
	inflight   atomic.Int64
	maxWaiting atomic.Int64
	// collect is whether a hash is followed by a garbage collection
	// (derive): params.Memory ≥ collectMinMemory.
	collect bool
	dummy   string // encoded hash with params that no password matches
	// timing equalises verifications of hashes with different parameters
	// (equalizer); pause is how a verification waits, replaced in tests.
	timing equalizer
	pause  func(context.Context, time.Duration)
}

// NewHasher returns a Hasher that hashes with p and runs at most
// maxConcurrent hashes at once. A zero (or negative) limit means
// ceil(runtime.GOMAXPROCS(0) / p.Parallelism), at least 1: a hash runs its
// lanes on as many cores, so that many keep the CPUs busy, and more would
// only hold more memory. NewHasher panics if p.Validate fails: that is a
// configuration error.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	if err := p.Validate(); err != nil {
		panic("password: invalid params: " + err.Error())
	}
	if maxConcurrent <= 0 {
		procs, lanes := runtime.GOMAXPROCS(0), int(p.Parallelism)
		maxConcurrent = max(1, (procs+lanes-1)/lanes)
	}
	// The dummy hash has a random salt and a random key, so it costs
	// exactly what a real hash with these parameters costs to verify and
	// no password can be known to match it.
	h := &Hasher{
		params:  p,
		slots:   int64(maxConcurrent),
		sem:     semaphore.NewWeighted(int64(maxConcurrent)),
		collect: p.Memory >= collectMinMemory,
		dummy:   encode(p, randomBytes(p.SaltLen), randomBytes(p.KeyLen)),
		pause:   wait,
	}
	h.SetMaxWaiting(DefaultWaitingPerSlot * maxConcurrent)
	return h
}

// SetMaxWaiting sets how many callers may wait for a hashing slot at once;
// a caller beyond them gets ErrBusy at once. A negative n lets any number
// wait, each as long as its context allows. NewHasher sets
// DefaultWaitingPerSlot per slot.
func (h *Hasher) SetMaxWaiting(n int) { h.maxWaiting.Store(int64(n)) }

// Hash returns a PHC string for password:
// $argon2id$v=19$m=19456,t=2,p=2$<salt>$<key>, with salt and key in
// unpadded standard base64. It waits for a hashing slot, and returns
// ctx.Err() if ctx ends first, or ErrBusy at once if the queue is full.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := randomBytes(h.params.SaltLen)
	var key []byte
	_, err := h.derive(ctx, h.params.Memory, func() {
		key = argon2.IDKey(prepare(password), salt, h.params.Iterations, h.params.Memory, h.params.Parallelism, h.params.KeyLen)
	})
	if err != nil {
		return "", err
	}
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches encoded, in constant time:
// this package's argon2id or one of Django's hashes (django.go). It uses
// the parameters stored in encoded; needsRehash is true when they differ
// from h's or the scheme is not argon2id (callers should act on it only
// when ok, by storing a new Hash). A malformed or out-of-bounds encoded hash is an error wrapping
// ErrMalformedHash. Verify waits for the hashing slots encoded needs, and
// returns ctx.Err() if ctx ends first, or ErrBusy at once if the queue is
// full. While stored hashes with different
// parameters are in use, Verify takes as long as verifying one of the
// slowest kind would (equalizer), so that its time does not tell which
// kind encoded is.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok bool, needsRehash bool, err error) {
	s, err := parseStored(encoded)
	if err != nil {
		return false, false, err
	}
	took, err := h.derive(ctx, s.memory, func() { ok = s.matches(password) })
	if err != nil {
		return false, false, err
	}
	// The wait holds no slot: derive has given them back.
	h.pause(ctx, h.timing.observe(s.cost, took))
	return ok, s.scheme != SchemeArgon2id || s.params != h.params, nil
}

// VerifyDummy does what Verify does for a stored hash with h's parameters
// that no password matches, and returns the error such a Verify returns
// (ctx.Err() if ctx ends while it waits for a slot, ErrBusy if the queue is
// full); login calls it for
// unknown users so that neither the time nor the answer tells which
// accounts exist.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

// derive runs hash, a derivation needing memory KiB, and returns how long
// it took. It holds the slots that memory needs meanwhile, and returns
// ctx.Err() if ctx ends before it has them (an already ended ctx never gets
// them, so no hash starts for a caller that has gone), or ErrBusy if
// slots+maxWaiting callers hold or wait for slots already.
func (h *Hasher) derive(ctx context.Context, memory uint32, hash func()) (time.Duration, error) {
	if callers, limit := h.inflight.Add(1), h.maxWaiting.Load(); limit >= 0 && callers > h.slots+limit {
		h.inflight.Add(-1)
		return 0, ErrBusy
	}
	defer h.inflight.Add(-1)
	n := h.slotsFor(Params{Memory: memory})
	if err := h.sem.Acquire(ctx, n); err != nil {
		return 0, err
	}
	defer h.sem.Release(n)
	start := time.Now()
	hash()
	took := time.Since(start)
	if h.collect {
		// Why: argon2 and scrypt allocate their memory per call, and the
		// collector lets garbage grow as large as the live heap, running
		// hashes included; collecting before giving back the slots lets the
		// next hash reuse it.
		runtime.GC()
	}
	return took, nil
}

// slotsFor is how many slots a hash with p holds: as many as its memory
// fills, at least one and at most all.
func (h *Hasher) slotsFor(p Params) int64 {
	n := (int64(p.Memory) + int64(h.params.Memory) - 1) / int64(h.params.Memory)
	return min(max(n, 1), h.slots)
}

// prepare turns a password into the bytes that are hashed. Why NFKC: the
// same password typed on different systems can arrive in different Unicode
// forms (a precomposed "é" or "e" plus a combining accent, full-width
// digits from an East Asian keyboard), and the user must still be able to
// log in; NIST SP 800-63B recommends NFKC or NFKD for this. ASCII passwords
// are unchanged.
func prepare(password string) []byte {
	return []byte(norm.NFKC.String(password))
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
