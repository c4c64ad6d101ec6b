package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/store"
)

const userUsage = `Usage: useremail user create --email ADDRESS [--verified] [--password-stdin]

Create a user, for operators. Run useremail user create --help for its flags.
`

// cmdUser runs the user admin helpers.
func cmdUser(ctx context.Context, e env, args []string) error {
	return runGroup("user", userUsage, args, e.Stdout,
		subcommand{"create", func(args []string) error { return cmdUserCreate(ctx, e, args) }},
	)
}

// maxPasswordLen bounds what is read; the password policy
// (password.CheckPolicy) decides the rest, as for the API.
const maxPasswordLen = password.MaxLength

// cmdUserCreate creates a user with a primary address and a password read
// from a prompt or from standard input, never from the arguments.
func cmdUserCreate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("user create", "useremail user create --email ADDRESS [--verified] [--password-stdin]",
		"Create a user whose primary address is ADDRESS. The password is asked for on the\n"+
			"terminal (twice, not shown), or read from standard input with --password-stdin\n"+
			"(all of it, less one final newline); it is never taken as an argument.")
	email := fs.String("email", "", "the user's primary address")
	verified := fs.Bool("verified", false, "mark the address verified instead of mailing a verification link")
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	if passwordInArgs(args) {
		return usageError{cmd: fs.Name(), msg: "a password is never taken as an argument (other users see it in the process list, " +
			"and the shell keeps it in its history); type it at the prompt, or pipe it in with --password-stdin"}
	}
	if err := parseFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		// Not named: it may be a password.
		return usageError{cmd: fs.Name(), msg: "takes no arguments, and never a password: type it at the prompt, or pipe it in with --password-stdin"}
	}
	if *email == "" {
		return usageError{cmd: fs.Name(), msg: "--email is required"}
	}
	addr, err := address.Normalize(*email)
	if err != nil {
		return fmt.Errorf("--email: %w", err)
	}
	if !*fromStdin && !isTerminal(e.Stdin) {
		return usageError{cmd: fs.Name(), msg: "standard input is not a terminal to ask for the password on; pipe it in with --password-stdin"}
	}

	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	pw, err := readPassword(e, *fromStdin)
	if err != nil {
		return err
	}
	if err := password.CheckPolicy(pw, *email, addr.Email, addr.Key); err != nil {
		return fmt.Errorf("password_too_weak: %w; choose another", err)
	}
	cfg, _ := loadConfig(e.Getenv)
	hash, err := password.NewHasher(cfg.Argon2, 1).Hash(ctx, pw)
	if err != nil {
		return err
	}
	user, err := createUser(ctx, db, addr, hash, *verified)
	if errors.Is(err, store.ErrEmailTaken) {
		return fmt.Errorf("%s is already in use", addr.Email)
	}
	if err != nil {
		return err
	}
	if !*verified {
		// Running servers send the verification mail at once; if this
		// fails they still find it at their next poll.
		_ = db.NotifyMailQueued(ctx)
	}
	fmt.Fprintf(e.Stdout, "created user %d <%s>\n", user.ID, addr.Email)
	return nil
}

// createUser stores the user with addr as its primary address, verified or
// with its verification mail queued, and audits the sign-up.
func createUser(ctx context.Context, db *store.DB, addr address.Address, hash string, verified bool) (store.User, error) {
	var user store.User
	err := db.WithTx(ctx, func(q *store.Queries) error {
		var primary store.Email
		var err error
		now := time.Now()
		user, primary, err = q.CreateUser(ctx, store.NewUser{Email: addr.Email, Key: addr.Key, PasswordHash: hash}, now)
		if err != nil {
			return err
		}
		if verified {
			_, err = q.VerifyEmail(ctx, user.ID, primary.ID, now)
		} else {
			_, err = q.EnqueueMessage(ctx, mail.Verify(user.ID, primary.Email, primary.ID), now)
		}
		if err != nil {
			return err
		}
		return q.RecordEvent(ctx, store.AuditEvent{UserID: user.ID, Event: "signup", Email: primary.Email, UserAgent: "useremail user create", Actor: "cli", CreatedAt: now})
	})
	return user, err
}

// passwordInArgs reports whether args, before "--", hold a --password flag.
func passwordInArgs(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if flagName(a) == "password" {
			return true
		}
	}
	return false
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readPassword reads a password within the length bounds: all of standard
// input less one final newline when fromStdin, otherwise typed twice at a
// prompt on the terminal, without echo.
func readPassword(e env, fromStdin bool) (string, error) {
	var pw string
	if fromStdin {
		// Enough bytes for the longest password in 4-byte characters, and
		// a CRLF.
		const maxInput = 4*maxPasswordLen + 2
		b, err := io.ReadAll(io.LimitReader(e.Stdin, maxInput+1))
		if err != nil {
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		if len(b) > maxInput {
			return "", fmt.Errorf("the password on standard input is longer than %d characters", maxPasswordLen)
		}
		pw = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	} else {
		fd := int(e.Stdin.(*os.File).Fd())
		var err error
		if pw, err = prompt(e.Stderr, fd, "Password: "); err != nil {
			return "", err
		}
		again, err := prompt(e.Stderr, fd, "Password (again): ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the two passwords differ")
		}
	}
	if pw == "" {
		return "", errors.New("no password given")
	}
	return pw, nil
}

// prompt writes label to w and reads a line from the terminal fd, not
// echoed.
func prompt(w io.Writer, fd int, label string) (string, error) {
	fmt.Fprint(w, label)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(b), nil
}
