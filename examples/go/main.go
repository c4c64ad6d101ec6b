// This program shows the Go client generated from openapi.yaml (package
// gen) at work: it signs a user up, logs in, adds an address and lists the
// user's addresses.
//
//	go run ./examples/go -url http://127.0.0.1:8080 -email alice@example.com -password 'correct horse battery staple'
//
// The URL may also come from USEREMAIL_URL. Against `make run` (dev mode,
// plain http) it works as it is; a production server sets Secure cookies,
// which a client only sends over https.
//
// What a client of the API needs, all shown here:
//   - a cookie jar: POST /auth/login/ sets the session cookies (sessionid,
//     osessionid, csrftoken), and the jar sends them back;
//   - the session's CSRF token in X-CSRFToken on every unsafe request
//     (POST, PUT, PATCH, DELETE) under the session: it comes with the login
//     answer and in the csrftoken cookie;
//   - problems: every 4xx and 5xx answer is application/problem+json with a
//     stable code (gen.Problem).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"time"

	"github.com/useremail/useremail/gen"
)

func main() {
	baseURL := flag.String("url", envOr("USEREMAIL_URL", "http://127.0.0.1:8080"), "the server's base URL (or USEREMAIL_URL)")
	email := flag.String("email", "alice@example.com", "the address to sign up and log in with")
	password := flag.String("password", "correct horse battery staple", "the password (at least 8 characters)")
	add := flag.String("add", "alice@work.example", "the address to add")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *baseURL, *email, *password, *add); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run does the walk-through against the server at baseURL and reports each
// step to out.
func run(ctx context.Context, out io.Writer, baseURL, email, password, add string) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	// csrf is the session's token once logged in.
	var csrf string
	client, err := gen.NewClientWithResponses(strings.TrimSuffix(baseURL, "/"),
		gen.WithHTTPClient(&http.Client{Jar: jar, Timeout: 10 * time.Second}),
		gen.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			switch req.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
			default:
				if csrf != "" {
					req.Header.Set("X-CSRFToken", csrf)
				}
			}
			return nil
		}),
	)
	if err != nil {
		return err
	}

	// 1. Sign up. An address that is taken already is fine here: the
	// example may run twice against the same server.
	signUp, err := client.SignUpWithResponse(ctx, gen.SignUpJSONRequestBody{Email: email, Password: password})
	switch {
	case err != nil:
		return fmt.Errorf("sign up: %w", err)
	case signUp.JSON201 != nil:
		fmt.Fprintf(out, "signed up: user %d, %s\n", signUp.JSON201.Id, signUp.JSON201.Email)
	case problemCode(signUp.HTTPResponse, signUp.Body) == gen.ErrorCodeEmailTaken:
		fmt.Fprintf(out, "signed up already: %s\n", email)
	default:
		return failure("sign up", signUp.HTTPResponse, signUp.Body)
	}

	// 2. Log in: the jar keeps the cookies, the answer carries the token.
	login, err := client.LoginWithResponse(ctx, gen.LoginJSONRequestBody{Email: email, Password: password})
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	if login.JSON200 == nil {
		return failure("log in", login.HTTPResponse, login.Body)
	}
	user, csrf := login.JSON200.UserId, login.JSON200.CsrfToken
	fmt.Fprintf(out, "logged in: user %d, session until %s\n", user, login.JSON200.ExpiresAt.Format(time.RFC3339))

	// 3. Add an address; it stays unverified until its mailed link is
	// opened.
	added, err := client.AddEmailWithResponse(ctx, user, gen.AddEmailJSONRequestBody{Email: add})
	switch {
	case err != nil:
		return fmt.Errorf("add %s: %w", add, err)
	case added.JSON201 != nil:
		fmt.Fprintf(out, "added: %s (id %d, verified %t)\n", added.JSON201.Email, added.JSON201.Id, added.JSON201.Verified)
	case problemCode(added.HTTPResponse, added.Body) == gen.ErrorCodeEmailTaken:
		fmt.Fprintf(out, "added already: %s\n", add)
	default:
		return failure("add "+add, added.HTTPResponse, added.Body)
	}

	// 4. List them, the primary address first.
	list, err := client.ListEmailsWithResponse(ctx, user)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if list.JSON200 == nil {
		return failure("list", list.HTTPResponse, list.Body)
	}
	fmt.Fprintf(out, "addresses of user %d:\n", user)
	for _, e := range *list.JSON200 {
		fmt.Fprintf(out, "  %-30s primary=%-5t verified=%t\n", e.Email, e.Primary, e.Verified)
	}
	return nil
}

// problemCode returns the code of a problem answer, or "".
func problemCode(res *http.Response, body []byte) gen.ErrorCode {
	var p gen.Problem
	if res == nil || res.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil {
		return ""
	}
	return p.Code
}

// failure describes an answer the example did not expect.
func failure(step string, res *http.Response, body []byte) error {
	if res == nil {
		return errors.New(step + ": no answer")
	}
	var p gen.Problem
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		detail := ""
		if p.Detail != nil {
			detail = ": " + *p.Detail
		}
		return fmt.Errorf("%s: %d %s%s", step, res.StatusCode, p.Code, detail)
	}
	return fmt.Errorf("%s: %s", step, res.Status)
}
