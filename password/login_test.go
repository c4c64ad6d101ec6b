package password

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The tests in this file hold login's two paths to the same work and the
// same answers: Verify of a stored hash with the Hasher's parameters (an
// address with an account) and VerifyDummy (an address without one).

// TestVerifyDummyWaitsLikeVerify checks that while every slot is taken, a
// context that ends during the wait ends both paths with the same error.
func TestVerifyDummyWaitsLikeVerify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHasher(cheap, 1)
		stored, err := h.Hash(t.Context(), "pw")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.sem.Acquire(t.Context(), h.slots); err != nil { // a burst of logins
			t.Fatal(err)
		}
		paths := map[string]func(context.Context) error{
			"known": func(ctx context.Context) error {
				_, _, err := h.Verify(ctx, "wrong", stored)
				return err
			},
			"unknown": func(ctx context.Context) error { return h.VerifyDummy(ctx, "wrong") },
		}
		for _, end := range []struct {
			name string
			ctx  func() (context.Context, context.CancelFunc)
			want error
		}{
			{"deadline", func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 10*time.Second)
			}, context.DeadlineExceeded},
			{"cancel", func() (context.Context, context.CancelFunc) {
				return context.WithCancel(t.Context())
			}, context.Canceled},
		} {
			errs := map[string]chan error{}
			var cancels []context.CancelFunc
			for name, path := range paths {
				ctx, cancel := end.ctx()
				cancels = append(cancels, cancel)
				errs[name] = make(chan error, 1)
				go func() { errs[name] <- path(ctx) }()
			}
			synctest.Wait() // both are waiting for the slot
			for name, ch := range errs {
				select {
				case err := <-ch:
					t.Fatalf("%s: %s path returned %v while every slot was taken", end.name, name, err)
				default:
				}
			}
			if end.want == context.Canceled {
				for _, cancel := range cancels {
					cancel()
				}
			} else {
				time.Sleep(11 * time.Second) // the bubble's clock: instant
			}
			for name, ch := range errs {
				if err := <-ch; !errors.Is(err, end.want) {
					t.Errorf("%s: %s path returned %v, want %v", end.name, name, err, end.want)
				}
			}
			for _, cancel := range cancels {
				cancel()
			}
		}
		h.sem.Release(h.slots)
	})
}

// TestVerifyHoldsSlotsForItsMemory checks that a stored hash needing twice
// the Hasher's memory waits until two slots are free.
func TestVerifyHoldsSlotsForItsMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHasher(cheap, 2)
		big := cheap
		big.Memory = 2 * cheap.Memory
		stored := hashWithSalt("pw", []byte(goldenSalt), big)
		if err := h.sem.Acquire(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			ok, _, err := h.Verify(t.Context(), "pw", stored)
			if err == nil && !ok {
				err = errors.New("no match")
			}
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Verify of a 2-slot hash returned (%v) with one slot free", err)
		default:
		}
		h.sem.Release(1)
		if err := <-done; err != nil {
			t.Fatalf("Verify with both slots free: %v", err)
		}
	})
}

// TestLoginPathsSameWork compares the work of the two paths, which is what
// decides their time: the parameters of the one derivation each runs (the
// equalizer learns one kind, and pads neither) and the memory and objects
// each allocates. Counting work, not time, keeps the test exact on a
// shared machine; BenchmarkLoginPaths shows the times.
func TestLoginPathsSameWork(t *testing.T) {
	p := Params{Memory: 2048, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32}
	h := NewHasher(p, 1)
	var pauses []time.Duration
	h.pause = func(_ context.Context, d time.Duration) { pauses = append(pauses, d) }
	ctx := context.Background()
	stored, err := h.Hash(ctx, "the user's password")
	if err != nil {
		t.Fatal(err)
	}
	const password = "a wrong password"
	known := func() error {
		ok, rehash, err := h.Verify(ctx, password, stored)
		if ok || rehash {
			return fmt.Errorf("Verify = %v, %v; want false, false", ok, rehash)
		}
		return err
	}
	unknown := func() error { return h.VerifyDummy(ctx, password) }
	// Warm up both, so that one-off allocations (the equalizer's table) are
	// behind us.
	for _, path := range []func() error{known, unknown} {
		if err := path(); err != nil {
			t.Fatal(err)
		}
	}
	measure := func(path func() error) (bytes, objects uint64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := path(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
	}
	const runs = 5
	var kb, ko, ub, uo []uint64
	for range runs {
		b, o := measure(known)
		kb, ko = append(kb, b), append(ko, o)
		b, o = measure(unknown)
		ub, uo = append(ub, b), append(uo, o)
	}
	// Medians, and a tolerance of a few goroutines (argon2 starts one per
	// lane and segment, and the runtime sometimes reuses one): the working
	// memory of two parameter sets differs by at least 8 KiB.
	med := func(v []uint64) int64 { slices.Sort(v); return int64(v[len(v)/2]) }
	if d, n := med(kb)-med(ub), med(ko)-med(uo); max(d, -d) > 4<<10 || max(n, -n) > 8 {
		t.Errorf("known address: %d bytes in %d objects per Verify; unknown: %d bytes in %d objects per VerifyDummy; want the same",
			med(kb), med(ko), med(ub), med(uo))
	}
	if work := int64(memoryBytes(p)); med(kb) < work {
		t.Errorf("Verify allocates %d bytes, less than the %d bytes of working memory: no derivation?", med(kb), work)
	}
	if want := map[cost]bool{costOf(p): true}; len(h.timing.kinds) != 1 || !want[costOf(p)] {
		t.Errorf("kinds seen = %v, want only %v", h.timing.kinds, costOf(p))
	}
	for i, d := range pauses {
		if d != 0 {
			t.Errorf("verification %d waited %v, want 0 (one kind in use)", i, d)
		}
	}
}

// memoryBytes is the working memory argon2 allocates for p: Memory KiB
// rounded down to a multiple of 4 blocks per lane.
func memoryBytes(p Params) int {
	unit := 4 * uint32(p.Parallelism)
	return int(p.Memory/unit*unit) << 10
}

// BenchmarkLoginPaths times login's two paths at the default cost, one
// right after the other, and which goes first alternating, so that the
// machine's load falls on both alike. It reports each path's median and the
// median of the pairs' ratios, which a shared machine's swings in load
// disturb far less than a ratio of medians. An op is loginPairs pairs, so
// that even the default -benchtime gives medians of dozens.
func BenchmarkLoginPaths(b *testing.B) {
	const loginPairs = 50
	h := NewHasher(DefaultParams, 0)
	ctx := context.Background()
	stored, err := h.Hash(ctx, "the user's password")
	if err != nil {
		b.Fatal(err)
	}
	timed := func(path func() error) time.Duration {
		start := time.Now()
		if err := path(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	knownPath := func() error {
		_, _, err := h.Verify(ctx, "a wrong password", stored)
		return err
	}
	unknownPath := func() error { return h.VerifyDummy(ctx, "a wrong password") }
	var known, unknown []time.Duration
	var ratios []float64
	for b.Loop() {
		for i := range loginPairs {
			var k, u time.Duration
			if i%2 == 0 {
				k = timed(knownPath)
				u = timed(unknownPath)
			} else {
				u = timed(unknownPath)
				k = timed(knownPath)
			}
			known, unknown = append(known, k), append(unknown, u)
			ratios = append(ratios, float64(u)/float64(k))
		}
	}
	slices.Sort(known)
	slices.Sort(unknown)
	slices.Sort(ratios)
	b.ReportMetric(float64(known[len(known)/2].Nanoseconds()), "known-ns/login")
	b.ReportMetric(float64(unknown[len(unknown)/2].Nanoseconds()), "unknown-ns/login")
	b.ReportMetric(ratios[len(ratios)/2], "unknown/known")
}

// TestVerifyDummyShedsLikeVerify checks that once slots+maxWaiting callers
// hold or wait for slots, both paths return ErrBusy at once, and that the
// callers already waiting are not disturbed.
func TestVerifyDummyShedsLikeVerify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHasher(cheap, 1)
		h.SetMaxWaiting(2)
		stored, err := h.Hash(t.Context(), "pw")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.sem.Acquire(t.Context(), h.slots); err != nil { // a hash outside the queue's count
			t.Fatal(err)
		}
		queued := make(chan error, h.slots+2)
		for range h.slots + 2 {
			go func() {
				_, _, err := h.Verify(t.Context(), "pw", stored)
				queued <- err
			}()
		}
		synctest.Wait() // all of them wait for the slot
		paths := map[string]func() error{
			"known": func() error {
				_, _, err := h.Verify(t.Context(), "wrong", stored)
				return err
			},
			"unknown": func() error { return h.VerifyDummy(t.Context(), "wrong") },
			"hash": func() error {
				_, err := h.Hash(t.Context(), "pw")
				return err
			},
		}
		for name, path := range paths {
			if err := path(); !errors.Is(err, ErrBusy) {
				t.Errorf("%s path with the queue full: %v, want ErrBusy", name, err)
			}
		}
		h.sem.Release(h.slots)
		for range h.slots + 2 {
			if err := <-queued; err != nil {
				t.Errorf("a caller that was waiting: %v", err)
			}
		}
		for name, path := range paths {
			if err := path(); err != nil {
				t.Errorf("%s path with the queue empty: %v", name, err)
			}
		}
		if !allFree(h) || h.inflight.Load() != 0 {
			t.Errorf("after the burst: slots free %v, %d callers counted; want true, 0", allFree(h), h.inflight.Load())
		}
	})
}

// TestSetMaxWaitingNegative checks that a negative bound lets every caller
// wait.
func TestSetMaxWaitingNegative(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHasher(cheap, 1)
		h.SetMaxWaiting(-1)
		if err := h.sem.Acquire(t.Context(), h.slots); err != nil {
			t.Fatal(err)
		}
		const callers = 4 * DefaultWaitingPerSlot
		errs := make(chan error, callers)
		for range callers {
			go func() { errs <- h.VerifyDummy(t.Context(), "pw") }()
		}
		synctest.Wait()
		h.sem.Release(h.slots)
		for range callers {
			if err := <-errs; err != nil {
				t.Errorf("VerifyDummy: %v", err)
			}
		}
	})
}
