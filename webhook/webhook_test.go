package webhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/webhook"
)

// The example the Standard Webhooks libraries publish and test against.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecExample(t *testing.T) {
	s, err := webhook.ParseSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(specID, time.Unix(specTimestamp, 0), []byte(specPayload)); got != specSignature {
		t.Fatalf("signature %q, want %q", got, specSignature)
	}
	key, _ := webhook.ParseSecret(specSecret)
	if key.String() != specSecret {
		t.Errorf("String() = %q", key.String())
	}
	at := time.Unix(specTimestamp, 0)
	if err := webhook.Verify([]webhook.Secret{key}, specID, "1614265330", specSignature, []byte(specPayload), at, 5*time.Minute); err != nil {
		t.Errorf("Verify the example: %v", err)
	}
}

func TestSignSeveralSecrets(t *testing.T) {
	other := webhook.Secret(strings.Repeat("k", 32))
	spec, _ := webhook.ParseSecret(specSecret)
	s, _ := webhook.NewSigner(other, spec)
	got := s.Sign(specID, time.Unix(specTimestamp, 0), []byte(specPayload))
	parts := strings.Split(got, " ")
	if len(parts) != 2 || parts[1] != specSignature || !strings.HasPrefix(parts[0], "v1,") {
		t.Fatalf("signature header %q: want two v1 entries, the second the example's", got)
	}
	// A receiver that knows either secret accepts it.
	for _, k := range []webhook.Secret{other, spec} {
		if err := webhook.Verify([]webhook.Secret{k}, specID, "1614265330", got, []byte(specPayload), time.Unix(specTimestamp, 0), time.Minute); err != nil {
			t.Errorf("verify with one secret: %v", err)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	key, _ := webhook.ParseSecret(specSecret)
	keys := []webhook.Secret{key}
	at := time.Unix(specTimestamp, 0)
	cases := []struct {
		name, id, ts, sig, body string
		now                     time.Time
		want                    error
	}{
		{"body changed", specID, "1614265330", specSignature, `{"test": 2432232315}`, at, webhook.ErrNoSignature},
		{"id changed", "msg_other", "1614265330", specSignature, specPayload, at, webhook.ErrNoSignature},
		{"wrong version", specID, "1614265330", "v1a," + strings.TrimPrefix(specSignature, "v1,"), specPayload, at, webhook.ErrNoSignature},
		{"no signature", specID, "1614265330", "", specPayload, at, webhook.ErrNoSignature},
		{"too old", specID, "1614265330", specSignature, specPayload, at.Add(6 * time.Minute), webhook.ErrTimestamp},
		{"from the future", specID, "1614265330", specSignature, specPayload, at.Add(-6 * time.Minute), webhook.ErrTimestamp},
		{"bad timestamp", specID, "16142x", specSignature, specPayload, at, webhook.ErrTimestamp},
	}
	for _, c := range cases {
		err := webhook.Verify(keys, c.id, c.ts, c.sig, []byte(c.body), c.now, 5*time.Minute)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParseSecret(t *testing.T) {
	bad := []string{
		"",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",    // no prefix
		"whsec_" + "c2hvcnQ=",                 // 5 bytes
		"whsec_not base64!",                   // not base64
		"whsec_" + strings.Repeat("QUFB", 22), // 66 bytes
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", // trailing junk
	}
	for _, s := range bad {
		if _, err := webhook.ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted", s)
		}
	}
	if _, err := webhook.ParseSecret("whsec_" + strings.Repeat("QUFB", 21) + "QQ=="); err != nil {
		t.Errorf("64 bytes refused: %v", err)
	}
}

func TestClientPost(t *testing.T) {
	key, _ := webhook.ParseSecret(specSecret)
	signer, _ := webhook.NewSigner(key)
	now := time.Now()
	status, retry := http.StatusOK, ""
	var got *http.Request
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, gotBody = r, string(b)
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	c := webhook.NewClient(signer, nil, func() time.Time { return now })

	o := c.Post(context.Background(), srv.URL, "evt_1", []byte(`{"a":1}`))
	if !o.Delivered() || o.Status != 200 {
		t.Fatalf("2xx: %+v", o)
	}
	h := got.Header
	if h.Get("webhook-id") != "evt_1" || got.Method != http.MethodPost || gotBody != `{"a":1}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("request: %s %v %q", got.Method, h, gotBody)
	}
	if err := webhook.Verify([]webhook.Secret{key}, h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), []byte(gotBody), now, time.Minute); err != nil {
		t.Errorf("the receiver cannot verify: %v", err)
	}

	status, retry = http.StatusServiceUnavailable, "120"
	o = c.Post(context.Background(), srv.URL, "evt_1", []byte(`{}`))
	if o.Delivered() || o.Status != 503 || o.RetryAfter != 2*time.Minute {
		t.Errorf("503 with Retry-After: %+v", o)
	}
	status, retry = http.StatusTooManyRequests, now.Add(time.Hour).UTC().Format(http.TimeFormat)
	o = c.Post(context.Background(), srv.URL, "evt_1", []byte(`{}`))
	if o.Delivered() || o.RetryAfter < 59*time.Minute || o.RetryAfter > time.Hour {
		t.Errorf("429 with a Retry-After date: %+v", o)
	}
	status, retry = http.StatusFound, ""
	o = c.Post(context.Background(), srv.URL, "evt_1", []byte(`{}`))
	if o.Delivered() || o.Status != http.StatusFound || got.URL.Path == "/elsewhere" {
		t.Errorf("redirect followed or taken for success: %+v, path %s", o, got.URL.Path)
	}
	status = http.StatusGone
	if o = c.Post(context.Background(), srv.URL, "evt_1", []byte(`{}`)); !o.Gone() || o.Delivered() {
		t.Errorf("410: %+v", o)
	}
	srv.Close()
	if o = c.Post(context.Background(), srv.URL, "evt_1", []byte(`{}`)); o.Delivered() || o.Status != 0 || o.Err == nil {
		t.Errorf("no answer: %+v", o)
	}
}
