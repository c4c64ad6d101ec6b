package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/useremail/useremail/gen"
)

// validateWithSpec runs the server's request validation (the embedded spec,
// its router, validationOptions) on a crafted request, without the checks
// that come before it in the pipeline, and returns what the validator said.
func validateWithSpec(t *testing.T, method, path, body string) error {
	t.Helper()
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	opts := validationOptions()
	err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route, Options: &opts,
	})
	if err == nil {
		t.Fatalf("%s %s %s: the validator found nothing wrong", method, path, body)
	}
	return err
}

// shapeError fails the test for a kin-openapi error that no longer has the
// shape fielderrors.go reads.
func shapeError(t *testing.T, what, want string, got any) {
	t.Helper()
	t.Errorf("kin-openapi changed %s: fielderrors.go expects %s, the validator gave %v.\n"+
		"Update requestError/bodyFieldErrors to the new shape, then this test.", what, want, got)
}

// oneRequestError is the one RequestError of a validator error, which must
// be an openapi3.MultiError at the top (the MultiError option).
func oneRequestError(t *testing.T, err error) *openapi3filter.RequestError {
	t.Helper()
	if _, ok := err.(openapi3.MultiError); !ok {
		shapeError(t, "the type of ValidateRequest's error with MultiError", "openapi3.MultiError", fmt.Sprintf("%T", err))
	}
	res := requestErrors(err)
	if len(res) != 1 || res[0].Input == nil {
		shapeError(t, "how ValidateRequest's findings nest", "one *openapi3filter.RequestError", err)
		t.FailNow()
	}
	return res[0]
}

// bodySchemaErrors are the schema findings of a body's RequestError, which
// (with MultiError) come as an openapi3.MultiError of *openapi3.SchemaError.
func bodySchemaErrors(t *testing.T, re *openapi3filter.RequestError) []*openapi3.SchemaError {
	t.Helper()
	if re.RequestBody == nil {
		shapeError(t, "the RequestError of a body", "RequestBody set", re)
	}
	me, ok := re.Err.(openapi3.MultiError)
	if !ok {
		shapeError(t, "the cause of a body's schema finding", "openapi3.MultiError", fmt.Sprintf("%T", re.Err))
		t.FailNow()
	}
	var out []*openapi3.SchemaError
	for _, e := range me {
		se, ok := e.(*openapi3.SchemaError)
		if !ok {
			shapeError(t, "a body's schema finding", "*openapi3.SchemaError", fmt.Sprintf("%T", e))
			t.FailNow()
		}
		out = append(out, se)
	}
	return out
}

// wantFields checks what requestError makes of err.
func wantFields(t *testing.T, err error, code gen.ErrorCode, want ...gen.FieldError) {
	t.Helper()
	var ae *apiError
	if !errors.As(requestError(err), &ae) {
		t.Fatalf("requestError gave %v, not an apiError", requestError(err))
	}
	if ae.code != code || ae.status != http.StatusBadRequest || !reflect.DeepEqual(ae.fields, want) {
		t.Errorf("requestError: %d %s %+v\nwant:        400 %s %+v", ae.status, ae.code, ae.fields, code, want)
	}
}

// TestValidatorErrorShapes pins the kin-openapi error shapes that
// fielderrors.go reads, by running the real validator on crafted requests,
// and what requestError makes of them. A kin-openapi upgrade that changes a
// shape fails here, naming it.
func TestValidatorErrorShapes(t *testing.T) {
	t.Run("unknown property", func(t *testing.T) {
		err := validateWithSpec(t, "POST", "/users/", `{"email":"ann@example.com","password":"correct horse","admin":true}`)
		ses := bodySchemaErrors(t, oneRequestError(t, err))
		if len(ses) != 1 || ses[0].SchemaField != "properties" {
			shapeError(t, "the keyword of a property that additionalProperties: false refuses", `SchemaField "properties"`, ses)
		}
		if len(ses) == 1 {
			if m := propertyInReason.FindStringSubmatch(ses[0].Reason); m == nil || m[1] != "admin" {
				shapeError(t, "the reason of an unknown property", `a reason naming property "admin"`, ses[0].Reason)
			}
			if p := ses[0].JSONPointer(); len(p) != 0 {
				shapeError(t, "where an unknown property is reported", "at the object (an empty JSON pointer)", p)
			}
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "body.admin", Code: "unknown_field", Message: `property "admin" is unsupported`})
	})

	t.Run("missing property", func(t *testing.T) {
		err := validateWithSpec(t, "POST", "/users/", `{"email":"ann@example.com"}`)
		ses := bodySchemaErrors(t, oneRequestError(t, err))
		if len(ses) != 1 || ses[0].SchemaField != "required" {
			shapeError(t, "the keyword of a missing property", `SchemaField "required"`, ses)
		} else if p := ses[0].JSONPointer(); !slices.Equal(p, []string{"password"}) {
			shapeError(t, "where a missing property is reported", `a JSON pointer ending with the property ("password")`, p)
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "body.password", Code: "required", Message: `property "password" is missing`})
	})

	t.Run("no body", func(t *testing.T) {
		err := validateWithSpec(t, "POST", "/users/", ``)
		if re := oneRequestError(t, err); re.RequestBody == nil || !errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
			shapeError(t, "the error of a missing required body", "a body RequestError wrapping ErrInvalidRequired", re)
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "body", Code: "required", Message: "a JSON body is required"})
	})

	t.Run("malformed JSON", func(t *testing.T) {
		// The pipeline refuses this before the validator (checkBodyText);
		// bodyFieldErrors still reads the validator's own finding.
		err := validateWithSpec(t, "POST", "/users/", `{"email":`)
		var pe *openapi3filter.ParseError
		if re := oneRequestError(t, err); re.RequestBody == nil || !errors.As(re.Err, &pe) {
			shapeError(t, "the error of a body that does not decode", "a body RequestError wrapping *openapi3filter.ParseError", re)
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "body", Code: "malformed_json", Message: "the body is not valid JSON"})
	})

	t.Run("address too long", func(t *testing.T) {
		err := validateWithSpec(t, "POST", "/users/1/emails/", `{"email":"`+strings.Repeat("a", 250)+`@b.co"}`)
		ses := bodySchemaErrors(t, oneRequestError(t, err))
		if len(ses) != 1 || ses[0].SchemaField != "maxLength" || ses[0].Schema == nil || ses[0].Schema.Format != "email" ||
			!slices.Equal(ses[0].JSONPointer(), []string{"email"}) {
			shapeError(t, "a too long address", `SchemaField "maxLength" at /email, with the field's schema (format email)`, ses)
		}
		wantFields(t, err, gen.ErrorCodeInvalidEmail, gen.FieldError{Field: "body.email", Code: "max_length", Message: "maximum string length is 254"})
	})

	t.Run("address of the wrong type", func(t *testing.T) {
		err := validateWithSpec(t, "POST", "/users/1/emails/", `{"email":5}`)
		ses := bodySchemaErrors(t, oneRequestError(t, err))
		if len(ses) != 1 || ses[0].SchemaField != "type" {
			shapeError(t, "a value of the wrong type", `SchemaField "type"`, ses)
		}
		// Not invalid_email: a number is no attempt at an address.
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "body.email", Code: "type", Message: "value must be a string"})
	})

	t.Run("parameter out of its schema", func(t *testing.T) {
		err := validateWithSpec(t, "GET", "/users/0/emails/", ``)
		re := oneRequestError(t, err)
		var se *openapi3.SchemaError
		if re.Parameter == nil || re.Parameter.Name != "id" || re.Parameter.In != "path" || !errors.As(re.Err, &se) {
			shapeError(t, "a parameter its schema refuses", "a RequestError with Parameter id in path, wrapping *openapi3.SchemaError", re)
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "path.id", Code: "invalid", Message: "number must be at least 1"})
	})

	t.Run("parameter that does not parse", func(t *testing.T) {
		err := validateWithSpec(t, "GET", "/users/abc/emails/", ``)
		re := oneRequestError(t, err)
		var pe *openapi3filter.ParseError
		if re.Parameter == nil || re.Parameter.Name != "id" || !errors.As(re.Err, &pe) || pe.Reason != "an invalid integer" {
			shapeError(t, "a parameter that does not parse", `a RequestError with Parameter id, wrapping *openapi3filter.ParseError with Reason "an invalid integer"`, re)
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "path.id", Code: "invalid", Message: "an invalid integer"})
	})

	t.Run("findings on parameters and body together", func(t *testing.T) {
		err := validateWithSpec(t, "POST", "/users/0/emails/", `{"emal":"x"}`)
		if res := requestErrors(err); len(res) != 2 || res[0].Parameter == nil || res[1].RequestBody == nil {
			shapeError(t, "how parameter and body findings come together", "one MultiError: the parameter's RequestError, then the body's", err)
		}
		wantFields(t, err, gen.ErrorCodeValidationError,
			gen.FieldError{Field: "path.id", Code: "invalid", Message: "number must be at least 1"},
			gen.FieldError{Field: "body.emal", Code: "unknown_field", Message: `property "emal" is unsupported`},
			gen.FieldError{Field: "body.email", Code: "required", Message: `property "email" is missing`},
		)
	})
}
