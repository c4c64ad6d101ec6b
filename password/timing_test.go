package password

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestEqualizerObserve(t *testing.T) {
	fast := cost{19456, 2, 2, ""}
	slow := cost{19456, 2, 1, ""}
	var e equalizer
	ms := time.Millisecond

	// One kind in use: nothing waits, whatever the noise.
	for _, took := range []time.Duration{10 * ms, 14 * ms, 9 * ms} {
		if pad := e.observe(fast, took); pad != 0 {
			t.Fatalf("observe(fast, %v) with one kind = %v, want 0", took, pad)
		}
	}
	// A slower kind appears: it does not wait, and from now on the fast
	// kind is scaled up to it.
	if pad := e.observe(slow, 20*ms); pad != 0 {
		t.Fatalf("observe(slow) = %v, want 0 (the slowest kind never waits)", pad)
	}
	fastAvg := e.kinds[fast]
	pad := e.observe(fast, fastAvg)
	if want := 20*ms - fastAvg; absDiff(pad, want) > 100*time.Microsecond {
		t.Fatalf("observe(fast, its average %v) = %v, want %v: up to the slow kind's average", fastAvg, pad, want)
	}
	// Under load every kind slows alike: the wait scales with the
	// derivation's own time.
	// (The sample moves the average too: by an eighth of the difference.)
	avg := fastAvg + fastAvg/8
	loaded := e.observe(fast, 2*fastAvg)
	if want := time.Duration(float64(2*fastAvg)*float64(20*ms)/float64(avg)) - 2*fastAvg; absDiff(loaded, want) > 100*time.Microsecond || loaded <= pad {
		t.Fatalf("observe(fast, twice its average) = %v, want %v, more than at its average (%v)", loaded, want, pad)
	}
	// The table is bounded; kinds beyond it are padded, not learnt.
	for i := range 2 * maxKinds {
		e.observe(cost{uint32(64 + i), 1, 1, ""}, ms)
	}
	if len(e.kinds) != maxKinds {
		t.Fatalf("%d kinds learnt, want at most %d", len(e.kinds), maxKinds)
	}
	if pad := e.observe(cost{1 << 19, 1, 1, ""}, ms); pad <= 0 {
		t.Fatalf("observe(unlearnt kind) = %v, want a wait up to the slowest kind", pad)
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

// TestVerifyEqualisesKinds is the login timing leak it exists for: a
// Hasher with one set of parameters, stored hashes written with slower
// ones. After both kinds have been verified, a verification of the fast
// kind, the dummy's included, waits, and one of the slow kind does not.
func TestVerifyEqualisesKinds(t *testing.T) {
	current := Params{Memory: 256, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	legacy := current
	legacy.Iterations = 16 // far slower on any machine, so the ordering is certain
	h := NewHasher(current, 1)
	var mu sync.Mutex
	var pauses []time.Duration
	h.pause = func(_ context.Context, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		pauses = append(pauses, d)
	}
	last := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return pauses[len(pauses)-1]
	}
	ctx := context.Background()
	old := hashWithSalt("pw", []byte("0123456789abcdef"), legacy)
	fresh, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}

	if err := h.VerifyDummy(ctx, "pw"); err != nil {
		t.Fatal(err)
	}
	if d := last(); d != 0 {
		t.Fatalf("dummy with one kind seen waited %v, want 0", d)
	}
	for range 3 {
		if ok, rehash, err := h.Verify(ctx, "pw", old); err != nil || !ok || !rehash {
			t.Fatalf("Verify(legacy) = %v, %v, %v", ok, rehash, err)
		}
		if d := last(); d != 0 {
			t.Fatalf("the slowest kind waited %v, want 0", d)
		}
	}
	if err := h.VerifyDummy(ctx, "pw"); err != nil {
		t.Fatal(err)
	}
	if d := last(); d <= 0 {
		t.Fatalf("dummy after a slower kind was seen waited %v, want > 0", d)
	}
	if ok, _, err := h.Verify(ctx, "pw", fresh); err != nil || !ok {
		t.Fatalf("Verify(fresh) = %v, %v", ok, err)
	}
	if d := last(); d <= 0 {
		t.Fatalf("a current hash after a slower kind was seen waited %v, want > 0", d)
	}
	if !allFree(h) {
		t.Fatal("a slot is held after Verify: the wait must not hold one")
	}
}

// TestWait checks the real wait: it happens, and a cancelled context cuts
// it short.
func TestWait(t *testing.T) {
	start := time.Now()
	wait(context.Background(), 20*time.Millisecond)
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("wait returned early")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { wait(ctx, time.Hour); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("wait ignored a cancelled context")
	}
}
