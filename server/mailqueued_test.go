package server_test

import (
	"sync/atomic"
	"testing"

	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestMailQueuedOnlyWhenQueued checks that Config.MailQueued, which wakes
// the dispatcher and on PostgreSQL sends a NOTIFY to every replica, is
// called after each request that put mail in the outbox and after no other:
// with the notices off, deleting an address or confirming a change of
// primary queues nothing.
func TestMailQueuedOnlyWhenQueued(t *testing.T) {
	for _, notices := range []bool{true, false} {
		name := map[bool]string{true: "notices on", false: "notices off"}[notices]
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, db *store.DB) {
				var calls atomic.Int64
				e := newEnv(t, db, func(c *server.Config) {
					c.Notices = notices
					c.MailQueued = func() { calls.Add(1) }
				})
				var alice *user
				var work int64
				steps := []struct {
					name string
					do   func()
				}{
					{"sign up", func() { alice = e.newUser("alice@example.com") }},
					{"add email", func() { work = e.addEmail(alice, "alice@work.example").Id }},
					{"delete email", func() {
						res, err := alice.DeleteEmailWithResponse(ctx, alice.id, work)
						if err != nil {
							t.Fatal(err)
						}
						wantStatus(t, "delete", res, 204)
					}},
					{"request change", func() { e.requestChange(alice, "alice@new.example") }},
					{"confirm change", func() {
						l := e.changeLink("alice@new.example")
						res, err := e.anon.ConfirmPrimaryEmailChangeWithResponse(ctx, l.token, l.userKey)
						if err != nil || res.JSON200 == nil {
							t.Fatalf("confirm change: %v %d %s", err, res.StatusCode(), res.Body)
						}
					}},
				}
				for _, step := range steps {
					rows, before := e.count(`SELECT COUNT(*) FROM outbox`), calls.Load()
					step.do()
					queued := e.count(`SELECT COUNT(*) FROM outbox`) > rows
					if called := calls.Load() - before; (called > 0) != queued || called > 1 {
						t.Errorf("%s: MailQueued called %d times; mail queued: %v", step.name, called, queued)
					}
				}
			})
		})
	}
}
