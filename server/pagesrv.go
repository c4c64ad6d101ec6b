package server

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/pages"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/session"
)

// The HTML side of the service: the account pages (account.go), the link
// pages (links.go), the dev mailbox (mailbox.go) and their stylesheet. The
// pages' forms act through the API itself, in process (callAPI): the same
// validation, sessions, CSRF check, limits and notices as for any client.

// csrfField is the hidden field of every form: Django's name. Signed in, it
// holds the session's CSRF token; signed out, the csrftoken cookie's value
// (a double submit).
const csrfField = "csrfmiddlewaretoken"

// flashCookie carries the one-time message of a form's answer to the page
// the answer redirects to.
const flashCookie = "useremail_flash"

// pageCacheControl: pages carry CSRF tokens and addresses.
const pageCacheControl = "no-store"

// isPagePath tells the paths of the HTML pages.
func isPagePath(p string) bool {
	return p == "/account" || strings.HasPrefix(p, "/account/") || strings.HasPrefix(p, "/assets/") ||
		p == "/dev" || strings.HasPrefix(p, "/dev/")
}

// localizer says a page in the language its request asks for.
func (s *Server) localizer(req *http.Request) *locale.Localizer {
	return s.catalog.Localizer(s.catalog.Match(req.Header.Get("Accept-Language")))
}

// common is the part of every page's data that the server fills in.
func (s *Server) common(l *locale.Localizer, title string) pages.Common {
	return pages.Common{L: l, Brand: s.cfg.BrandName, AppURL: s.cfg.AppURL, StyleURL: s.pages.StyleURL, Title: title}
}

// writePage renders page name with data and answers it with status.
func (s *Server) writePage(c echo.Context, status int, name string, data any) error {
	body, err := s.pages.Render(name, data)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", s.pageCSP)
	h.Set("Cache-Control", pageCacheControl)
	// Form posts must carry their Origin for the CSRF origin check: under
	// "no-referrer" a browser may send "Origin: null". Page URLs hold no
	// secret (the link pages, whose paths do, keep "no-referrer").
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Language", pageLang(data))
	return c.HTMLBlob(status, body)
}

func pageLang(data any) string {
	if v, ok := data.(interface{ Language() string }); ok {
		return v.Language()
	}
	return locale.Fallback
}

// errorPage answers a failure outside a form as a page: for the page
// paths, whose clients are people.
func (s *Server) errorPage(c echo.Context, ae *apiError) {
	l := s.localizer(c.Request())
	heading, message := l.T("page.error.heading"), l.T("error."+string(ae.code))
	switch {
	case ae.status >= 500:
		heading = l.T("page.unavailable.heading")
	case ae.status == http.StatusNotFound || ae.status == http.StatusMethodNotAllowed:
		heading, message = l.T("page.not_found.heading"), l.T("page.not_found.message")
	case ae.code == gen.ErrorCodeRateLimited:
		message = l.N("error.rate_limited", int(ae.retryAfter/time.Second))
		c.Response().Header().Set("Retry-After", fmt.Sprint(int(ae.retryAfter/time.Second)))
	}
	data := pages.Error{Common: s.common(l, heading), Heading: heading, Message: message}
	if err := s.writePage(c, ae.status, "error", data); err != nil {
		s.log.ErrorContext(c.Request().Context(), "rendering the error page failed", "error", err)
		writeProblem(c, ae)
	}
}

// serveStyle answers the stylesheet, which browsers may keep: its URL
// changes with its content; and the icon.
func (s *Server) serveStyle(c echo.Context) error {
	if c.Request().URL.Path == pages.IconPath {
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return c.Blob(http.StatusOK, "image/svg+xml", pages.Icon())
	}
	if c.Request().URL.Path != s.pages.StyleURL {
		return errRouteNotFound
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", s.pages.Style())
}

// formToken returns the csrftoken cookie of a signed-out form, setting a
// new one when the request has none.
func (s *Server) formToken(c echo.Context) string {
	if ck, err := c.Cookie(session.CSRFCookie); err == nil && ck.Value != "" && len(ck.Value) <= 128 {
		return ck.Value
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	c.SetCookie(&http.Cookie{Name: session.CSRFCookie, Value: token, Path: "/", MaxAge: 365 * 24 * 3600,
		Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode})
	return token
}

// checkFormToken is the double-submit check of a signed-out form: the
// field must equal the csrftoken cookie, and the Origin be one the service
// trusts. No other site can read the cookie, so none can sign a person in.
func (s *Server) checkFormToken(c echo.Context) error {
	ck, err := c.Cookie(session.CSRFCookie)
	field := c.FormValue(csrfField)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(field)) != 1 {
		return errCSRF
	}
	return s.checkOrigin(c.Request())
}

// flash is a one-time message: a message id of the page.flash group and
// the address it names.
type flash struct {
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
	Lang  string `json:"lang,omitempty"`
}

// setFlash keeps f for the next page.
func (s *Server) setFlash(c echo.Context, f flash) {
	b, _ := json.Marshal(f)
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/", MaxAge: 300,
		Secure: s.cfg.CookieSecure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// takeFlash returns the one-time message, said in l, and expires it.
func (s *Server) takeFlash(c echo.Context, l *locale.Localizer) string {
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, Secure: s.cfg.CookieSecure,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	var f flash
	if err != nil || json.Unmarshal(b, &f) != nil || !strings.HasPrefix(f.ID, "page.flash.") {
		return ""
	}
	return l.T(f.ID, "Email", f.Email, "Language", locale.Name(f.Lang))
}

// safeNext returns where ?next= may send a person: a path on this
// service, or a URL on the public URL's, the app's or a trusted origin.
// Anything else is dropped (""): no open redirect.
func (s *Server) safeNext(raw string) string {
	if raw == "" || len(raw) > 2048 || strings.ContainsAny(raw, "\\\r\n\t") {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Scheme == "" && u.Host == "" && u.User == nil {
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
			return ""
		}
		// A path, cleaned of dot segments, on this service.
		clean := path.Clean(u.Path)
		if strings.HasSuffix(u.Path, "/") && clean != "/" {
			clean += "/"
		}
		u.Path, u.RawPath = clean, ""
		return u.String()
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" {
		return ""
	}
	origin := originOf(raw)
	if s.trustedOrigins[origin] || (s.cfg.AppURL != "" && origin == originOf(s.cfg.AppURL)) {
		return raw
	}
	return ""
}

// afterSignIn is where a person goes after signing in: next, else the
// app, else the account page.
func (s *Server) afterSignIn(next string) string {
	switch {
	case next != "":
		return next
	case s.cfg.AppURL != "":
		return s.cfg.AppURL
	}
	return "/account/"
}

// apiAnswer is the API's answer to a page's request.
type apiAnswer struct {
	status  int
	header  http.Header
	body    []byte
	problem *gen.Problem // for a 4xx or 5xx
}

// callAPI sends a page's request through the API in process, as the
// person's browser: with its cookies, client address, Origin, language
// and, for an unsafe method, csrf in X-CSRFToken (the form's field, which
// the API checks against the session like any header). body is sent as
// JSON; out, if set, receives a 2xx answer's JSON.
func (s *Server) callAPI(c echo.Context, method, target string, body any, csrf string, out any) (*apiAnswer, error) {
	outer := c.Request()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(outer.Context(), method, target, rd)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr, req.Host, req.TLS = outer.RemoteAddr, outer.Host, outer.TLS
	for _, name := range []string{"Cookie", "Origin", "Referer", "User-Agent", "Accept-Language", "X-Forwarded-For"} {
		if v := outer.Header.Values(name); len(v) > 0 {
			req.Header[name] = v
		}
	}
	req.Header.Set(echo.HeaderXRequestID, factsFrom(outer.Context()).id)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRFToken", csrf)
	}
	rec := &recorder{header: http.Header{}}
	s.echo.ServeHTTP(rec, req)
	rec.WriteHeader(http.StatusOK) // for an answer that wrote nothing
	a := &apiAnswer{status: rec.status, header: rec.header, body: rec.body.Bytes()}
	switch {
	case a.status >= 400:
		var p gen.Problem
		if err := json.Unmarshal(a.body, &p); err != nil {
			return nil, fmt.Errorf("page: %s %s answered %d without a problem: %w", method, target, a.status, err)
		}
		a.problem = &p
	case out != nil:
		if err := json.Unmarshal(a.body, out); err != nil {
			return nil, fmt.Errorf("page: %s %s: %w", method, target, err)
		}
	}
	return a, nil
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// passCookies copies the cookies the API set onto the page's answer.
func (a *apiAnswer) passCookies(c echo.Context) {
	for _, v := range a.header.Values("Set-Cookie") {
		c.Response().Header().Add("Set-Cookie", v)
	}
}

// asError returns the API's problem as an apiError, for the error page
// of a failure that no form field explains.
func (a *apiAnswer) asError() *apiError {
	p := a.problem
	ae := problem(p.Status, p.Code, "")
	if ra := a.header.Get("Retry-After"); ra != "" {
		var secs int
		fmt.Sscan(ra, &secs)
		ae.retryAfter = time.Duration(secs) * time.Second
	}
	return ae
}

// say says the API's problem in l: the message of its code (with the
// wait of a rate limit, the cap of too_many_emails).
func (s *Server) say(l *locale.Localizer, a *apiAnswer) string {
	p := a.problem
	switch p.Code {
	case gen.ErrorCodeRateLimited:
		return l.N("error.rate_limited", int(a.asError().retryAfter/time.Second))
	case gen.ErrorCodeTooManyEmails:
		return l.N("error.too_many_emails", s.cfg.MaxEmails)
	case gen.ErrorCodeValidationError, gen.ErrorCodePasswordTooWeak:
		if p.Errors != nil {
			for _, fe := range *p.Errors {
				if strings.Contains(fe.Field, "password") {
					return sayWeakness(l, fe.Code)
				}
			}
		}
	}
	return l.T("error." + string(p.Code))
}

// sayWeakness says why a password was refused, from the code of its field
// error: the policy's rule (password.Weakness) or a length bound.
func sayWeakness(l *locale.Localizer, code string) string {
	switch password.Weakness(code) {
	case password.Common:
		return l.T("error.password_common")
	case password.LikeAddress:
		return l.T("error.password_like_address")
	case password.TooShort, password.TooLong:
		return l.T("error.password_length")
	}
	switch code {
	case "mismatch":
		return l.T("error.password_mismatch")
	case "required":
		return l.T("error.required")
	}
	if strings.HasPrefix(code, "min") || strings.HasPrefix(code, "max") {
		return l.T("error.password_length")
	}
	return l.T("error.password_too_weak")
}

// fieldOf names the form field an API problem is about, "" for the form
// as a whole.
func fieldOf(p *gen.Problem) string {
	switch p.Code {
	case gen.ErrorCodeInvalidEmail, gen.ErrorCodeEmailTaken, gen.ErrorCodeEmailSameAsCurrent, gen.ErrorCodeTooManyEmails:
		return "email"
	case gen.ErrorCodeInvalidPassword, gen.ErrorCodePasswordTooWeak:
		return "password"
	case gen.ErrorCodeValidationError:
		if p.Errors != nil {
			for _, fe := range *p.Errors {
				switch {
				case strings.Contains(fe.Field, "password"):
					return "password"
				case strings.Contains(fe.Field, "email"):
					return "email"
				}
			}
		}
	}
	return ""
}

// redirect answers a form with 303 See Other to target.
func redirect(c echo.Context, target string) error {
	c.Response().Header().Set("Cache-Control", pageCacheControl)
	return c.Redirect(http.StatusSeeOther, target)
}

// unexpected turns an API answer that no form field explains into the
// error page's apiError.
func unexpected(a *apiAnswer) error {
	if a.problem != nil {
		return a.asError()
	}
	return fmt.Errorf("page: unexpected API answer %d", a.status)
}
