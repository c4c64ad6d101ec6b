package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/transfer"
)

// cmdExport writes every user as JSON to standard output or to a file.
func cmdExport(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("export", "useremail export [--output FILE]",
		"Write every user, with password hash, language and addresses, as JSON\n"+
			"("+transfer.Format+"), from one consistent snapshot of the database, to\n"+
			"standard output or FILE; progress goes to standard error. useremail import\n"+
			"reads it, into this database kind or the other (SQLite to PostgreSQL).\n"+
			"The file holds password hashes: keep it as safe as the database.")
	output := fs.String("output", "", "write to `FILE` (written whole, then renamed into place) instead of standard output")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if *output == "" {
		_, err := transfer.Export(ctx, db, e.Stdout, e.Stderr)
		return err
	}
	// A temporary file beside the target, renamed when complete: an export
	// that fails leaves no half file under the name.
	tmp, err := os.CreateTemp(filepath.Dir(*output), "."+filepath.Base(*output)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("export: %w", err)
	}
	if _, err := transfer.Export(ctx, db, tmp, e.Stderr); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("export: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp.Name(), *output); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// cmdImport reads users from an export or a Django dump, all or nothing.
func cmdImport(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("import", "useremail import [--format useremail|django] [--dry-run] FILE",
		"Insert the users of FILE (- for standard input) with their ids, password hashes\n"+
			"and addresses, in one transaction: all of them, or none when a record is refused\n"+
			"(the message names it). FILE is what useremail export writes (--format useremail)\n"+
			"or what Django's manage.py dumpdata auth.user account.emailaddress writes\n"+
			"(--format django; django-allauth's account.emailaddress is optional: without it\n"+
			"a user's email becomes the primary address, unverified). Django password hashes\n"+
			"log in as they are and are rehashed at the first login; unusable ones import\n"+
			"without a password; inactive users are skipped. No mail is sent, no event\n"+
			"emitted. Progress goes to standard error, the summary to standard output.")
	format := fs.String("format", transfer.FormatUseremail, "`useremail` or django")
	dryRun := fs.Bool("dry-run", false, "check everything and roll back: nothing is written")
	if err := parseFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{cmd: fs.Name(), msg: "want one FILE (or - for standard input)"}
	}
	if *format != transfer.FormatUseremail && *format != transfer.FormatDjango {
		return usageError{cmd: fs.Name(), msg: fmt.Sprintf("--format %q: want useremail or django", *format)}
	}
	var in io.Reader = e.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		in = f
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if db.Dialect() == store.SQLite {
		// An import holds SQLite's write lock until it commits, which a
		// server on the file would wait for and then fail its writes: the
		// server's lock file keeps the two apart.
		cfg, _ := loadConfig(e.Getenv)
		lock, err := store.LockSQLite(cfg.DatabaseURL)
		var inUse *store.FileInUseError
		if errors.As(err, &inUse) {
			holder := "useremail serve"
			if inUse.PID > 0 {
				holder += fmt.Sprintf(" (pid %d)", inUse.PID)
			}
			return fmt.Errorf("import: %s holds %s; stop it first: an import into SQLite holds the database's write lock until it commits; nothing was imported", holder, displayURL(cfg.DatabaseURL))
		}
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer lock.Unlock()
	}
	sum, err := transfer.Import(ctx, db, in, transfer.Options{Format: *format, DryRun: *dryRun, Progress: e.Stderr})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, sum)
	return nil
}
