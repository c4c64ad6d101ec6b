package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkAdminLists measures the admin API's list queries at 10,000 and
// at 1,000,000 users (each with an address, a mail and an audit event): a
// keyset page costs the same at the start and deep inside, and the same at
// both sizes, as every filter reads its index from the page's start.
func BenchmarkAdminLists(b *testing.B) {
	for _, d := range storetest.Dialects() {
		for _, n := range []int{10_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/%dusers", d, n), func(b *testing.B) { benchAdminLists(b, d, n) })
		}
	}
}

func benchAdminLists(b *testing.B, d store.Dialect, n int) {
	ctx := context.Background()
	db := storetest.Open(b, d)
	storetest.SeedUsers(b, db, n)
	mid := store.Page{After: int64(n / 2), Limit: 50}
	key := fmt.Sprintf("u%d@bench.example", n/2)
	cases := []struct {
		name string
		run  func() error
	}{
		{"users/first", func() error { _, _, err := db.ListUsers(ctx, store.Page{Limit: 50}); return err }},
		{"users/middle", func() error { _, _, err := db.ListUsers(ctx, mid); return err }},
		{"users/emails-of-page", func() error {
			users, _, err := db.ListUsers(ctx, mid)
			if err != nil {
				return err
			}
			ids := make([]int64, len(users))
			for i, u := range users {
				ids[i] = u.ID
			}
			_, err = db.EmailsOfUsers(ctx, ids)
			return err
		}},
		{"users/by-email", func() error { _, _, err := db.UsersByEmailKey(ctx, key, store.Page{Limit: 50}); return err }},
		{"outbox/middle", func() error { _, _, err := db.ListOutbox(ctx, store.OutboxFilter{}, mid); return err }},
		{"outbox/by-recipient", func() error {
			_, _, err := db.ListOutbox(ctx, store.OutboxFilter{Recipient: key}, store.Page{Limit: 50})
			return err
		}},
		{"outbox/by-status", func() error {
			_, _, err := db.ListOutbox(ctx, store.OutboxFilter{Status: store.StatusSent}, mid)
			return err
		}},
		{"audit/middle", func() error { _, _, err := db.ListAudit(ctx, 0, mid); return err }},
		{"audit/by-user", func() error { _, _, err := db.ListAudit(ctx, int64(n/2), store.Page{Limit: 50}); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
