package server

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// The link endpoints. Mail scanners fetch every link in a message, so a GET
// decides nothing on its own: only a GET that asks for JSON (an API client)
// acts; any other GET gets a page whose button POSTs. The token in the path
// is the only credential; these endpoints never read or create a session.

var noStore = "no-store"

// ShowEmailVerification answers a verify link opened with GET.
func (s *Server) ShowEmailVerification(ctx context.Context, req gen.ShowEmailVerificationRequestObject) (gen.ShowEmailVerificationResponseObject, error) {
	headers := gen.ShowEmailVerification200ResponseHeaders{CacheControl: &noStore}
	if wantsJSON(infoFrom(ctx).accept) {
		e, err := s.verifyEmail(ctx, req.SignedEmail, req.UserIdKey)
		if err != nil {
			return nil, err
		}
		return gen.ShowEmailVerification200JSONResponse{Body: toAPIEmail(e), Headers: headers}, nil
	}
	page, err := s.previewVerification(ctx, req.SignedEmail, req.UserIdKey)
	if err != nil {
		return linkErrorPage(s, ctx, err, func(body pageBody) gen.ShowEmailVerificationResponseObject {
			return gen.ShowEmailVerification400TexthtmlResponse{LinkErrorTexthtmlResponse: gen.LinkErrorTexthtmlResponse{
				Body: body.r, ContentLength: body.n, Headers: gen.LinkErrorResponseHeaders{CacheControl: &noStore}}}
		})
	}
	body := s.renderPage(ctx, page)
	return gen.ShowEmailVerification200TexthtmlResponse{Body: body.r, ContentLength: body.n, Headers: headers}, nil
}

// ConfirmEmailVerification performs a verify link.
func (s *Server) ConfirmEmailVerification(ctx context.Context, req gen.ConfirmEmailVerificationRequestObject) (gen.ConfirmEmailVerificationResponseObject, error) {
	headers := gen.ConfirmEmailVerification200ResponseHeaders{CacheControl: &noStore}
	e, err := s.verifyEmail(ctx, req.SignedEmail, req.UserIdKey)
	if !postedForm(ctx) {
		if err != nil {
			return nil, err
		}
		return gen.ConfirmEmailVerification200JSONResponse{Body: toAPIEmail(e), Headers: headers}, nil
	}
	if err != nil {
		return linkErrorPage(s, ctx, err, func(body pageBody) gen.ConfirmEmailVerificationResponseObject {
			return gen.ConfirmEmailVerification400TexthtmlResponse{LinkErrorTexthtmlResponse: gen.LinkErrorTexthtmlResponse{
				Body: body.r, ContentLength: body.n, Headers: gen.LinkErrorResponseHeaders{CacheControl: &noStore}}}
		})
	}
	body := s.renderPage(ctx, page{
		Title:   "Address verified",
		Heading: "Address verified",
		Message: "This address is verified now:",
		Address: e.Email,
	})
	return gen.ConfirmEmailVerification200TexthtmlResponse{Body: body.r, ContentLength: body.n, Headers: headers}, nil
}

// ShowPrimaryEmailChange answers a set-primary link opened with GET.
func (s *Server) ShowPrimaryEmailChange(ctx context.Context, req gen.ShowPrimaryEmailChangeRequestObject) (gen.ShowPrimaryEmailChangeResponseObject, error) {
	headers := gen.ShowPrimaryEmailChange200ResponseHeaders{CacheControl: &noStore}
	if wantsJSON(infoFrom(ctx).accept) {
		e, err := s.confirmPrimary(ctx, req.SignedEmail, req.UserIdKey)
		if err != nil {
			return nil, err
		}
		return gen.ShowPrimaryEmailChange200JSONResponse{Body: toAPIEmail(e), Headers: headers}, nil
	}
	page, err := s.previewPrimary(ctx, req.SignedEmail, req.UserIdKey)
	if err != nil {
		return linkErrorPage(s, ctx, err, func(body pageBody) gen.ShowPrimaryEmailChangeResponseObject {
			return gen.ShowPrimaryEmailChange400TexthtmlResponse{LinkErrorTexthtmlResponse: gen.LinkErrorTexthtmlResponse{
				Body: body.r, ContentLength: body.n, Headers: gen.LinkErrorResponseHeaders{CacheControl: &noStore}}}
		})
	}
	body := s.renderPage(ctx, page)
	return gen.ShowPrimaryEmailChange200TexthtmlResponse{Body: body.r, ContentLength: body.n, Headers: headers}, nil
}

// ConfirmPrimaryEmailChange performs a set-primary link.
func (s *Server) ConfirmPrimaryEmailChange(ctx context.Context, req gen.ConfirmPrimaryEmailChangeRequestObject) (gen.ConfirmPrimaryEmailChangeResponseObject, error) {
	headers := gen.ConfirmPrimaryEmailChange200ResponseHeaders{CacheControl: &noStore}
	e, err := s.confirmPrimary(ctx, req.SignedEmail, req.UserIdKey)
	if !postedForm(ctx) {
		if err != nil {
			return nil, err
		}
		return gen.ConfirmPrimaryEmailChange200JSONResponse{Body: toAPIEmail(e), Headers: headers}, nil
	}
	if err != nil {
		return linkErrorPage(s, ctx, err, func(body pageBody) gen.ConfirmPrimaryEmailChangeResponseObject {
			return gen.ConfirmPrimaryEmailChange400TexthtmlResponse{LinkErrorTexthtmlResponse: gen.LinkErrorTexthtmlResponse{
				Body: body.r, ContentLength: body.n, Headers: gen.LinkErrorResponseHeaders{CacheControl: &noStore}}}
		})
	}
	body := s.renderPage(ctx, page{
		Title:   "Primary address changed",
		Heading: "Primary address changed",
		Message: "Your primary address is now:",
		Address: e.Email,
	})
	return gen.ConfirmPrimaryEmailChange200TexthtmlResponse{Body: body.r, ContentLength: body.n, Headers: headers}, nil
}

// verifyEmail marks the link's address verified. A valid link for an
// address that is verified already succeeds again.
func (s *Server) verifyEmail(ctx context.Context, token, userKey string) (store.Email, error) {
	claims, addr, err := s.parseLink(token, userKey, signer.PurposeVerify, s.cfg.VerifyTTL)
	if err != nil {
		return store.Email{}, err
	}
	var e store.Email
	err = s.withTx(ctx, func(q *store.Queries) error {
		if _, err := q.LockUser(ctx, claims.UserID); err != nil {
			return usedIfNotFound(err)
		}
		// One guarded UPDATE in the common case: the row the link names,
		// still holding the link's address, not verified yet.
		var err error
		e, err = q.VerifyEmailByKey(ctx, claims.UserID, claims.State, addr.Key, s.now())
		if errors.Is(err, store.ErrNotFound) {
			// Nothing changed: the address is verified already (a repeat
			// succeeds again, without a second audit event), or the link
			// was used up by what removed or replaced it.
			if e, err = q.EmailByID(ctx, claims.UserID, claims.State); err != nil {
				return usedIfNotFound(err)
			}
			switch {
			case e.Key != addr.Key:
				return errLinkUsed
			case !e.Verified:
				// Under the user's lock nothing else changes its addresses.
				return fmt.Errorf("verify: address %d of user %d matched no update yet is unverified", e.ID, e.UserID)
			}
			return nil
		}
		if err != nil {
			return taken(err)
		}
		return s.audit(ctx, q, claims.UserID, eventEmailVerified, e.Email)
	})
	return e, err
}

// previewVerification checks a verify link without using it and describes
// what its button will do.
func (s *Server) previewVerification(ctx context.Context, token, userKey string) (page, error) {
	claims, addr, err := s.parseLink(token, userKey, signer.PurposeVerify, s.cfg.VerifyTTL)
	if err != nil {
		return page{}, err
	}
	e, err := s.linkedEmail(ctx, s.cfg.DB.Queries, claims, addr)
	if err != nil {
		return page{}, err
	}
	if e.Verified {
		return page{Title: "Address verified", Heading: "Address verified", Message: "This address is verified already:", Address: e.Email}, nil
	}
	return page{
		Title:   "Verify " + e.Email,
		Heading: "Verify your email address",
		Message: "Confirm that this address is yours:",
		Address: e.Email,
		Button:  "Verify this address",
	}, nil
}

// linkedEmail finds the address a verify link names: the row whose id the
// link carries as its state, if it still holds the link's address.
func (s *Server) linkedEmail(ctx context.Context, q *store.Queries, claims signer.Claims, addr address.Address) (store.Email, error) {
	if _, err := q.LockUser(ctx, claims.UserID); err != nil {
		return store.Email{}, usedIfNotFound(err)
	}
	e, err := q.EmailByID(ctx, claims.UserID, claims.State)
	if err != nil {
		return store.Email{}, usedIfNotFound(err)
	}
	if e.Key != addr.Key {
		return store.Email{}, errLinkUsed
	}
	return e, nil
}

// confirmPrimary makes the link's address the user's primary, verified
// address, consuming the link: the user's change sequence moves on.
func (s *Server) confirmPrimary(ctx context.Context, token, userKey string) (store.Email, error) {
	claims, addr, err := s.parseLink(token, userKey, signer.PurposeSetPrimary, s.cfg.ChangeTTL)
	if err != nil {
		return store.Email{}, err
	}
	uid := claims.UserID
	var e store.Email
	err = s.withTx(ctx, func(q *store.Queries) error {
		user, err := q.LockUser(ctx, uid)
		if err != nil {
			return usedIfNotFound(err)
		}
		if user.ChangeSeq != claims.State {
			return errLinkUsed
		}
		check, err := q.CheckAddress(ctx, uid, addr.Key)
		if err != nil {
			return err
		}
		targetID := check.OwnID
		if targetID == 0 {
			if err := s.checkRoom(check.Count); err != nil {
				return err
			}
			target, err := q.InsertEmail(ctx, store.NewEmail{UserID: uid, Email: addr.Email, Key: addr.Key}, s.now())
			if err != nil {
				return taken(err)
			}
			targetID = target.ID
		}
		// The guarded UPDATE is what makes the link single use, whatever
		// the check above saw.
		if err := q.ConsumeChangeSeq(ctx, uid, claims.State); err != nil {
			return usedIfNotFound(err)
		}
		if e, err = q.MakePrimary(ctx, uid, targetID, s.now()); err != nil {
			return taken(err)
		}
		if s.cfg.Notices && check.PrimaryID != e.ID {
			if _, err := q.EnqueueMessage(ctx, mail.PrimaryChanged(uid, check.PrimaryEmail, e.Email), s.now()); err != nil {
				return err
			}
		}
		return s.audit(ctx, q, uid, eventPrimaryChanged, e.Email)
	})
	if err != nil {
		return store.Email{}, err
	}
	return e, nil
}

// previewPrimary checks a set-primary link without using it.
func (s *Server) previewPrimary(ctx context.Context, token, userKey string) (page, error) {
	claims, addr, err := s.parseLink(token, userKey, signer.PurposeSetPrimary, s.cfg.ChangeTTL)
	if err != nil {
		return page{}, err
	}
	user, err := s.cfg.DB.UserByID(ctx, claims.UserID)
	if err != nil {
		return page{}, usedIfNotFound(err)
	}
	if user.ChangeSeq != claims.State {
		return page{}, errLinkUsed
	}
	return page{
		Title:   "Make " + addr.Email + " your primary address",
		Heading: "Change your primary email address",
		Message: "Make this address the primary address of your account:",
		Address: addr.Email,
		Button:  "Make it my primary address",
	}, nil
}

// parseLink checks a link's token and user key and returns its claims and
// normalized address. Every failure is link_invalid or link_expired, the
// same for every account, so a link reveals nothing about accounts.
func (s *Server) parseLink(token, userKey string, purpose signer.Purpose, ttl time.Duration) (signer.Claims, address.Address, error) {
	uid, err := signer.DecodeUserID(userKey)
	if err != nil {
		return signer.Claims{}, address.Address{}, errLinkInvalid
	}
	claims, err := s.cfg.Signer.Verify(token, purpose, ttl)
	switch {
	case errors.Is(err, signer.ErrExpired):
		return signer.Claims{}, address.Address{}, errLinkExpired
	case err != nil:
		return signer.Claims{}, address.Address{}, errLinkInvalid
	case claims.UserID != uid:
		return signer.Claims{}, address.Address{}, errLinkInvalid
	}
	addr, err := address.Normalize(claims.Email)
	if err != nil {
		return signer.Claims{}, address.Address{}, errLinkInvalid
	}
	return claims, addr, nil
}

// usedIfNotFound: a genuine link whose user or address is gone was used up
// by what removed them.
func usedIfNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errLinkUsed
	}
	return err
}

// postedForm reports a POST from the confirmation page's form, which wants
// an HTML answer; API clients get JSON.
func postedForm(ctx context.Context) bool {
	return infoFrom(ctx).mediaType == "application/x-www-form-urlencoded"
}

// wantsJSON reports whether an Accept header asks for JSON at least as much
// as for HTML. Wildcards count for neither: a client that accepts anything
// (a scanner, curl) gets the harmless page.
func wantsJSON(accept string) bool {
	var jsonQ, htmlQ float64
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "application/json":
			jsonQ = max(jsonQ, q)
		case "text/html", "application/xhtml+xml":
			htmlQ = max(htmlQ, q)
		}
	}
	return jsonQ > 0 && jsonQ >= htmlQ
}
