// Package session owns login sessions: ids from crypto/rand that are stored
// only as SHA-256 hashes, a CSRF token bound to each session, and the idle
// and absolute expiry rules. It works on the store and knows nothing of
// HTTP frameworks or the generated API; cookie names live here because they
// are part of the Django-compatible contract.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/useremail/useremail/store"
)

// The cookies of the contract. OldCookie carries the same id as Cookie; a
// client may send either.
const (
	Cookie     = "sessionid"
	OldCookie  = "osessionid"
	CSRFCookie = "csrftoken"
	CSRFHeader = "X-CSRFToken"
)

// Errors of Resolve.
var (
	// ErrNone: no session cookie was sent.
	ErrNone = errors.New("session: no session")
	// ErrExpired: the session exists but passed its idle or absolute limit.
	ErrExpired = errors.New("session: expired")
	// ErrUnknown: the cookies name no session, or name two different ones.
	ErrUnknown = errors.New("session: unknown or conflicting session")
)

// idBytes is the entropy of a session id and of a CSRF token: 256 bits.
const idBytes = 32

// encodedLen is the length of an id in cookies (unpadded URL-safe base64).
var encodedLen = base64.RawURLEncoding.EncodedLen(idBytes)

// Policy holds the expiry rules.
type Policy struct {
	Idle     time.Duration // a session unused this long ends
	Absolute time.Duration // a session ends this long after login, used or not
	// TouchEvery bounds how often a used session's last-seen time is written:
	// the idle limit is then exact to within TouchEvery, and a busy client
	// costs one write a minute instead of one per request.
	TouchEvery time.Duration
}

// DefaultPolicy is what the service uses unless configured otherwise.
var DefaultPolicy = Policy{Idle: 2 * time.Hour, Absolute: 14 * 24 * time.Hour, TouchEvery: time.Minute}

// Manager creates, resolves and ends sessions.
type Manager struct {
	db     *store.DB
	policy Policy
	now    func() time.Time
}

// NewManager returns a Manager on db. now is the clock; nil means time.Now.
func NewManager(db *store.DB, policy Policy, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{db: db, policy: policy, now: now}
}

// Session is a resolved, live session.
type Session struct {
	store.Session
	// ExpiresAt is when the session ends unless it is used before its idle
	// limit: the earlier of the idle and the absolute limit.
	ExpiresAt time.Time
}

// New is a session just created: ID goes into the cookies, never into the
// database.
type New struct {
	ID string
	Session
}

// Create starts a session for userID inside the caller's transaction q.
func (m *Manager) Create(ctx context.Context, q *store.Queries, userID int64) (New, error) {
	id, err := randomToken()
	if err != nil {
		return New{}, err
	}
	csrf, err := randomToken()
	if err != nil {
		return New{}, err
	}
	now := m.now().UTC()
	s := store.Session{
		IDHash:     hashID(id),
		UserID:     userID,
		CSRFToken:  csrf,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(m.policy.Absolute),
	}
	if err := q.CreateSession(ctx, s); err != nil {
		return New{}, err
	}
	return New{ID: id, Session: m.live(s)}, nil
}

// Resolve finds the live session named by the cookie values (either may be
// empty). Both present and different is ErrUnknown; neither is ErrNone.
func (m *Manager) Resolve(ctx context.Context, sessionID, oldSessionID string) (Session, error) {
	id := sessionID
	switch {
	case sessionID == "" && oldSessionID == "":
		return Session{}, ErrNone
	case sessionID == "":
		id = oldSessionID
	case oldSessionID != "" && subtle.ConstantTimeCompare([]byte(sessionID), []byte(oldSessionID)) != 1:
		return Session{}, ErrUnknown
	}
	if !wellFormed(id) {
		return Session{}, ErrUnknown
	}
	s, err := m.db.SessionByHash(ctx, hashID(id))
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrUnknown
	}
	if err != nil {
		return Session{}, err
	}
	now := m.now().UTC()
	live := m.live(s)
	if !now.Before(live.ExpiresAt) {
		// Kept until DeleteExpired's grace has passed, so that its cookie
		// keeps answering "expired" rather than "unknown".
		return Session{}, ErrExpired
	}
	if now.Sub(s.LastSeenAt) >= m.policy.TouchEvery {
		if err := m.db.TouchSession(ctx, s.IDHash, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return Session{}, err
		}
		s.LastSeenAt = now
		live = m.live(s)
	}
	return live, nil
}

// Delete ends a session.
func (m *Manager) Delete(ctx context.Context, s Session) error {
	err := m.db.DeleteSession(ctx, s.IDHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil // ended concurrently: the outcome is the same
	}
	return err
}

// DeleteExpired removes sessions that ended more than grace ago. Until then
// an expired session's cookie answers "expired" rather than "unknown".
func (m *Manager) DeleteExpired(ctx context.Context, grace time.Duration) (int64, error) {
	cutoff := m.now().UTC().Add(-grace)
	return m.db.DeleteExpiredSessions(ctx, cutoff, cutoff.Add(-m.policy.Idle))
}

// CSRFMatches reports, in constant time, whether token is the session's
// CSRF token.
func (s Session) CSRFMatches(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRFToken)) == 1
}

func (m *Manager) live(s store.Session) Session {
	expires := s.LastSeenAt.Add(m.policy.Idle)
	if s.ExpiresAt.Before(expires) {
		expires = s.ExpiresAt
	}
	return Session{Session: s, ExpiresAt: expires}
}

func randomToken() (string, error) {
	b := make([]byte, idBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashID is what the store keeps of a session id. The id has 256 bits of
// entropy, so a fast unsalted hash is enough: nothing can be guessed.
func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// wellFormed rejects cookie values that cannot be session ids before they
// reach the database.
func wellFormed(id string) bool {
	if len(id) != encodedLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
