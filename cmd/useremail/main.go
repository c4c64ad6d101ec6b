// Command useremail runs the useremail service and its admin helpers:
//
//	useremail serve [--no-migrate]      serve HTTP and deliver mail
//	useremail migrate                   apply pending database migrations
//	useremail user create --email E --password P [--verified]
//	useremail outbox list|retry         inspect and retry the mail outbox
//	useremail audit --user ID           print a user's security events
//
// Configuration comes from USEREMAIL_* environment variables (see README).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// usage is printed for -h and for an unknown command.
const usage = `useremail: the email addresses of user accounts, as a service.

Usage:
  useremail serve [--no-migrate]      serve the HTTP API and deliver mail
  useremail migrate                   apply pending database migrations
  useremail user create --email ADDRESS --password PASSWORD [--verified]
                                      create a user (for operators)
  useremail outbox list [--status S] [--limit N]
                                      show queued, sending, sent or failed mail
  useremail outbox retry ID           queue a failed (or sent) mail again
  useremail audit --user ID           print a user's security events
  useremail healthcheck               exit 0 when the local server is ready (for containers)
  useremail version                   print the version

Configuration is read from USEREMAIL_* environment variables; see README.md.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "useremail:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program, with its environment passed in so that tests
// can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], getenv, stderr, nil)
	case "migrate":
		return cmdMigrate(ctx, getenv, stdout)
	case "user":
		return cmdUser(ctx, args[1:], getenv, stdout)
	case "outbox":
		return cmdOutbox(ctx, args[1:], getenv, stdout)
	case "audit":
		return cmdAudit(ctx, args[1:], getenv, stdout)
	case "healthcheck":
		return cmdHealthcheck(ctx, getenv, stdout)
	case "version":
		fmt.Fprintln(stdout, "useremail", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{"unknown command " + args[0]}
}
