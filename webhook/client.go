package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Timeout is how long an endpoint has to answer an attempt with a 2xx.
const Timeout = 10 * time.Second

// Client makes signed attempts. It never follows a redirect: a 3xx is a
// failed attempt, as the specification asks.
type Client struct {
	signer *Signer
	http   *http.Client
	now    func() time.Time
}

// NewClient returns a Client that signs with signer; transport nil means
// http.DefaultTransport's settings in a transport of its own, now nil
// means time.Now (it stamps webhook-timestamp).
func NewClient(signer *Signer, transport http.RoundTripper, now func() time.Time) *Client {
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		transport = t
	}
	if now == nil {
		now = time.Now
	}
	return &Client{
		signer: signer,
		now:    now,
		http: &http.Client{
			Transport:     transport,
			Timeout:       Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Outcome is what one attempt came to.
type Outcome struct {
	// Status is the answer's status code; 0 when none came.
	Status int
	// RetryAfter is the answer's Retry-After, as a delay; 0 if none.
	RetryAfter time.Duration
	// Err says why the attempt failed; nil for a 2xx.
	Err error
}

// Delivered reports a 2xx answer.
func (o Outcome) Delivered() bool { return o.Err == nil }

// Gone reports a 410: the endpoint wants no more attempts.
func (o Outcome) Gone() bool { return o.Status == http.StatusGone }

// Post sends body to endpoint as the event id, signed, with the time of
// this attempt, and reports the outcome.
func (c *Client) Post(ctx context.Context, endpoint, id string, body []byte) Outcome {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return Outcome{Err: err}
	}
	now := c.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "useremail-webhooks")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, c.signer.Sign(id, now, body))
	res, err := c.http.Do(req)
	if err != nil {
		return Outcome{Err: err}
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.CopyN(io.Discard, res.Body, 4<<10)
	_ = res.Body.Close()
	o := Outcome{Status: res.StatusCode, RetryAfter: retryAfter(res.Header.Get("Retry-After"), now)}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		o.Err = fmt.Errorf("endpoint answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	}
	return o
}

// retryAfter reads a Retry-After header, delay-seconds or an HTTP date,
// as a delay from now; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(7*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
