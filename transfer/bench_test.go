package transfer_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/transfer"
)

// benchSizes are the store sizes of the benchmarks; USEREMAIL_BENCH_1M=1
// adds a million users (slow on a shared machine).
func benchSizes() []int {
	sizes := []int{10_000, 100_000}
	if os.Getenv("USEREMAIL_BENCH_1M") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	return sizes
}

// syntheticExport writes an export of n users, each with a verified
// primary and an unverified secondary address and an argon2id hash.
func syntheticExport(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), fmt.Sprintf("export-%d.json", n))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	fmt.Fprintf(w, "{\"format\":%q,\"users\":[\n", transfer.Format)
	const hash = "$argon2id$v=19$m=19456,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$aq42HBL+IPAitHspChw/8mx5JRX2jFDkTmlsBskwH/0"
	for i := 1; i <= n; i++ {
		if i > 1 {
			w.WriteByte(',')
		}
		enc.Encode(transfer.User{ID: int64(i), DateJoined: t0, PasswordHash: hash, Language: "en", Emails: []transfer.Email{
			{Email: fmt.Sprintf("user%d@example.com", i), Verified: true, Primary: true},
			{Email: fmt.Sprintf("user%d@work.example", i)},
		}})
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil || f.Close() != nil {
		b.Fatal(err)
	}
	return path
}

// peakHeap samples the live heap every few milliseconds until stop is
// called, which returns the largest sample in MiB.
func peakHeap() (stop func() float64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(peak) / (1 << 20)
	}
}

// BenchmarkImport imports an export of each size into a fresh store of
// each dialect; users/s and the peak heap in MiB are reported.
func BenchmarkImport(b *testing.B) {
	for _, n := range benchSizes() {
		path := syntheticExport(b, n)
		for _, d := range storetest.Dialects() {
			b.Run(fmt.Sprintf("%s/users=%d", d, n), func(b *testing.B) {
				var elapsed time.Duration
				var peak float64
				for range b.N {
					b.StopTimer()
					db := storetest.Open(b, d)
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					stop := peakHeap()
					b.StartTimer()
					start := time.Now()
					sum, err := transfer.Import(ctx, db, f, transfer.Options{})
					elapsed += time.Since(start)
					b.StopTimer()
					peak = max(peak, stop())
					f.Close()
					if err != nil || sum.Users != int64(n) {
						b.Fatalf("import = %+v, %v", sum, err)
					}
					db.Close()
				}
				b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "users/s")
				b.ReportMetric(peak, "peak-heap-MiB")
			})
		}
	}
}

// BenchmarkExport exports a store of each size and dialect to io.Discard.
func BenchmarkExport(b *testing.B) {
	for _, n := range benchSizes() {
		path := syntheticExport(b, n)
		for _, d := range storetest.Dialects() {
			b.Run(fmt.Sprintf("%s/users=%d", d, n), func(b *testing.B) {
				db := storetest.Open(b, d)
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				_, err = transfer.Import(ctx, db, f, transfer.Options{})
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				var peak float64
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					stop := peakHeap()
					if got, err := transfer.Export(ctx, db, io.Discard, nil); err != nil || got != int64(n) {
						b.Fatalf("export = %d, %v", got, err)
					}
					peak = max(peak, stop())
				}
				b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "users/s")
				b.ReportMetric(peak, "peak-heap-MiB")
			})
		}
	}
}

// syntheticDjangoDump writes a dumpdata array of n users, then their
// allauth addresses (a verified primary and an unverified one each).
func syntheticDjangoDump(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), fmt.Sprintf("django-%d.json", n))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("[\n")
	const hash = "pbkdf2_sha256$260000$4XtITgpOF6k1WHNHqQh4CB$udG1SsHMIaotxU9sHd+t7XXTRSIY+LM2iBJkvKuJhrA="
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, `{"model":"auth.user","pk":%d,"fields":{"password":%q,"last_login":null,"is_superuser":false,"username":"user%d","first_name":"","last_name":"","email":"user%d@example.com","is_staff":false,"is_active":true,"date_joined":"2024-05-06T07:08:09.123Z","groups":[],"user_permissions":[]}},`+"\n", i, hash, i, i)
	}
	for i := 1; i <= n; i++ {
		sep := ","
		if i == n {
			sep = ""
		}
		fmt.Fprintf(w, `{"model":"account.emailaddress","pk":%d,"fields":{"user":%d,"email":"user%d@example.com","verified":true,"primary":true}},`+"\n", 2*i-1, i, i)
		fmt.Fprintf(w, `{"model":"account.emailaddress","pk":%d,"fields":{"user":%d,"email":"user%d@work.example","verified":false,"primary":false}}%s`+"\n", 2*i, i, i, sep)
	}
	w.WriteString("]\n")
	if err := w.Flush(); err != nil || f.Close() != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkImportDjango imports a Django dump of each size.
func BenchmarkImportDjango(b *testing.B) {
	for _, n := range benchSizes() {
		path := syntheticDjangoDump(b, n)
		for _, d := range storetest.Dialects() {
			b.Run(fmt.Sprintf("%s/users=%d", d, n), func(b *testing.B) {
				var elapsed time.Duration
				var peak float64
				for range b.N {
					b.StopTimer()
					db := storetest.Open(b, d)
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					stop := peakHeap()
					b.StartTimer()
					start := time.Now()
					sum, err := transfer.Import(ctx, db, f, transfer.Options{Format: transfer.FormatDjango})
					elapsed += time.Since(start)
					b.StopTimer()
					peak = max(peak, stop())
					f.Close()
					if err != nil || sum.Users != int64(n) || sum.Addresses != int64(2*n) {
						b.Fatalf("import = %+v, %v", sum, err)
					}
					db.Close()
				}
				b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "users/s")
				b.ReportMetric(peak, "peak-heap-MiB")
			})
		}
	}
}
