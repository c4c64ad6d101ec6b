package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
)

// adminTokenScheme is the spec's security scheme of the admin API.
const adminTokenScheme = "adminToken"

// adminTouchInterval is how stale an admin token's last_used_at may be:
// a busy backend's reads write it at most this often.
const adminTouchInterval = time.Minute

var (
	errAdminNoToken  = problem(http.StatusUnauthorized, gen.ErrorCodeNotAuthenticated, "Send an admin token: Authorization: Bearer <token> (useremail admin-token create).")
	errTokenInvalid  = problem(http.StatusUnauthorized, gen.ErrorCodeTokenInvalid, "This admin token is unknown or revoked.")
	errAdminReadOnly = problem(http.StatusForbidden, gen.ErrorCodeForbidden, "This admin token is read-only.")
)

type adminKey struct{}

// adminFrom returns the admin token that authenticated the request, if one
// did.
func adminFrom(ctx context.Context) (store.AdminToken, bool) {
	t, ok := ctx.Value(adminKey{}).(store.AdminToken)
	return t, ok
}

// resolveAdmin finds the live admin token of the request's Authorization
// header, and refuses a read-only one an unsafe method. Cookies play no
// part: a browser cannot lend its session to the admin API.
func (s *Server) resolveAdmin(ctx context.Context, req *http.Request) (store.AdminToken, error) {
	header := req.Header.Get("Authorization")
	if header == "" {
		return store.AdminToken{}, errAdminNoToken
	}
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || !wellFormedAdminToken(token) {
		return store.AdminToken{}, errTokenInvalid
	}
	// The lookup is by the token's SHA-256: the database compares hashes,
	// never the secret, so its timing tells nothing useful about a token.
	t, err := s.cfg.DB.AdminTokenByHash(ctx, HashAdminToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return t, errTokenInvalid
	case err != nil:
		return t, err
	case t.RevokedAt != nil:
		return t, errTokenInvalid
	}
	if t.ReadOnly && !safeMethod(req.Method) {
		return t, errAdminReadOnly
	}
	if err := s.cfg.DB.TouchAdminToken(ctx, t.ID, s.now(), adminTouchInterval); err != nil {
		// Only the token list's "last used" column misses this use.
		s.log.WarnContext(ctx, "recording an admin token's use failed", "token", t.Name, "error", err)
	}
	return t, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// actorOf names who makes the request's changes, for the audit trail:
// admin:<token name>, user (a session, or sign-up and login), link (a
// mailed link's click).
func actorOf(ctx context.Context) string {
	if t, ok := adminFrom(ctx); ok {
		return "admin:" + t.Name
	}
	if r := factsFrom(ctx).route; r != nil && r.Operation != nil {
		for _, tag := range r.Operation.Tags {
			if tag == "links" {
				return "link"
			}
		}
	}
	return "user"
}
