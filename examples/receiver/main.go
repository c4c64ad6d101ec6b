// This program is a worked example of an application's webhook receiver
// for useremail's events (docs/INTEGRATION.md): it verifies each delivery's
// Standard Webhooks signature, ignores a delivery it has seen (the same
// webhook-id), and applies each user's events in sequence order.
//
//	USEREMAIL_WEBHOOK_SECRET=whsec_… go run ./examples/receiver -addr 127.0.0.1:9000
//
// Point USEREMAIL_WEBHOOK_URLS at http://127.0.0.1:9000/hooks/useremail.
// The state here lives in memory; a real application keeps the seen ids
// and each user's last sequence in its own database, in the transaction
// that applies the event.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	secrets := strings.Split(os.Getenv("USEREMAIL_WEBHOOK_SECRET"), ",")
	r, err := NewReceiver(secrets, func(e Event) error {
		log.Printf("user %d #%d %s by %s: %s", e.Data.UserID, e.Data.Sequence, e.Type, e.Data.Actor, e.Data.Email.Email)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /hooks/useremail", r)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// Event is the body of one delivery.
type Event struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		UserID   int64  `json:"user_id"`
		Sequence int64  `json:"sequence"`
		Actor    string `json:"actor"`
		Email    struct {
			ID       int64  `json:"id"`
			Email    string `json:"email"`
			Verified bool   `json:"verified"`
			Primary  bool   `json:"primary"`
		} `json:"email"`
	} `json:"data"`
}

// Tolerance is how far a delivery's webhook-timestamp may be from now:
// older deliveries are refused, so that a captured one cannot be replayed
// later.
const Tolerance = 5 * time.Minute

// Receiver is an http.Handler for the deliveries of one useremail.
type Receiver struct {
	keys  [][]byte
	apply func(Event) error
	now   func() time.Time
	// gap, if set, hears of a user's events missing between last and seq.
	gap func(userID, last, seq int64)

	mu   sync.Mutex
	seen map[string]bool // webhook-ids applied
	last map[int64]int64 // each user's last applied sequence
}

// NewReceiver returns a Receiver that verifies signatures with any of
// secrets (whsec_…; several during a rotation) and calls apply for each
// event, once, in each user's sequence order.
func NewReceiver(secrets []string, apply func(Event) error) (*Receiver, error) {
	r := &Receiver{apply: apply, now: time.Now, seen: map[string]bool{}, last: map[int64]int64{}}
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "whsec_"))
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("webhook secret %q: want whsec_<base64>", s)
		}
		r.keys = append(r.keys, key)
	}
	if len(r.keys) == 0 {
		return nil, errors.New("no webhook secret")
	}
	return r, nil
}

// ServeHTTP answers 2xx for a delivery it applied, or had applied already,
// or that is older than what it applied for the user (useremail stops
// retrying it), 400 for one that is not useremail's, and 503 when apply
// failed (useremail retries it, with the same webhook-id). useremail sends
// a user's events in sequence order; a gap means an earlier one failed for
// good (its deliveries are in GET /admin/events/, and it can be
// redelivered), so gap says so, to resynchronize the user from
// GET /admin/users/{id}/.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	id := req.Header.Get("webhook-id")
	if err := r.Verify(id, req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"), body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.last[e.Data.UserID]
	if r.seen[id] || e.Data.Sequence <= last {
		w.WriteHeader(http.StatusNoContent) // a repeat, or older than the state applied
		return
	}
	if e.Data.Sequence > last+1 && r.gap != nil {
		r.gap(e.Data.UserID, last, e.Data.Sequence)
	}
	if err := r.apply(e); err != nil {
		http.Error(w, "not applied", http.StatusServiceUnavailable)
		return
	}
	r.seen[id] = true
	r.last[e.Data.UserID] = e.Data.Sequence
	w.WriteHeader(http.StatusNoContent)
}

// Verify checks a delivery's Standard Webhooks signature: one of the
// space-separated v1,<base64> entries of signature must be the HMAC-SHA256
// of "{id}.{timestamp}.{body}" under one of the secrets, and the timestamp
// within Tolerance of now.
func (r *Receiver) Verify(id, timestamp, signature string, body []byte) error {
	if id == "" || timestamp == "" || signature == "" {
		return errors.New("missing webhook headers")
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("bad webhook-timestamp")
	}
	if d := r.now().Sub(time.Unix(secs, 0)); d > Tolerance || d < -Tolerance {
		return errors.New("webhook-timestamp too far from now")
	}
	signed := []byte(id + "." + timestamp + "." + string(body))
	for _, key := range r.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		want := mac.Sum(nil)
		for _, entry := range strings.Fields(signature) {
			version, sig, ok := strings.Cut(entry, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(sig)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return errors.New("no valid signature")
}
