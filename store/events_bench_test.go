package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkRecordEvents measures one event with one delivery written in a
// transaction, beside the same transaction without it.
func BenchmarkRecordEvents(b *testing.B) {
	for _, d := range storetest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			db := storetest.Open(b, d)
			ctx := context.Background()
			var u store.User
			if err := db.WithTx(ctx, func(q *store.Queries) (err error) {
				u, _, err = q.CreateUser(ctx, store.NewUser{Email: "rec@example.com", Key: "rec@example.com", PasswordHash: "x"}, time.Now())
				return err
			}); err != nil {
				b.Fatal(err)
			}
			ev := []store.NewEvent{{Type: "email.added", Actor: "user", Data: `{"email":{"id":1,"email":"a@example.com","verified":false,"primary":false}}`}}
			for _, with := range []bool{false, true} {
				name := map[bool]string{false: "without", true: "with"}[with]
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := db.WithTx(ctx, func(q *store.Queries) error {
							if _, err := q.LockUser(ctx, u.ID); err != nil {
								return err
							}
							if !with {
								return nil
							}
							return q.RecordEvents(ctx, u.ID, ev, []string{"https://app.example.com/hooks"}, time.Now())
						}); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
