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
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

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

// templates holds every kind's templates, parsed once. A template that does
// not parse is a bug caught by the tests, hence the panic.
var templates = mustParseTemplates()

func mustParseTemplates() map[string]kindTemplates {
	m := make(map[string]kindTemplates, len(kinds))
	for _, k := range kinds {
		text := texttemplate.Must(texttemplate.New(k).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.txt", "templates/"+k+".txt"))
		html := htmltemplate.Must(htmltemplate.New(k).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html", "templates/"+k+".html"))
		m[k] = kindTemplates{text: text, html: html}
	}
	return m
}

// templateData is what the templates see.
type templateData struct {
	Product   string // the product name, "useremail" unless configured
	Recipient string // the address the mail goes to
	Email     string // the address the mail is about
	Link      string // the signed link (verify, change_email and password_reset only)
	Expiry    string // the link's lifetime in words, as "3 days"
	Subject   string // the rendered subject, for the HTML title
	// ResetURL is where a person asks for a password reset link, for the
	// notices' "if this was not you".
	ResetURL string
	Reset    bool   // password_changed: by a reset link, not a change
	Via      string // password_changed: the address the reset link went to
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
	return &composer{
		signer:     cfg.Signer,
		publicURL:  strings.TrimSuffix(cfg.PublicURL, "/"),
		from:       fromAddr.String(),
		fromDomain: strings.ToLower(ascii[strings.LastIndexByte(ascii, '@')+1:]),
		product:    product,
		verifyTTL:  orDefault(cfg.VerifyTTL, 72*time.Hour),
		changeTTL:  orDefault(cfg.ChangeTTL, 24*time.Hour),
		resetTTL:   orDefault(cfg.ResetTTL, time.Hour),
		resetURL:   cmp.Or(cfg.ResetRequestURL, strings.TrimSuffix(cfg.PublicURL, "/")+DefaultResetRequestPath),
	}, nil
}

// compose renders m, signing its link (if any) now. Its errors wrap
// errUnrenderable.
func (c *composer) compose(m store.Message, now time.Time) (Message, error) {
	var p Payload
	if err := json.Unmarshal([]byte(m.Payload), &p); err != nil {
		return Message{}, fmt.Errorf("%w: payload: %v", errUnrenderable, err)
	}
	if p.Email == "" {
		return Message{}, fmt.Errorf("%w: payload has no email", errUnrenderable)
	}
	tpl, ok := templates[m.Kind]
	if !ok {
		return Message{}, fmt.Errorf("%w: unknown kind %q", errUnrenderable, m.Kind)
	}
	data := templateData{Product: c.product, Recipient: m.Recipient, Email: p.Email, ResetURL: c.resetURL, Reset: p.Via != "", Via: p.Via}
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
		data.Expiry = durationWords(c.verifyTTL)
	case KindChangeEmail:
		if p.Seq <= 0 {
			return Message{}, fmt.Errorf("%w: change_email payload has no seq", errUnrenderable)
		}
		token, err := c.signer.Sign(signer.Claims{Purpose: signer.PurposeSetPrimary, UserID: m.UserID, Email: p.Email, State: p.Seq})
		if err != nil {
			return Message{}, fmt.Errorf("%w: %v", errUnrenderable, err)
		}
		data.Link = c.publicURL + "/users/email-set-primary/" + token + "/" + signer.EncodeUserID(m.UserID) + "/"
		data.Expiry = durationWords(c.changeTTL)
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
		data.Expiry = durationWords(c.resetTTL)
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
func durationWords(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day && d%day == 0:
		return plural(int64(d/day), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int64(d/time.Minute), "minute")
	default:
		return plural(int64(d/time.Second), "second")
	}
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}
