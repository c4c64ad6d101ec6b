package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/useremail/useremail/store"
)

const outboxUsage = `Usage:
  useremail outbox list [--status queued|sending|sent|failed] [--limit N]
  useremail outbox retry ID
  useremail outbox purge --failed [--older-than DURATION]

Show the mail outbox, newest first; queue a failed (or sent) mail again; or
delete failed mail. Sent mail is deleted by useremail serve itself once it
is older than USEREMAIL_OUTBOX_RETENTION. Run useremail outbox list --help
for its flags.
`

// cmdOutbox lists, retries and purges outbox messages.
func cmdOutbox(ctx context.Context, e env, args []string) error {
	return runGroup("outbox", outboxUsage, args, e.Stdout,
		subcommand{"list", func(args []string) error { return cmdOutboxList(ctx, e, args) }},
		subcommand{"retry", func(args []string) error { return cmdOutboxRetry(ctx, e, args) }},
		subcommand{"purge", func(args []string) error { return cmdOutboxPurge(ctx, e, args) }},
	)
}

func cmdOutboxList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("outbox list", "useremail outbox list [--status queued|sending|sent|failed] [--limit N]",
		"Show the mails of the outbox, newest first.")
	status := fs.String("status", "", "only messages in this status: queued, sending, sent or failed")
	limit := fs.Int("limit", 50, "at most this many")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	switch *status {
	case "", store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusFailed:
	default:
		return usageError{cmd: fs.Name(), msg: fmt.Sprintf("--status %q: want queued, sending, sent or failed", *status)}
	}
	if *limit < 1 {
		return usageError{cmd: fs.Name(), msg: "--limit must be at least 1"}
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	msgs, err := db.ListMessages(ctx, *status, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tRECIPIENT\tSTATUS\tATTEMPTS\tNEXT ATTEMPT\tCREATED\tLAST ERROR")
	for _, m := range msgs {
		next := "-"
		if m.Status == store.StatusQueued || m.Status == store.StatusSending {
			next = m.NextAttemptAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, m.Kind, m.Recipient, m.Status, m.Attempts,
			next, m.CreatedAt.UTC().Format(time.RFC3339), truncate(m.LastError, 80))
	}
	return w.Flush()
}

func cmdOutboxRetry(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("outbox retry", "useremail outbox retry ID",
		"Queue the failed (or sent) outbox message ID again; a running server sends it shortly.")
	if err := parseFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{cmd: fs.Name(), msg: "want one message ID"}
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id < 1 {
		return usageError{cmd: fs.Name(), msg: fmt.Sprintf("%q is not a message ID", fs.Arg(0))}
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.RetryMessage(ctx, id, time.Now()); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("outbox message %d does not exist, or is still queued or sending", id)
	} else if err != nil {
		return err
	}
	_ = db.NotifyMailQueued(ctx) // else running servers find it at their next poll
	fmt.Fprintf(e.Stdout, "message %d queued again; a running server sends it shortly\n", id)
	return nil
}

func cmdOutboxPurge(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("outbox purge", "useremail outbox purge --failed [--older-than DURATION]",
		"Delete the failed mails (those the dispatcher gave up on) from the outbox, or with\n"+
			"--older-than only those queued longer ago. Failed mail is kept until it is retried or\n"+
			"purged; sent mail is deleted by useremail serve after USEREMAIL_OUTBOX_RETENTION.")
	failed := fs.Bool("failed", false, "delete failed mail (required: the only mail purged by hand)")
	olderThan := fs.Duration("older-than", 0, "only mail queued longer ago than this, as 720h")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if !*failed {
		return usageError{cmd: fs.Name(), msg: "--failed is required (sent mail is deleted by useremail serve after USEREMAIL_OUTBOX_RETENTION)"}
	}
	if *olderThan < 0 {
		return usageError{cmd: fs.Name(), msg: "--older-than must not be negative"}
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	before := time.Now().Add(-*olderThan)
	n, err := purge(ctx, func(ctx context.Context, limit int) (int64, error) {
		return db.DeleteFailedMessages(ctx, before, limit)
	})
	if n > 0 || err == nil {
		fmt.Fprintf(e.Stdout, "%d failed %s deleted\n", n, plural(n, "message", "messages"))
	}
	return err
}

// plural returns one when n is 1, else many.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// cmdAudit prints a user's security events.
func cmdAudit(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("audit", "useremail audit --user ID [--limit N]", "Print the security events of user ID, oldest first.")
	user := fs.Int64("user", 0, "the user's id")
	limit := fs.Int("limit", 1000, "at most this many events")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	if *user <= 0 {
		return usageError{cmd: fs.Name(), msg: "--user ID is required"}
	}
	if *limit < 1 {
		return usageError{cmd: fs.Name(), msg: "--limit must be at least 1"}
	}
	db, _, err := adminStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer db.Close()
	events, err := db.EventsByUser(ctx, *user, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tEVENT\tEMAIL\tIP\tUSER AGENT")
	for _, ev := range events {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ev.CreatedAt.UTC().Format(time.RFC3339), ev.Event, ev.Email, ev.IP, truncate(ev.UserAgent, 60))
	}
	return w.Flush()
}

// truncate shortens s to n characters for a table cell, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
