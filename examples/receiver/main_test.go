package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The Standard Webhooks specification's example: secret, id, timestamp,
// body and the signature it gives.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = "1614265330"
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestVerifySpecExample(t *testing.T) {
	r, err := NewReceiver([]string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("another key")), specSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.now = func() time.Time { return time.Unix(1614265330, 0).Add(time.Minute) }
	if err := r.Verify(specID, specTimestamp, "v1,bm90IGl0 "+specSignature, []byte(specBody)); err != nil {
		t.Errorf("the specification's example: %v", err)
	}
	for name, c := range map[string][4]string{
		"other body":      {specID, specTimestamp, specSignature, `{"test": 2432232315}`},
		"other id":        {"msg_other", specTimestamp, specSignature, specBody},
		"other timestamp": {specID, "1614265331", specSignature, specBody},
		"v2 entry":        {specID, specTimestamp, "v2," + specSignature[3:], specBody},
		"no signature":    {specID, specTimestamp, "", specBody},
	} {
		if err := r.Verify(c[0], c[1], c[2], []byte(c[3])); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	r.now = func() time.Time { return time.Unix(1614265330, 0).Add(10 * time.Minute) }
	if err := r.Verify(specID, specTimestamp, specSignature, []byte(specBody)); err == nil {
		t.Error("a delivery 10 minutes old verified")
	}
}

// TestReceiver: each event applied once, in each user's sequence order.
func TestReceiver(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	var applied []string
	r, err := NewReceiver([]string{secret}, func(e Event) error {
		applied = append(applied, fmt.Sprintf("%d#%d", e.Data.UserID, e.Data.Sequence))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var gaps []string
	r.gap = func(user, last, seq int64) { gaps = append(gaps, fmt.Sprintf("%d:%d-%d", user, last, seq)) }
	send := func(id string, user, seq int64) int {
		body := fmt.Sprintf(`{"type":"email.added","timestamp":"2026-11-28T09:30:00Z","data":{"user_id":%d,"sequence":%d,"actor":"user","email":{"id":1,"email":"a@example.com","verified":false,"primary":false}}}`, user, seq)
		ts := fmt.Sprint(time.Now().Unix())
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + body))
		req := httptest.NewRequest("POST", "/hooks/useremail", bytes.NewBufferString(body))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w.Code
	}
	steps := []struct {
		id        string
		user, seq int64
		want      int
	}{
		{"evt_1", 1, 1, http.StatusNoContent},
		{"evt_2", 1, 2, http.StatusNoContent},
		{"evt_2", 1, 2, http.StatusNoContent}, // a repeat
		{"evt_5", 1, 4, http.StatusNoContent}, // #3 failed: a gap
		{"evt_3", 1, 3, http.StatusNoContent}, // redelivered late: older than the state
		{"evt_4", 2, 1, http.StatusNoContent},
	}
	for _, s := range steps {
		if got := send(s.id, s.user, s.seq); got != s.want {
			t.Errorf("%s: %d, want %d", s.id, got, s.want)
		}
	}
	if got := fmt.Sprint(applied); got != "[1#1 1#2 1#4 2#1]" {
		t.Errorf("applied %s", got)
	}
	if fmt.Sprint(gaps) != "[1:2-4]" {
		t.Errorf("gaps %v", gaps)
	}
	req := httptest.NewRequest("POST", "/hooks/useremail", bytes.NewBufferString(`{}`))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest {
		t.Errorf("unsigned: %d", w.Code)
	}
}
