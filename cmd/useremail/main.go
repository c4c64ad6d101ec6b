// Command useremail runs the useremail service and its admin helpers:
//
//	useremail serve [--no-migrate]      serve HTTP and deliver mail
//	useremail migrate                   apply pending database migrations
//	useremail user create --email E [--verified] [--password-stdin]
//	useremail outbox list|retry|purge   inspect, retry and purge the mail outbox
//	useremail audit --user ID           print a user's security events
//	useremail admin-token create|list|revoke  admin API tokens
//
// Configuration comes from USEREMAIL_* environment variables (see README).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// usage is printed for useremail --help.
const usage = `useremail: the email addresses of user accounts, as a service.

Usage:
  useremail serve [--no-migrate]      serve the HTTP API and deliver mail
  useremail migrate                   apply pending database migrations
  useremail user create --email ADDRESS [--verified] [--password-stdin]
                                      create a user (for operators); the
                                      password is asked for, or read from stdin
  useremail outbox list [--status S] [--limit N]
                                      show queued, sending, sent or failed mail
  useremail outbox retry ID           queue a failed (or sent) mail again
  useremail outbox purge --failed [--older-than DURATION]
                                      delete failed mail
  useremail audit --user ID [--limit N]
                                      print a user's security events
  useremail export [--output FILE]    write every user as JSON (see import)
  useremail import [--format useremail|django] [--dry-run] FILE
                                      insert the users of an export or of a
                                      Django dump, all or nothing
  useremail admin-token create --name NAME [--read-only]
                                      make an admin API token (printed once)
  useremail admin-token list          list the admin API tokens
  useremail admin-token revoke NAME   revoke an admin API token
  useremail healthcheck               exit 0 when the local server is ready (for containers)
  useremail version                   print the version

Every command takes --help (or: useremail help COMMAND). Commands but serve
and migrate need a migrated database. Configuration is read from USEREMAIL_*
environment variables; see README.md.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// env is what a command gets from its process: the environment variables
// and the standard streams. Tests pass their own.
type env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// run is the whole program: it runs the command that args name.
func run(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprint(e.Stderr, usage)
		return usageError{msg: "no command"}
	}
	name, rest := args[0], args[1:]
	var err error
	switch name {
	case "serve":
		err = cmdServe(ctx, e, rest)
	case "migrate":
		err = cmdMigrate(ctx, e, rest)
	case "user":
		err = cmdUser(ctx, e, rest)
	case "outbox":
		err = cmdOutbox(ctx, e, rest)
	case "audit":
		err = cmdAudit(ctx, e, rest)
	case "export":
		err = cmdExport(ctx, e, rest)
	case "import":
		err = cmdImport(ctx, e, rest)
	case "admin-token":
		err = cmdAdminToken(ctx, e, rest)
	case "healthcheck":
		err = cmdHealthcheck(ctx, e, rest)
	case "version":
		err = cmdVersion(e, rest)
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			return run(ctx, append(rest, "--help"), e) // help CMD [SUB]
		}
		fmt.Fprint(e.Stdout, usage)
	default:
		if len(name) > 1 && name[0] == '-' {
			return usageError{msg: fmt.Sprintf("unknown flag %s", name)}
		}
		return usageError{msg: fmt.Sprintf("unknown command %q", name)}
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // the command printed its usage
	}
	return err
}

// exitCode reports err on w and returns the exit code for it: 0 for none,
// 2 for a wrong command line, 1 for any other failure. The report is one
// line, but for a configuration's problems: one line each.
func exitCode(err error, w io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		if ue.msg != "no command" {
			fmt.Fprintln(w, oneLine(ue.Error()))
		}
		return 2
	}
	var ce configError
	if errors.As(err, &ce) {
		fmt.Fprintln(w, "useremail:", ce)
		return 1
	}
	fmt.Fprintln(w, "useremail:", oneLine(err.Error()))
	return 1
}

func cmdVersion(e env, args []string) error {
	fs := newFlagSet("version", "useremail version", "Print the version of this build.")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, "useremail", version)
	return nil
}
