package server

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/useremail/useremail/gen"
)

// requestError maps the validator's findings to problems: a validation_error
// with one entry per field, or invalid_email when the only findings are on
// address fields, or link_invalid for the path of a link.
func requestError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(tooLarge.Limit)
	}
	var fields []gen.FieldError
	allEmail, link := true, false
	for _, re := range requestErrors(err) {
		switch {
		case re.Parameter != nil:
			name := re.Parameter.Name
			if name == "signed_email" || name == "user_id_key" || name == "token" {
				link = true
			}
			allEmail = false
			fields = append(fields, gen.FieldError{Field: re.Parameter.In + "." + name, Code: "invalid", Message: paramMessage(re)})
		case re.RequestBody != nil:
			for _, fe := range bodyFieldErrors(re) {
				if !fe.email {
					allEmail = false
				}
				fields = append(fields, fe.FieldError)
			}
		default:
			allEmail = false
			fields = append(fields, gen.FieldError{Field: "request", Code: "invalid", Message: re.Error()})
		}
	}
	switch {
	case link:
		return errLinkInvalid
	case len(fields) > 0 && allEmail:
		e := errInvalidEmail(fields[0].Message)
		e.fields = fields
		return e
	}
	return errValidation("The request does not match the API specification.", fields)
}

// requestErrors flattens the validator's MultiError into its RequestErrors.
func requestErrors(err error) []*openapi3filter.RequestError {
	// Only a MultiError at this level is flattened: errors.As would also
	// find the MultiError inside a RequestError (its schema findings) and
	// lose the parameter or body they belong to.
	if me, ok := err.(openapi3.MultiError); ok {
		var out []*openapi3filter.RequestError
		for _, e := range me {
			out = append(out, requestErrors(e)...)
		}
		return out
	}
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		return []*openapi3filter.RequestError{re}
	}
	return []*openapi3filter.RequestError{{Err: err}}
}

// paramMessage is the reason a parameter was refused: its schema's, or
// why its text does not parse as its type.
func paramMessage(re *openapi3filter.RequestError) string {
	var se *openapi3.SchemaError
	var pe *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &se):
		return se.Reason
	case errors.As(re.Err, &pe) && pe.Reason != "":
		return pe.Reason
	case re.Reason != "":
		return re.Reason
	}
	return "invalid value"
}

type fieldError struct {
	gen.FieldError
	email bool // the field is an email address (schema format email)
}

var propertyInReason = regexp.MustCompile(`property "([^"]*)"`)

// bodyFieldErrors turns a body's RequestError into field errors.
func bodyFieldErrors(re *openapi3filter.RequestError) []fieldError {
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return []fieldError{{FieldError: gen.FieldError{Field: "body", Code: "required", Message: "a JSON body is required"}}}
	}
	var schemaErrs []*openapi3.SchemaError
	var me openapi3.MultiError
	var se *openapi3.SchemaError
	switch {
	case errors.As(re.Err, &me):
		for _, e := range me {
			if errors.As(e, &se) {
				schemaErrs = append(schemaErrs, se)
			}
		}
	case errors.As(re.Err, &se):
		schemaErrs = append(schemaErrs, se)
	}
	if len(schemaErrs) == 0 {
		var pe *openapi3filter.ParseError
		if errors.As(re.Err, &pe) {
			return []fieldError{{FieldError: gen.FieldError{Field: "body", Code: "malformed_json", Message: "the body is not valid JSON"}}}
		}
		return []fieldError{{FieldError: gen.FieldError{Field: "body", Code: "invalid", Message: re.Error()}}}
	}
	out := make([]fieldError, 0, len(schemaErrs))
	for _, se := range schemaErrs {
		path := se.JSONPointer() // for "required", it ends with the missing property
		code := snake(se.SchemaField)
		// A property that additionalProperties: false refuses comes under
		// the keyword "properties", at the object, its name in the reason.
		if se.SchemaField == "properties" || se.SchemaField == "additionalProperties" {
			code = "unknown_field"
			if m := propertyInReason.FindStringSubmatch(se.Reason); m != nil {
				path = append(path, m[1])
			}
		}
		field := "body"
		if len(path) > 0 {
			field += "." + strings.Join(path, ".")
		}
		email := se.Schema != nil && se.Schema.Format == "email" && se.SchemaField != "type"
		out = append(out, fieldError{FieldError: gen.FieldError{Field: field, Code: code, Message: se.Reason}, email: email})
	}
	return out
}

// snake turns a JSON Schema keyword into a field error code: maxLength → max_length.
func snake(keyword string) string {
	var b strings.Builder
	for i, r := range keyword {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "invalid"
	}
	return b.String()
}
