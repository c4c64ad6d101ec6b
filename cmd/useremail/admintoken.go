package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"text/tabwriter"
	"time"

	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
)

const adminTokenUsage = `Usage:
  useremail admin-token create --name NAME [--read-only]
  useremail admin-token list
  useremail admin-token revoke NAME

Make, list and revoke the bearer tokens of the admin API (/admin/). A token is
printed once, when it is made, alone on the last line of standard output; only
its hash is stored. A read-only token may only read. Run useremail admin-token
create --help for its flags.
`

// cmdAdminToken makes, lists and revokes admin API tokens.
func cmdAdminToken(ctx context.Context, e env, args []string) error {
	return runGroup("admin-token", adminTokenUsage, args, e.Stdout,
		subcommand{"create", func(args []string) error { return cmdAdminTokenCreate(ctx, e, args) }},
		subcommand{"list", func(args []string) error { return cmdAdminTokenList(ctx, e, args) }},
		subcommand{"revoke", func(args []string) error { return cmdAdminTokenRevoke(ctx, e, args) }},
	)
}

// tokenNamePattern is what a token's name may be: it shows in the audit
// trail as admin:NAME.
var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func cmdAdminTokenCreate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("admin-token create", "useremail admin-token create --name NAME [--read-only]",
		"Make a bearer token for the admin API and print it, once, alone on the last line of\n"+
			"standard output. NAME (letters, digits, '.', '_', '-'; at most 64) names the token in\n"+
			"the audit trail (admin:NAME) and for revoke; no two live tokens share a name.")
	name := fs.String("name", "", "the token's name")
	readOnly := fs.Bool("read-only", false, "the token may only read (GET); writes answer 403 forbidden")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if *name == "" {
		return usageError{cmd: fs.Name(), msg: "--name is required"}
	}
	if !tokenNamePattern.MatchString(*name) {
		return usageError{cmd: fs.Name(), msg: fmt.Sprintf("--name %q: use letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit", *name)}
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	token, hash := server.NewAdminToken()
	t, err := db.CreateAdminToken(ctx, *name, hash, *readOnly, time.Now())
	if errors.Is(err, store.ErrNameTaken) {
		return fmt.Errorf("a live admin token is called %q already; revoke it first, or pick another name", *name)
	}
	if err != nil {
		return err
	}
	kind := "read-write"
	if t.ReadOnly {
		kind = "read-only"
	}
	fmt.Fprintf(e.Stdout, "created %s admin token %q; it is shown only now:\n%s\n", kind, t.Name, token)
	return nil
}

func cmdAdminTokenList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("admin-token list", "useremail admin-token list",
		"List the admin API tokens, live and revoked (never the tokens themselves).")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := db.AdminTokens(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tACCESS\tSTATE\tCREATED\tLAST USED")
	for _, t := range tokens {
		access, state, used := "read-write", "live", "-"
		if t.ReadOnly {
			access = "read-only"
		}
		if t.RevokedAt != nil {
			state = "revoked " + t.RevokedAt.UTC().Format(time.RFC3339)
		}
		if t.LastUsedAt != nil {
			used = t.LastUsedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Name, access, state, t.CreatedAt.UTC().Format(time.RFC3339), used)
	}
	return w.Flush()
}

func cmdAdminTokenRevoke(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("admin-token revoke", "useremail admin-token revoke NAME",
		"Revoke the live admin token NAME: from now on it answers 401 token_invalid.")
	if err := parseFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{cmd: fs.Name(), msg: "want one token name"}
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	name := fs.Arg(0)
	if err := db.RevokeAdminToken(ctx, name, time.Now()); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no live admin token is called %q", name)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "admin token %q revoked\n", name)
	return nil
}
