//go:build linux

package password

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// burstEnv tells a child process started by runBurst what to run:
// "<slots> <collect>".
const burstEnv = "USEREMAIL_PASSWORD_BURST"

// burstLogins is how many logins a burst makes, from as many goroutines at
// once: half for an address with an account, half without.
const burstLogins = 64

// runBurst runs a burst of logins at DefaultParams on a Hasher with slots
// slots in a child process, and returns the child's resident memory before
// the burst and at its peak (VmRSS, VmHWM), in MiB. collect false turns
// off the collection after each hash, to show what it saves.
func runBurst(tb testing.TB, slots int, collect bool) (start, peak float64) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBurstChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %t", burstEnv, slots, collect), "GOGC=100", "GOMEMLIMIT=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("burst child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if _, err := fmt.Sscanf(line, "burst start=%g peak=%g", &start, &peak); err == nil {
			return start, peak
		}
	}
	tb.Fatalf("burst child printed no figures:\n%s", out)
	return 0, 0
}

// TestBurstChild is the child process of runBurst; it skips unless
// runBurst started it.
func TestBurstChild(t *testing.T) {
	spec := os.Getenv(burstEnv)
	if spec == "" {
		t.Skip("runs only as runBurst's child process")
	}
	var slots int
	var collect bool
	if _, err := fmt.Sscanf(spec, "%d %t", &slots, &collect); err != nil {
		t.Fatalf("%s=%q: %v", burstEnv, spec, err)
	}
	h := NewHasher(DefaultParams, slots)
	h.collect = collect
	h.SetMaxWaiting(-1) // every login of the burst waits its turn
	ctx := context.Background()
	stored, err := h.Hash(ctx, "the user's password")
	if err != nil {
		t.Fatal(err)
	}
	// Start from a process at rest: the first hash's memory given back,
	// and the peak reset to the current size (Linux's clear_refs).
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	start := procStatusMiB(t, "VmRSS")
	var wg sync.WaitGroup
	for i := range burstLogins {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, _, err = h.Verify(ctx, "a wrong password", stored)
			} else {
				err = h.VerifyDummy(ctx, "a wrong password")
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	runtime.KeepAlive(h)
	fmt.Printf("burst start=%.1f peak=%.1f\n", start, procStatusMiB(t, "VmHWM"))
}

// procStatusMiB returns a kB field of /proc/self/status in MiB.
func procStatusMiB(t *testing.T, field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		name, rest, ok := strings.Cut(string(line), ":")
		if ok && name == field {
			kB, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			return float64(kB) / 1024
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestBurstMemory checks that a burst of logins holds one working memory
// per slot, and at times one more: the next hash does not always fit where
// the last one's memory was freed. Without the collection after each hash,
// dead buffers pile up to twice as many and more (BenchmarkBurstPeakRSS).
func TestBurstMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a burst of hashes at the default cost")
	}
	const slots = 2
	start, peak := runBurst(t, slots, true)
	m := float64(DefaultParams.Memory) / 1024
	t.Logf("%d slots of %.0f MiB: resident %.1f MiB before the burst, %.1f MiB at its peak", slots, m, start, peak)
	if limit := (slots + 1.5) * m; peak-start > limit {
		t.Errorf("the burst grew the process by %.1f MiB, want at most %.1f MiB (%d slots of %.0f MiB, one more, and half of one)", peak-start, limit, slots, m)
	}
}

// BenchmarkBurstPeakRSS reports the peak resident memory of a process
// during a burst of logins, for one and two slots, with and without the
// collection after each hash.
func BenchmarkBurstPeakRSS(b *testing.B) {
	for _, slots := range []int{1, 2} {
		for _, collect := range []bool{true, false} {
			b.Run(fmt.Sprintf("slots=%d/collect=%t", slots, collect), func(b *testing.B) {
				var start, peak float64
				for b.Loop() {
					start, peak = runBurst(b, slots, collect)
				}
				b.ReportMetric(start, "start-MiB")
				b.ReportMetric(peak, "peak-MiB")
				b.ReportMetric(peak-start, "burst-MiB")
			})
		}
	}
}
