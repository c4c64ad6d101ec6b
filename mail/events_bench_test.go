package mail_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/webhook"
)

// seedEvents records n events, perUser to a user, each with a delivery to
// endpoint.
func seedEvents(b *testing.B, db *store.DB, n, perUser int, endpoint string) {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	for uid := int64(1); n > 0; uid++ {
		k := min(perUser, n)
		evs := make([]store.NewEvent, k)
		for i := range evs {
			evs[i] = store.NewEvent{Type: "email.added", Actor: "user",
				Data: fmt.Sprintf(`{"email":{"id":%d,"email":"u%d@example.com","verified":false,"primary":false}}`, i, uid)}
		}
		if err := db.WithTx(ctx, func(q *store.Queries) error {
			return q.RecordEvents(ctx, uid, evs, []string{endpoint}, now)
		}); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
}

// BenchmarkWebhookDelivery measures the whole path of an event's delivery:
// claim (first in line per user), body, signature, an HTTP POST over real
// TCP to a local receiver, and the store write that records it, with the
// dispatcher's workers. It reports events per second; perUser=10 has ten
// events of each user wait for one another.
func BenchmarkWebhookDelivery(b *testing.B) {
	for _, dialect := range storetest.Dialects() {
		for _, perUser := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/perUser=%d", dialect, perUser), func(b *testing.B) {
				db := storetest.Open(b, dialect)
				var got atomic.Int64
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					got.Add(1)
					w.WriteHeader(http.StatusNoContent)
				}))
				defer srv.Close()
				seedEvents(b, db, b.N, perUser, srv.URL)
				s, err := signer.New([][]byte{testKey}, nil)
				if err != nil {
					b.Fatal(err)
				}
				key, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
				ws, _ := webhook.NewSigner(key)
				d := newDispatcher(b, mail.Config{
					DB: db, Signer: s, Sender: mail.NewLogSender(quietLogger()), PublicURL: publicURL,
					Webhooks: webhook.NewClient(ws, nil, nil), Logger: quietLogger(),
				})
				ctx := context.Background()
				b.ResetTimer()
				start := time.Now()
				for done := 0; done < b.N; {
					n, err := d.RunOnce(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						b.Fatalf("stalled after %d of %d events", done, b.N)
					}
					done += n
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
				if int(got.Load()) != b.N {
					b.Fatalf("receiver got %d, want %d", got.Load(), b.N)
				}
			})
		}
	}
}

// BenchmarkMailBeside measures the mail path as BenchmarkDispatch does,
// with the dispatcher's default workers, for the ratio to
// BenchmarkWebhookDelivery's perUser=1 in the same run.
func BenchmarkMailBeside(b *testing.B) {
	for _, dialect := range storetest.Dialects() {
		b.Run(string(dialect), func(b *testing.B) {
			db := storetest.Open(b, dialect)
			seed(b, db, b.N)
			sink := smtptest.Start(b, smtptest.Options{})
			s, err := signer.New([][]byte{testKey}, nil)
			if err != nil {
				b.Fatal(err)
			}
			d := newDispatcher(b, mail.Config{
				DB: db, Signer: s, Sender: newSMTPSender(b, sink),
				PublicURL: publicURL, From: "noreply@accounts.example.com", Logger: quietLogger(),
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
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
