package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/pages"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// The link endpoints. Mail scanners fetch every link in a message, so a GET
// decides nothing on its own: only a GET that asks for JSON (an API client)
// acts; any other GET gets a page whose button POSTs. The token in the path
// is the only credential; these endpoints never read or create a session.

var noStore = "no-store"

// linkKind is one kind of mailed link: what it is signed for and how long
// it lives, what following it does, what its page shows before, and what
// after.
type linkKind struct {
	purpose signer.Purpose
	ttl     time.Duration
	act     func(ctx context.Context, l link) (store.Email, error)
	preview func(ctx context.Context, l link) (linkView, error)
	done    func(e store.Email) linkView
}

// linkView is what a link's page says, as message ids (page.*) and the
// address; the page says them in the language of the request.
type linkView struct {
	title, heading, message, button string
	address                         string
	userID                          int64 // whose account the page names
}

// link is a link whose token and user key were checked.
type link struct {
	claims signer.Claims
	addr   address.Address // the token's address, normalized
}

// linkAnswer is what following a link comes to: the address it acted on,
// for JSON, or a page (telling of a link error when failed).
type linkAnswer struct {
	json   bool
	email  gen.Email
	page   pageBody
	failed bool
}

// followLink answers a link of kind: a GET that asks for JSON acts, any
// other GET shows what the link will do; a POST acts, answering JSON, or a
// page to the form of the link's page.
func (s *Server) followLink(ctx context.Context, kind *linkKind, post bool, token, userKey string) (linkAnswer, error) {
	f := factsFrom(ctx)
	asJSON := post && !f.postedForm() || !post && wantsJSON(f.accept)
	act := post || asJSON
	var e store.Email
	var p linkView
	l, err := s.parseLink(token, userKey, kind.purpose, kind.ttl)
	switch {
	case err != nil:
	case act:
		e, err = kind.act(ctx, l)
	default:
		p, err = kind.preview(ctx, l)
	}
	switch {
	case asJSON && err != nil:
		return linkAnswer{}, err
	case asJSON:
		return linkAnswer{json: true, email: toAPIEmail(e)}, nil
	case err != nil:
		return s.linkErrorPage(ctx, err)
	case act:
		p = kind.done(e)
	}
	return linkAnswer{page: s.renderLink(ctx, p)}, nil
}

// pageBody is a rendered page and the headers it must be served with.
type pageBody struct {
	r      io.Reader
	n      int64
	extras responseExtras
}

// renderLink renders a link's page in the request's language, naming the
// account (its primary address, partly masked) the link is about.
func (s *Server) renderLink(ctx context.Context, v linkView) pageBody {
	lz := s.catalog.Localizer(s.catalog.Match(factsFrom(ctx).acceptLanguage))
	data := pages.Link{Common: s.common(lz, lz.T(v.title, "Email", v.address)), Heading: lz.T(v.heading),
		Message: lz.T(v.message), Address: v.address}
	data.NoReferrer = true
	if v.button != "" {
		data.Button = lz.T(v.button)
	}
	if v.userID != 0 {
		// Not when the address is the primary itself: it says so already.
		if primary, err := s.cfg.DB.PrimaryEmail(ctx, v.userID); err == nil && primary.Email != v.address {
			data.Account = pages.Mask(primary.Email)
		}
	}
	return s.pageBody(ctx, "link", data)
}

// pageBody renders a page for a strict handler's answer.
func (s *Server) pageBody(ctx context.Context, name string, data any) pageBody {
	body, err := s.pages.Render(name, data)
	if err != nil {
		// The templates were all rendered once at start: only a bug in
		// the data gets here.
		s.log.ErrorContext(ctx, "rendering a page failed", "page", name, "error", err)
	}
	header := http.Header{"Content-Security-Policy": {s.pageCSP}, "Content-Language": {pageLang(data)}}
	return pageBody{r: bytes.NewReader(body), n: int64(len(body)), extras: responseExtras{header: header}}
}

// linkErrorPage answers a link failure to a person: a page for the
// expected failures (400), or the error itself (rendered as a problem) for
// anything else, such as an unreachable database.
func (s *Server) linkErrorPage(ctx context.Context, err error) (linkAnswer, error) {
	return s.linkErrorPageHint(ctx, err, "page.link.hint_new")
}

// linkErrorPageHint is linkErrorPage with hintID, the message id of where
// to get a new link, under the link errors.
func (s *Server) linkErrorPageHint(ctx context.Context, err error, hintID string) (linkAnswer, error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
		return linkAnswer{}, err
	}
	lz := s.catalog.Localizer(s.catalog.Match(factsFrom(ctx).acceptLanguage))
	var heading, message string
	hint := lz.T(hintID)
	switch ae.code {
	case gen.ErrorCodeLinkExpired:
		heading, message = lz.T("page.link.expired_heading"), lz.T("page.link.expired_message")
	case gen.ErrorCodeLinkUsed:
		heading, message = lz.T("page.link.used_heading"), lz.T("page.link.used_message")
	case gen.ErrorCodeEmailTaken:
		heading, message, hint = lz.T("page.link.taken_heading"), lz.T("page.link.taken_message"), ""
	case gen.ErrorCodeTooManyEmails:
		heading, message, hint = lz.T("page.link.too_many_heading"), lz.N("error.too_many_emails", s.cfg.MaxEmails), ""
	default:
		heading, message = lz.T("page.link.invalid_heading"), lz.T("page.link.invalid_message")
	}
	data := pages.Link{Common: s.common(lz, heading), Heading: heading, Message: message, Hint: hint, Failed: true}
	data.NoReferrer = true
	return linkAnswer{page: s.pageBody(ctx, "link", data), failed: true}, nil
}

// linkError is the page of a failed link as the spec's LinkError response.
func (b pageBody) linkError() gen.LinkErrorTexthtmlResponse {
	return gen.LinkErrorTexthtmlResponse{Body: b.r, ContentLength: b.n, Headers: gen.LinkErrorResponseHeaders{CacheControl: &noStore}}
}

// ShowEmailVerification answers a verify link opened with GET.
func (s *Server) ShowEmailVerification(ctx context.Context, req gen.ShowEmailVerificationRequestObject) (gen.ShowEmailVerificationResponseObject, error) {
	a, err := s.followLink(ctx, &s.verifyLinks, false, req.SignedEmail, req.UserIdKey)
	headers := gen.ShowEmailVerification200ResponseHeaders{CacheControl: &noStore}
	switch {
	case err != nil:
		return nil, err
	case a.json:
		return gen.ShowEmailVerification200JSONResponse{Body: a.email, Headers: headers}, nil
	case a.failed:
		return showVerificationResponse{gen.ShowEmailVerification400TexthtmlResponse{LinkErrorTexthtmlResponse: a.page.linkError()}, a.page.extras}, nil
	}
	return showVerificationResponse{gen.ShowEmailVerification200TexthtmlResponse{Body: a.page.r, ContentLength: a.page.n, Headers: headers}, a.page.extras}, nil
}

// ConfirmEmailVerification performs a verify link.
func (s *Server) ConfirmEmailVerification(ctx context.Context, req gen.ConfirmEmailVerificationRequestObject) (gen.ConfirmEmailVerificationResponseObject, error) {
	a, err := s.followLink(ctx, &s.verifyLinks, true, req.SignedEmail, req.UserIdKey)
	headers := gen.ConfirmEmailVerification200ResponseHeaders{CacheControl: &noStore}
	switch {
	case err != nil:
		return nil, err
	case a.json:
		return gen.ConfirmEmailVerification200JSONResponse{Body: a.email, Headers: headers}, nil
	case a.failed:
		return confirmVerificationResponse{gen.ConfirmEmailVerification400TexthtmlResponse{LinkErrorTexthtmlResponse: a.page.linkError()}, a.page.extras}, nil
	}
	return confirmVerificationResponse{gen.ConfirmEmailVerification200TexthtmlResponse{Body: a.page.r, ContentLength: a.page.n, Headers: headers}, a.page.extras}, nil
}

// ShowPrimaryEmailChange answers a set-primary link opened with GET.
func (s *Server) ShowPrimaryEmailChange(ctx context.Context, req gen.ShowPrimaryEmailChangeRequestObject) (gen.ShowPrimaryEmailChangeResponseObject, error) {
	a, err := s.followLink(ctx, &s.primaryLinks, false, req.SignedEmail, req.UserIdKey)
	headers := gen.ShowPrimaryEmailChange200ResponseHeaders{CacheControl: &noStore}
	switch {
	case err != nil:
		return nil, err
	case a.json:
		return gen.ShowPrimaryEmailChange200JSONResponse{Body: a.email, Headers: headers}, nil
	case a.failed:
		return showPrimaryResponse{gen.ShowPrimaryEmailChange400TexthtmlResponse{LinkErrorTexthtmlResponse: a.page.linkError()}, a.page.extras}, nil
	}
	return showPrimaryResponse{gen.ShowPrimaryEmailChange200TexthtmlResponse{Body: a.page.r, ContentLength: a.page.n, Headers: headers}, a.page.extras}, nil
}

// ConfirmPrimaryEmailChange performs a set-primary link.
func (s *Server) ConfirmPrimaryEmailChange(ctx context.Context, req gen.ConfirmPrimaryEmailChangeRequestObject) (gen.ConfirmPrimaryEmailChangeResponseObject, error) {
	a, err := s.followLink(ctx, &s.primaryLinks, true, req.SignedEmail, req.UserIdKey)
	headers := gen.ConfirmPrimaryEmailChange200ResponseHeaders{CacheControl: &noStore}
	switch {
	case err != nil:
		return nil, err
	case a.json:
		return gen.ConfirmPrimaryEmailChange200JSONResponse{Body: a.email, Headers: headers}, nil
	case a.failed:
		return confirmPrimaryResponse{gen.ConfirmPrimaryEmailChange400TexthtmlResponse{LinkErrorTexthtmlResponse: a.page.linkError()}, a.page.extras}, nil
	}
	return confirmPrimaryResponse{gen.ConfirmPrimaryEmailChange200TexthtmlResponse{Body: a.page.r, ContentLength: a.page.n, Headers: headers}, a.page.extras}, nil
}

// newLinkKinds returns the verify and set-primary links of s.
func (s *Server) newLinkKinds() (verify, primary linkKind) {
	verify = linkKind{
		purpose: signer.PurposeVerify,
		ttl:     s.cfg.VerifyTTL,
		act:     s.verifyEmail,
		preview: s.previewVerification,
		done: func(e store.Email) linkView {
			return linkView{title: "page.verify.done_heading", heading: "page.verify.done_heading", message: "page.verify.done_message",
				address: e.Email, userID: e.UserID}
		},
	}
	primary = linkKind{
		purpose: signer.PurposeSetPrimary,
		ttl:     s.cfg.ChangeTTL,
		act:     s.confirmPrimary,
		preview: s.previewPrimary,
		done: func(e store.Email) linkView {
			return linkView{title: "page.primary.done_heading", heading: "page.primary.done_heading", message: "page.primary.done_message",
				address: e.Email, userID: e.UserID}
		},
	}
	return verify, primary
}

// verifyEmail marks the link's address verified. A valid link for an
// address that is verified already succeeds again.
func (s *Server) verifyEmail(ctx context.Context, l link) (store.Email, error) {
	uid := l.claims.UserID
	var e store.Email
	err := s.userTx(ctx, uid, func(q *store.Queries, _ store.User) error {
		// One guarded UPDATE in the common case: the row the link names,
		// still holding the link's address, not verified yet.
		var err error
		e, err = q.VerifyEmailByKey(ctx, uid, l.claims.State, l.addr.Key, s.now())
		if errors.Is(err, store.ErrNotFound) {
			// Nothing changed: the address is verified already (a repeat
			// succeeds again, without a second audit event), or the link
			// was used up by what removed or replaced it.
			if e, err = q.EmailByID(ctx, uid, l.claims.State); err != nil {
				return err
			}
			switch {
			case e.Key != l.addr.Key:
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
		if err := s.emit(ctx, q, uid, emailVerified(ActorLink, e)); err != nil {
			return err
		}
		return s.audit(ctx, q, uid, eventEmailVerified, e.Email)
	})
	return e, usedIfNotFound(err)
}

// previewVerification checks a verify link without using it and describes
// what its button will do.
func (s *Server) previewVerification(ctx context.Context, l link) (linkView, error) {
	e, err := s.linkedEmail(ctx, l)
	if err != nil {
		return linkView{}, err
	}
	if e.Verified {
		return linkView{title: "page.verify.done_heading", heading: "page.verify.done_heading", message: "page.verify.already_message",
			address: e.Email, userID: e.UserID}, nil
	}
	return linkView{title: "page.verify.title", heading: "page.verify.heading", message: "page.verify.message",
		button: "page.verify.button", address: e.Email, userID: e.UserID}, nil
}

// linkedEmail finds the address a verify link names: the row whose id the
// link carries as its state, if it still holds the link's address.
func (s *Server) linkedEmail(ctx context.Context, l link) (store.Email, error) {
	q := s.cfg.DB.Queries
	if _, err := q.LockUser(ctx, l.claims.UserID); err != nil {
		return store.Email{}, usedIfNotFound(err)
	}
	e, err := q.EmailByID(ctx, l.claims.UserID, l.claims.State)
	if err != nil {
		return store.Email{}, usedIfNotFound(err)
	}
	if e.Key != l.addr.Key {
		return store.Email{}, errLinkUsed
	}
	return e, nil
}

// confirmPrimary makes the link's address the user's primary, verified
// address, consuming the link: the user's change sequence moves on.
func (s *Server) confirmPrimary(ctx context.Context, l link) (store.Email, error) {
	uid, addr := l.claims.UserID, l.addr
	var e store.Email
	err := s.userTx(ctx, uid, func(q *store.Queries, user store.User) error {
		if user.ChangeSeq != l.claims.State {
			return errLinkUsed
		}
		check, err := q.CheckAddress(ctx, uid, addr.Key)
		if err != nil {
			return err
		}
		// The events, in the contract's order: added (a new address),
		// verified (when it was not), primary_changed.
		var events []store.NewEvent
		var target store.Email
		if check.OwnID == 0 {
			if err := s.checkRoom(check.Count); err != nil {
				return err
			}
			if target, err = q.InsertEmail(ctx, store.NewEmail{UserID: uid, Email: addr.Email, Key: addr.Key}, s.now()); err != nil {
				return taken(err)
			}
			events = append(events, emailAdded(ActorLink, target))
		} else if target, err = q.EmailByID(ctx, uid, check.OwnID); err != nil {
			return err
		}
		targetID := target.ID
		previous, err := q.EmailByID(ctx, uid, check.PrimaryID)
		if err != nil {
			return err
		}
		// The guarded UPDATE is what makes the link single use, whatever
		// the check above saw.
		if err := q.ConsumeChangeSeq(ctx, uid, l.claims.State); err != nil {
			return err
		}
		if e, err = q.MakePrimary(ctx, uid, targetID, s.now()); err != nil {
			return taken(err)
		}
		if !target.Verified {
			verified := target
			verified.Verified = true
			events = append(events, emailVerified(ActorLink, verified))
		}
		if previous.ID != e.ID {
			previous.Primary = false
			events = append(events, primaryChanged(ActorLink, e, previous))
		}
		if err := s.emit(ctx, q, uid, events...); err != nil {
			return err
		}
		if s.cfg.Notices && check.PrimaryID != e.ID {
			if _, err := q.EnqueueMessage(ctx, mail.PrimaryChanged(uid, check.PrimaryEmail, e.Email), s.now()); err != nil {
				return err
			}
		}
		return s.audit(ctx, q, uid, eventPrimaryChanged, e.Email)
	})
	return e, usedIfNotFound(err)
}

// previewPrimary checks a set-primary link without using it.
func (s *Server) previewPrimary(ctx context.Context, l link) (linkView, error) {
	user, err := s.cfg.DB.UserByID(ctx, l.claims.UserID)
	if err != nil {
		return linkView{}, usedIfNotFound(err)
	}
	if user.ChangeSeq != l.claims.State {
		return linkView{}, errLinkUsed
	}
	return linkView{title: "page.primary.title", heading: "page.primary.heading", message: "page.primary.message",
		button: "page.primary.button", address: l.addr.Email, userID: user.ID}, nil
}

// parseLink checks a link's token and user key. Every failure is
// link_invalid or link_expired, the same for every account, so a link
// reveals nothing about accounts.
func (s *Server) parseLink(token, userKey string, purpose signer.Purpose, ttl time.Duration) (link, error) {
	uid, err := signer.DecodeUserID(userKey)
	if err != nil {
		return link{}, errLinkInvalid
	}
	claims, err := s.cfg.Signer.Verify(token, purpose, ttl)
	switch {
	case errors.Is(err, signer.ErrExpired):
		return link{}, errLinkExpired
	case err != nil, claims.UserID != uid:
		return link{}, errLinkInvalid
	}
	addr, err := address.Normalize(claims.Email)
	if err != nil {
		return link{}, errLinkInvalid
	}
	return link{claims: claims, addr: addr}, nil
}

// usedIfNotFound: a genuine link whose user or address is gone was used up
// by what removed them.
func usedIfNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errLinkUsed
	}
	return err
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
