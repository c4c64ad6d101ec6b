package main

import (
	"io"
	"log"
	"net"

	gosmtp "github.com/emersion/go-smtp"
)

// smtpSink is the mail server of the services under test: it takes every
// mail and keeps none. useremail serve needs one outside dev mode, and the
// outbox then drains as it does in production.
type smtpSink struct {
	srv *gosmtp.Server
	ln  net.Listener
}

// startSMTPSink listens on a free port of 127.0.0.1.
func startSMTPSink() (*smtpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return discardSession{}, nil }))
	srv.Domain = "localhost"
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 1 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = srv.Serve(ln) }()
	return &smtpSink{srv: srv, ln: ln}, nil
}

// URL is the sink's USEREMAIL_SMTP_URL.
func (s *smtpSink) URL() string { return "smtp://" + s.ln.Addr().String() }

// Close stops the sink.
func (s *smtpSink) Close() { _ = s.srv.Close() }

// discardSession accepts a mail and forgets it.
type discardSession struct{}

func (discardSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discardSession) Reset()        {}
func (discardSession) Logout() error { return nil }
