package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// BenchmarkAdminEndpoints measures the admin API's reads through the whole
// handler (authentication of the token, validation, the store, the JSON)
// at 10,000 and at 1,000,000 users: keyset pages and indexed filters cost
// the same at both sizes, on the first page and deep inside.
func BenchmarkAdminEndpoints(b *testing.B) {
	for _, d := range storetest.Dialects() {
		for _, n := range []int{10_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/%dusers", d, n), func(b *testing.B) { benchAdminEndpoints(b, d, n) })
		}
	}
}

func benchAdminEndpoints(b *testing.B, d store.Dialect, n int) {
	db := storetest.Open(b, d)
	storetest.SeedUsers(b, db, n)
	sign, err := signer.New([][]byte{testKey}, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Logger:    slog.New(server.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
		DB:        db,
		Signer:    sign,
		Hasher:    password.NewHasher(cheapHash, 0),
		PublicURL: publicURL,
		Sessions:  session.DefaultPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	token, hash := server.NewAdminToken()
	if _, err := db.CreateAdminToken(ctx, "bench", hash, true, time.Now()); err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	mid := n / 2
	for _, p := range []struct{ name, path string }{
		{"users/first", "/admin/users/"},
		{"users/middle", fmt.Sprintf("/admin/users/?after=%d", mid)},
		{"users/by-email", fmt.Sprintf("/admin/users/?email=u%d@bench.example", mid)},
		{"user", fmt.Sprintf("/admin/users/%d/", mid)},
		{"outbox/middle", fmt.Sprintf("/admin/outbox/?after=%d", mid)},
		{"outbox/by-recipient", fmt.Sprintf("/admin/outbox/?recipient=u%d@bench.example", mid)},
		{"audit/by-user", fmt.Sprintf("/admin/audit/?user_id=%d", mid)},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", p.path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%s: %d %s", p.path, rec.Code, rec.Body)
				}
			}
		})
	}
}
