package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/useremail/useremail/store"
)

// cmdOutbox lists and retries outbox messages.
func cmdOutbox(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	const use = "usage: useremail outbox list [--status queued|sending|sent|failed] [--limit N] | useremail outbox retry ID"
	if len(args) == 0 {
		return usageError{use}
	}
	db, _, err := adminStore(ctx, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("outbox list", flag.ContinueOnError)
		fs.SetOutput(stdout)
		status := fs.String("status", "", "only messages in this status")
		limit := fs.Int("limit", 50, "at most this many, newest first")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		switch *status {
		case "", store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusFailed:
		default:
			return usageError{use}
		}
		msgs, err := db.ListMessages(ctx, *status, *limit)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
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
	case "retry":
		if len(args) != 2 {
			return usageError{use}
		}
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return usageError{use}
		}
		if err := db.RetryMessage(ctx, id, time.Now()); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("outbox message %d does not exist, or is still queued or sending", id)
		} else if err != nil {
			return err
		}
		_ = db.NotifyMailQueued(ctx) // else running servers find it at their next poll
		fmt.Fprintf(stdout, "message %d queued again; a running server sends it shortly\n", id)
		return nil
	}
	return usageError{use}
}

// cmdAudit prints a user's security events.
func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stdout)
	user := fs.Int64("user", 0, "the user's id")
	limit := fs.Int("limit", 1000, "at most this many events, oldest first")
	if err := fs.Parse(args); err != nil || *user <= 0 {
		return usageError{"usage: useremail audit --user ID [--limit N]"}
	}
	db, _, err := adminStore(ctx, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer db.Close()
	events, err := db.EventsByUser(ctx, *user, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tEVENT\tEMAIL\tIP\tUSER AGENT")
	for _, e := range events {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.CreatedAt.UTC().Format(time.RFC3339), e.Event, e.Email, e.IP, truncate(e.UserAgent, 60))
	}
	return w.Flush()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
