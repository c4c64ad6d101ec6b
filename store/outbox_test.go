package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

func TestReleaseMessage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		id, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		claimed, err := db.ClaimMessages(ctx, t0, time.Minute, 10)
		if err != nil || len(claimed) != 1 || claimed[0].Attempts != 1 || claimed[0].ClaimSeq != 1 {
			t.Fatalf("claim = %+v, %v", claimed, err)
		}
		first := claimed[0].Claim()
		later := t0.Add(30 * time.Second)
		if err := db.ReleaseMessage(ctx, first, later); err != nil {
			t.Fatal(err)
		}
		m, err := db.MessageByID(ctx, id)
		if err != nil || m.Status != store.StatusQueued || m.Attempts != 0 || !m.NextAttemptAt.Equal(later) {
			t.Fatalf("after release = %+v, %v", m, err)
		}
		// A release guarded by a stale claim changes nothing.
		if err := db.ReleaseMessage(ctx, first, later); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release of a queued message: err = %v", err)
		}
		// The next claim counts the same attempt again, but is another claim:
		// the first one's late reports match nothing.
		again, err := db.ClaimMessages(ctx, later, time.Minute, 10)
		if err != nil || len(again) != 1 || again[0].Attempts != 1 || again[0].Claim() != (store.Claim{ID: id, Seq: 2}) {
			t.Fatalf("claim after release = %+v, %v", again, err)
		}
		if err := db.ReleaseMessage(ctx, first, later); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release by the first claim: err = %v", err)
		}
		if err := db.MarkMessageSent(ctx, first, later); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delivery reported by the first claim: err = %v", err)
		}
		if err := db.FailMessage(ctx, first, "550"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("failure reported by the first claim: err = %v", err)
		}
		if m, err := db.MessageByID(ctx, id); err != nil || m.Status != store.StatusSending || m.ClaimSeq != 2 {
			t.Fatalf("after the first claim's reports = %+v, %v; want the second claim untouched", m, err)
		}
		if err := db.ReleaseMessage(ctx, again[0].Claim(), later); err != nil {
			t.Fatalf("release by the second claim: %v", err)
		}
	})
}

func TestNotifyMailQueued(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		if db.Dialect() != store.Postgres {
			if err := db.NotifyMailQueued(context.Background()); err != nil {
				t.Fatalf("NotifyMailQueued on SQLite = %v, want nil (nothing to do)", err)
			}
			return
		}
		l := pq.NewListener(storetest.URL(t, store.Postgres), time.Second, time.Second, nil)
		defer l.Close()
		if err := l.Listen(store.NotifyChannel); err != nil {
			t.Fatal(err)
		}
		if err := db.NotifyMailQueued(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Other tests may share the database and its channel: any
		// notification will do, and one must come.
		select {
		case n := <-l.Notify:
			if n == nil || n.Channel != store.NotifyChannel {
				t.Fatalf("notification = %+v", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no notification")
		}
	})
}

func TestEnqueueMessages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		if ids, err := db.EnqueueMessages(ctx, nil, t0); err != nil || len(ids) != 0 {
			t.Fatalf("EnqueueMessages(none) = %v, %v", ids, err)
		}
		msgs := []store.NewMessage{
			{Kind: "verify", Recipient: "b@example.com", UserID: u.ID, Payload: `{"n":1}`},
			{Kind: "email_added", Recipient: "a@example.com", UserID: u.ID, Payload: `{"n":2}`},
			{Kind: "verify", Recipient: "c@example.com", UserID: u.ID, Payload: `{"n":3}`},
		}
		var ids []int64
		var queuedBefore, queuedAfter bool
		err := db.WithTx(ctx, func(q *store.Queries) error {
			queuedBefore = q.QueuedMail()
			var err error
			ids, err = q.EnqueueMessages(ctx, msgs, t0)
			queuedAfter = q.QueuedMail()
			return err
		})
		if err != nil || len(ids) != len(msgs) {
			t.Fatalf("EnqueueMessages = %v, %v", ids, err)
		}
		if queuedBefore || !queuedAfter {
			t.Errorf("QueuedMail in the transaction: %v before EnqueueMessages, %v after; want false, true", queuedBefore, queuedAfter)
		}

		for i, id := range ids {
			m, err := db.MessageByID(ctx, id)
			if err != nil || m.Kind != msgs[i].Kind || m.Recipient != msgs[i].Recipient || m.UserID != u.ID || m.Payload != msgs[i].Payload ||
				m.Status != store.StatusQueued || m.Attempts != 0 || !m.NextAttemptAt.Equal(t0) || !m.CreatedAt.Equal(t0) {
				t.Errorf("message %d (id %d) = %+v, %v; want %+v", i, id, m, err, msgs[i])
			}
		}
		// A rolled-back transaction queues nothing.
		before, _ := db.CountMessages(ctx)
		errRollback := errors.New("roll back")
		err = db.WithTx(ctx, func(q *store.Queries) error {
			if _, err := q.EnqueueMessages(ctx, msgs, t0); err != nil {
				return err
			}
			return errRollback
		})
		after, _ := db.CountMessages(ctx)
		if !errors.Is(err, errRollback) || after[store.StatusQueued] != before[store.StatusQueued] {
			t.Errorf("rolled back: err %v, queued %d → %d", err, before[store.StatusQueued], after[store.StatusQueued])
		}
		// Outside a transaction the Queries are shared by every caller:
		// they record nothing.
		if _, err := db.EnqueueMessage(ctx, msgs[0], t0); err != nil {
			t.Fatal(err)
		}
		if db.QueuedMail() {
			t.Error("QueuedMail outside a transaction = true; want false")
		}
	})
}

func TestMarkMessagesSent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		msgs := []store.NewMessage{
			{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"},
			{Kind: "verify", Recipient: "b@example.com", UserID: u.ID, Payload: "{}"},
			{Kind: "verify", Recipient: "c@example.com", UserID: u.ID, Payload: "{}"},
		}
		ids, err := db.EnqueueMessages(ctx, msgs, t0)
		if err != nil {
			t.Fatal(err)
		}
		if sent, err := db.MarkMessagesSent(ctx, nil, t0); err != nil || len(sent) != 0 {
			t.Fatalf("MarkMessagesSent(none) = %v, %v", sent, err)
		}
		claimed, err := db.ClaimMessages(ctx, t0, time.Minute, 10)
		if err != nil || len(claimed) != 3 {
			t.Fatalf("claim = %+v, %v", claimed, err)
		}
		// The lease of the first claim ends; another dispatcher takes the
		// first message over (attempt 2).
		later := t0.Add(2 * time.Minute)
		if over, err := db.ClaimMessages(ctx, later, time.Minute, 1); err != nil || len(over) != 1 || over[0].ID != ids[0] || over[0].Attempts != 2 {
			t.Fatalf("take-over = %+v, %v", over, err)
		}
		claims := []store.Claim{claimed[0].Claim(), claimed[1].Claim(), claimed[2].Claim()}
		sent, err := db.MarkMessagesSent(ctx, claims, later)
		slices.Sort(sent)
		if err != nil || !slices.Equal(sent, ids[1:]) {
			t.Fatalf("MarkMessagesSent = %v, %v; want %v", sent, err, ids[1:])
		}
		for i, id := range ids {
			m, err := db.MessageByID(ctx, id)
			switch {
			case err != nil:
				t.Fatal(err)
			case i == 0 && (m.Status != store.StatusSending || m.Attempts != 2 || m.SentAt != nil):
				t.Errorf("taken-over message = %+v", m)
			case i > 0 && (m.Status != store.StatusSent || m.Attempts != 1 || m.SentAt == nil || !m.SentAt.Equal(later)):
				t.Errorf("sent message = %+v", m)
			}
		}
		// The same report repeated (its answer was lost) finds its rows as
		// it left them; another report of the same claims records nothing.
		again, err := db.MarkMessagesSent(ctx, claims, later)
		slices.Sort(again)
		if err != nil || !slices.Equal(again, ids[1:]) {
			t.Errorf("MarkMessagesSent repeated = %v, %v; want %v", again, err, ids[1:])
		}
		if other, err := db.MarkMessagesSent(ctx, claims, later.Add(time.Second)); err != nil || len(other) != 0 {
			t.Errorf("MarkMessagesSent of another report = %v, %v; want none", other, err)
		}
		for _, id := range ids[1:] {
			if m, err := db.MessageByID(ctx, id); err != nil || !m.SentAt.Equal(later) {
				t.Errorf("after the repeats = %+v, %v; want sent at %v", m, err, later)
			}
		}
	})
}

// TestReportRepeated: a report of a claim's outcome, repeated with the same
// arguments after it committed, succeeds again and changes nothing; a
// different report of the same claim, or one of a claim taken over, fails
// with ErrNotFound. (A dispatcher repeats a report whose answer was lost.)
func TestReportRepeated(t *testing.T) {
	next := t0.Add(time.Hour + 123456789*time.Nanosecond) // finer than the stored microseconds
	tests := []struct {
		name   string
		report func(q *store.Queries, c store.Claim, variant int) error
		want   func(m store.Message) bool
	}{
		{
			"reschedule",
			func(q *store.Queries, c store.Claim, variant int) error {
				return q.RescheduleMessage(context.Background(), c, next.Add(time.Duration(variant)*time.Second), "451 try later")
			},
			func(m store.Message) bool {
				return m.Status == store.StatusQueued && m.NextAttemptAt.Equal(next.Truncate(time.Microsecond)) && m.LastError == "451 try later"
			},
		},
		{
			"fail",
			func(q *store.Queries, c store.Claim, variant int) error {
				return q.FailMessage(context.Background(), c, fmt.Sprintf("550 no such user (%d)", variant))
			},
			func(m store.Message) bool {
				return m.Status == store.StatusFailed && m.LastError == "550 no such user (0)"
			},
		},
		{
			"sent",
			func(q *store.Queries, c store.Claim, variant int) error {
				return q.MarkMessageSent(context.Background(), c, next.Add(time.Duration(variant)*time.Second))
			},
			func(m store.Message) bool {
				return m.Status == store.StatusSent && m.SentAt != nil && m.SentAt.Equal(next.Truncate(time.Microsecond))
			},
		},
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, t0)
				if err != nil {
					t.Fatal(err)
				}
				claim, err := db.ClaimMessages(ctx, t0, time.Minute, 10)
				if err != nil || len(claim) != 1 || claim[0].ID != id {
					t.Fatalf("claim = %+v, %v", claim, err)
				}
				for try := 1; try <= 2; try++ {
					if err := tt.report(db.Queries, claim[0].Claim(), 0); err != nil {
						t.Fatalf("try %d: %v", try, err)
					}
					if m, _ := db.MessageByID(ctx, id); !tt.want(m) || m.Attempts != 1 {
						t.Fatalf("after try %d: %+v", try, m)
					}
				}
				if err := tt.report(db.Queries, claim[0].Claim(), 1); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("another report of the claim: err = %v, want ErrNotFound", err)
				}
				if err := tt.report(db.Queries, store.Claim{ID: id, Seq: 2}, 0); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("the report of another claim: err = %v, want ErrNotFound", err)
				}
				if m, _ := db.MessageByID(ctx, id); !tt.want(m) || m.Attempts != 1 {
					t.Errorf("after the other reports: %+v", m)
				}
			})
		}
	})
}

// TestLastErrorBounded: the outbox keeps at most 1000 bytes of an error
// text, cut on a rune boundary and marked with an ellipsis.
func TestLastErrorBounded(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"short", "451 try later", "451 try later"},
		{"empty", "", ""},
		{"exactly the bound", strings.Repeat("y", 1000), strings.Repeat("y", 1000)},
		{"one byte over", strings.Repeat("y", 1001), strings.Repeat("y", 997) + "…"},
		{"cut inside a rune", strings.Repeat("x", 996) + "äöü", strings.Repeat("x", 996) + "…"},
		{"cut after a rune", strings.Repeat("x", 995) + "ä" + strings.Repeat("z", 10), strings.Repeat("x", 995) + "ä…"},
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _ := newUser(t, db.Queries, "a@example.com")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for _, report := range []string{"reschedule", "fail"} {
					id, err := db.EnqueueMessage(ctx, store.NewMessage{Kind: "verify", Recipient: "a@example.com", UserID: u.ID, Payload: "{}"}, t0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := db.ClaimMessages(ctx, t0, time.Minute, 10); err != nil {
						t.Fatal(err)
					}
					c := store.Claim{ID: id, Seq: 1}
					if report == "reschedule" {
						err = db.RescheduleMessage(ctx, c, t0.AddDate(1, 0, 0), tt.text)
					} else {
						err = db.FailMessage(ctx, c, tt.text)
					}
					if err != nil {
						t.Fatalf("%s: %v", report, err)
					}
					m, err := db.MessageByID(ctx, id)
					if err != nil || m.LastError != tt.want || len(m.LastError) > 1000 || !utf8.ValidString(m.LastError) {
						t.Errorf("%s kept %d bytes ending in %q, %v; want %d bytes ending in %q",
							report, len(m.LastError), tail(m.LastError), err, len(tt.want), tail(tt.want))
					}
				}
			})
		}
	})
}

// tail returns the end of a long text, for messages.
func tail(s string) string { return s[max(0, len(s)-12):] }

// TestEnqueueMessageIf: sent, the row is queued and announced; not sent,
// nothing is left of it, in the same transaction as other work.
func TestEnqueueMessageIf(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
		u, _, err := db.CreateUser(ctx, store.NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "h"}, now)
		if err != nil {
			t.Fatal(err)
		}
		msg := store.NewMessage{Kind: "password_reset", Recipient: "a@example.com", UserID: u.ID, Payload: `{"email":"a@example.com","state":1}`}
		if _, err := db.EnqueueMessageIf(ctx, msg, true, now); err == nil {
			t.Error("EnqueueMessageIf outside a transaction succeeded")
		}
		for _, send := range []bool{false, true, false} {
			var id int64
			var queued bool
			err := db.WithTx(ctx, func(q *store.Queries) error {
				var err error
				if id, err = q.EnqueueMessageIf(ctx, msg, send, now); err != nil {
					return err
				}
				queued = q.QueuedMail()
				// The transaction goes on after the savepoint.
				return q.RecordEvent(ctx, store.AuditEvent{UserID: u.ID, Event: "test", CreatedAt: now})
			})
			if err != nil {
				t.Fatalf("send %v: %v", send, err)
			}
			if (id != 0) != send || queued != send {
				t.Errorf("send %v: id %d, queued %v", send, id, queued)
			}
		}
		msgs, err := db.MessagesByUser(ctx, u.ID)
		if err != nil || len(msgs) != 1 || msgs[0].Kind != "password_reset" || msgs[0].Status != store.StatusQueued {
			t.Fatalf("messages %+v, %v; want the one sent", msgs, err)
		}
		events, err := db.EventsByUser(ctx, u.ID, 10)
		if err != nil || len(events) != 3 {
			t.Fatalf("events %+v, %v; want 3", events, err)
		}
	})
}

// TestDeleteUserKeepsMail: deleting a user cancels its queued mail, leaves
// mail being sent alone, keeps every row without a user, and frees its
// addresses.
func TestDeleteUserKeepsMail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
		u, _, err := db.CreateUser(ctx, store.NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "h"}, now)
		if err != nil {
			t.Fatal(err)
		}
		mk := func(kind string) store.NewMessage {
			return store.NewMessage{Kind: kind, Recipient: "a@example.com", UserID: u.ID, Payload: `{"email":"a@example.com"}`}
		}
		if _, err := db.EnqueueMessages(ctx, []store.NewMessage{mk("first"), mk("second")}, now); err != nil {
			t.Fatal(err)
		}
		claimed, err := db.ClaimMessages(ctx, now, time.Minute, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		if err := db.WithTx(ctx, func(q *store.Queries) error { return q.DeleteUser(ctx, u.ID) }); err != nil {
			t.Fatal(err)
		}
		var rows []struct {
			UserID *int64 `db:"user_id"`
			Status string `db:"status"`
		}
		if err := db.SQL().SelectContext(ctx, &rows, `SELECT user_id, status FROM outbox ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].UserID != nil || rows[0].Status != store.StatusSending || rows[1].UserID != nil || rows[1].Status != store.StatusCancelled {
			t.Fatalf("outbox after the deletion: %+v; want the claimed row sending and the other cancelled, both without a user", rows)
		}
		m, err := db.MessageByID(ctx, claimed[0].ID)
		if err != nil || m.UserID != 0 {
			t.Fatalf("MessageByID of a deleted user's row: %+v, %v", m, err)
		}
		if err := db.WithTx(ctx, func(q *store.Queries) error { return q.DeleteUser(ctx, u.ID) }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting again: %v; want ErrNotFound", err)
		}
		if _, _, err := db.CreateUser(ctx, store.NewUser{Email: "a@example.com", Key: "a@example.com", PasswordHash: "h"}, now); err != nil {
			t.Errorf("the address after the deletion: %v", err)
		}
	})
}
