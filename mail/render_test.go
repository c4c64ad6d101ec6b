package mail

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/useremail/useremail/locale"
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

// goldenMail is a mail for the golden files, name.txt and name.html.
type goldenMail struct {
	name string
	msg  store.NewMessage
}

// goldenMails are one mail of every kind (two of password_changed: by a
// change and by a reset), for the golden files.
func goldenMails() []goldenMail {
	return []goldenMail{
		{KindVerify, Verify(42, "alice@example.com", 7)},
		{KindChangeEmail, ChangeEmail(42, "alice@new.example", 3)},
		{KindEmailAdded, EmailAdded(42, "alice@example.com", "alice@work.example")},
		{KindEmailRemoved, EmailRemoved(42, "alice@example.com", "alice@work.example")},
		{KindPrimaryChanged, PrimaryChanged(42, "alice@example.com", "alice@new.example")},
		{KindPasswordReset, PasswordReset(42, "alice@example.com", 4822352720646439091)},
		{KindPasswordChanged, PasswordChanged(42, "alice@example.com", "")},
		{KindPasswordChanged + "_by_reset", PasswordChanged(42, "alice@example.com", "alice@work.example")},
		{KindAccountDeleted, AccountDeleted("alice@example.com", "")},
	}
}

// TestGolden renders every kind in every language: testdata/golden/<lang>/.
func TestGolden(t *testing.T) {
	c := goldenComposer(t)
	kinds := map[string]bool{}
	for _, g := range goldenMails() {
		kinds[g.msg.Kind] = true
	}
	if len(kinds) != len(Kinds) {
		t.Fatalf("golden mails of %d kinds for %d kinds", len(kinds), len(Kinds))
	}
	for _, lang := range locale.Languages {
		for _, g := range goldenMails() {
			msg := g.msg
			t.Run(lang+"/"+g.name, func(t *testing.T) {
				row := store.Message{ID: 1001, Kind: msg.Kind, Recipient: msg.Recipient, UserID: msg.UserID,
					Payload: msg.Payload, CreatedAt: t0}
				m, err := c.compose(row, lang, t0)
				if err != nil {
					t.Fatalf("compose: %v", err)
				}
				if m.Language != lang {
					t.Errorf("Language = %q, want %q", m.Language, lang)
				}
				if len(m.fallbacks) > 0 {
					t.Errorf("said in English for want of %s: %v", lang, m.fallbacks)
				}
				text := "From: " + m.From + "\nTo: " + m.To + "\nSubject: " + m.Subject +
					"\nContent-Language: " + m.Language + "\nMessage-ID: " + m.MessageID + "\n\n" + m.Text
				checkGolden(t, lang+"/"+g.name+".txt", text)
				checkGolden(t, lang+"/"+g.name+".html", m.HTML)
				if !strings.Contains(m.HTML, `<html lang="`+lang+`">`) {
					t.Errorf("the HTML part does not say lang=%q", lang)
				}
			})
		}
	}
}

// TestLanguageChoice: the payload's language first, then the user's, then
// English; an unknown tag is matched to the nearest offered language.
func TestLanguageChoice(t *testing.T) {
	c := goldenComposer(t)
	withLang := Verify(42, "alice@example.com", 7)
	withLang.Payload = strings.Replace(withLang.Payload, "}", `,"lang":"fr"}`, 1)
	for _, tt := range []struct {
		msg        store.NewMessage
		user, want string
	}{
		{Verify(42, "alice@example.com", 7), "", "en"},
		{Verify(42, "alice@example.com", 7), "de", "de"},
		{Verify(42, "alice@example.com", 7), "es-MX", "es"},
		{Verify(42, "alice@example.com", 7), "ja", "en"},
		{withLang, "de", "fr"},
	} {
		m, err := c.compose(store.Message{ID: 1, Kind: tt.msg.Kind, Recipient: tt.msg.Recipient, UserID: 42, Payload: tt.msg.Payload, CreatedAt: t0}, tt.user, t0)
		if err != nil || m.Language != tt.want {
			t.Errorf("user %q, payload %s: language %q (%v), want %q", tt.user, tt.msg.Payload, m.Language, err, tt.want)
		}
	}
}

// TestMissingTranslation deletes one German message: every German mail
// still renders, with that sentence in English.
func TestMissingTranslation(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, lang := range locale.Languages {
		b, err := fs.ReadFile(locale.MessageFiles(), lang+".toml")
		if err != nil {
			t.Fatal(err)
		}
		if lang == "de" {
			re := regexp.MustCompile(`(?m)^"mail\.if_you" = .*$`)
			if !re.Match(b) {
				t.Fatal("de.toml has no mail.if_you to delete")
			}
			b = re.ReplaceAll(b, nil)
		}
		fsys[lang+".toml"] = &fstest.MapFile{Data: b}
	}
	catalog, err := locale.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signer.New([][]byte{[]byte("golden-test-key-not-a-secret")}, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	c, err := newComposer(Config{Signer: s, PublicURL: "https://accounts.example.com/", Catalog: catalog})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldenMails() {
		msg := g.msg
		m, err := c.compose(store.Message{ID: 1, Kind: msg.Kind, Recipient: msg.Recipient, UserID: 42, Payload: msg.Payload, CreatedAt: t0}, "de", t0)
		if err != nil {
			t.Fatalf("%s: %v", msg.Kind, err)
		}
		if !strings.Contains(m.Text, "Hallo,") {
			t.Errorf("%s is not in German any more:\n%s", msg.Kind, m.Text)
		}
		uses := msg.Kind == KindEmailAdded || msg.Kind == KindEmailRemoved || msg.Kind == KindPrimaryChanged ||
			msg.Kind == KindPasswordChanged || msg.Kind == KindAccountDeleted
		if has := strings.Contains(m.Text, "If this was you, there is nothing to do."); has != uses {
			t.Errorf("%s: English fallback present = %v, want %v:\n%s", msg.Kind, has, uses, m.Text)
		}
		if uses && (len(m.fallbacks) != 1 || m.fallbacks[0] != "mail.if_you") {
			t.Errorf("%s: fallbacks %v", msg.Kind, m.fallbacks)
		}
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
		{AccountDeleted("a&b@example.com", ""), nil, "", "a&b@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.msg.Kind, func(t *testing.T) {
			m, err := c.compose(store.Message{ID: 1, Kind: tt.msg.Kind, Recipient: tt.msg.Recipient, UserID: 42,
				Payload: tt.msg.Payload, CreatedAt: t0}, "", t0)
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
		{"reset without state", KindPasswordReset, `{"email":"a@example.com"}`, 42},
		{"unknown kind", "welcome", `{"email":"a@example.com"}`, 42},
		{"no user", KindVerify, `{"email":"a@example.com","email_id":1}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.compose(store.Message{ID: 1, Kind: tt.kind, Recipient: "a@example.com", UserID: tt.userID, Payload: tt.payload}, "", t0)
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
			if got := durationWords(locale.Default().Localizer("en"), tt.d); got != tt.want {
				t.Fatalf("durationWords(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
	for lang, want := range map[string]string{"de": "3 Tage", "fr": "1 heure", "es": "1 minuto"} {
		d := map[string]time.Duration{"de": 72 * time.Hour, "fr": time.Hour, "es": time.Minute}[lang]
		if got := durationWords(locale.Default().Localizer(lang), d); got != want {
			t.Errorf("durationWords in %s = %q, want %q", lang, got, want)
		}
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
				if _, err := c.compose(row, "", t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTemplateDir: a file in the template directory replaces the embedded
// one of its name; a broken one fails NewDispatcher, naming file and line.
func TestTemplateDir(t *testing.T) {
	s, err := signer.New([][]byte{[]byte("golden-test-key-not-a-secret")}, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "mail", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("email_added.txt", `{{define "subject"}}Custom: {{.T "mail.email_added.subject"}}{{end}}
{{define "body"}}Added {{.Email}} at ACME.{{end}}`)
	c, err := newComposer(Config{Signer: s, PublicURL: "https://accounts.example.com/", TemplateDir: dir, ProductName: "ACME"})
	if err != nil {
		t.Fatal(err)
	}
	msg := EmailAdded(42, "alice@example.com", "alice@work.example")
	m, err := c.compose(store.Message{ID: 1, Kind: msg.Kind, Recipient: msg.Recipient, UserID: 42, Payload: msg.Payload, CreatedAt: t0}, "fr", t0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Custom: [ACME] Une adresse e-mail a été ajoutée à votre compte" || !strings.Contains(m.Text, "Added alice@work.example at ACME.") {
		t.Errorf("the override was not used: %q\n%s", m.Subject, m.Text)
	}
	if !strings.Contains(m.HTML, "ACME") || m.From != `"ACME" <useremail@localhost>` {
		t.Errorf("the brand is not in the embedded HTML part or the From: %q", m.From)
	}

	for _, tt := range []struct{ text, want string }{
		{"{{define \"subject\"}}x{{end}}\n{{define \"body\"}}\n{{.Email}\n{{end}}", "email_added.txt:3"},
		{"{{define \"subject\"}}x{{end}}\n{{define \"body\"}}{{.Nope}}{{end}}", "email_added.txt:2"},
	} {
		write("email_added.txt", tt.text)
		_, err := newComposer(Config{Signer: s, PublicURL: "https://accounts.example.com/", TemplateDir: dir})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "mail", tt.want)) {
			t.Errorf("broken override: %v; want it named %s", err, tt.want)
		}
	}
}
