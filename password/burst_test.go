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

// burstEnv tells a child process started by runBurst how many slots its
// Hasher has.
const burstEnv = "USEREMAIL_PASSWORD_BURST"

// burstLogins is how many logins a burst makes, from as many goroutines at
// once: half for an address with an account, half without.
const burstLogins = 64

// runBurst runs a burst of logins at DefaultParams on a Hasher with slots
// slots in a child process, and returns the child's resident memory before
// the burst and at its peak (VmRSS, VmHWM), in MiB.
func runBurst(tb testing.TB, slots int) (start, peak float64) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBurstChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", burstEnv, slots), "GOGC=100", "GOMEMLIMIT=off")
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
	slots, err := strconv.Atoi(spec)
	if err != nil {
		t.Fatalf("%s=%q: %v", burstEnv, spec, err)
	}
	h := NewHasher(DefaultParams, slots)
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

// BenchmarkBurstPeakRSS reports the peak resident memory of a process
// during a burst of logins, for one and two slots.
func BenchmarkBurstPeakRSS(b *testing.B) {
	for _, slots := range []int{1, 2} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			var start, peak float64
			for b.Loop() {
				start, peak = runBurst(b, slots)
			}
			b.ReportMetric(start, "start-MiB")
			b.ReportMetric(peak, "peak-MiB")
			b.ReportMetric(peak-start, "burst-MiB")
		})
	}
}
