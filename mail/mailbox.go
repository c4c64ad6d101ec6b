package mail

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Mailbox is the dev mode's mailbox: a Sender that keeps the last mails it
// delivers, links included, for the dev mailbox pages, and hands each on to
// another Sender (the log). The links are credentials: it is for dev mode
// only.
type Mailbox struct {
	next Sender
	keep int
	now  func() time.Time

	mu    sync.Mutex
	seq   int64
	mails []MailboxEntry // oldest first
}

// MailboxEntry is one delivered mail.
type MailboxEntry struct {
	ID        int64 // counts the mailbox's mails from 1
	CreatedAt time.Time
	Message
}

// NewMailbox returns a Mailbox that keeps the last keep mails (default
// 500) and passes each on to next, if any; now is its clock (nil:
// time.Now).
func NewMailbox(next Sender, keep int, now func() time.Time) *Mailbox {
	if now == nil {
		now = time.Now
	}
	return &Mailbox{next: next, keep: orDefault(keep, 500), now: now}
}

// Send keeps m, then hands it on.
func (b *Mailbox) Send(ctx context.Context, m Message) error {
	if b.next != nil {
		if err := b.next.Send(ctx, m); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.mails = append(b.mails, MailboxEntry{ID: b.seq, CreatedAt: b.now().UTC(), Message: m})
	if len(b.mails) > b.keep {
		b.mails = slices.Delete(b.mails, 0, len(b.mails)-b.keep)
	}
	return nil
}

// Mails returns the kept mails, newest first.
func (b *Mailbox) Mails() []MailboxEntry {
	b.mu.Lock()
	out := slices.Clone(b.mails)
	b.mu.Unlock()
	slices.Reverse(out)
	return out
}
