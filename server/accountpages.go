package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/pages"
	"github.com/useremail/useremail/store"
)

// The account pages under /account/: sign in, sign up, the request for a
// password reset link, and the signed-in page of a person's addresses,
// language, password, sessions and account. They work without
// JavaScript: each form posts, and its answer is a 303 to a page that
// shows a one-time message (POST-redirect-GET), or the form again with its
// errors next to their fields.

// registerAccount adds the account pages, the stylesheet and (in dev mode)
// the dev mailbox to e.
func (s *Server) registerAccount(e *echo.Echo) {
	e.GET(pagesAssetRoute, s.serveStyle)
	e.GET("/account", func(c echo.Context) error { return redirect(c, "/account/") })
	e.GET("/account/", s.accountPage)
	e.GET("/account/login/", s.loginPage)
	e.POST("/account/login/", s.form(s.loginSubmit))
	e.GET("/account/signup/", s.signUpPage)
	e.POST("/account/signup/", s.form(s.signUpSubmit))
	e.POST("/account/logout/", s.form(s.logoutSubmit))
	e.POST("/account/emails/", s.form(s.addEmailSubmit))
	e.POST("/account/emails/:id/resend/", s.form(s.resendSubmit))
	e.POST("/account/emails/:id/remove/", s.form(s.removeSubmit))
	e.POST("/account/emails/:id/primary/", s.form(s.makePrimarySubmit))
	e.POST("/account/language/", s.form(s.languageSubmit))
	e.POST("/account/password/", s.form(s.changePasswordSubmit))
	e.POST("/account/sessions/end/", s.form(s.endSessionsSubmit))
	e.POST("/account/delete/", s.form(s.deleteAccountSubmit))
	e.GET("/account/password-reset/", s.forgotPage)
	e.POST("/account/password-reset/", s.form(s.forgotSubmit))
	e.Any("/account/*", func(echo.Context) error { return errRouteNotFound })
	s.registerMailbox(e)
}

// form bounds a posted form as the API bounds a body (Config.BodyLimit).
func (s *Server) form(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.BodyLimit {
			return errBodyTooLarge(s.cfg.BodyLimit)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit)
		if err := req.ParseForm(); err != nil {
			return asFormError(err, s.cfg.BodyLimit)
		}
		return next(c)
	}
}

// asFormError is the answer to a form that does not parse.
func asFormError(err error, limit int64) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(limit)
	}
	return errValidation("The form does not parse.", nil)
}

// pagesAssetRoute matches the stylesheet (pages.StylePath) and the icon.
const pagesAssetRoute = "/assets/:file"

// credentialFields are the two fields of the sign-in and sign-up forms.
func credentialFields(l *locale.Localizer, email string, signUp bool) (pages.Field, pages.Field) {
	pw := pages.Field{ID: "password", Name: "password", Type: "password", Label: l.T("page.field.password"),
		Autocomplete: "current-password", Required: true}
	if signUp {
		pw.Autocomplete = "new-password"
	}
	return pages.Field{ID: "email", Name: "email", Type: "email", Label: l.T("page.field.email"), Value: email,
		Autocomplete: "email", Required: true}, pw
}

// credentialsPage is the sign-in or sign-up page, with what the person
// typed (but the password) and its errors.
func (s *Server) credentialsPage(c echo.Context, status int, signUp bool, email, formError string, errs map[string]string) error {
	l := s.localizer(c.Request())
	title, name := l.T("page.login.title"), "login"
	if signUp {
		title, name = l.T("page.signup.title"), "signup"
	}
	data := pages.Credentials{Common: s.common(l, title), FormToken: s.formToken(c), Next: s.safeNext(c.QueryParam("next")),
		FormError: formError}
	data.Flash = s.takeFlash(c, l)
	data.Email, data.Password = credentialFields(l, email, signUp)
	data.Email.Error, data.Password.Error = errs["email"], errs["password"]
	focusFirst(&data.Email, &data.Password)
	if formError != "" && len(errs) == 0 {
		data.Email.Focus = true
	}
	return s.writePage(c, status, name, data)
}

// focusFirst puts the cursor in the first field with an error.
func focusFirst(fields ...*pages.Field) {
	for _, f := range fields {
		if f.Error != "" {
			f.Focus = true
			return
		}
	}
}

func (s *Server) loginPage(c echo.Context) error {
	if _, ok := s.currentSession(c); ok {
		return redirect(c, s.afterSignIn(s.safeNext(c.QueryParam("next"))))
	}
	return s.credentialsPage(c, http.StatusOK, false, "", "", nil)
}

func (s *Server) signUpPage(c echo.Context) error {
	if _, ok := s.currentSession(c); ok {
		return redirect(c, "/account/")
	}
	return s.credentialsPage(c, http.StatusOK, true, "", "", nil)
}

// checkCredentialForm checks a signed-out form's token and required
// fields; it returns the answer to give when they fail.
func (s *Server) checkCredentialForm(c echo.Context, signUp bool) (email, password string, answered bool, err error) {
	l := s.localizer(c.Request())
	email, password = c.FormValue("email"), c.FormValue("password")
	if err := s.checkFormToken(c); err != nil {
		return email, password, true, s.credentialsPage(c, http.StatusForbidden, signUp, email, l.T("error.csrf_failed"), nil)
	}
	errs := map[string]string{}
	if email == "" {
		errs["email"] = l.T("error.required")
	}
	if password == "" {
		errs["password"] = l.T("error.required")
	}
	if len(errs) > 0 {
		return email, password, true, s.credentialsPage(c, http.StatusBadRequest, signUp, email, "", errs)
	}
	return email, password, false, nil
}

// signIn starts a session through the API's login and passes its cookies
// on; a problem comes back as the answer to show.
func (s *Server) signIn(c echo.Context, email, password string) (*apiAnswer, error) {
	a, err := s.callAPI(c, http.MethodPost, "/auth/login/", gen.LoginJSONRequestBody{Email: email, Password: password}, "", nil)
	if err != nil {
		return nil, err
	}
	if a.problem == nil {
		a.passCookies(c)
	}
	return a, nil
}

// credentialProblem shows an API problem of sign-in or sign-up on its form.
func (s *Server) credentialProblem(c echo.Context, signUp bool, email string, a *apiAnswer) error {
	l := s.localizer(c.Request())
	msg := s.say(l, a)
	if a.problem.Status >= 500 || a.problem.Code == gen.ErrorCodeNotFound {
		return unexpected(a)
	}
	if a.problem.Code == gen.ErrorCodeRateLimited {
		c.Response().Header().Set("Retry-After", a.header.Get("Retry-After"))
	}
	status := a.problem.Status
	if field := fieldOf(a.problem); field != "" && a.problem.Code != gen.ErrorCodeInvalidCredentials {
		return s.credentialsPage(c, status, signUp, email, "", map[string]string{field: msg})
	}
	return s.credentialsPage(c, status, signUp, email, msg, nil)
}

func (s *Server) loginSubmit(c echo.Context) error {
	email, password, answered, err := s.checkCredentialForm(c, false)
	if answered {
		return err
	}
	a, err := s.signIn(c, email, password)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.credentialProblem(c, false, email, a)
	}
	s.setFlash(c, flash{ID: "page.flash.signed_in"})
	return redirect(c, s.afterSignIn(s.safeNext(c.QueryParam("next"))))
}

func (s *Server) signUpSubmit(c echo.Context) error {
	email, password, answered, err := s.checkCredentialForm(c, true)
	if answered {
		return err
	}
	var user gen.User
	a, err := s.callAPI(c, http.MethodPost, "/users/", gen.SignUpJSONRequestBody{Email: email, Password: password}, "", &user)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.credentialProblem(c, true, email, a)
	}
	// A new account signs in at once, as a person expects.
	if a, err = s.signIn(c, email, password); err != nil {
		return err
	}
	if a.problem != nil {
		return s.credentialProblem(c, false, email, a)
	}
	s.setFlash(c, flash{ID: "page.flash.signed_up", Email: user.Email})
	if next := s.safeNext(c.QueryParam("next")); next != "" {
		return redirect(c, next)
	}
	return redirect(c, "/account/")
}

// currentSession returns the request's session, if it has a live one.
func (s *Server) currentSession(c echo.Context) (gen.Session, bool) {
	req := c.Request()
	if !hasSessionCookie(req) {
		return gen.Session{}, false
	}
	sess, err := s.resolveSession(req.Context(), req)
	if err != nil {
		return gen.Session{}, false
	}
	return toAPISession(sess), true
}

// toLogin sends a person without a session to the sign-in page, to come
// back to next.
func toLogin(c echo.Context, next string) error {
	return redirect(c, "/account/login/?next="+url.QueryEscape(next))
}

// accountView is what the account page shows besides its errors.
type accountView struct {
	sess   gen.Session
	emails []gen.Email
	lang   string
}

// loadAccount reads the signed-in person's addresses through the API, and
// the language of their mails.
func (s *Server) loadAccount(c echo.Context) (accountView, bool, error) {
	var v accountView
	a, err := s.callAPI(c, http.MethodGet, "/auth/session/", nil, "", &v.sess)
	if err != nil {
		return v, false, err
	}
	if a.problem != nil {
		if a.problem.Status == http.StatusUnauthorized {
			return v, false, nil
		}
		return v, false, unexpected(a)
	}
	a, err = s.callAPI(c, http.MethodGet, fmt.Sprintf("/users/%d/emails/", v.sess.UserId), nil, "", &v.emails)
	if err != nil {
		return v, false, err
	}
	if a.problem != nil {
		return v, false, unexpected(a)
	}
	user, err := s.cfg.DB.UserByID(c.Request().Context(), v.sess.UserId)
	if err != nil {
		return v, false, err
	}
	v.lang = user.Language
	return v, true, nil
}

// accountErrors are the errors of a signed-in form: for the form as a
// whole, for the add field, or for one address (by id) and its password.
type accountErrors struct {
	form, add     string
	email         int64
	emailMsg      string
	password      string
	addValue      string
	passwordEmail int64
	// The change-password form's fields, and the delete-account form's
	// password.
	current, newPassword, confirm, deletePassword string
	open                                          string // the section to open: "delete"
}

func (s *Server) accountPage(c echo.Context) error {
	return s.renderAccount(c, http.StatusOK, accountErrors{})
}

// renderAccount answers the account page, or sends a person who is not
// signed in to the sign-in page.
func (s *Server) renderAccount(c echo.Context, status int, errs accountErrors) error {
	v, ok, err := s.loadAccount(c)
	if err != nil {
		return err
	}
	if !ok {
		return toLogin(c, "/account/")
	}
	l := s.localizer(c.Request())
	data := pages.Account{Common: s.common(l, l.T("page.account.title")), FormError: errs.form}
	data.CSRFToken, data.SignedIn = v.sess.CsrfToken, true
	data.Flash = s.takeFlash(c, l)
	data.Add = pages.Field{ID: "add-email", Name: "email", Type: "email", Label: l.T("page.field.new_email"),
		Value: errs.addValue, Autocomplete: "email", Required: true, Error: errs.add}
	fields := []*pages.Field{&data.Add}
	for _, e := range v.emails {
		if e.Primary {
			data.Primary = e.Email
		}
		pe := pages.Email{ID: e.Id, Address: e.Email, Verified: e.Verified, Primary: e.Primary}
		if errs.email == e.Id {
			pe.Error = errs.emailMsg
		}
		id := "password-" + strconv.FormatInt(e.Id, 10)
		pe.Password = pages.Field{ID: id, Name: "password", Type: "password", Label: l.T("page.field.current_password"),
			Autocomplete: "current-password", Required: true}
		if errs.passwordEmail == e.Id {
			pe.Password.Error = errs.password
		}
		data.Emails = append(data.Emails, pe)
	}
	for i := range data.Emails {
		fields = append(fields, &data.Emails[i].Password)
	}
	data.Password = pages.Field{ID: "current-password", Name: "password", Type: "password", Label: l.T("page.field.current_password"),
		Autocomplete: "current-password", Required: true, Error: errs.current}
	data.NewPassword = pages.Field{ID: "new-password", Name: "new_password", Type: "password", Label: l.T("page.field.new_password"),
		Autocomplete: "new-password", Required: true, Error: errs.newPassword}
	data.Confirm = pages.Field{ID: "new-password2", Name: "new_password2", Type: "password", Label: l.T("page.field.confirm_password"),
		Autocomplete: "new-password", Required: true, Error: errs.confirm}
	data.DeletePassword = pages.Field{ID: "delete-password", Name: "password", Type: "password", Label: l.T("page.field.current_password"),
		Autocomplete: "current-password", Required: true, Error: errs.deletePassword}
	data.Open = errs.open
	fields = append(fields, &data.Password, &data.NewPassword, &data.Confirm, &data.DeletePassword)
	focusFirst(fields...)
	for _, lang := range locale.Languages {
		data.Languages = append(data.Languages, pages.Language{Tag: lang, Name: locale.Name(lang), Selected: lang == v.lang})
	}
	return s.writePage(c, status, "account", data)
}

// signedInForm is a posted form of the account page: its session (through
// the API) and its csrfmiddlewaretoken, which the API checks as the
// X-CSRFToken header.
type signedInForm struct {
	sess gen.Session
	csrf string
}

// beginForm resolves a signed-in form's session; ok is false when the
// answer (to the sign-in page) is given already.
func (s *Server) beginForm(c echo.Context) (signedInForm, bool, error) {
	f := signedInForm{csrf: c.FormValue(csrfField)}
	a, err := s.callAPI(c, http.MethodGet, "/auth/session/", nil, "", &f.sess)
	if err != nil {
		return f, false, err
	}
	if a.problem != nil {
		if a.problem.Status == http.StatusUnauthorized {
			return f, false, toLogin(c, "/account/")
		}
		return f, false, unexpected(a)
	}
	return f, true, nil
}

// formProblem answers an API problem of a signed-in form: the account
// page again, with the message where it belongs (place), or the sign-in
// page when the session ended meanwhile.
func (s *Server) formProblem(c echo.Context, a *apiAnswer, place func(msg string, e *accountErrors)) error {
	p := a.problem
	switch {
	case p.Status == http.StatusUnauthorized:
		return toLogin(c, "/account/")
	case p.Status >= 500:
		return unexpected(a)
	case p.Code == gen.ErrorCodeRateLimited:
		c.Response().Header().Set("Retry-After", a.header.Get("Retry-After"))
	}
	msg := s.say(s.localizer(c.Request()), a)
	var errs accountErrors
	if p.Code == gen.ErrorCodeCsrfFailed || p.Code == gen.ErrorCodeForbidden || p.Code == gen.ErrorCodeRateLimited {
		errs.form = msg
	} else {
		place(msg, &errs)
	}
	return s.renderAccount(c, p.Status, errs)
}

// emailParam is the address id of a form's path.
func emailParam(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errRouteNotFound
	}
	return id, nil
}

// emailAddress returns the address of id among the user's, "" if none.
func (s *Server) emailAddress(ctx context.Context, userID, id int64) string {
	e, err := s.cfg.DB.EmailByID(ctx, userID, id)
	if err != nil {
		return ""
	}
	return e.Email
}

func (s *Server) addEmailSubmit(c echo.Context) error {
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	addr := c.FormValue("email")
	if addr == "" {
		l := s.localizer(c.Request())
		return s.renderAccount(c, http.StatusBadRequest, accountErrors{add: l.T("error.required")})
	}
	var added gen.Email
	a, err := s.callAPI(c, http.MethodPost, fmt.Sprintf("/users/%d/emails/", f.sess.UserId), gen.AddEmailJSONRequestBody{Email: addr}, f.csrf, &added)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) { e.add, e.addValue = msg, addr })
	}
	s.setFlash(c, flash{ID: "page.flash.added", Email: added.Email})
	return redirect(c, "/account/")
}

func (s *Server) resendSubmit(c echo.Context) error {
	return s.emailAction(c, http.MethodPost, "send-verification/", "page.flash.resent")
}

func (s *Server) removeSubmit(c echo.Context) error {
	return s.emailAction(c, http.MethodDelete, "", "page.flash.removed")
}

// emailAction runs an API operation on one address of the signed-in user
// and answers with flashID, or with the error next to the address.
func (s *Server) emailAction(c echo.Context, method, suffix, flashID string) error {
	id, err := emailParam(c)
	if err != nil {
		return err
	}
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	address := s.emailAddress(c.Request().Context(), f.sess.UserId, id)
	a, err := s.callAPI(c, method, fmt.Sprintf("/users/%d/emails/%d/%s", f.sess.UserId, id, suffix), nil, f.csrf, nil)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) { e.email, e.emailMsg = id, msg })
	}
	s.setFlash(c, flash{ID: flashID, Email: address})
	return redirect(c, "/account/")
}

// makePrimarySubmit asks for the password and starts the email change to
// the address: the API mails it a set-primary link.
func (s *Server) makePrimarySubmit(c echo.Context) error {
	id, err := emailParam(c)
	if err != nil {
		return err
	}
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	l := s.localizer(c.Request())
	password := c.FormValue("password")
	if password == "" {
		return s.renderAccount(c, http.StatusBadRequest, accountErrors{passwordEmail: id, password: l.T("error.required")})
	}
	address := s.emailAddress(c.Request().Context(), f.sess.UserId, id)
	if address == "" {
		return s.renderAccount(c, http.StatusNotFound, accountErrors{form: l.T("error.not_found")})
	}
	a, err := s.callAPI(c, http.MethodPost, fmt.Sprintf("/users/%d/email-change/", f.sess.UserId),
		gen.RequestEmailChangeJSONRequestBody{NewEmail: address, Password: password}, f.csrf, nil)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) {
			if fieldOf(a.problem) == "password" {
				e.passwordEmail, e.password = id, msg
			} else {
				e.email, e.emailMsg = id, msg
			}
		})
	}
	s.setFlash(c, flash{ID: "page.flash.change_sent", Email: address})
	return redirect(c, "/account/")
}

// languageSubmit sets the language of the user's mails. No API operation
// does that: the form is checked as the API checks an unsafe request (the
// session, its CSRF token, the Origin).
func (s *Server) languageSubmit(c echo.Context) error {
	l := s.localizer(c.Request())
	req := c.Request()
	sess, err := s.resolveSession(req.Context(), req)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusUnauthorized:
		return toLogin(c, "/account/")
	case err != nil:
		return err
	}
	if !sess.CSRFMatches(c.FormValue(csrfField)) {
		return s.renderAccount(c, http.StatusForbidden, accountErrors{form: l.T("error.csrf_failed")})
	}
	if err := s.checkOrigin(req); err != nil {
		return s.renderAccount(c, http.StatusForbidden, accountErrors{form: l.T("error.csrf_failed")})
	}
	lang := c.FormValue("language")
	if !locale.Offered(lang) {
		return s.renderAccount(c, http.StatusBadRequest, accountErrors{form: l.T("error.validation_error")})
	}
	err = s.withTx(req.Context(), func(q *store.Queries) error {
		if err := q.SetUserLanguage(req.Context(), sess.UserID, lang); err != nil {
			return err
		}
		return s.audit(req.Context(), q, sess.UserID, eventLanguageChanged, "")
	})
	if err != nil {
		return err
	}
	s.setFlash(c, flash{ID: "page.flash.language", Lang: lang})
	return redirect(c, "/account/")
}

// logoutSubmit ends the session through the API and expires its cookies.
func (s *Server) logoutSubmit(c echo.Context) error {
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	a, err := s.callAPI(c, http.MethodPost, "/auth/logout/", nil, f.csrf, nil)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) { e.form = msg })
	}
	a.passCookies(c)
	s.setFlash(c, flash{ID: "page.flash.signed_out"})
	return redirect(c, "/account/login/")
}

// changePasswordSubmit changes the password through the API: the current
// one, the new one twice. The API ends every other session and keeps
// this one.
func (s *Server) changePasswordSubmit(c echo.Context) error {
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	l := s.localizer(c.Request())
	current, pw, pw2 := c.FormValue("password"), c.FormValue("new_password"), c.FormValue("new_password2")
	var errs accountErrors
	if current == "" {
		errs.current = l.T("error.required")
	}
	if pw == "" {
		errs.newPassword = l.T("error.required")
	}
	if pw != pw2 {
		errs.confirm = l.T("error.password_mismatch")
	}
	if errs.current != "" || errs.newPassword != "" || errs.confirm != "" {
		return s.renderAccount(c, http.StatusBadRequest, errs)
	}
	a, err := s.callAPI(c, http.MethodPost, fmt.Sprintf("/users/%d/password/", f.sess.UserId),
		gen.ChangePasswordJSONRequestBody{Password: current, NewPassword: pw}, f.csrf, nil)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) {
			switch {
			case a.problem.Code == gen.ErrorCodeInvalidPassword:
				e.current = msg
			case a.problem.Errors != nil && len(*a.problem.Errors) > 0 && (*a.problem.Errors)[0].Field == "body.password":
				e.current = msg
			case fieldOf(a.problem) == "password":
				e.newPassword = msg
			default:
				e.form = msg
			}
		})
	}
	a.passCookies(c)
	s.setFlash(c, flash{ID: "page.flash.password_changed"})
	return redirect(c, "/account/")
}

// endSessionsSubmit signs the user out everywhere through the API, this
// session included, and expires its cookies.
func (s *Server) endSessionsSubmit(c echo.Context) error {
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	a, err := s.callAPI(c, http.MethodDelete, fmt.Sprintf("/users/%d/sessions/", f.sess.UserId), nil, f.csrf, nil)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) { e.form = msg })
	}
	a.passCookies(c)
	s.setFlash(c, flash{ID: "page.flash.signed_out_everywhere"})
	return redirect(c, "/account/login/")
}

// deleteAccountSubmit deletes the account through the API, which asks for
// the password, and expires the cookies.
func (s *Server) deleteAccountSubmit(c echo.Context) error {
	f, ok, err := s.beginForm(c)
	if !ok {
		return err
	}
	l := s.localizer(c.Request())
	pw := c.FormValue("password")
	if pw == "" {
		return s.renderAccount(c, http.StatusBadRequest, accountErrors{deletePassword: l.T("error.required"), open: "delete"})
	}
	a, err := s.callAPI(c, http.MethodDelete, fmt.Sprintf("/users/%d/", f.sess.UserId),
		gen.DeleteAccountJSONRequestBody{Password: pw}, f.csrf, nil)
	if err != nil {
		return err
	}
	if a.problem != nil {
		return s.formProblem(c, a, func(msg string, e *accountErrors) {
			e.open = "delete"
			if fieldOf(a.problem) == "password" {
				e.deletePassword = msg
			} else {
				e.form = msg
			}
		})
	}
	a.passCookies(c)
	s.setFlash(c, flash{ID: "page.flash.deleted"})
	return redirect(c, "/account/login/")
}

// forgotPage is the signed-out form that asks for a password reset link.
func (s *Server) forgotPage(c echo.Context) error {
	return s.renderForgot(c, http.StatusOK, "", "", "")
}

// renderForgot answers the reset request form with what was typed and its
// errors (for the form, for the address).
func (s *Server) renderForgot(c echo.Context, status int, email, formError, emailError string) error {
	l := s.localizer(c.Request())
	data := pages.Forgot{Common: s.common(l, l.T("page.forgot.title")), FormToken: s.formToken(c), FormError: formError}
	data.Flash = s.takeFlash(c, l)
	data.Email = pages.Field{ID: "email", Name: "email", Type: "email", Label: l.T("page.field.email"), Value: email,
		Autocomplete: "email", Required: true, Error: emailError, Focus: true}
	return s.writePage(c, status, "forgot", data)
}

// forgotSubmit asks the API for a reset link. Its answer is the same for
// every well-formed address, and so is this page's.
func (s *Server) forgotSubmit(c echo.Context) error {
	l := s.localizer(c.Request())
	email := c.FormValue("email")
	if err := s.checkFormToken(c); err != nil {
		return s.renderForgot(c, http.StatusForbidden, email, l.T("error.csrf_failed"), "")
	}
	if email == "" {
		return s.renderForgot(c, http.StatusBadRequest, email, "", l.T("error.required"))
	}
	a, err := s.callAPI(c, http.MethodPost, "/auth/password-reset/", gen.RequestPasswordResetJSONRequestBody{Email: email}, "", nil)
	if err != nil {
		return err
	}
	if p := a.problem; p != nil {
		switch {
		case p.Status >= 500:
			return unexpected(a)
		case p.Code == gen.ErrorCodeRateLimited:
			c.Response().Header().Set("Retry-After", a.header.Get("Retry-After"))
			return s.renderForgot(c, p.Status, email, s.say(l, a), "")
		case fieldOf(p) == "email":
			return s.renderForgot(c, p.Status, email, "", s.say(l, a))
		}
		return s.renderForgot(c, p.Status, email, s.say(l, a), "")
	}
	s.setFlash(c, flash{ID: "page.flash.reset_sent", Email: email})
	return redirect(c, "/account/password-reset/")
}
