// Package webhook signs and sends useremail's events per the Standard
// Webhooks specification (https://www.standardwebhooks.com):
//
//	webhook-id:        the event's id, the same on every attempt
//	webhook-timestamp: Unix seconds of the attempt
//	webhook-signature: "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>",
//	                   one per secret, separated by spaces
//
// Secrets are "whsec_" and the standard base64 of 24 to 64 random bytes;
// with several (rotation) every attempt carries a signature of each.
//
// It owns the signature, the secrets' format, and one HTTP attempt (Client);
// what to send and when to retry is the caller's (the dispatcher in mail). It
// uses the standard library only and imports no package of the project.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a symmetric secret; MinSecretBytes and MaxSecretBytes
// bound its decoded length.
const (
	secretPrefix   = "whsec_"
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// Secret is one signing key.
type Secret []byte

// ParseSecret decodes "whsec_<base64 of 24–64 bytes>".
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("webhook: a secret starts with %q", secretPrefix)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || strings.ContainsAny(b64, "\r\n") {
		return nil, errors.New("webhook: a secret is whsec_ and standard base64 (with padding)")
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("webhook: a secret holds %d to %d bytes, not %d", MinSecretBytes, MaxSecretBytes, len(key))
	}
	return Secret(key), nil
}

// String returns the secret in its whsec_ form.
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s) }

// Signer signs deliveries with every one of its secrets.
type Signer struct {
	secrets []Secret
}

// NewSigner returns a Signer of at least one secret.
func NewSigner(secrets ...Secret) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhook: a signer needs a secret")
	}
	return &Signer{secrets: secrets}, nil
}

// ParseSigner returns a Signer of secrets in their whsec_ form.
func ParseSigner(secrets ...string) (*Signer, error) {
	keys := make([]Secret, 0, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return NewSigner(keys...)
}

// Sign returns the webhook-signature header of body sent as id at ts: a
// "v1," signature per secret, space-separated.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	var b strings.Builder
	for i, k := range s.secrets {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(sign(k, id, ts.Unix(), body))
	}
	return b.String()
}

// sign returns the base64 HMAC-SHA256 of "{id}.{ts}.{body}" under key.
func sign(key Secret, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verification errors.
var (
	ErrNoSignature = errors.New("webhook: no valid signature")
	ErrTimestamp   = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks the headers of a delivery as a receiver does: the
// timestamp within tolerance of now, and one "v1," signature that one of
// secrets made over id, timestamp and body (compared in constant time).
func Verify(secrets []Secret, id, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	for _, entry := range strings.Fields(signature) {
		sig, ok := strings.CutPrefix(entry, "v1,")
		if !ok {
			continue
		}
		for _, k := range secrets {
			if hmac.Equal([]byte(sig), []byte(sign(k, id, ts, body))) {
				return nil
			}
		}
	}
	return ErrNoSignature
}
