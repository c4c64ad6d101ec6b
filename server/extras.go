package server

import (
	"net/http"

	"github.com/useremail/useremail/gen"
)

// responseExtras are what a handler adds to its answer beyond what the
// generated response writes: a strict response carries one Set-Cookie at
// most, and only the headers its spec declares.
type responseExtras struct {
	cookies []*http.Cookie
	header  http.Header // replaces the headers of the same name
}

// writeTo sets the extras on w, before the response writes its status.
func (x responseExtras) writeTo(w http.ResponseWriter) {
	for _, ck := range x.cookies {
		http.SetCookie(w, ck)
	}
	h := w.Header()
	for name, values := range x.header {
		h.Del(name)
		for _, v := range values {
			h.Add(name, v)
		}
	}
}

// The responses with extras: each embeds its operation's response, which it
// writes after its extras.
type (
	loginResponse struct {
		gen.LoginResponseObject
		responseExtras
	}
	logoutResponse struct {
		gen.LogoutResponseObject
		responseExtras
	}
	showVerificationResponse struct {
		gen.ShowEmailVerificationResponseObject
		responseExtras
	}
	confirmVerificationResponse struct {
		gen.ConfirmEmailVerificationResponseObject
		responseExtras
	}
	showPrimaryResponse struct {
		gen.ShowPrimaryEmailChangeResponseObject
		responseExtras
	}
	confirmPrimaryResponse struct {
		gen.ConfirmPrimaryEmailChangeResponseObject
		responseExtras
	}
	showResetResponse struct {
		gen.ShowPasswordResetResponseObject
		responseExtras
	}
	confirmResetResponse struct {
		gen.ConfirmPasswordResetResponseObject
		responseExtras
	}
	endSessionsResponse struct {
		gen.EndSessionsResponseObject
		responseExtras
	}
	deleteAccountResponse struct {
		gen.DeleteAccountResponseObject
		responseExtras
	}
)

func (r loginResponse) VisitLoginResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.LoginResponseObject.VisitLoginResponse(w)
}

func (r logoutResponse) VisitLogoutResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.LogoutResponseObject.VisitLogoutResponse(w)
}

func (r showVerificationResponse) VisitShowEmailVerificationResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.ShowEmailVerificationResponseObject.VisitShowEmailVerificationResponse(w)
}

func (r confirmVerificationResponse) VisitConfirmEmailVerificationResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.ConfirmEmailVerificationResponseObject.VisitConfirmEmailVerificationResponse(w)
}

func (r showPrimaryResponse) VisitShowPrimaryEmailChangeResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.ShowPrimaryEmailChangeResponseObject.VisitShowPrimaryEmailChangeResponse(w)
}

func (r confirmPrimaryResponse) VisitConfirmPrimaryEmailChangeResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.ConfirmPrimaryEmailChangeResponseObject.VisitConfirmPrimaryEmailChangeResponse(w)
}

func (r showResetResponse) VisitShowPasswordResetResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.ShowPasswordResetResponseObject.VisitShowPasswordResetResponse(w)
}

func (r confirmResetResponse) VisitConfirmPasswordResetResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.ConfirmPasswordResetResponseObject.VisitConfirmPasswordResetResponse(w)
}

func (r endSessionsResponse) VisitEndSessionsResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.EndSessionsResponseObject.VisitEndSessionsResponse(w)
}

func (r deleteAccountResponse) VisitDeleteAccountResponse(w http.ResponseWriter) error {
	r.writeTo(w)
	return r.DeleteAccountResponseObject.VisitDeleteAccountResponse(w)
}
