package mail

import (
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	netmail "net/mail"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

//go:embed templates
var templateFS embed.FS

// kindTemplates are the templates of one kind of mail: the text set defines
// "subject" and, with the shared layout, "layout"; the HTML set defines
// "layout" with its own shared layout.
type kindTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// Kinds are the kinds of mail, one for each pair of embedded templates:
// templates/<kind>.txt (defining "subject" and "body") and
// templates/<kind>.html (defining "body"), each with the shared layout.txt
// or layout.html. A new kind is new files.
var Kinds = embeddedKinds()

func embeddedKinds() []string {
	names, _ := fs.Glob(templateFS, "templates/*.txt")
	var kinds []string
	for _, n := range names {
		if k := strings.TrimSuffix(path.Base(n), ".txt"); k != "layout" {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// parseTemplates parses every kind's templates, each file replaced by
// dir/mail/<name> when dir has one (dir "" means none). A file that does
// not parse is named with its line in the error.
func parseTemplates(dir string) (map[string]kindTemplates, error) {
	m := make(map[string]kindTemplates, len(Kinds))
	for _, k := range Kinds {
		text := texttemplate.New(k).Option("missingkey=error").Funcs(texttemplate.FuncMap{"wrap": wrap})
		html := htmltemplate.New(k).Option("missingkey=error")
		for _, name := range []string{"layout.txt", k + ".txt", "layout.html", k + ".html"} {
			path, src, err := templateSource(dir, name)
			if err != nil {
				return nil, err
			}
			if strings.HasSuffix(name, ".txt") {
				_, err = text.New(path).Parse(src)
			} else {
				_, err = html.New(path).Parse(src)
			}
			if err != nil {
				return nil, fmt.Errorf("mail: %w", err)
			}
		}
		m[k] = kindTemplates{text: text, html: html}
	}
	return m, nil
}

// templateSource returns template file name and the name to report it by:
// dir/mail/<name> if there is one, else the embedded file.
func templateSource(dir, name string) (string, string, error) {
	if dir != "" {
		path := filepath.Join(dir, "mail", name)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			return path, string(b), nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", "", fmt.Errorf("mail: %w", err)
		}
	}
	b, err := templateFS.ReadFile("templates/" + name)
	return name, string(b), err
}

// templateData is what the templates see.
type templateData struct {
	Product   string // the product name, "useremail" unless configured
	Recipient string // the address the mail goes to
	Email     string // the address the mail is about
	Link      string // the signed link (verify, change_email and password_reset only)
	Expiry    string // the link's lifetime in words, as "3 days"
	Subject   string // the rendered subject, for the HTML title
	Lang      string // the mail's language, a BCP 47 tag
	Button    string // the words of the "button" template's link
	// ResetURL is where a person asks for a password reset link, for the
	// notices' "if this was not you".
	ResetURL string
	Reset    bool   // password_changed: by a reset link, not a change
	Via      string // password_changed: the address the reset link went to
	L        *locale.Localizer
}

// T says message id in the mail's language, its fields filled from the
// data above ({{.Product}}, {{.Email}}, {{.Recipient}}, {{.Expiry}},
// {{.Link}}, {{.ResetURL}}, {{.Via}}).
func (d templateData) T(id string) string {
	return d.L.T(id, "Product", d.Product, "Email", d.Email, "Recipient", d.Recipient, "Expiry", d.Expiry, "Link", d.Link,
		"ResetURL", d.ResetURL, "Via", d.Via)
}

// With returns d with Button set to message id, for the "button" template.
func (d templateData) With(id string) templateData {
	d.Button = d.T(id)
	return d
}

// wrap breaks a paragraph of plain text into lines of at most 72
// characters where it can.
func wrap(s string) string {
	var b strings.Builder
	n := 0
	// Only ASCII spaces break: a no-break space (French "adresse :")
	// holds its words together.
	for i, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' }) {
		l := utf8.RuneCountInString(w)
		if i > 0 && n+1+l > 72 {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += l
	}
	return b.String()
}

// errUnrenderable marks a row that can never become a mail (a bad payload,
// an unknown kind, claims the signer refuses): retrying cannot help.
var errUnrenderable = errors.New("mail: unrenderable outbox message")

// composer turns outbox rows into Messages.
type composer struct {
	signer     *signer.Signer
	publicURL  string // without a trailing slash
	from       string // the From header
	fromDomain string // the Message-ID's right-hand side
	product    string
	verifyTTL  time.Duration
	changeTTL  time.Duration
	resetTTL   time.Duration
	resetURL   string
	catalog    *locale.Catalog
	templates  map[string]kindTemplates
}

// newComposer checks and defaults the rendering part of cfg.
func newComposer(cfg Config) (*composer, error) {
	if cfg.Signer == nil {
		return nil, errors.New("mail: dispatcher needs a Signer")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mail: public URL %q: want http(s)://host[:port][/path]", cfg.PublicURL)
	}
	product := cfg.ProductName
	if product == "" {
		product = "useremail"
	}
	if strings.IndexFunc(product, unicode.IsControl) >= 0 || !utf8.ValidString(product) {
		return nil, fmt.Errorf("mail: product name %q has control characters", product)
	}
	from := cfg.From
	if from == "" {
		from = "useremail@localhost"
	}
	fromAddr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail: From %q: %w", from, err)
	}
	if fromAddr.Name == "" {
		fromAddr.Name = product
	}
	ascii := envelopeAddress(fromAddr.Address)
	tpls, err := parseTemplates(cfg.TemplateDir)
	if err != nil {
		return nil, err
	}
	catalog := cfg.Catalog
	if catalog == nil {
		catalog = locale.Default()
	}
	c := &composer{
		signer:     cfg.Signer,
		publicURL:  strings.TrimSuffix(cfg.PublicURL, "/"),
		from:       fromAddr.String(),
		fromDomain: strings.ToLower(ascii[strings.LastIndexByte(ascii, '@')+1:]),
		product:    product,
		verifyTTL:  orDefault(cfg.VerifyTTL, 72*time.Hour),
		changeTTL:  orDefault(cfg.ChangeTTL, 24*time.Hour),
		resetTTL:   orDefault(cfg.ResetTTL, time.Hour),
		resetURL:   cmp.Or(cfg.ResetRequestURL, strings.TrimSuffix(cfg.PublicURL, "/")+DefaultResetRequestPath),
		catalog:    catalog,
		templates:  tpls,
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check renders a sample of every kind, so that a template that fails at
// run time (a field that does not exist) fails at start, named with its
// file and line.
func (c *composer) check() error {
	samples := map[string]store.NewMessage{
		KindVerify:          Verify(1, "alice@example.com", 1),
		KindChangeEmail:     ChangeEmail(1, "alice@example.com", 1),
		KindEmailAdded:      EmailAdded(1, "alice@example.com", "alice@work.example"),
		KindEmailRemoved:    EmailRemoved(1, "alice@example.com", "alice@work.example"),
		KindPrimaryChanged:  PrimaryChanged(1, "alice@example.com", "alice@new.example"),
		KindPasswordReset:   PasswordReset(1, "alice@example.com", 1),
		KindPasswordChanged: PasswordChanged(1, "alice@example.com", "alice@work.example"),
		KindAccountDeleted:  AccountDeleted("alice@example.com", "en"),
	}
	for _, k := range Kinds {
		nm, ok := samples[k]
		if !ok {
			nm = newMessage(k, 1, "alice@example.com", Payload{Email: "alice@example.com", EmailID: 1, Seq: 1})
		}
		m := store.Message{ID: 1, Kind: k, Recipient: nm.Recipient, UserID: 1, Payload: nm.Payload}
		if _, err := c.compose(m, locale.Fallback, time.Unix(0, 0)); err != nil {
			return fmt.Errorf("mail: the templates of %s: %v", k, err)
		}
	}
	return nil
}

// compose renders m in its payload's language, else in userLang (the
// user's, "" when the user is gone), signing its link (if any) now. Its
// errors wrap errUnrenderable.
func (c *composer) compose(m store.Message, userLang string, now time.Time) (Message, error) {
	var p Payload
	if err := json.Unmarshal([]byte(m.Payload), &p); err != nil {
		return Message{}, fmt.Errorf("%w: payload: %v", errUnrenderable, err)
	}
	if p.Email == "" {
		return Message{}, fmt.Errorf("%w: payload has no email", errUnrenderable)
	}
	tpl, ok := c.templates[m.Kind]
	if !ok {
		return Message{}, fmt.Errorf("%w: unknown kind %q", errUnrenderable, m.Kind)
	}
	l := c.catalog.Localizer(cmp.Or(p.Lang, userLang, locale.Fallback))
	data := templateData{Product: c.product, Recipient: m.Recipient, Email: p.Email, Lang: l.Lang(), L: l,
		ResetURL: c.resetURL, Reset: p.Via != "", Via: p.Via}
	switch m.Kind {
	case KindVerify:
		if p.EmailID <= 0 {
			return Message{}, fmt.Errorf("%w: verify payload has no email_id", errUnrenderable)
		}
		token, err := c.signer.Sign(signer.Claims{Purpose: signer.PurposeVerify, UserID: m.UserID, Email: p.Email, State: p.EmailID})
		if err != nil {
			return Message{}, fmt.Errorf("%w: %v", errUnrenderable, err)
		}
		data.Link = c.publicURL + "/users/email-verify/" + token + "/" + signer.EncodeUserID(m.UserID)
		data.Expiry = durationWords(l, c.verifyTTL)
	case KindChangeEmail:
		if p.Seq <= 0 {
			return Message{}, fmt.Errorf("%w: change_email payload has no seq", errUnrenderable)
		}
		token, err := c.signer.Sign(signer.Claims{Purpose: signer.PurposeSetPrimary, UserID: m.UserID, Email: p.Email, State: p.Seq})
		if err != nil {
			return Message{}, fmt.Errorf("%w: %v", errUnrenderable, err)
		}
		data.Link = c.publicURL + "/users/email-set-primary/" + token + "/" + signer.EncodeUserID(m.UserID) + "/"
		data.Expiry = durationWords(l, c.changeTTL)
	case KindPasswordReset:
		if p.State == 0 {
			return Message{}, fmt.Errorf("%w: password_reset payload has no state", errUnrenderable)
		}
		token, err := c.signer.Sign(signer.Claims{Purpose: signer.PurposePasswordReset, UserID: m.UserID, Email: p.Email, State: p.State})
		if err != nil {
			return Message{}, fmt.Errorf("%w: %v", errUnrenderable, err)
		}
		// Django's order: reset/<uidb64>/<token>/.
		data.Link = c.publicURL + "/auth/password-reset/" + signer.EncodeUserID(m.UserID) + "/" + token + "/"
		data.Expiry = durationWords(l, c.resetTTL)
	}

	var subject, text, html strings.Builder
	if err := tpl.text.ExecuteTemplate(&subject, "subject", data); err != nil {
		return Message{}, fmt.Errorf("%w: subject: %v", errUnrenderable, err)
	}
	data.Subject = strings.Join(strings.Fields(subject.String()), " ")
	if err := tpl.text.ExecuteTemplate(&text, "layout", data); err != nil {
		return Message{}, fmt.Errorf("%w: text: %v", errUnrenderable, err)
	}
	if err := tpl.html.ExecuteTemplate(&html, "layout", data); err != nil {
		return Message{}, fmt.Errorf("%w: html: %v", errUnrenderable, err)
	}
	msg := Message{
		Kind:      m.Kind,
		From:      c.from,
		To:        m.Recipient,
		Subject:   data.Subject,
		Text:      text.String(),
		HTML:      html.String(),
		MessageID: messageID(m.ID, m.CreatedAt, c.fromDomain),
		Date:      now,
		Language:  l.Lang(),
		fallbacks: l.Fallbacks(),
	}
	if data.Link != "" {
		msg.Links = []string{data.Link}
	}
	return msg, nil
}

// DefaultResetRequestPath is where, under the public URL, the notices send
// a person to ask for a password reset (Config.ResetRequestURL): the
// account pages' request form.
const DefaultResetRequestPath = "/account/password-reset/"

// messageID returns the Message-ID of outbox row id: the same for every
// attempt at the row, and not guessable from the id alone.
func messageID(id int64, createdAt time.Time, domain string) string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(id, 10) + "\x00" + strconv.FormatInt(createdAt.UTC().UnixMicro(), 10)))
	return "<outbox." + strconv.FormatInt(id, 10) + "." + hex.EncodeToString(sum[:8]) + "@" + domain + ">"
}

// durationWords says d in words for "This link expires in …": whole days
// from two days up ("3 days"), else whole hours ("24 hours"), else minutes,
// else seconds.
func durationWords(l *locale.Localizer, d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day && d%day == 0:
		return l.N("duration.days", int(d/day))
	case d >= time.Hour && d%time.Hour == 0:
		return l.N("duration.hours", int(d/time.Hour))
	case d >= time.Minute:
		return l.N("duration.minutes", int(d/time.Minute))
	default:
		return l.N("duration.seconds", int(d/time.Second))
	}
}
