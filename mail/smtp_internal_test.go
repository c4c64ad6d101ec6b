package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"syscall"
	"testing"

	gomail "github.com/wneessen/go-mail"
)

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    SMTPConfig
		wantErr string
	}{
		{raw: "smtp://mail.example.com", want: SMTPConfig{Host: "mail.example.com", Port: 25}},
		{raw: "smtp://mail.example.com:2525", want: SMTPConfig{Host: "mail.example.com", Port: 2525}},
		{raw: "smtp://bob:s3cret@mail.example.com", want: SMTPConfig{Host: "mail.example.com", Port: 587, Username: "bob", Password: "s3cret"}},
		{raw: "smtp://bob%40example.com:p%40ss%2Fw0rd@mail.example.com:587/", want: SMTPConfig{Host: "mail.example.com", Port: 587, Username: "bob@example.com", Password: "p@ss/w0rd"}},
		{raw: "smtps://mail.example.com", want: SMTPConfig{Host: "mail.example.com", Port: 465, ImplicitTLS: true}},
		{raw: "SMTPS://u:p@[::1]:4650", want: SMTPConfig{Host: "::1", Port: 4650, ImplicitTLS: true, Username: "u", Password: "p"}},
		{raw: "", wantErr: "no scheme"},
		{raw: "mail.example.com:25", wantErr: "scheme"},
		{raw: "http://mail.example.com", wantErr: `scheme "http" is not supported`},
		{raw: "smtp://", wantErr: "no host"},
		{raw: "smtp:mail.example.com", wantErr: "no host"},
		{raw: "smtp://mail.example.com:0", wantErr: `port "0"`},
		{raw: "smtp://mail.example.com:70000", wantErr: `port "70000"`},
		{raw: "smtp://u:topsecret@mail.example.com:smtp", wantErr: "invalid port"},
		{raw: "smtp://u:topsecret@mail.example.com:99999", wantErr: `port "99999"`},
		{raw: "smtp://u:top%zzsecret@mail.example.com", wantErr: "escape"},
		{raw: "smtp://u:topsecret@mail.example.com/relay", wantErr: "path, query or fragment"},
		{raw: "smtp://mail.example.com?tls=off", wantErr: "path, query or fragment"},
		{raw: "smtp://bob@mail.example.com", wantErr: `user "bob" has no password`},
		{raw: "smtp://:topsecret@mail.example.com", wantErr: "empty user name"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseSMTPURL(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) || got.Password != tt.want.Password || got.Username != tt.want.Username {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			if strings.Contains(got.String(), "s3cret") || strings.Contains(fmt.Sprintf("%v %+v %#v", got, got, got), "s3cret") {
				t.Fatalf("the config prints its password: %v", got)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	reply := func(code int) error { return &textproto.Error{Code: code, Msg: "test"} }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"550 to RCPT", &stageError{stage: "RCPT TO", err: reply(550)}, true},
		{"554 after DATA", &stageError{stage: "end of DATA", err: reply(554)}, true},
		{"bare 552", reply(552), true},
		{"451", &stageError{stage: stageMail, err: reply(451)}, false},
		{"421", reply(421), false},
		{"535 to AUTH", &connectError{err: fmt.Errorf("SMTP AUTH failed: %w", reply(535))}, false},
		{"554 greeting", &connectError{err: reply(554)}, false},
		{"connection refused", &connectError{err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, false},
		{"DNS", &connectError{err: &net.DNSError{Err: "no such host", Name: "mail.invalid", IsNotFound: true}}, false},
		{"TLS handshake", &connectError{err: &tls.CertificateVerificationError{Err: errors.New("unknown authority")}}, false},
		{"timeout", &stageError{stage: "DATA", err: context.DeadlineExceeded}, false},
		{"reset", &stageError{stage: "end of DATA", err: syscall.ECONNRESET}, false},
		{"unrenderable", fmt.Errorf("%w: bad payload", errUnrenderable), true},
		{"bad address", &permanentError{err: errors.New("bad To")}, true},
		{"go-mail no recipients", &gomail.SendError{Reason: gomail.ErrGetRcpts}, true},
		{"go-mail connection check", &gomail.SendError{Reason: gomail.ErrConnCheck}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Permanent(tt.err); got != tt.want {
				t.Fatalf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
