package mail

import (
	"context"
	"log/slog"
	"time"
)

// Message is one rendered mail, ready for a Sender.
type Message struct {
	// Kind is the outbox kind the mail was rendered from.
	Kind string
	// From is the RFC 5322 From address, with a display name.
	From string
	// To is the recipient's address as stored (its display form, which may
	// hold Unicode); senders derive the envelope address from it.
	To string
	// Subject, Text and HTML are the rendered subject and the two
	// alternative bodies.
	Subject string
	Text    string
	HTML    string
	// MessageID is the Message-ID header, angle brackets included. It is
	// stable per outbox row, so a rare duplicate after a crash is
	// recognisable.
	MessageID string
	// Date is the Date header.
	Date time.Time
	// Links are the signed links in the mail (none for notices). They are
	// credentials: only the dev-mode LogSender shows them.
	Links []string
	// Language is the mail's language, a BCP 47 tag: its Content-Language.
	Language string

	fallbacks []string // message ids said in English for want of a translation
}

// Sender delivers rendered mails. Send must be safe for concurrent use; its
// error is classified with Permanent.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender is the dev-mode Sender: its mail goes to the log, not to a mail
// server, as one record per mail with the recipient, the subject, the
// message id and the links on their own so that a developer can click
// them. It never logs the bodies. The links are credentials: it is for dev
// mode only, where useremail serve uses it in place of SMTP.
type LogSender struct {
	logger *slog.Logger
}

// NewLogSender returns a LogSender that logs to logger (nil: slog.Default()).
func NewLogSender(logger *slog.Logger) *LogSender {
	if logger == nil {
		logger = slog.Default()
	}
	return &LogSender{logger: logger}
}

// Send delivers m to the log, at Info, and reports success: for the
// dispatcher, which then records the mail as sent, the log is where it
// went.
func (s *LogSender) Send(ctx context.Context, m Message) error {
	attrs := []any{
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("message_id", m.MessageID),
		slog.String("kind", m.Kind),
		slog.String("language", m.Language),
	}
	switch len(m.Links) {
	case 0:
	case 1:
		attrs = append(attrs, slog.String("link", m.Links[0]))
	default:
		attrs = append(attrs, slog.Any("links", m.Links))
	}
	s.logger.InfoContext(ctx, "mail: delivered to the log (dev mode)", attrs...)
	return nil
}
