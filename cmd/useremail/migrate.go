package main

import (
	"context"
	"fmt"
)

// cmdMigrate applies pending migrations and exits.
func cmdMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("migrate", "useremail migrate",
		"Apply the pending database migrations to USEREMAIL_DATABASE_URL (creating an SQLite\n"+
			"file that does not exist yet), then exit. useremail serve does this itself unless\n"+
			"--no-migrate.")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	db, logger, err := adminStore(ctx, e, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate(ctx, db, logger); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, "database is up to date")
	return nil
}
