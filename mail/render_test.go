package mail

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var t0 = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

// goldenComposer renders with a fixed key, clock and configuration, so that
// its output only changes when the templates or the code do.
func goldenComposer(t testing.TB) *composer {
	t.Helper()
	s, err := signer.New([][]byte{[]byte("golden-test-key-not-a-secret")}, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	c, err := newComposer(Config{Signer: s, PublicURL: "https://accounts.example.com/", From: "noreply@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGolden(t *testing.T) {
	c := goldenComposer(t)
	tests := []struct {
		name string
		msg  store.NewMessage
	}{
		{KindVerify, Verify(42, "alice@example.com", 7)},
		{KindChangeEmail, ChangeEmail(42, "alice@new.example", 3)},
		{KindEmailAdded, EmailAdded(42, "alice@example.com", "alice@work.example")},
		{KindEmailRemoved, EmailRemoved(42, "alice@example.com", "alice@work.example")},
		{KindPrimaryChanged, PrimaryChanged(42, "alice@example.com", "alice@new.example")},
		{KindPasswordReset, PasswordReset(42, "alice@example.com", 4822352720646439091)},
		{KindPasswordChanged, PasswordChanged(42, "alice@example.com", "")},
		{KindPasswordChanged + "_by_reset", PasswordChanged(42, "alice@example.com", "alice@work.example")},
		{KindAccountDeleted, AccountDeleted("alice@example.com")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := store.Message{ID: 1001, Kind: tt.msg.Kind, Recipient: tt.msg.Recipient, UserID: tt.msg.UserID,
				Payload: tt.msg.Payload, CreatedAt: t0}
			m, err := c.compose(row, t0)
			if err != nil {
				t.Fatalf("compose: %v", err)
			}
			text := "From: " + m.From + "\nTo: " + m.To + "\nSubject: " + m.Subject +
				"\nMessage-ID: " + m.MessageID + "\n\n" + m.Text
			checkGolden(t, tt.name+".txt", text)
			checkGolden(t, tt.name+".html", m.HTML)
		})
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update ./mail to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the rendering (run with -update to accept it):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func TestComposeContent(t *testing.T) {
	c := goldenComposer(t)
	verifyLink := regexp.MustCompile(`^https://accounts\.example\.com/users/email-verify/v1\.[A-Za-z0-9_.-]+/NDI$`)
	changeLink := regexp.MustCompile(`^https://accounts\.example\.com/users/email-set-primary/v1\.[A-Za-z0-9_.-]+/NDI/$`)
	resetLink := regexp.MustCompile(`^https://accounts\.example\.com/auth/password-reset/NDI/v1\.[A-Za-z0-9_.-]+/$`)
	// The one address a notice may name: where to ask for a reset.
	resetRequest := "https://accounts.example.com" + DefaultResetRequestPath
	tests := []struct {
		msg     store.NewMessage
		link    *regexp.Regexp
		expiry  string
		mention string
	}{
		{Verify(42, "alice@example.com", 7), verifyLink, "This link expires in 3 days.", "alice@example.com"},
		{ChangeEmail(42, "alice@new.example", 3), changeLink, "This link expires in 24 hours.", "alice@new.example"},
		{EmailAdded(42, "alice@example.com", "a&b@work.example"), nil, "", "a&b@work.example"},
		{EmailRemoved(42, "alice@example.com", "old@example.com"), nil, "", "old@example.com"},
		{PrimaryChanged(42, "alice@example.com", "alice@new.example"), nil, "", "alice@new.example"},
		{PasswordReset(42, "alice@example.com", 9), resetLink, "This link expires in 1 hour", "alice@example.com"},
		{PasswordChanged(42, "alice@example.com", "a&b@work.example"), nil, "", "a&b@work.example"},
		{AccountDeleted("a&b@example.com"), nil, "", "a&b@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.msg.Kind, func(t *testing.T) {
			m, err := c.compose(store.Message{ID: 1, Kind: tt.msg.Kind, Recipient: tt.msg.Recipient, UserID: 42,
				Payload: tt.msg.Payload, CreatedAt: t0}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if m.To != tt.msg.Recipient || !m.Date.Equal(t0) || m.From != `"useremail" <noreply@example.com>` {
				t.Fatalf("To/Date/From = %q %v %q", m.To, m.Date, m.From)
			}
			if !strings.HasPrefix(m.Subject, "[useremail] ") || strings.ContainsAny(m.Subject, "\r\n") {
				t.Fatalf("subject = %q", m.Subject)
			}
			if !strings.Contains(m.Text, tt.mention) || !strings.Contains(m.Text, "If this was not you") &&
				!strings.Contains(m.Text, "If you did not") {
				t.Fatalf("text lacks the address or the not-you sentence:\n%s", m.Text)
			}
			if !strings.Contains(m.HTML, strings.ReplaceAll(tt.mention, "&", "&amp;")) {
				t.Fatalf("HTML lacks the escaped address %q:\n%s", tt.mention, m.HTML)
			}
			if tt.link == nil {
				text := strings.ReplaceAll(m.Text, resetRequest, "")
				html := strings.ReplaceAll(m.HTML, `href="`+resetRequest+`"`, "")
				if len(m.Links) != 0 || strings.Contains(text, "http") || strings.Contains(html, "href") {
					t.Fatalf("a notice has a link: %v", m.Links)
				}
				if tt.msg.Kind != KindAccountDeleted && !strings.Contains(m.Text, resetRequest) {
					t.Fatalf("a notice does not point to the reset request:\n%s", m.Text)
				}
				return
			}
			if len(m.Links) != 1 || !tt.link.MatchString(m.Links[0]) {
				t.Fatalf("links = %q", m.Links)
			}
			if !strings.Contains(m.Text, "\n"+m.Links[0]+"\n") || !strings.Contains(m.Text, tt.expiry) {
				t.Fatalf("text lacks the link on its own line or %q:\n%s", tt.expiry, m.Text)
			}
			if !strings.Contains(m.HTML, `href="`+m.Links[0]+`"`) || !strings.Contains(m.HTML, ">"+m.Links[0]+"</a>") ||
				!strings.Contains(m.HTML, tt.expiry) {
				t.Fatalf("HTML lacks the clickable link, the plain link or the expiry:\n%s", m.HTML)
			}
		})
	}
}

func TestComposeRejects(t *testing.T) {
	c := goldenComposer(t)
	tests := []struct {
		name, kind, payload string
		userID              int64
	}{
		{"bad JSON", KindVerify, `{"email":`, 42},
		{"no email", KindEmailAdded, `{}`, 42},
		{"verify without email_id", KindVerify, `{"email":"a@example.com"}`, 42},
		{"change without seq", KindChangeEmail, `{"email":"a@example.com"}`, 42},
		{"unknown kind", "welcome", `{"email":"a@example.com"}`, 42},
		{"no user", KindVerify, `{"email":"a@example.com","email_id":1}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.compose(store.Message{ID: 1, Kind: tt.kind, Recipient: "a@example.com", UserID: tt.userID, Payload: tt.payload}, t0)
			if err == nil || !Permanent(err) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
		})
	}
}

func TestDurationWords(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{72 * time.Hour, "3 days"},
		{48 * time.Hour, "2 days"},
		{24 * time.Hour, "24 hours"},
		{36 * time.Hour, "36 hours"},
		{time.Hour, "1 hour"},
		{90 * time.Minute, "90 minutes"},
		{time.Minute, "1 minute"},
		{30 * time.Second, "30 seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := durationWords(tt.d); got != tt.want {
				t.Fatalf("durationWords(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	a := messageID(7, t0, "example.com")
	if !regexp.MustCompile(`^<outbox\.7\.[0-9a-f]{16}@example\.com>$`).MatchString(a) {
		t.Fatalf("messageID = %q", a)
	}
	if b := messageID(7, t0.In(time.FixedZone("x", 3600)), "example.com"); b != a {
		t.Fatalf("same row, other time zone: %q != %q", b, a)
	}
	if b := messageID(7, t0.Add(time.Microsecond), "example.com"); b == a {
		t.Fatalf("another row with the same id has the same Message-ID %q", b)
	}
}

// BenchmarkCompose measures the rendering of one mail of each kind, links
// signed: the work the pooled render buffers serve.
func BenchmarkCompose(b *testing.B) {
	c := goldenComposer(b)
	msgs := []store.NewMessage{
		Verify(42, "alice@example.com", 7),
		ChangeEmail(42, "alice@new.example", 3),
		EmailAdded(42, "alice@example.com", "alice@work.example"),
	}
	for _, m := range msgs {
		b.Run(m.Kind, func(b *testing.B) {
			row := store.Message{ID: 1001, Kind: m.Kind, Recipient: m.Recipient, UserID: m.UserID, Payload: m.Payload, CreatedAt: t0}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.compose(row, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
