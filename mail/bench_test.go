package mail_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkDispatch measures the whole path of a queued mail: claim, render,
// sign, an SMTP transaction over real TCP with the in-process sink, and the
// store write that records it. It reports messages per second.
func BenchmarkDispatch(b *testing.B) {
	for _, dialect := range storetest.Dialects() {
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/workers=%d", dialect, workers), func(b *testing.B) {
				db := storetest.Open(b, dialect)
				seed(b, db, b.N)
				sink := smtptest.Start(b, smtptest.Options{})
				s, err := signer.New([][]byte{testKey}, nil)
				if err != nil {
					b.Fatal(err)
				}
				d := newDispatcher(b, mail.Config{
					DB: db, Signer: s, Sender: newSMTPSender(b, sink),
					PublicURL: publicURL, From: "noreply@accounts.example.com",
					Workers: workers, Logger: quietLogger(),
				})
				ctx := context.Background()
				b.ResetTimer()
				start := time.Now()
				for sent := 0; sent < b.N; {
					n, err := d.RunOnce(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						b.Fatalf("stalled after %d of %d mails", sent, b.N)
					}
					sent += n
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				if got := len(sink.Mails()); got != b.N {
					b.Fatalf("sink got %d mails, want %d", got, b.N)
				}
			})
		}
	}
}
