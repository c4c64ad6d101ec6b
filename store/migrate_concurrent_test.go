package store_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// TestMigrateConcurrently starts the migrations of several replicas at once
// on a fresh PostgreSQL schema, each on a pool of its own, as replicas that
// start together do: every migration is applied exactly once, none fails,
// and afterwards none is pending.
func TestMigrateConcurrently(t *testing.T) {
	if os.Getenv(storetest.EnvPostgresURL) == "" {
		t.Skipf("needs PostgreSQL (set %s): SQLite is single-node", storetest.EnvPostgresURL)
	}
	url := storetest.URL(t, store.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const replicas = 4
	dbs := make([]*store.DB, replicas)
	for i := range dbs {
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	applied := make([][]store.Migration, replicas)
	errs := make([]error, replicas)
	took := make([]time.Duration, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			began := time.Now()
			applied[i], errs[i] = db.Migrate(ctx)
			took[i] = time.Since(began)
		})
	}
	close(start)
	wg.Wait()

	total := map[int64]int{}
	for i := range dbs {
		t.Logf("replica %d: applied %d migrations in %v", i, len(applied[i]), took[i].Round(time.Millisecond))
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
		}
		for _, m := range applied[i] {
			total[m.Version]++
		}
	}
	if len(total) == 0 {
		t.Fatal("no replica applied any migration")
	}
	for v, n := range total {
		if n != 1 {
			t.Errorf("migration %d applied %d times", v, n)
		}
	}
	var rows []struct {
		Version int64 `db:"version_id"`
		N       int   `db:"n"`
	}
	if err := dbs[0].SQL().SelectContext(ctx, &rows, `SELECT version_id, COUNT(*) AS n FROM goose_db_version WHERE version_id > 0 GROUP BY version_id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(total) {
		t.Errorf("goose_db_version has %d versions, the replicas applied %d", len(rows), len(total))
	}
	for _, r := range rows {
		if r.N != 1 {
			t.Errorf("goose_db_version records version %d %d times", r.Version, r.N)
		}
	}
	for i, db := range dbs {
		if pending, err := db.PendingMigrations(ctx); err != nil || pending {
			t.Errorf("replica %d: pending %v, %v", i, pending, err)
		}
	}
	// The schema works: a user can be created.
	err := dbs[replicas-1].WithTx(ctx, func(q *store.Queries) error {
		_, _, err := q.CreateUser(ctx, store.NewUser{Email: "ann@example.com", Key: "ann@example.com", PasswordHash: "h"}, time.Now())
		return err
	})
	if err != nil {
		t.Errorf("after concurrent migrations: %v", err)
	}
}
