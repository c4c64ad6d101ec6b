// Package signer owns the tokens in the links useremail mails to users: it
// signs and verifies the signed_email path segment of email-verify and
// email-set-primary links, and encodes and decodes the user_id_key segment
// (Django's uidb64). It stores nothing: a link is single use because its State
// claim must match the row state that the database's consuming UPDATE checks
// and changes (for a reset link, PasswordState of the user's password hash).
// It imports only the standard library.
//
// # Token format, version 1
//
//	v1.<kid>.<payload>.<mac>
//
// Every part is non-empty and uses only [A-Za-z0-9_-], so with its dots the
// token fits in one URL path segment. Tokens longer than 2048 bytes are
// rejected before any other work.
//
//   - kid names the signing key without revealing it: the first 6 bytes of
//     SHA-256("useremail/signer/kid\x00" || key), base64.RawURLEncoding
//     (8 characters). Verify finds the key by kid, so the order of the keys
//     given to New only decides which one signs.
//   - payload is base64.RawURLEncoding of compact JSON with the fields in this
//     order: {"p":"verify","u":42,"e":"alice@example.com","s":7,"t":1795858200}
//     (p purpose, u user id, e email, s state, t issue time in Unix seconds),
//     exactly as encoding/json.Marshal writes it. Verify accepts only that
//     canonical form: unknown, duplicate, missing or reordered fields,
//     whitespace, wrong types, trailing data and non-canonical base64 are
//     all invalid.
//   - mac is base64.RawURLEncoding of the full 32-byte HMAC-SHA256, keyed with
//     the key named by kid, over the ASCII string
//     "useremail/link/v1." + kid + "." + payload, so the version, the key id,
//     the purpose and every claim are authenticated.
//
// Verify checks, in order: length and shape, version, known kid, MAC, claims
// decoding, purpose, issue time not more than 5 minutes in the future, and
// finally age (only this last step yields ErrExpired).
package signer

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Purpose is what a link token may be used for; a token is valid only for
// the purpose it was signed with.
type Purpose string

const (
	// PurposeVerify marks a link that proves ownership of an address.
	PurposeVerify Purpose = "verify"
	// PurposeSetPrimary marks a link that makes an address the primary one.
	PurposeSetPrimary Purpose = "set-primary"
	// PurposePasswordReset marks a link that sets a new password; its State
	// is PasswordState of the password hash it was mailed under.
	PurposePasswordReset Purpose = "password-reset"
)

// PasswordState returns the state a password reset link carries for a
// user whose stored password hash is hash: the first 63 bits of
// SHA-256("useremail/signer/password-state\x00" || hash), never 0. Any
// change of the hash (a new password always has a new salt) gives another
// state, so it ends every outstanding reset link. The hash's random salt
// keeps the state from helping to guess the password.
func PasswordState(hash string) int64 {
	h := sha256.New()
	h.Write([]byte(passwordStateContext))
	h.Write([]byte(hash))
	v := int64(binary.BigEndian.Uint64(h.Sum(nil)) >> 1)
	if v == 0 {
		v = 1
	}
	return v
}

// Claims are what a link token carries.
type Claims struct {
	Purpose  Purpose
	UserID   int64
	Email    string    // the normalized address (may contain any Unicode)
	State    int64     // the row state the consuming UPDATE checks (email id or change sequence)
	IssuedAt time.Time // UTC, second precision
}

var (
	// ErrInvalid reports a token (or user id key) that is malformed, has a bad
	// MAC, names an unknown key or version, has the wrong purpose, or was
	// issued too far in the future.
	ErrInvalid = errors.New("signer: invalid token")
	// ErrExpired reports a token whose MAC and claims are valid but which is
	// older than the allowed maximum age.
	ErrExpired = errors.New("signer: token expired")
)

const (
	version    = "v1"
	kidContext = "useremail/signer/kid\x00"
	// passwordStateContext separates PasswordState's digests from any other.
	passwordStateContext = "useremail/signer/password-state\x00"
	macContext           = "useremail/link/"
	maxTokenLen          = 2048
	maxSkew              = 5 * time.Minute
	// maxUserIDKeyLen is the length of the encoding of the longest int64 (19 digits).
	maxUserIDKeyLen = 26
)

// Signer signs and verifies link tokens. It is immutable after New and safe
// for concurrent use.
type Signer struct {
	now     func() time.Time
	signKID string
	keys    map[string][]byte // kid -> key
}

// payload is the JSON form of Claims; its field order is part of the format.
type payload struct {
	P string `json:"p"`
	U int64  `json:"u"`
	E string `json:"e"`
	S int64  `json:"s"`
	T int64  `json:"t"`
}

// New returns a Signer. keys[0] signs, all keys verify. It returns an error if
// there are no keys, a key is empty, or two keys are equal. now is the clock;
// nil means time.Now. The keys are copied.
func New(keys [][]byte, now func() time.Time) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("signer: no keys")
	}
	if now == nil {
		now = time.Now
	}
	s := &Signer{now: now, keys: make(map[string][]byte, len(keys))}
	for i, k := range keys {
		if len(k) == 0 {
			return nil, fmt.Errorf("signer: key %d is empty", i)
		}
		id := keyID(k)
		if _, dup := s.keys[id]; dup {
			return nil, fmt.Errorf("signer: key %d duplicates an earlier key", i)
		}
		s.keys[id] = bytes.Clone(k)
		if i == 0 {
			s.signKID = id
		}
	}
	return s, nil
}

// Sign returns a URL-safe token for c, signed with the first key. IssuedAt is
// set from the clock; any value in c.IssuedAt is ignored. It returns an error
// if Purpose or Email is empty or not valid UTF-8, if UserID <= 0, or if the
// token would exceed the length Verify accepts.
func (s *Signer) Sign(c Claims) (string, error) {
	switch {
	case c.Purpose == "" || !utf8.ValidString(string(c.Purpose)):
		return "", errors.New("signer: empty or invalid purpose")
	case c.UserID <= 0:
		return "", errors.New("signer: user id must be positive")
	case c.Email == "" || !utf8.ValidString(c.Email):
		return "", errors.New("signer: empty or invalid email")
	}
	raw, err := json.Marshal(payload{P: string(c.Purpose), U: c.UserID, E: c.Email, S: c.State, T: s.now().Unix()})
	if err != nil {
		return "", fmt.Errorf("signer: encoding claims: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(raw)
	m := base64.RawURLEncoding.EncodeToString(sum(s.keys[s.signKID], s.signKID, p))
	token := version + "." + s.signKID + "." + p + "." + m
	if len(token) > maxTokenLen {
		return "", errors.New("signer: claims too large for a link token")
	}
	return token, nil
}

// Verify checks token for purpose and maxAge and returns its claims. It
// returns ErrInvalid for any malformed, tampered or wrong-purpose token or one
// issued more than 5 minutes in the future, and ErrExpired for an authentic
// token older than maxAge (a non-positive maxAge expires every token).
func (s *Signer) Verify(token string, purpose Purpose, maxAge time.Duration) (Claims, error) {
	if len(token) == 0 || len(token) > maxTokenLen || strings.Count(token, ".") != 3 {
		return Claims{}, ErrInvalid
	}
	parts := strings.Split(token, ".")
	for _, p := range parts {
		if !isBase64URL(p) {
			return Claims{}, ErrInvalid
		}
	}
	if parts[0] != version {
		return Claims{}, ErrInvalid
	}
	kid, p := parts[1], parts[2]
	key, ok := s.keys[kid]
	if !ok {
		return Claims{}, ErrInvalid
	}
	got, ok := decodeCanonical(parts[3])
	if !ok || len(got) != sha256.Size {
		return Claims{}, ErrInvalid
	}
	// hmac.Equal takes the same time wherever the first wrong byte is, so
	// timing does not help an attacker guess a MAC byte by byte. The MAC is
	// checked before the payload is decoded or parsed, so unauthenticated
	// input never reaches the JSON decoder.
	if !hmac.Equal(got, sum(key, kid, p)) {
		return Claims{}, ErrInvalid
	}
	raw, ok := decodeCanonical(p)
	if !ok {
		return Claims{}, ErrInvalid
	}
	c, ok := parseClaims(raw)
	if !ok || c.Purpose != purpose {
		return Claims{}, ErrInvalid
	}
	now := s.now()
	if c.IssuedAt.After(now.Add(maxSkew)) {
		return Claims{}, ErrInvalid
	}
	if maxAge <= 0 || now.Sub(c.IssuedAt) > maxAge {
		return Claims{}, ErrExpired
	}
	return c, nil
}

// parseClaims decodes the canonical JSON payload Sign writes.
func parseClaims(raw []byte) (Claims, bool) {
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil { // rejects wrong types and trailing data
		return Claims{}, false
	}
	// The decoder alone would accept unknown, duplicate, missing, reordered or
	// case-changed fields, whitespace and other escapes; requiring re-encoding
	// to reproduce the exact bytes rejects all of them, so each set of claims
	// has exactly one token per key and time.
	again, err := json.Marshal(p)
	if err != nil || !bytes.Equal(again, raw) {
		return Claims{}, false
	}
	if p.P == "" || p.U <= 0 || p.E == "" {
		return Claims{}, false
	}
	return Claims{Purpose: Purpose(p.P), UserID: p.U, Email: p.E, State: p.S, IssuedAt: time.Unix(p.T, 0).UTC()}, true
}

// EncodeUserID returns Django's uidb64 for id: base64.RawURLEncoding of its
// decimal form (42 -> "NDI").
func EncodeUserID(id int64) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt(nil, id, 10))
}

// DecodeUserID returns the id that EncodeUserID encoded as s. It returns
// ErrInvalid for anything but the canonical encoding of a positive int64:
// padding, leading zeros, signs, non-canonical base64, overflow or excess
// length.
func DecodeUserID(s string) (int64, error) {
	if len(s) == 0 || len(s) > maxUserIDKeyLen {
		return 0, ErrInvalid
	}
	b, ok := decodeCanonical(s)
	if !ok || len(b) == 0 || b[0] == '0' {
		return 0, ErrInvalid
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, ErrInvalid
		}
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrInvalid
	}
	return id, nil
}

// keyID returns the kid naming key.
func keyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte(kidContext))
	h.Write(key)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:6])
}

// sum returns the HMAC-SHA256 of a token's signed part.
func sum(key []byte, kid, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macContext + version + "." + kid + "." + payload))
	return m.Sum(nil)
}

// decodeCanonical decodes s as base64.RawURLEncoding, accepting only the one
// encoding EncodeToString produces (no line breaks, no stray padding bits).
func decodeCanonical(s string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// isBase64URL reports whether s is non-empty and uses only [A-Za-z0-9_-].
func isBase64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
