package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// AdminTokenPrefix starts every admin token, so that a leaked one is easy
// to recognize (secret scanners, logs).
const AdminTokenPrefix = "uea_"

// NewAdminToken returns a new admin bearer token, 32 random bytes after
// AdminTokenPrefix, and the hash to store for it.
func NewAdminToken() (token string, hash []byte) {
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // never fails (crypto/rand)
	token = AdminTokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	return token, HashAdminToken(token)
}

// HashAdminToken is the stored form of an admin token: its SHA-256. A token
// holds 256 random bits, so no slow hash is needed to keep it from being
// guessed from its hash.
func HashAdminToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// wellFormedAdminToken reports whether token has the shape NewAdminToken
// gives, so that garbage is refused without a database read.
func wellFormedAdminToken(token string) bool {
	rest, ok := strings.CutPrefix(token, AdminTokenPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}
