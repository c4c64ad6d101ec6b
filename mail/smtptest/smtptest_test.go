package smtptest_test

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
)

func send(s *smtptest.Server, to string) error {
	return smtp.SendMail(s.Addr(), nil, "from@example.com", []string{to}, []byte("Subject: hi\r\n\r\nhello\r\n"))
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestServer(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	if err := send(s, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	got := s.Wait(t, 1, time.Second)
	if got[0].From != "from@example.com" || len(got[0].To) != 1 || got[0].To[0] != "a@example.com" ||
		!strings.Contains(got[0].Data, "hello") || got[0].Reply != 250 {
		t.Fatalf("mail = %+v", got[0])
	}

	tests := []struct {
		stage smtptest.Stage
		code  int
	}{
		{smtptest.StageMail, 421},
		{smtptest.StageRcpt, 550},
		{smtptest.StageData, 451},
	}
	for _, tt := range tests {
		t.Run(string(tt.stage), func(t *testing.T) {
			mails, data := len(s.Mails()), len(s.DataReceived())
			s.FailNextAt(tt.stage, 2, tt.code)
			for range 2 {
				if err := send(s, "b@example.com"); code(err) != tt.code {
					t.Fatalf("err = %v, want %d", err, tt.code)
				}
			}
			if err := send(s, "c@example.com"); err != nil {
				t.Fatalf("after the failures: %v", err)
			}
			wantData := 1
			if tt.stage == smtptest.StageData {
				wantData = 3 // the data of the two refused after it was received too
			}
			if n := len(s.Mails()) - mails; n != 1 {
				t.Errorf("accepted %d more mails, want 1", n)
			}
			if n := len(s.DataReceived()) - data; n != wantData {
				t.Errorf("received the data of %d more mails, want %d", n, wantData)
			}
		})
	}

	addr := s.Addr()
	s.Stop()
	if err := send(s, "d@example.com"); err == nil {
		t.Fatal("a stopped server accepted mail")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
	}
	if err := send(s, "d@example.com"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if n := len(s.Mails()); n != 5 {
		t.Fatalf("accepted %d mails in all, want 5", n)
	}
}

func TestDataDelay(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{DataDelay: 200 * time.Millisecond})
	start := time.Now()
	if err := send(s, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("the mail was accepted after %v, want at least the delay", took)
	}
	if n := len(s.Mails()); n != 1 {
		t.Fatalf("accepted %d mails, want 1", n)
	}
}
