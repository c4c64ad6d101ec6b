package mail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

func TestConstructors(t *testing.T) {
	tests := []struct {
		got                      store.NewMessage
		kind, recipient, payload string
	}{
		{mail.Verify(42, "a@example.com", 7), "verify", "a@example.com", `{"email":"a@example.com","email_id":7}`},
		{mail.ChangeEmail(42, "new@example.com", 3), "change_email", "new@example.com", `{"email":"new@example.com","seq":3}`},
		{mail.EmailAdded(42, "a@example.com", "b@example.com"), "email_added", "a@example.com", `{"email":"b@example.com"}`},
		{mail.EmailRemoved(42, "a@example.com", "b@example.com"), "email_removed", "a@example.com", `{"email":"b@example.com"}`},
		{mail.PrimaryChanged(42, "old@example.com", "new@example.com"), "primary_changed", "old@example.com", `{"email":"new@example.com"}`},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			if tt.got.Kind != tt.kind || tt.got.Recipient != tt.recipient || tt.got.UserID != 42 || tt.got.Payload != tt.payload {
				t.Fatalf("got %+v, want kind %s, recipient %s, payload %s", tt.got, tt.kind, tt.recipient, tt.payload)
			}
		})
	}
}

// parsedMail is a mail as the sink received it.
type parsedMail struct {
	header netmail.Header
	text   string
	html   string
}

func parseMail(t *testing.T, raw string) parsedMail {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	p := parsedMail{header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		types = append(types, ct)
		switch ct {
		case "text/plain":
			p.text = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "text/html":
			p.html = string(b)
		}
	}
	// RFC 2046: the preferred alternative last.
	if strings.Join(types, ",") != "text/plain,text/html" {
		t.Fatalf("parts = %v, want text/plain then text/html", types)
	}
	return p
}

var messageIDPattern = regexp.MustCompile(`^<outbox\.(\d+)\.[0-9a-f]{16}@accounts\.example\.com>$`)

func TestSMTPConversation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		d := newDispatcher(t, f.config(t))
		verifyID := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))
		f.clock.Advance(time.Minute)
		runOnce(t, d, 1)

		mails := f.sink.Mails()
		if len(mails) != 1 {
			t.Fatalf("sink got %d mails, want 1", len(mails))
		}
		got := mails[0]
		if got.From != "noreply@accounts.example.com" || len(got.To) != 1 || got.To[0] != "alice@example.com" {
			t.Fatalf("envelope = %s -> %v", got.From, got.To)
		}
		p := parseMail(t, got.Data)
		h := p.header
		for name, want := range map[string]string{
			"From":           `"useremail" <noreply@accounts.example.com>`,
			"To":             "<alice@example.com>",
			"Subject":        "[useremail] Confirm your email address",
			"Auto-Submitted": "auto-generated",
		} {
			if h.Get(name) != want {
				t.Fatalf("%s = %q, want %q", name, h.Get(name), want)
			}
		}
		if date, err := h.Date(); err != nil || !date.Equal(t0.Add(time.Minute)) {
			t.Fatalf("Date = %v, %v; want the clock's %v", date, err, t0.Add(time.Minute))
		}
		id := messageIDPattern.FindStringSubmatch(h.Get("Message-ID"))
		if id == nil || id[1] != fmt.Sprint(verifyID) {
			t.Fatalf("Message-ID = %q", h.Get("Message-ID"))
		}
		if h.Get("User-Agent") != "" || h.Get("X-Mailer") != "" {
			t.Fatalf("mailer headers leak: %q %q", h.Get("User-Agent"), h.Get("X-Mailer"))
		}

		// The link in the text part is a working verify link for this address.
		link := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(publicURL) + `/users/email-verify/([^/\s]+)/([^/\s]+)$`).FindStringSubmatch(p.text)
		if link == nil {
			t.Fatalf("no verify link on a line of its own in:\n%s", p.text)
		}
		claims, err := f.signer.Verify(link[1], signer.PurposeVerify, 72*time.Hour)
		if err != nil {
			t.Fatalf("verify token: %v", err)
		}
		if claims.UserID != f.userID || claims.Email != "alice@example.com" || claims.State != f.emailID || !claims.IssuedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("claims = %+v", claims)
		}
		if uid, err := signer.DecodeUserID(link[2]); err != nil || uid != f.userID {
			t.Fatalf("uidb64 %q = %d, %v", link[2], uid, err)
		}
		if _, err := f.signer.Verify(link[1], signer.PurposeSetPrimary, 72*time.Hour); err == nil {
			t.Fatal("a verify token passes as a set-primary token")
		}
		if !strings.Contains(p.text, "This link expires in 3 days.") {
			t.Fatalf("text lacks the expiry:\n%s", p.text)
		}
		if !strings.Contains(p.html, `href="`+link[0]+`"`) {
			t.Fatalf("HTML lacks the link %s", link[0])
		}

		m := f.message(t, verifyID)
		if m.Status != store.StatusSent || m.Attempts != 1 || m.SentAt == nil || !m.SentAt.Equal(t0.Add(time.Minute)) || m.LastError != "" {
			t.Fatalf("row after sending = %+v", m)
		}
		// Nothing is due any more.
		runOnce(t, d, 0)
	})
}

func TestChangeEmailLinkAndIDNEnvelope(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		d := newDispatcher(t, f.config(t))
		f.enqueue(t, mail.ChangeEmail(f.userID, "jürgen@bücher.example", 5))
		runOnce(t, d, 1)
		got := f.sink.Wait(t, 1, time.Second)[0]
		if len(got.To) != 1 || got.To[0] != "jürgen@xn--bcher-kva.example" {
			t.Fatalf("envelope recipient = %q, want the A-label domain", got.To)
		}
		p := parseMail(t, got.Data)
		if to, err := p.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "jürgen@bücher.example" {
			t.Fatalf("To = %q (%v), want the address as the user wrote it", p.header.Get("To"), err)
		}
		link := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(publicURL) + `/users/email-set-primary/([^/\s]+)/([^/\s]+)/$`).FindStringSubmatch(p.text)
		if link == nil {
			t.Fatalf("no set-primary link with its trailing slash in:\n%s", p.text)
		}
		claims, err := f.signer.Verify(link[1], signer.PurposeSetPrimary, 24*time.Hour)
		if err != nil || claims.UserID != f.userID || claims.Email != "jürgen@bücher.example" || claims.State != 5 {
			t.Fatalf("claims = %+v, %v", claims, err)
		}
		if !strings.Contains(p.text, "This link expires in 24 hours.") {
			t.Fatalf("text lacks the expiry:\n%s", p.text)
		}
	})
}

func TestMessageIDStableAcrossRetries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		cfg := f.config(t)
		d := newDispatcher(t, cfg)
		id := f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", "bob@example.com"))
		f.sink.FailNextAt(smtptest.StageData, 1, 451)
		runOnce(t, d, 1)
		if m := f.message(t, id); m.Status != store.StatusQueued || m.Attempts != 1 || !strings.Contains(m.LastError, "451") {
			t.Fatalf("after a 451 = %+v", m)
		}
		f.clock.Advance(time.Hour)
		runOnce(t, d, 1)
		data := f.sink.DataReceived()
		if len(data) != 2 || data[0].Reply != 451 || data[1].Reply != 250 {
			t.Fatalf("data received = %d, want a refused then an accepted one", len(data))
		}
		first, second := parseMail(t, data[0].Data).header, parseMail(t, data[1].Data).header
		if first.Get("Message-ID") != second.Get("Message-ID") || !messageIDPattern.MatchString(first.Get("Message-ID")) {
			t.Fatalf("Message-IDs %q and %q, want one stable id", first.Get("Message-ID"), second.Get("Message-ID"))
		}
		if first.Get("Date") == second.Get("Date") {
			t.Fatalf("both attempts have Date %q, want the clock's time of each", first.Get("Date"))
		}
	})
}

func TestSMTPServerDown(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		var c counters
		cfg := f.config(t)
		cfg.Hooks = c.hooks()
		d := newDispatcher(t, cfg)
		// One mail first, so the sender keeps a connection that the outage
		// then breaks.
		f.enqueue(t, mail.EmailRemoved(f.userID, "alice@example.com", "old@example.com"))
		runOnce(t, d, 1)

		f.sink.Stop()
		id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))
		runOnce(t, d, 1)
		m := f.message(t, id)
		now := f.clock.Now()
		if m.Status != store.StatusQueued || m.Attempts != 1 || m.LastError == "" {
			t.Fatalf("row while the server is down = %+v", m)
		}
		if m.NextAttemptAt.Before(now) || m.NextAttemptAt.After(now.Add(10*time.Second)) {
			t.Fatalf("next attempt at %v, want within the first backoff step after %v", m.NextAttemptAt, now)
		}
		if c.retry.Load() != 1 {
			t.Fatalf("OnRetry called %d times", c.retry.Load())
		}

		if err := f.sink.Restart(); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(11 * time.Second)
		runOnce(t, d, 1)
		if m := f.message(t, id); m.Status != store.StatusSent || m.Attempts != 2 {
			t.Fatalf("row after the server came back = %+v", m)
		}
		if got := f.sink.Mails(); len(got) != 2 || c.sent.Load() != 2 {
			t.Fatalf("sink has %d mails, OnSent %d; want 2 and 2", len(got), c.sent.Load())
		}
	})
}

func TestFailureClassification(t *testing.T) {
	tests := []struct {
		name       string
		stage      smtptest.Stage
		code       int
		wantStatus string
	}{
		{"451 to MAIL FROM is retried", smtptest.StageMail, 451, store.StatusQueued},
		{"421 to RCPT TO is retried", smtptest.StageRcpt, 421, store.StatusQueued},
		{"452 after DATA is retried", smtptest.StageData, 452, store.StatusQueued},
		{"550 to RCPT TO fails at once", smtptest.StageRcpt, 550, store.StatusFailed},
		{"554 after DATA fails at once", smtptest.StageData, 554, store.StatusFailed},
		{"553 to MAIL FROM fails at once", smtptest.StageMail, 553, store.StatusFailed},
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f.sink.Reset()
				var c counters
				cfg := f.config(t) // a fresh sender: no kept connection
				cfg.Hooks = c.hooks()
				d := newDispatcher(t, cfg)
				id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))
				f.sink.FailNextAt(tt.stage, 1, tt.code)
				runOnce(t, d, 1)
				m := f.message(t, id)
				if m.Status != tt.wantStatus || m.Attempts != 1 || !strings.Contains(m.LastError, fmt.Sprint(tt.code)) {
					t.Fatalf("row = %+v, want %s after 1 attempt with the code kept", m, tt.wantStatus)
				}
				if tt.wantStatus == store.StatusFailed {
					if c.failed.Load() != 1 {
						t.Fatalf("OnFailed called %d times", c.failed.Load())
					}
					// A failed message is never tried again.
					f.clock.Advance(48 * time.Hour)
					runOnce(t, d, 0)
					return
				}
				f.clock.Advance(time.Hour)
				runOnce(t, d, 1)
				if m := f.message(t, id); m.Status != store.StatusSent || m.Attempts != 2 || m.LastError != "" {
					t.Fatalf("row after the retry = %+v", m)
				}
				if c.retry.Load() != 1 || c.sent.Load() != 1 {
					t.Fatalf("OnRetry %d, OnSent %d; want 1 and 1", c.retry.Load(), c.sent.Load())
				}
			})
		}
	})
}

func TestMaxAttempts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		var c counters
		cfg := f.config(t)
		cfg.MaxAttempts = 3
		cfg.Hooks = c.hooks()
		d := newDispatcher(t, cfg)
		id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))
		f.sink.FailNext(100, 451)
		for attempt := 1; attempt <= 3; attempt++ {
			runOnce(t, d, 1)
			m := f.message(t, id)
			if m.Attempts != attempt {
				t.Fatalf("attempts = %d, want %d", m.Attempts, attempt)
			}
			f.clock.Advance(2 * time.Hour)
		}
		m := f.message(t, id)
		if m.Status != store.StatusFailed || !strings.Contains(m.LastError, "451") || !strings.Contains(m.LastError, "3 attempts") {
			t.Fatalf("row after the last attempt = %+v", m)
		}
		if c.retry.Load() != 2 || c.failed.Load() != 1 || c.sent.Load() != 0 {
			t.Fatalf("hooks: retry %d, failed %d, sent %d", c.retry.Load(), c.failed.Load(), c.sent.Load())
		}
		runOnce(t, d, 0)
		if n := len(f.sink.Mails()); n != 0 {
			t.Fatalf("sink accepted %d mails", n)
		}
	})
}

func TestUnrenderableRowsFail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		d := newDispatcher(t, f.config(t))
		badJSON := f.enqueue(t, store.NewMessage{Kind: mail.KindVerify, Recipient: "alice@example.com", UserID: f.userID, Payload: `{"email":`})
		unknown := f.enqueue(t, store.NewMessage{Kind: "newsletter", Recipient: "alice@example.com", UserID: f.userID, Payload: `{"email":"alice@example.com"}`})
		good := f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", "bob@example.com"))
		runOnce(t, d, 3)
		for id, want := range map[int64]string{badJSON: "payload", unknown: "unknown kind"} {
			if m := f.message(t, id); m.Status != store.StatusFailed || m.Attempts != 1 || !strings.Contains(m.LastError, want) {
				t.Fatalf("row %d = %+v, want failed with %q", id, m, want)
			}
		}
		// One bad row does not stop the batch.
		if m := f.message(t, good); m.Status != store.StatusSent {
			t.Fatalf("good row = %+v", m)
		}
	})
}

// gate is a Sender that blocks each send until released, then returns err
// (or passes the mail on to next).
type gate struct {
	started chan mail.Message
	release chan struct{}
	err     error
	next    mail.Sender
}

func newGate(err error, next mail.Sender) *gate {
	return &gate{started: make(chan mail.Message, 100), release: make(chan struct{}), err: err, next: next}
}

func (g *gate) Send(ctx context.Context, m mail.Message) error {
	g.started <- m
	<-g.release
	if g.err != nil {
		return g.err
	}
	if g.next != nil {
		return g.next.Send(ctx, m)
	}
	return nil
}

func TestLeaseTakeover(t *testing.T) {
	tests := []struct {
		name    string
		lateErr error // what the first dispatcher's send ends with, after its lease ran out
	}{
		{"late success", nil},
		{"late temporary failure", &textproto.Error{Code: 451, Msg: "try later"}},
		{"late permanent failure", &textproto.Error{Code: 550, Msg: "no such user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, db *store.DB) {
				f := newFixture(t, db)
				id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))

				var slowHooks, fastHooks counters
				slowCfg := f.config(t)
				g := newGate(tt.lateErr, nil)
				slowCfg.Sender, slowCfg.Hooks = g, slowHooks.hooks()
				slow := newDispatcher(t, slowCfg)
				fastCfg := f.config(t)
				fastCfg.Hooks = fastHooks.hooks()
				fast := newDispatcher(t, fastCfg)

				done := make(chan error, 1)
				go func() {
					_, err := slow.RunOnce(context.Background())
					done <- err
				}()
				<-g.started
				// The slow dispatcher hangs past its lease (2m by default); the
				// other takes the message over and delivers it.
				f.clock.Advance(2*time.Minute + time.Second)
				runOnce(t, fast, 1)
				after := f.message(t, id)
				if after.Status != store.StatusSent || after.Attempts != 2 {
					t.Fatalf("row after the takeover = %+v", after)
				}

				close(g.release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				// The late report changes nothing and counts nothing.
				if m := f.message(t, id); m.Status != after.Status || m.Attempts != after.Attempts ||
					!m.SentAt.Equal(*after.SentAt) || m.LastError != "" || !m.NextAttemptAt.Equal(after.NextAttemptAt) {
					t.Fatalf("row after the late report = %+v, want %+v", m, after)
				}
				if n := slowHooks.sent.Load() + slowHooks.retry.Load() + slowHooks.failed.Load(); n != 0 {
					t.Fatalf("the late report fired %d hooks", n)
				}
				if fastHooks.sent.Load() != 1 || len(f.sink.Mails()) != 1 {
					t.Fatalf("OnSent %d, sink %d; want 1 and 1", fastHooks.sent.Load(), len(f.sink.Mails()))
				}
			})
		})
	}
}

func TestLeaseTooShortHandsBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		var ids []int64
		for i := range 3 {
			ids = append(ids, f.enqueue(t, mail.EmailAdded(f.userID, "alice@example.com", fmt.Sprintf("b%d@example.com", i))))
		}
		cfg := f.config(t)
		cfg.Workers = 1
		inner := cfg.Sender
		var once sync.Once
		// The first send is slow: afterwards too little of the batch's lease
		// is left to start another send safely.
		cfg.Sender = senderFunc(func(ctx context.Context, m mail.Message) error {
			once.Do(func() { f.clock.Advance(time.Minute) })
			return inner.Send(ctx, m)
		})
		d := newDispatcher(t, cfg)
		runOnce(t, d, 1)
		statuses := map[string]int{}
		for _, id := range ids {
			m := f.message(t, id)
			statuses[m.Status]++
			if m.Status == store.StatusQueued && (m.Attempts != 0 || m.NextAttemptAt.After(f.clock.Now())) {
				t.Fatalf("handed-back row = %+v, want due now with its attempt given back", m)
			}
		}
		if statuses[store.StatusSent] != 1 || statuses[store.StatusQueued] != 2 {
			t.Fatalf("statuses = %v, want 1 sent and 2 handed back", statuses)
		}
		runOnce(t, d, 2)
		if n := len(f.sink.Mails()); n != 3 {
			t.Fatalf("sink got %d mails, want 3", n)
		}
	})
}

func TestLogSender(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		var buf bytes.Buffer
		var mu sync.Mutex
		cfg := f.config(t)
		cfg.Sender = mail.NewLogSender(slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil)))
		d := newDispatcher(t, cfg)
		id := f.enqueue(t, mail.Verify(f.userID, "alice@example.com", f.emailID))
		runOnce(t, d, 1)
		if m := f.message(t, id); m.Status != store.StatusSent {
			t.Fatalf("row = %+v", m)
		}
		mu.Lock()
		out := buf.String()
		mu.Unlock()
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("want one log record, got:\n%s", out)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatal(err)
		}
		link, _ := rec["link"].(string)
		if !strings.HasPrefix(link, publicURL+"/users/email-verify/") || rec["to"] != "alice@example.com" ||
			rec["subject"] != "[useremail] Confirm your email address" || !messageIDPattern.MatchString(fmt.Sprint(rec["message_id"])) {
			t.Fatalf("record = %v", rec)
		}
		if rec["msg"] != "mail: delivered to the log (dev mode)" {
			t.Errorf("msg = %q, want one that says where the mail went", rec["msg"])
		}
		if rec["level"] != "INFO" || strings.Contains(out, "Please confirm") || strings.Contains(out, "<p>") {
			t.Fatalf("record has the wrong level or a body: %s", out)
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNewDispatcherChecksConfig(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	s, _ := signer.New([][]byte{testKey}, nil)
	ok := mail.Config{DB: db, Signer: s, Sender: mail.NewLogSender(nil), PublicURL: publicURL}
	if _, err := mail.NewDispatcher(ok); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*mail.Config)
	}{
		{"no DB", func(c *mail.Config) { c.DB = nil }},
		{"no signer", func(c *mail.Config) { c.Signer = nil }},
		{"no sender", func(c *mail.Config) { c.Sender = nil }},
		{"no public URL", func(c *mail.Config) { c.PublicURL = "" }},
		{"relative public URL", func(c *mail.Config) { c.PublicURL = "/base" }},
		{"public URL with query", func(c *mail.Config) { c.PublicURL = publicURL + "?x=1" }},
		{"bad From", func(c *mail.Config) { c.From = "not an address" }},
		{"lease shorter than a send", func(c *mail.Config) { c.Lease, c.SendTimeout = time.Minute, time.Minute }},
		{"product with newline", func(c *mail.Config) { c.ProductName = "a\nBcc: x@example.com" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.modify(&c)
			if _, err := mail.NewDispatcher(c); err == nil {
				t.Fatal("NewDispatcher accepted it")
			}
		})
	}
}

func TestRunOnceOnClosedStore(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	s, _ := signer.New([][]byte{testKey}, nil)
	d, err := mail.NewDispatcher(mail.Config{DB: db, Signer: s, Sender: mail.NewLogSender(quietLogger()), PublicURL: publicURL, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := d.RunOnce(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("RunOnce on a closed store = %v, want the claim's error", err)
	}
}
