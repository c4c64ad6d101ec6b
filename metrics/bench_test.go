package metrics_test

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/useremail/useremail/metrics"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkOutboxCount compares, with a million sent mails in an SQLite
// outbox, the count a scrape used to run (every status, GROUP BY), the
// count of the waiting statuses that replaced it, and a whole scrape of
// the metrics' handler, which counts at most once per interval.
func BenchmarkOutboxCount(b *testing.B) {
	db := storetest.Open(b, store.SQLite)
	ctx := context.Background()
	now := time.Now().UTC()
	user, _, err := db.CreateUser(ctx, store.NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "x"}, now)
	if err != nil {
		b.Fatal(err)
	}
	const seed = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
		INSERT INTO outbox (kind, recipient, user_id, payload, status, attempts, next_attempt_at, created_at, sent_at)
		SELECT 'verify', 'a@example.com', ?, '{}', 'sent', 1, ?, ?, ? FROM n`
	if _, err := db.SQL().ExecContext(ctx, seed, user.ID, now, now, now); err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}

	b.Run("every status (before)", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.CountMessages(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("waiting statuses (after)", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.CountWaitingMessages(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scrape", func(b *testing.B) {
		h := metrics.New(metrics.Options{DB: db}).Handler()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
			_, _ = io.Copy(io.Discard, w.Body)
		}
	})
}
