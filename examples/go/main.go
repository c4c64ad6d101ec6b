// This program shows the Go client module (github.com/useremail/useremail/client)
// at work: it signs a user up, logs in, adds an address and lists the user's
// addresses.
//
//	go run ./examples/go -url http://127.0.0.1:8080 -email alice@example.com -password 'correct horse battery staple'
//
// The URL may also come from USEREMAIL_URL. Against `make run` (dev mode,
// plain http) it works as it is; a production server sets Secure cookies,
// which a client only sends over https.
//
// What a client of the API needs, and the client module does:
//   - a cookie jar: POST /auth/login/ sets the session cookies (sessionid,
//     osessionid, csrftoken), and the jar sends them back (client.NewSession);
//   - the session's CSRF token in X-CSRFToken on every unsafe request
//     (POST, PUT, PATCH, DELETE) under the session: the session client
//     copies it from the csrftoken cookie;
//   - problems: every 4xx and 5xx answer is application/problem+json with a
//     stable code; client.Check makes it a *client.ProblemError.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/useremail/useremail/client"
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
	api, err := client.NewSession(baseURL, nil)
	if err != nil {
		return err
	}

	// 1. Sign up. An address that is taken already is fine here: the
	// example may run twice against the same server.
	signUp, err := api.SignUpWithResponse(ctx, client.SignUpJSONRequestBody{Email: email, Password: password})
	switch err := client.Check(signUp, err); {
	case err == nil:
		fmt.Fprintf(out, "signed up: user %d, %s\n", signUp.JSON201.Id, signUp.JSON201.Email)
	case client.HasCode(err, client.ErrorCodeEmailTaken):
		fmt.Fprintf(out, "signed up already: %s\n", email)
	default:
		return fmt.Errorf("sign up: %w", err)
	}

	// 2. Log in: the session client keeps the cookies.
	login, err := api.LoginWithResponse(ctx, client.LoginJSONRequestBody{Email: email, Password: password})
	if err := client.Check(login, err); err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	user := login.JSON200.UserId
	fmt.Fprintf(out, "logged in: user %d, session until %s\n", user, login.JSON200.ExpiresAt.Format(time.RFC3339))

	// 3. Add an address; it stays unverified until its mailed link is
	// opened. The client sends X-CSRFToken itself.
	added, err := api.AddEmailWithResponse(ctx, user, client.AddEmailJSONRequestBody{Email: add})
	switch err := client.Check(added, err); {
	case err == nil:
		fmt.Fprintf(out, "added: %s (id %d, verified %t)\n", added.JSON201.Email, added.JSON201.Id, added.JSON201.Verified)
	case client.HasCode(err, client.ErrorCodeEmailTaken):
		fmt.Fprintf(out, "added already: %s\n", add)
	default:
		return fmt.Errorf("add %s: %w", add, err)
	}

	// 4. List them, the primary address first.
	list, err := api.ListEmailsWithResponse(ctx, user)
	if err := client.Check(list, err); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	fmt.Fprintf(out, "addresses of user %d:\n", user)
	for _, e := range *list.JSON200 {
		fmt.Fprintf(out, "  %-30s primary=%-5t verified=%t\n", e.Email, e.Primary, e.Verified)
	}
	return nil
}
