package transfer_test

import (
	"context"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestExportSnapshot: an export reads one state of the store while another
// process goes on writing, neither waiting for the other.
func TestExportSnapshot(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := storetest.URL(t, d)
			exporter := storetest.OpenURL(t, url)
			writer := storetest.OpenURL(t, url)
			create := func(email string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				if _, _, err := writer.CreateUser(ctx, store.NewUser{Email: email, Key: email, PasswordHash: ""}, time.Now()); err != nil {
					t.Fatalf("a write beside the export: %v", err)
				}
			}
			create("before@example.com")
			err := exporter.Snapshot(ctx, func(q *store.Queries) error {
				if n, err := q.CountUsers(ctx); err != nil || n != 1 {
					t.Fatalf("snapshot counts %d users, %v; want 1", n, err)
				}
				create("during@example.com")
				if n, err := q.CountUsers(ctx); err != nil || n != 1 {
					t.Errorf("after a write beside it the snapshot counts %d users, %v; want 1 still", n, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := userCount(t, exporter); n != 2 {
				t.Errorf("%d users after the snapshot, want 2", n)
			}
		})
	}
}
