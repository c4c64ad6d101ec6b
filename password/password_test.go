package password

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// cheap keeps the tests fast; only TestDefaultParams uses real costs.
var cheap = Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// golden was checked to be byte for byte what the reference C
// implementation (libargon2's argon2id_hash_encoded) writes for
// goldenPassword, goldenSalt and cheap. If this test fails, the stored
// format or the derivation changed and existing hashes in the database
// would stop verifying.
const (
	golden         = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0"
	goldenPassword = "correct horse battery staple"
	goldenSalt     = "0123456789abcdef"
)

// hashWithSalt is what Hash returns for password with salt instead of a
// random one, and p instead of the Hasher's parameters.
func hashWithSalt(password string, salt []byte, p Params) string {
	return encode(p, salt, argon2.IDKey(prepare(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen))
}

// allFree reports whether none of h's slots is held.
func allFree(h *Hasher) bool {
	if !h.sem.TryAcquire(h.slots) {
		return false
	}
	h.sem.Release(h.slots)
	return true
}

func TestGolden(t *testing.T) {
	if got := hashWithSalt(goldenPassword, []byte(goldenSalt), cheap); got != golden {
		t.Fatalf("hashWithSalt = %q, want %q", got, golden)
	}
	h := NewHasher(cheap, 1)
	ok, rehash, err := h.Verify(context.Background(), goldenPassword, golden)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(golden) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, _, err = h.Verify(context.Background(), goldenPassword+"!", golden)
	if err != nil || ok {
		t.Fatalf("Verify(wrong, golden) = %v, %v; want false, nil", ok, err)
	}
}

func TestRoundTrip(t *testing.T) {
	h := NewHasher(cheap, 2)
	ctx := context.Background()
	tests := []struct{ name, password, wrong string }{
		{"ascii", "hunter2", "hunter3"},
		{"empty", "", " "},
		{"spaces", "correct horse battery staple", "correct horse battery staple "},
		{"case", "Password", "password"},
		{"latin", "pässwörd", "passwort"},
		{"cjk", "密码很长很长", "密码很长很短"},
		{"emoji", "🔑🔒 key", "🔑🔓 key"},
		{"rtl", "كلمة السر", "كلمة السد"},
		{"long", strings.Repeat("x", 4096), strings.Repeat("x", 4095)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := h.Hash(ctx, tc.password)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Fatalf("Hash = %q: unexpected format", enc)
			}
			ok, rehash, err := h.Verify(ctx, tc.password, enc)
			if err != nil || !ok || rehash {
				t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
			}
			ok, rehash, err = h.Verify(ctx, tc.wrong, enc)
			if err != nil || ok || rehash {
				t.Fatalf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestUnicodeForms(t *testing.T) {
	h := NewHasher(cheap, 1)
	ctx := context.Background()
	tests := []struct{ name, stored, typed string }{
		{"nfc vs nfd", "caf\u00e9", "cafe\u0301"},
		{"fullwidth digits", "pin1234", "pin\uff11\uff12\uff13\uff14"},
		{"hangul jamo", "\uac00", "\u1100\u1161"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := h.Hash(ctx, tc.stored)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			ok, _, err := h.Verify(ctx, tc.typed, enc)
			if err != nil || !ok {
				t.Fatalf("Verify(%q) against hash of %q = %v, %v; want true, nil", tc.typed, tc.stored, ok, err)
			}
		})
	}
}

func TestDifferentSalts(t *testing.T) {
	h := NewHasher(cheap, 1)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		enc, err := h.Hash(context.Background(), "same password")
		if err != nil {
			t.Fatalf("Hash: %v", err)
		}
		salt := strings.Split(enc, "$")[4]
		if seen[salt] {
			t.Fatalf("salt %q repeated", salt)
		}
		seen[salt] = true
	}
}

func TestNeedsRehash(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		stored Params
	}{
		{"memory", Params{Memory: 128, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}},
		{"iterations", Params{Memory: 64, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}},
		{"parallelism", Params{Memory: 64, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32}},
		{"salt length", Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 8, KeyLen: 32}},
		{"key length", Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 16}},
	}
	current := NewHasher(cheap, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := NewHasher(tc.stored, 1).Hash(ctx, "pw")
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			ok, rehash, err := current.Verify(ctx, "pw", enc)
			if err != nil || !ok || !rehash {
				t.Fatalf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	const salt = "MDEyMzQ1Njc4OWFiY2RlZg"
	const key = "aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0"
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "hunter2"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"version not a number", "$argon2id$v=x$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"extra field", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$x"},
		{"missing param", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key},
		{"params reordered", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"param not a number", "$argon2id$v=19$m=sixty,t=1,p=1$" + salt + "$" + key},
		{"param signed", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"param leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"param space", "$argon2id$v=19$m=64, t=1,p=1$" + salt + "$" + key},
		{"bad base64 salt", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key},
		{"bad base64 key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$%%%%"},
		{"padded base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"url base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.NewReplacer("+", "-", "/", "_").Replace(key)},
		{"newline in base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt[:8] + "\n" + salt[8:] + "$" + key},
		{"memory over 1 GiB", "$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$" + key},
		{"memory overflows uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"memory huge", "$argon2id$v=19$m=99999999999999999999,t=1,p=1$" + salt + "$" + key},
		{"memory under 8 per lane", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key},
		{"zero iterations", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"too many iterations", "$argon2id$v=19$m=64,t=101,p=1$" + salt + "$" + key},
		{"zero parallelism", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"parallelism overflows uint8", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Ng$" + key},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$MDEyMzQ1Ng"},
		{"long key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 1368)},
		{"very long", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 10000)},
	}
	h := NewHasher(cheap, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", tc.encoded)
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify(%q) error = %v, want ErrMalformedHash", tc.encoded, err)
			}
			if ok || rehash {
				t.Fatalf("Verify(%q) = %v, %v with an error; want false, false", tc.encoded, ok, rehash)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	h := NewHasher(cheap, 1)
	ctx := context.Background()
	for _, pw := range []string{"anything", ""} {
		if err := h.VerifyDummy(ctx, pw); err != nil {
			t.Fatalf("VerifyDummy(%q) = %v, want nil", pw, err)
		}
	}
	// The dummy must cost what a real hash with h's parameters costs:
	// same parameters, so no rehash, and it must match no password.
	if p, _, _, err := decode(h.dummy); err != nil || p != h.params {
		t.Fatalf("dummy %q has params %+v (err %v), want %+v", h.dummy, p, err, h.params)
	}
	ok, rehash, err := h.Verify(ctx, "anything", h.dummy)
	if err != nil || ok || rehash {
		t.Fatalf("Verify(dummy) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	if !allFree(h) {
		t.Fatal("a slot is still held after VerifyDummy")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.VerifyDummy(cancelled, "anything"); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyDummy(cancelled) = %v, want context.Canceled", err)
	}
}

func TestDefaultParams(t *testing.T) {
	h := NewHasher(DefaultParams, 0)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=2$"; !strings.HasPrefix(enc, want) {
		t.Fatalf("Hash = %q, want prefix %q", enc, want)
	}
	parts := strings.Split(enc, "$")
	if len(parts[4]) != 22 || len(parts[5]) != 43 { // 16 and 32 bytes, unpadded
		t.Fatalf("Hash = %q: salt/key not 16/32 bytes", enc)
	}
	ok, rehash, err := h.Verify(ctx, "correct horse battery staple", enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestConcurrencyBound(t *testing.T) {
	h := NewHasher(cheap, 1)
	bg := context.Background()

	// Hold the only slot, as a running hash would.
	if err := h.sem.Acquire(bg, 1); err != nil {
		t.Fatalf("Acquire: %v", err)
	}

	// An already cancelled caller gets ctx.Err, for every entry point.
	cancelled, cancel := context.WithCancel(bg)
	cancel()
	if _, err := h.Hash(cancelled, "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with cancelled ctx while slot held: err = %v, want context.Canceled", err)
	}
	if _, _, err := h.Verify(cancelled, goldenPassword, golden); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with cancelled ctx while slot held: err = %v, want context.Canceled", err)
	}
	if err := h.VerifyDummy(cancelled, goldenPassword); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyDummy with cancelled ctx while slot held: err = %v, want context.Canceled", err)
	}

	// A caller already waiting for the slot gets ctx.Err when its ctx ends.
	waitCtx, cancelWait := context.WithCancel(bg)
	waitErr := make(chan error, 1)
	go func() {
		_, err := h.Hash(waitCtx, "pw")
		waitErr <- err
	}()
	cancelWait()
	if err := <-waitErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting Hash after cancel: err = %v, want context.Canceled", err)
	}

	// A patient caller proceeds once the slot is released.
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(bg, "pw")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Hash finished (err = %v) while the only slot was held", err)
	default:
	}
	h.sem.Release(1)
	if err := <-done; err != nil {
		t.Fatalf("Hash after release: %v", err)
	}
	if !allFree(h) {
		t.Fatal("a slot is still held")
	}

	// An already cancelled caller gets no slot even when one is free.
	if _, err := h.Hash(cancelled, "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with cancelled ctx and free slot: err = %v, want context.Canceled", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	h := NewHasher(cheap, 2)
	if h.slots != 2 {
		t.Fatalf("slots = %d, want 2", h.slots)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc, err := h.Hash(context.Background(), "pw")
			if err == nil {
				var ok bool
				ok, _, err = h.Verify(context.Background(), "pw", enc)
				if err == nil && !ok {
					err = errors.New("round trip failed")
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewHasherLimit(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	lanes := func(n uint8) Params {
		p := cheap
		p.Parallelism = n
		p.Memory = max(p.Memory, 8*uint32(n))
		return p
	}
	tests := []struct {
		p           Params
		limit, want int
	}{
		{cheap, 0, procs},
		{cheap, -3, procs},
		{cheap, 1, 1},
		{cheap, 16, 16},
		// The default is ceil(GOMAXPROCS / Parallelism).
		{lanes(2), 0, (procs + 1) / 2},
		{lanes(3), -1, (procs + 2) / 3},
		{lanes(255), 0, 1},
		{lanes(2), 5, 5},
	}
	for _, tc := range tests {
		h := NewHasher(tc.p, tc.limit)
		if h.slots != int64(tc.want) {
			t.Errorf("NewHasher(p=%d, %d): %d slots, want %d", tc.p.Parallelism, tc.limit, h.slots, tc.want)
		}
		if !allFree(h) || h.sem.TryAcquire(h.slots+1) {
			t.Errorf("NewHasher(p=%d, %d): the semaphore does not hold exactly %d free slots", tc.p.Parallelism, tc.limit, h.slots)
		}
		if got, want := h.maxWaiting.Load(), DefaultWaitingPerSlot*h.slots; got != want {
			t.Errorf("NewHasher(p=%d, %d): %d callers may wait, want %d", tc.p.Parallelism, tc.limit, got, want)
		}
	}
	old := runtime.GOMAXPROCS(3)
	defer runtime.GOMAXPROCS(old)
	if got := NewHasher(lanes(2), 0).slots; got != 2 {
		t.Errorf("GOMAXPROCS=3, p=2: %d slots, want 2", got)
	}
	runtime.GOMAXPROCS(1)
	if got := NewHasher(lanes(2), 0).slots; got != 1 {
		t.Errorf("GOMAXPROCS=1, p=2: %d slots, want 1", got)
	}
}

func TestNewHasherRejectsBadParams(t *testing.T) {
	tests := []struct {
		name string
		p    Params
	}{
		{"zero", Params{}},
		{"zero parallelism", Params{Memory: 64, Iterations: 1, Parallelism: 0, SaltLen: 16, KeyLen: 32}},
		{"zero iterations", Params{Memory: 64, Iterations: 0, Parallelism: 1, SaltLen: 16, KeyLen: 32}},
		{"memory over 1 GiB", Params{Memory: 1<<20 + 1, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}},
		{"short salt", Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 4, KeyLen: 32}},
		{"short key", Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("NewHasher(%+v) did not panic", tc.p)
				}
			}()
			NewHasher(tc.p, 1)
		})
	}
}

// A stored hash with the old default p=1 keeps verifying and asks for a
// rehash.
func TestOldParallelismVerifies(t *testing.T) {
	old := Params{Memory: 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	cur := old
	cur.Parallelism = 2
	enc := hashWithSalt("pw", []byte("0123456789abcdef"), old)
	ok, rehash, err := NewHasher(cur, 1).Verify(context.Background(), "pw", enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify(p=1 hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

// TestOtherMemory verifies stored hashes that need more memory than the
// Hasher's own and less.
func TestOtherMemory(t *testing.T) {
	ctx := context.Background()
	small := Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	big := Params{Memory: 1000, Iterations: 2, Parallelism: 3, SaltLen: 16, KeyLen: 32}
	mid := Params{Memory: 256, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32}
	h := NewHasher(mid, 2)
	for _, p := range []Params{big, small, mid} {
		enc := hashWithSalt("pw", []byte("0123456789abcdef"), p)
		ok, rehash, err := h.Verify(ctx, "pw", enc)
		if err != nil || !ok || rehash != (p != mid) {
			t.Fatalf("Verify(%q) = %v, %v, %v; want true, %v, nil", enc, ok, rehash, err, p != mid)
		}
		ok, _, err = h.Verify(ctx, "pW", enc)
		if err != nil || ok {
			t.Fatalf("Verify(wrong, %q) = %v, %v; want false, nil", enc, ok, err)
		}
		if !allFree(h) {
			t.Fatalf("after m=%d: a slot is still held", p.Memory)
		}
	}
}

func TestSlotsFor(t *testing.T) {
	h := NewHasher(Params{Memory: 1000, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 3)
	tests := []struct {
		memory uint32
		want   int64
	}{
		{8, 1},
		{999, 1},
		{1000, 1},
		{1001, 2},
		{2000, 2},
		{2001, 3},
		{3000, 3},
		{maxMemory, 3}, // all slots, never more: it still runs, alone
	}
	for _, tc := range tests {
		if got := h.slotsFor(Params{Memory: tc.memory}); got != tc.want {
			t.Errorf("slotsFor(m=%d) with 3 slots of m=1000 = %d, want %d", tc.memory, got, tc.want)
		}
	}
}
