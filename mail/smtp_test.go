package mail_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
)

func testMessage(i int) mail.Message {
	return mail.Message{
		Kind:      mail.KindEmailAdded,
		From:      `"useremail" <noreply@accounts.example.com>`,
		To:        "alice@example.com",
		Subject:   "[useremail] test",
		Text:      "hello\n",
		HTML:      "<p>hello</p>",
		MessageID: fmt.Sprintf("<outbox.%d.0011223344556677@accounts.example.com>", i),
		Date:      t0,
	}
}

func TestSMTPSenderKeepsConnections(t *testing.T) {
	sink := smtptest.Start(t, smtptest.Options{})
	s := newSMTPSender(t, sink)
	ctx := context.Background()
	for i := range 5 {
		if err := s.Send(ctx, testMessage(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := sink.Sessions(); n != 1 {
		t.Fatalf("5 mails in a row opened %d sessions, want 1", n)
	}
	// A kept connection that the server dropped is replaced unnoticed.
	sink.Stop()
	if err := sink.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, testMessage(5)); err != nil {
		t.Fatalf("send after the server restarted: %v", err)
	}
	if n := len(sink.Mails()); n != 6 {
		t.Fatalf("sink got %d mails, want 6", n)
	}
	// A failed transaction never leaves its connection for the next mail.
	sink.FailNextAt(smtptest.StageRcpt, 1, 550)
	if err := s.Send(ctx, testMessage(6)); err == nil || !mail.Permanent(err) {
		t.Fatalf("550 = %v, want a permanent error", err)
	}
	before := sink.Sessions()
	if err := s.Send(ctx, testMessage(7)); err != nil {
		t.Fatal(err)
	}
	if sink.Sessions() != before+1 {
		t.Fatal("the connection of a failed transaction was reused")
	}
}

func TestSMTPSenderTLSAndAuth(t *testing.T) {
	tests := []struct {
		name string
		opts smtptest.Options
	}{
		{"STARTTLS", smtptest.Options{TLS: true, Username: "relay-user", Password: "p@ss:w/rd"}},
		{"implicit TLS", smtptest.Options{ImplicitTLS: true, Username: "relay-user", Password: "p@ss:w/rd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := smtptest.Start(t, tt.opts)
			if err := newSMTPSender(t, sink).Send(context.Background(), testMessage(1)); err != nil {
				t.Fatal(err)
			}
			got := sink.Mails()
			if len(got) != 1 || !got[0].TLS || got[0].User != "relay-user" {
				t.Fatalf("mails = %+v, want one over TLS from relay-user", got)
			}

			// A wrong password is a temporary error (the operator can fix
			// it), and the error does not show the password.
			cfg, err := mail.ParseSMTPURL(sink.URL())
			if err != nil {
				t.Fatal(err)
			}
			cfg.Password = "wrong-password"
			cfg.TLSConfig = sink.ClientTLSConfig()
			s, err := mail.NewSMTPSender(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Send(context.Background(), testMessage(2))
			if err == nil || mail.Permanent(err) || strings.Contains(err.Error(), "wrong-password") {
				t.Fatalf("wrong password: %v, want a temporary error without the password", err)
			}
			t.Logf("wrong password: %v", err)
		})
	}
}

func TestSMTPSenderWithoutTLSNeverSendsThePassword(t *testing.T) {
	// A server that offers no STARTTLS: PLAIN would put the password on
	// the wire in clear, so the sender refuses to authenticate.
	sink := smtptest.Start(t, smtptest.Options{})
	cfg, err := mail.ParseSMTPURL(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Username, cfg.Password = "relay-user", "secret"
	s, err := mail.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Send(context.Background(), testMessage(1))
	if err == nil || mail.Permanent(err) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
	if n := len(sink.Mails()); n != 0 {
		t.Fatalf("sink got %d mails", n)
	}
	t.Logf("no TLS: %v", err)
}

func TestSMTPSenderUntrustedCertificate(t *testing.T) {
	sink := smtptest.Start(t, smtptest.Options{TLS: true})
	cfg, err := mail.ParseSMTPURL(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := mail.NewSMTPSender(cfg) // system roots: the sink's certificate is unknown
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Send(context.Background(), testMessage(1))
	if err == nil || mail.Permanent(err) {
		t.Fatalf("err = %v, want a temporary TLS error", err)
	}
	t.Logf("untrusted certificate: %v", err)
}

func TestSMTPSenderTimeout(t *testing.T) {
	// A server that accepts the connection and never greets.
	sink := smtptest.Start(t, smtptest.Options{})
	sink.Stop()
	ln := listenSilently(t, sink.Addr())
	defer ln.Close()
	cfg, err := mail.ParseSMTPURL(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.CommandTimeout = 200 * time.Millisecond
	s, err := mail.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	err = s.Send(context.Background(), testMessage(1))
	if err == nil || mail.Permanent(err) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
	t.Logf("timeout: %v", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the send took %v despite a 200ms command timeout", d)
	}
}
