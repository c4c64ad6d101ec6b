package store_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

var t0 = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

func newUser(t *testing.T, q *store.Queries, email string) (store.User, store.Email) {
	t.Helper()
	u, e, err := q.CreateUser(context.Background(), store.NewUser{Email: email, Key: email, PasswordHash: "h"}, t0)
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u, e
}

func TestUsersAndEmails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, primary := newUser(t, db.Queries, "a@example.com")
		if !primary.Primary || primary.Verified || primary.UserID != u.ID || !primary.CreatedAt.Equal(t0) {
			t.Fatalf("primary = %+v", primary)
		}
		if !u.DateJoined.Equal(t0) {
			t.Fatalf("date joined = %v", u.DateJoined)
		}

		// The primary address of one user blocks another's sign-up.
		_, _, err := db.CreateUser(ctx, store.NewUser{Email: "A@example.com", Key: "a@example.com", PasswordHash: "h"}, t0)
		if !errors.Is(err, store.ErrEmailTaken) {
			t.Fatalf("second sign-up: err = %v, want ErrEmailTaken", err)
		}

		second, err := db.InsertEmail(ctx, store.NewEmail{UserID: u.ID, Email: "b@example.com", Key: "b@example.com"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.InsertEmail(ctx, store.NewEmail{UserID: u.ID, Email: "B@example.com", Key: "b@example.com"}, t0); !errors.Is(err, store.ErrEmailTaken) {
			t.Fatalf("same address twice: err = %v", err)
		}

		// Unverified secondary addresses block nobody; verifying a claimed one fails.
		v, _ := newUser(t, db.Queries, "v@example.com")
		squat, err := db.InsertEmail(ctx, store.NewEmail{UserID: v.ID, Email: "a@example.com", Key: "a@example.com"}, t0)
		if err != nil {
			t.Fatalf("unverified secondary of a claimed address: %v", err)
		}
		if _, err := db.VerifyEmail(ctx, v.ID, squat.ID, t0); !errors.Is(err, store.ErrEmailTaken) {
			t.Fatalf("verify claimed address: err = %v", err)
		}
		if owner, err := db.ClaimedBy(ctx, "a@example.com"); err != nil || owner != u.ID {
			t.Fatalf("ClaimedBy = %d, %v", owner, err)
		}
		if _, err := db.ClaimedBy(ctx, "b@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ClaimedBy(unverified) err = %v", err)
		}

		verified, err := db.VerifyEmail(ctx, u.ID, second.ID, t0)
		if err != nil || !verified.Verified {
			t.Fatalf("VerifyEmail = %+v, %v", verified, err)
		}
		if _, err := db.VerifyEmail(ctx, u.ID, second.ID, t0.Add(time.Hour)); err != nil {
			t.Fatalf("VerifyEmail again: %v", err)
		}
		if got, err := db.UserByLoginKey(ctx, "b@example.com"); err != nil || got.ID != u.ID {
			t.Fatalf("UserByLoginKey(verified secondary) = %+v, %v", got, err)
		}

		// The primary swap keeps exactly one primary.
		newPrimary, err := db.MakePrimary(ctx, u.ID, second.ID, t0)
		if err != nil || !newPrimary.Primary || !newPrimary.Verified {
			t.Fatalf("MakePrimary = %+v, %v", newPrimary, err)
		}
		emails, err := db.EmailsByUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(emails) != 2 || emails[0].ID != second.ID || !emails[0].Primary || emails[1].Primary {
			t.Fatalf("EmailsByUser after swap = %+v", emails)
		}
		if p, err := db.PrimaryEmail(ctx, u.ID); err != nil || p.ID != second.ID {
			t.Fatalf("PrimaryEmail = %+v, %v", p, err)
		}

		// The primary address cannot be deleted; a secondary one can, once.
		if err := db.DeleteEmail(ctx, u.ID, second.ID); !errors.Is(err, store.ErrPrimaryUndeletable) {
			t.Fatalf("delete primary: err = %v", err)
		}
		if err := db.DeleteEmail(ctx, u.ID, primary.ID); err != nil {
			t.Fatalf("delete secondary: %v", err)
		}
		if err := db.DeleteEmail(ctx, u.ID, primary.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: err = %v", err)
		}
		if _, err := db.EmailByID(ctx, v.ID, second.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another user's email: err = %v", err)
		}
		if all, err := db.EmailsByUser(ctx, u.ID); err != nil || len(all) != 1 {
			t.Fatalf("EmailsByUser = %+v, %v", all, err)
		}

		// Deleting a user takes its addresses with it, the primary included.
		if err := db.DeleteUser(ctx, v.ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if _, err := db.PrimaryEmail(ctx, v.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("primary of deleted user: err = %v", err)
		}
	})
}

// TestUserLanguage checks that a user keeps the language given at sign-up,
// and that one given none gets the default.
func TestUserLanguage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, tt := range []struct{ given, want string }{{"", store.DefaultLanguage}, {"de", "de"}} {
			t.Run(cmp.Or(tt.given, "none"), func(t *testing.T) {
				email := "lang-" + cmp.Or(tt.given, "none") + "@example.com"
				u, _, err := db.CreateUser(ctx, store.NewUser{Email: email, Key: email, PasswordHash: "h", Language: tt.given}, t0)
				if err != nil {
					t.Fatal(err)
				}
				got, err := db.UserByID(ctx, u.ID)
				if err != nil || u.Language != tt.want || got.Language != tt.want {
					t.Fatalf("language = %q (created), %q (read), %v; want %q", u.Language, got.Language, err, tt.want)
				}
			})
		}
	})
}

func TestChangeSeq(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		seq, err := db.NextChangeSeq(ctx, u.ID)
		if err != nil || seq != 1 {
			t.Fatalf("NextChangeSeq = %d, %v", seq, err)
		}
		newer, _ := db.NextChangeSeq(ctx, u.ID)
		if err := db.ConsumeChangeSeq(ctx, u.ID, seq); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("consume superseded: err = %v", err)
		}
		if err := db.ConsumeChangeSeq(ctx, u.ID, newer); err != nil {
			t.Fatalf("consume: %v", err)
		}
		if err := db.ConsumeChangeSeq(ctx, u.ID, newer); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("consume twice: err = %v", err)
		}
	})
}

func TestSessions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		s := store.Session{IDHash: []byte{1, 2, 3}, UserID: u.ID, CSRFToken: "csrf", CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		got, err := db.SessionByHash(ctx, []byte{1, 2, 3})
		if err != nil || got.UserID != u.ID || got.CSRFToken != "csrf" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("SessionByHash = %+v, %v", got, err)
		}
		if err := db.TouchSession(ctx, s.IDHash, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteExpiredSessions(ctx, t0.Add(30*time.Minute), t0); err != nil || n != 0 {
			t.Fatalf("DeleteExpiredSessions (none due) = %d, %v", n, err)
		}
		if n, err := db.DeleteExpiredSessions(ctx, t0.Add(2*time.Hour), t0); err != nil || n != 1 {
			t.Fatalf("DeleteExpiredSessions = %d, %v", n, err)
		}
		if err := db.DeleteSession(ctx, s.IDHash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete deleted session: err = %v", err)
		}
	})
}

func TestRateLimits(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// 3 per minute: three pass at once, the fourth waits 20 s.
		interval, burst := 20*time.Second, time.Minute
		for i := range 3 {
			ok, _, err := db.TakeToken(ctx, "k", t0, interval, burst)
			if err != nil || !ok {
				t.Fatalf("take %d: %v, %v", i, ok, err)
			}
		}
		ok, wait, err := db.TakeToken(ctx, "k", t0, interval, burst)
		if err != nil || ok || wait != 20*time.Second {
			t.Fatalf("4th take = %v, %v, %v; want denied, 20s", ok, wait, err)
		}
		if ok, _, _ := db.TakeToken(ctx, "k", t0.Add(20*time.Second), interval, burst); !ok {
			t.Fatal("take after the wait was denied")
		}
		if err := db.ReturnToken(ctx, "k", interval); err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := db.TakeToken(ctx, "k", t0.Add(20*time.Second), interval, burst); !ok {
			t.Fatal("take after a refund was denied")
		}
		// One per 3 minutes, no burst.
		if ok, _, _ := db.TakeToken(ctx, "once", t0, 3*time.Minute, 3*time.Minute); !ok {
			t.Fatal("first resend denied")
		}
		if ok, wait, _ := db.TakeToken(ctx, "once", t0.Add(time.Minute), 3*time.Minute, 3*time.Minute); ok || wait != 2*time.Minute {
			t.Fatalf("second resend = %v, %v", ok, wait)
		}
		if n, err := db.DeleteIdleRateLimits(ctx, t0.Add(time.Hour)); err != nil || n != 2 {
			t.Fatalf("DeleteIdleRateLimits = %d, %v", n, err)
		}
	})
}

func TestRateLimitConcurrent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for range 40 {
			wg.Go(func() {
				ok, _, err := db.TakeToken(ctx, "shared", t0, 6*time.Second, time.Minute)
				if err != nil {
					t.Errorf("TakeToken: %v", err)
				}
				if ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if allowed != 10 {
			t.Fatalf("allowed = %d of 40, want 10", allowed)
		}
	})
}

func TestOutbox(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		for i := range 3 {
			if _, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: fmt.Sprintf("r%d@example.com", i), UserID: u.ID, Payload: "{}"}, t0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ClaimMessages(ctx, t0.Add(-time.Second), time.Minute, 10); err != nil {
			t.Fatal(err)
		}
		msgs, err := db.ClaimMessages(ctx, t0, time.Minute, 2)
		if err != nil || len(msgs) != 2 || msgs[0].Status != store.StatusSending || msgs[0].Attempts != 1 {
			t.Fatalf("claim = %+v, %v", msgs, err)
		}
		if err := db.MarkMessageSent(ctx, msgs[0].Claim(), t0); err != nil {
			t.Fatal(err)
		}
		if err := db.RescheduleMessage(ctx, msgs[1].Claim(), t0.Add(time.Hour), "451 try later"); err != nil {
			t.Fatal(err)
		}
		rest, _ := db.ClaimMessages(ctx, t0, time.Minute, 10)
		if len(rest) != 1 {
			t.Fatalf("second claim = %+v", rest)
		}
		// A lease that runs out lets another dispatcher take the row over; the
		// first claim's late report then changes nothing.
		again, _ := db.ClaimMessages(ctx, t0.Add(2*time.Minute), time.Minute, 10)
		if len(again) != 1 || again[0].ID != rest[0].ID || again[0].Attempts != 2 {
			t.Fatalf("reclaim = %+v", again)
		}
		if err := db.MarkMessageSent(ctx, rest[0].Claim(), t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("stale MarkMessageSent: err = %v", err)
		}
		if err := db.FailMessage(ctx, again[0].Claim(), "550 no such user"); err != nil {
			t.Fatal(err)
		}
		counts, err := db.CountMessages(ctx)
		if err != nil || counts[store.StatusSent] != 1 || counts[store.StatusQueued] != 1 || counts[store.StatusFailed] != 1 {
			t.Fatalf("counts = %v, %v", counts, err)
		}
		if err := db.RetryMessage(ctx, again[0].ID, t0); err != nil {
			t.Fatal(err)
		}
		m, err := db.MessageByID(ctx, again[0].ID)
		if err != nil || m.Status != store.StatusQueued || m.Attempts != 0 || m.LastError != "" {
			t.Fatalf("after retry = %+v, %v", m, err)
		}
		due, err := db.NextDueAt(ctx)
		if err != nil || !due.Equal(t0) {
			t.Fatalf("NextDueAt = %v, %v", due, err)
		}
		list, err := db.ListMessages(ctx, store.StatusSent, 10)
		if err != nil || len(list) != 1 || list[0].SentAt == nil {
			t.Fatalf("ListMessages = %+v, %v", list, err)
		}
	})
}

func TestOutboxConcurrentClaims(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		const n = 200
		for i := range n {
			if _, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: fmt.Sprintf("r%d@example.com", i), UserID: u.ID, Payload: "{}"}, t0); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					var msgs []store.Message
					err := db.WithTx(ctx, func(q *store.Queries) error {
						var err error
						msgs, err = q.ClaimMessages(ctx, t0, time.Hour, 7)
						return err
					})
					if err != nil {
						t.Errorf("claim: %v", err)
						return
					}
					if len(msgs) == 0 {
						return
					}
					mu.Lock()
					for _, m := range msgs {
						seen[m.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("claimed %d distinct messages, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("message %d claimed %d times", id, c)
			}
		}
	})
}

func TestAudit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		for _, ev := range []string{"signup", "login"} {
			if err := db.RecordEvent(ctx, store.AuditEvent{UserID: u.ID, Event: ev, Email: "a@example.com", IP: "127.0.0.1", UserAgent: "test", CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		// An event of no user (a failed login for an address no account
		// holds) is stored with a NULL user.
		if err := db.RecordEvent(ctx, store.AuditEvent{Event: "login_failed", Email: "nobody@example.com", IP: "127.0.0.1", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		events, err := db.EventsByUser(ctx, u.ID, 10)
		if err != nil || len(events) != 2 || events[0].Event != "signup" || !events[1].CreatedAt.Equal(t0) {
			t.Fatalf("EventsByUser = %+v, %v", events, err)
		}
		var n int
		if err := db.SQL().GetContext(ctx, &n, `SELECT COUNT(*) FROM audit_events WHERE user_id IS NULL AND email = 'nobody@example.com'`); err != nil || n != 1 {
			t.Fatalf("events without a user: %d, %v; want 1", n, err)
		}
	})
}

func TestWithTxRollsBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := db.WithTx(ctx, func(q *store.Queries) error {
			newUser(t, q, "a@example.com")
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("WithTx err = %v", err)
		}
		if _, err := db.ClaimedBy(ctx, "a@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rolled-back user exists: %v", err)
		}
		if pending, err := db.PendingMigrations(ctx); err != nil || pending {
			t.Fatalf("PendingMigrations = %v, %v", pending, err)
		}
	})
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		dialect store.Dialect
		ok      bool
	}{
		{"sqlite:useremail.db", store.SQLite, true},
		{"sqlite:///tmp/x.db", store.SQLite, true},
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", store.Postgres, true},
		{"postgresql://u:p@h/db", store.Postgres, true},
		{"sqlite:", "", false},
		{"sqlite:a.db?mode=ro", "", false},
		{"mysql://x", "", false},
		{"", "", false},
		{"postgres://h/db?prepared_statements=off", store.Postgres, true},
		{"postgres://h/db?prepared_statements=no", "", false},
		{"postgres://h/db?statement_timeout=2s", store.Postgres, true},
		{"postgres://h/db?statement_timeout=0", store.Postgres, true},
		{"postgres://h/db?statement_timeout=9000", "", false},
		{"postgres://h/db?statement_timeout=-1s", "", false},
		{"sqlite:a.db?statement_timeout=2s", "", false},
	} {
		d, _, err := store.ParseURL(tc.in)
		if (err == nil) != tc.ok || d != tc.dialect {
			t.Errorf("ParseURL(%q) = %q, %v", tc.in, d, err)
		}
	}
	// PostgreSQL DSNs get a connect timeout and binary parameters (one
	// round trip per statement) unless the URL says otherwise.
	for in, want := range map[string][]string{
		"postgres://h/db?sslmode=disable":                                {"binary_parameters=yes", "connect_timeout=5", "sslmode=disable"},
		"postgres://h/db?binary_parameters=no&connect_timeout=9":         {"binary_parameters=no", "connect_timeout=9"},
		"postgresql://u:p@h:5433/db?search_path=s&binary_parameters=yes": {"binary_parameters=yes", "search_path=s"},
	} {
		_, dsn, err := store.ParseURL(in)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", in, err)
		}
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("ParseURL(%q) = %q: %v", in, dsn, err)
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if got := u.Query()[k]; len(got) != 1 || got[0] != v {
				t.Errorf("ParseURL(%q) = %q: %s = %q, want %q", in, dsn, k, got, v)
			}
		}
	}
	// prepared_statements is the store's, not lib/pq's: it never reaches
	// PostgreSQL, which would refuse it as an unknown setting.
	// So is statement_timeout: the store sets it after connecting, as a
	// start-up parameter would be refused by PgBouncer.
	for _, in := range []string{"postgres://h/db?prepared_statements=off", "postgres://h/db?prepared_statements=on&sslmode=disable",
		"postgres://h/db?statement_timeout=1500ms"} {
		if _, dsn, err := store.ParseURL(in); err != nil || strings.Contains(dsn, "prepared_statements") || strings.Contains(dsn, "statement_timeout") {
			t.Errorf("ParseURL(%q) = %q, %v", in, dsn, err)
		}
	}
}

// TestCheckAddress checks the one-statement check against the queries it
// stands for, in the cases a change of addresses meets.
func TestCheckAddress(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, a := newUser(t, db.Queries, "a@example.com") // unverified primary
		b, err := db.InsertEmail(ctx, store.NewEmail{UserID: u.ID, Email: "b@example.com", Key: "b@example.com"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := newUser(t, db.Queries, "v@example.com")
		if _, err := db.InsertEmail(ctx, store.NewEmail{UserID: v.ID, Email: "c@example.com", Key: "c@example.com", Verified: true}, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := db.InsertEmail(ctx, store.NewEmail{UserID: v.ID, Email: "d@example.com", Key: "d@example.com"}, t0); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			key     string
			ownID   int64
			claimed bool
		}{
			{"a@example.com", a.ID, false}, // the user's own primary
			{"b@example.com", b.ID, false}, // the user's own unverified secondary
			{"c@example.com", 0, true},     // verified by another user
			{"v@example.com", 0, true},     // another user's (unverified) primary
			{"d@example.com", 0, false},    // another user's unverified secondary blocks nobody
			{"new@example.com", 0, false},
		} {
			var c store.AddressCheck
			err := db.WithTx(ctx, func(q *store.Queries) error {
				if _, err := q.LockUser(ctx, u.ID); err != nil {
					return err
				}
				var err error
				c, err = q.CheckAddress(ctx, u.ID, tc.key)
				return err
			})
			if err != nil {
				t.Fatalf("CheckAddress(%s): %v", tc.key, err)
			}
			want := store.AddressCheck{Count: 2, OwnID: tc.ownID, Claimed: tc.claimed, PrimaryID: a.ID, PrimaryEmail: a.Email, PrimaryKey: a.Key}
			if c != want {
				t.Errorf("CheckAddress(%s) = %+v, want %+v", tc.key, c, want)
			}
			// The user's address list and ClaimedBy agree.
			all, err := db.EmailsByUser(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			var ownID, primaryID int64
			for _, e := range all {
				if e.Key == tc.key {
					ownID = e.ID
				}
				if e.Primary {
					primaryID = e.ID
				}
			}
			owner, claimErr := db.ClaimedBy(ctx, tc.key)
			if len(all) != c.Count || ownID != c.OwnID || (claimErr == nil && owner != u.ID) != c.Claimed || primaryID != c.PrimaryID {
				t.Errorf("CheckAddress(%s) = %+v; the list says %+v, ClaimedBy %d %v", tc.key, c, all, owner, claimErr)
			}
		}
		if _, err := db.CheckAddress(ctx, v.ID+1000, "a@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CheckAddress of no user: err = %v, want ErrNotFound", err)
		}
	})
}

// TestVerifyEmailByKey checks the guarded update of a verify link: it
// changes only an unverified address that still has the link's key.
func TestVerifyEmailByKey(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		b, err := db.InsertEmail(ctx, store.NewEmail{UserID: u.ID, Email: "B@example.com", Key: "b@example.com"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := newUser(t, db.Queries, "v@example.com")
		if _, err := db.VerifyEmailByKey(ctx, u.ID, b.ID, "c@example.com", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("other key: err = %v, want ErrNotFound", err)
		}
		if _, err := db.VerifyEmailByKey(ctx, v.ID, b.ID, "b@example.com", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("other user: err = %v, want ErrNotFound", err)
		}
		e, err := db.VerifyEmailByKey(ctx, u.ID, b.ID, "b@example.com", t0)
		if err != nil || !e.Verified || e.ID != b.ID || e.Email != "B@example.com" || e.Primary {
			t.Fatalf("VerifyEmailByKey = %+v, %v", e, err)
		}
		if _, err := db.VerifyEmailByKey(ctx, u.ID, b.ID, "b@example.com", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("already verified: err = %v, want ErrNotFound", err)
		}
		// Another user's unverified copy of a verified address cannot be verified.
		squat, err := db.InsertEmail(ctx, store.NewEmail{UserID: v.ID, Email: "b@example.com", Key: "b@example.com"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.VerifyEmailByKey(ctx, v.ID, squat.ID, "b@example.com", t0); !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("claimed address: err = %v, want ErrEmailTaken", err)
		}
	})
}

// TestInsertEmailAudited checks that the address and its audit event are
// written together, and neither when the address is refused.
func TestInsertEmailAudited(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		ev := store.AuditEvent{UserID: u.ID, Event: "email_added", Email: "ignored: the stored address is recorded", IP: "192.0.2.1", UserAgent: "test", CreatedAt: t0}
		var e store.Email
		err := db.WithTx(ctx, func(q *store.Queries) error {
			var err error
			e, err = q.InsertEmailAudited(ctx, store.NewEmail{UserID: u.ID, Email: "B@example.com", Key: "b@example.com"}, ev, t0)
			return err
		})
		if err != nil || e.ID == 0 || e.UserID != u.ID || e.Email != "B@example.com" || e.Key != "b@example.com" || e.Verified || e.Primary || !e.CreatedAt.Equal(t0) {
			t.Fatalf("InsertEmailAudited = %+v, %v", e, err)
		}
		events, err := db.EventsByUser(ctx, u.ID, 10)
		if err != nil || len(events) != 1 {
			t.Fatalf("events = %+v, %v", events, err)
		}
		if got := events[0]; got.Event != ev.Event || got.Email != "B@example.com" || got.IP != ev.IP || got.UserAgent != ev.UserAgent || !got.CreatedAt.Equal(t0) {
			t.Errorf("event = %+v", got)
		}
		// The same address again: refused, and no event.
		if _, err := db.InsertEmailAudited(ctx, store.NewEmail{UserID: u.ID, Email: "b@example.com", Key: "b@example.com"}, ev, t0); !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("same address again: err = %v, want ErrEmailTaken", err)
		}
		if events, _ := db.EventsByUser(ctx, u.ID, 10); len(events) != 1 {
			t.Errorf("events after the refusal = %+v", events)
		}
	})
}
