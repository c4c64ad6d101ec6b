package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
)

// validationOptions are the options of every request's validation against
// the spec. Security is checked before, once, by authenticate.
func validationOptions() openapi3filter.Options {
	return openapi3filter.Options{
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		MultiError:         true,
		KeepValidatedValue: true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.DisableSchemaErrorDetails(),
		},
	}
}

// validate checks every API request against openapi.yaml before a handler
// runs, in this order: the route (found by begin), the body's declared
// size, the security requirements (authenticate), the media type, that the
// body is one JSON text, then the parameters and the body.
func (s *Server) validate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		f := factsFrom(req.Context())
		if !f.api {
			return next(c)
		}
		if f.routeErr != nil {
			if f.routeErr == errMethod {
				c.Response().Header().Set("Allow", s.allowedMethods(req))
			}
			return f.routeErr
		}
		op := f.route.Operation
		switch {
		case op.RequestBody == nil:
			// An operation without a body ignores one: it is never read.
			req.Body = http.NoBody
		case req.ContentLength > s.cfg.BodyLimit:
			return errBodyTooLarge(s.cfg.BodyLimit)
		case req.Body != nil && req.Body != http.NoBody:
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit)
		}
		input := &openapi3filter.RequestValidationInput{Request: req, PathParams: f.params, Route: f.route}
		if sec := op.Security; sec != nil && len(*sec) > 0 {
			ctx, err := s.authenticate(req.Context(), input, *sec)
			if err != nil {
				return err
			}
			if ctx != req.Context() {
				req = req.WithContext(ctx)
				c.SetRequest(req)
				input.Request = req
			}
		}
		if body := op.RequestBody; body != nil {
			ct := req.Header.Get(echo.HeaderContentType)
			if body.Value.Content.Get(ct) == nil && (req.ContentLength != 0 || ct != "") {
				return errMediaType
			}
			if req.Body != nil && req.Body != http.NoBody {
				if err := checkBodyText(req, f.postedForm()); err != nil {
					return err
				}
			}
		}
		input.Options = &s.validateOptions
		if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
			return requestError(err)
		}
		return next(c)
	}
}

// checkBodyText refuses a body that is not one JSON text in UTF-8 (RFC
// 8259), or for a form (the reset page's) not UTF-8: the decoders behind
// the validator turn invalid bytes into U+FFFD and ignore what follows the
// first value. It reads the body (within the limit) and puts it back; an
// empty body is left to the validator.
func checkBodyText(req *http.Request, form bool) error {
	data, err := io.ReadAll(req.Body)
	if err != nil {
		return requestError(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	switch {
	case len(data) == 0:
		return nil
	case !utf8.Valid(data):
		return errValidation("The request body is not valid UTF-8.", []gen.FieldError{
			{Field: "body", Code: "malformed_json", Message: "the body is not valid UTF-8"},
		})
	case form:
		return nil
	case !json.Valid(data):
		return errValidation("The request body is not valid JSON.", []gen.FieldError{
			{Field: "body", Code: "malformed_json", Message: "the body is not valid JSON"},
		})
	}
	return nil
}
