// Package testserver starts a real useremail server for the examples' and
// SDKs' tests: the HTTP API on a store the caller opens, the real mail
// dispatcher delivering into memory, and links that point at the server
// itself, so that a client can follow them. Test support only: the service
// never imports it.
package testserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/webhook"
)

// WebhookSecret signs the events delivered to the server's
// WebhookEndpoints (set by an option), which Deliver delivers too.
const WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// Server is a running server and the mail it delivered.
type Server struct {
	// URL is the base URL of the API, and of the mailed links.
	URL string

	dispatcher *mail.Dispatcher
	mu         sync.Mutex // serializes deliveries and guards sent
	sent       []mail.Message
}

// Start serves the API on db until t ends. Cookies are not Secure (the
// server is plain http); password hashing is cheap. opts change the
// server's configuration (trusted origins, say).
func Start(t testing.TB, db *store.DB, opts ...func(*server.Config)) *Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	s := &Server{URL: "http://" + ts.Listener.Addr().String()}
	sign, err := signer.New([][]byte{[]byte("examples-test-secret-0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.Config{
		DB:             db,
		Signer:         sign,
		Hasher:         password.NewHasher(password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 0),
		PublicURL:      s.URL,
		ResendInterval: 0,
		RateLimits:     true,
		Notices:        true,
		Logger:         logger,
	}
	for _, o := range opts {
		o(&cfg)
	}
	dcfg := mail.Config{DB: db, Signer: sign, Sender: s, PublicURL: s.URL, Logger: logger}
	if len(cfg.WebhookEndpoints) > 0 {
		ws, err := webhook.ParseSigner(WebhookSecret)
		if err != nil {
			t.Fatal(err)
		}
		dcfg.Webhooks = webhook.NewClient(ws, nil, nil)
	}
	if s.dispatcher, err = mail.NewDispatcher(dcfg); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return s
}

// Send implements mail.Sender: it keeps the message.
func (s *Server) Send(_ context.Context, m mail.Message) error {
	s.sent = append(s.sent, m) // under s.mu: only Deliver sends
	return nil
}

// Deliver runs the dispatcher until the outbox is empty and returns every
// message delivered so far.
func (s *Server) Deliver(ctx context.Context) ([]mail.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		n, err := s.dispatcher.RunOnce(ctx)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return append([]mail.Message(nil), s.sent...), nil
		}
	}
}

// Mail is what the mailbox endpoint tells about one delivered message.
type Mail struct {
	Kind    string   `json:"kind"`
	To      string   `json:"to"`
	Subject string   `json:"subject"`
	Links   []string `json:"links"`
}

// Mailbox is a test-only HTTP endpoint, for test programs outside Go:
// GET ?to=ADDRESS delivers the queued mail and answers the messages sent to
// ADDRESS (all messages without it), oldest first, as JSON.
func (s *Server) Mailbox() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent, err := s.Deliver(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		to := r.URL.Query().Get("to")
		out := []Mail{}
		for _, m := range sent {
			if to == "" || m.To == to {
				out = append(out, Mail{Kind: m.Kind, To: m.To, Subject: m.Subject, Links: m.Links})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}
