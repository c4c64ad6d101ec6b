// Package pages owns what people see of useremail in a browser: the HTML
// templates of the account pages, the link pages, the error page and the
// dev mailbox, the one stylesheet they share, and the Content-Security-
// Policy they are served with. The templates are embedded; the files of a
// template directory replace them by name (docs/TEMPLATES.md).
//
// It imports locale only; server calls it and owns the HTTP side.
package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/useremail/useremail/locale"
)

//go:embed templates/*.html style.css icon.svg
var files embed.FS

// Names are the pages. Each is templates/<name>.html, which defines
// "content" for the shared layout.html (which defines "layout"); field.html
// defines "field", a labelled input with its error.
var Names = []string{"link", "error", "login", "signup", "account", "mailbox", "reset", "forgot"}

// shared are the templates every page is parsed with.
var shared = []string{"layout", "field"}

// Renderer renders the pages. It is safe for concurrent use.
type Renderer struct {
	sets  map[string]*template.Template
	style []byte
	// StyleURL is the stylesheet's path; it changes with its content, so
	// that browsers may keep it.
	StyleURL string
}

// StylePath is where StyleURL points, with the content's hash in place of
// the star.
const StylePath = "/assets/style.*.css"

// New parses the embedded templates, each replaced by dir/pages/<name>.html
// when dir has one (dir "" means none), and renders every page once with
// sample data, so that a broken template fails here, named with its file
// and line, and never in front of a person.
func New(dir string) (*Renderer, error) {
	style, err := files.ReadFile("style.css")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(style)
	r := &Renderer{
		sets:     make(map[string]*template.Template, len(Names)),
		style:    style,
		StyleURL: strings.Replace(StylePath, "*", hex.EncodeToString(sum[:6]), 1),
	}
	for _, name := range Names {
		set := template.New(name)
		for _, part := range append(shared[:len(shared):len(shared)], name) {
			path, text, err := source(dir, part)
			if err != nil {
				return nil, err
			}
			if _, err := set.New(path).Parse(text); err != nil {
				return nil, fmt.Errorf("pages: %w", err)
			}
		}
		if set.Lookup("layout") == nil || set.Lookup("content") == nil {
			return nil, fmt.Errorf("pages: %s: the layout must define \"layout\" and the page \"content\"", name)
		}
		r.sets[name] = set
	}
	for _, name := range Names {
		if _, err := r.Render(name, Sample(name, locale.Default().Localizer(locale.Fallback))); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// source returns the text of template part and the name to report it
// by: dir/pages/<part>.html if there is one, else the embedded file.
func source(dir, part string) (name, text string, err error) {
	if dir != "" {
		path := filepath.Join(dir, "pages", part+".html")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			return path, string(b), nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", "", fmt.Errorf("pages: %w", err)
		}
	}
	b, err := files.ReadFile("templates/" + part + ".html")
	return part + ".html", string(b), err
}

// Render renders page name with data, a value of the page's type below
// whose Common part is filled in.
func (r *Renderer) Render(name string, data any) ([]byte, error) {
	set, ok := r.sets[name]
	if !ok {
		return nil, fmt.Errorf("pages: no page %q", name)
	}
	var buf bytes.Buffer
	if err := set.ExecuteTemplate(&buf, "layout", data); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	return buf.Bytes(), nil
}

// Style is the stylesheet.
func (r *Renderer) Style() []byte { return r.style }

// IconPath is where the pages' icon is served (Icon).
const IconPath = "/assets/icon.svg"

// Icon is the pages' icon, an SVG image.
func Icon() []byte {
	b, _ := files.ReadFile("icon.svg")
	return b
}

// CSP is the Content-Security-Policy of every page: the stylesheet from
// this origin, nothing else loads or runs. formTargets are the origins
// besides this one that a form's answer may redirect to (the app's, for
// "next"): Chromium checks form-action on redirects too.
func CSP(formTargets ...string) string {
	action := "'self'"
	for _, o := range formTargets {
		if o != "" {
			action += " " + o
		}
	}
	return "default-src 'none'; style-src 'self'; img-src 'self'; form-action " + action +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// Common is what every page gets.
type Common struct {
	L *locale.Localizer // says the page's words: {{.L.T "id" "Name" value}}
	// Brand is USEREMAIL_BRAND_NAME; AppURL is USEREMAIL_APP_URL (may be
	// empty).
	Brand, AppURL string
	// StyleURL is the stylesheet's path.
	StyleURL string
	// Title is the page's title, before " · Brand".
	Title string
	// CSRFToken is the session's CSRF token, when signed in: the
	// csrf-token meta tag and the csrfmiddlewaretoken of the forms.
	CSRFToken string
	SignedIn  bool
	// Flash is the one-time message of the last form's answer.
	Flash string
	// NoReferrer marks a page whose URL is a credential (a mailed link's):
	// its links send no Referer.
	NoReferrer bool
}

// Language is the page's language, a BCP 47 tag.
func (c Common) Language() string { return c.L.Lang() }

// Field is one labelled input of a form.
type Field struct {
	ID, Name, Type, Label, Value, Autocomplete string
	Required                                   bool
	// Error is said next to the field (aria-describedby); Focus puts the
	// cursor there (the first field with an error).
	Error string
	Focus bool
}

// Link is a mailed link's page: before the click (with a Button that posts
// to the page's own URL), after it, or its failure.
type Link struct {
	Common
	Heading, Message string
	Address          string // the address the link is about
	Account          string // the account's primary address, partly masked
	Button, Hint     string
	Failed           bool
}

// Error is a page for a failure outside a form: not found, unavailable.
type Error struct {
	Common
	Heading, Message string
}

// Credentials is the sign-in and the sign-up page.
type Credentials struct {
	Common
	// FormToken is the csrftoken cookie's value (a signed-out form's double
	// submit); Next is where to go afterwards.
	FormToken, Next string
	FormError       string
	Email, Password Field
}

// Account is the signed-in /account/ page.
type Account struct {
	Common
	Primary   string // the primary address
	FormError string
	Emails    []Email
	Add       Field
	Languages []Language
	// Password, NewPassword and Confirm are the change-password form's
	// fields; DeletePassword is the delete-account form's.
	Password, NewPassword, Confirm Field
	DeletePassword                 Field
	// Open is "delete" when the delete-account form has an error: its
	// folded section shows open.
	Open string
}

// Email is one address on the account page.
type Email struct {
	ID                int64
	Address           string
	Verified, Primary bool
	Error             string
	Password          Field // of its make-primary form
}

// Language is one choice of the language menu.
type Language struct {
	Tag, Name string
	Selected  bool
}

// Reset is a password-reset link's page: its form for the new password,
// twice, which posts to the page's own URL (the link is the credential,
// so the form has no CSRF field), or what it did.
type Reset struct {
	Common
	Address           string // the address the link was mailed to
	FormError         string
	Password, Confirm Field
	Done              bool
}

// Forgot is the signed-out form that asks for a password reset link: the
// address, with a double-submit token as the sign-in page's.
type Forgot struct {
	Common
	FormToken string
	FormError string
	Email     Field
}

// Mailbox is the dev mailbox.
type Mailbox struct {
	Common
	Mails []Mail
}

// Mail is one mail in the dev mailbox.
type Mail struct {
	ID                int64
	To, Subject, Kind string
	Links             []string
	CreatedAt         time.Time
}

// Mask partly hides an address, to say which account a link is about
// without telling the whole address to whoever holds the link:
// alice@example.com becomes a•••e@example.com.
func Mask(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "•••"
	}
	local := []rune(addr[:at])
	switch len(local) {
	case 0, 1, 2:
		return string(local[:min(len(local), 1)]) + "•••" + addr[at:]
	}
	return string(local[0]) + "•••" + string(local[len(local)-1]) + addr[at:]
}

// Sample returns data for page name with every part filled, in the
// language of l: what New renders to check the templates, and what the
// tests render in every language.
func Sample(name string, l *locale.Localizer) any {
	c := Common{L: l, Brand: "useremail", AppURL: "https://app.example.com/", StyleURL: "/assets/style.css", Title: "Sample",
		CSRFToken: "sample-token", SignedIn: true, Flash: "Sample message", NoReferrer: true}
	field := func(id, typ string) Field {
		return Field{ID: id, Name: id, Type: typ, Label: id, Value: "v", Error: "sample error", Focus: true, Required: true}
	}
	switch name {
	case "link":
		return Link{Common: c, Heading: "h", Message: "m", Address: "alice@example.com", Account: Mask("alice@example.com"),
			Button: "b", Hint: "h"}
	case "error":
		return Error{Common: c, Heading: "h", Message: "m"}
	case "login", "signup":
		return Credentials{Common: c, FormToken: "t", Next: "/account/", FormError: "e",
			Email: field("email", "email"), Password: field("password", "password")}
	case "account":
		return Account{Common: c, Primary: "alice@example.com", FormError: "e", Add: field("email", "email"),
			Emails: []Email{
				{ID: 1, Address: "alice@example.com", Verified: true, Primary: true},
				{ID: 2, Address: "alice@work.example", Error: "e", Password: field("password-2", "password")},
			},
			Languages: []Language{{Tag: "en", Name: "English", Selected: true}, {Tag: "de", Name: "Deutsch"}},
			Password:  field("current-password", "password"), NewPassword: field("new-password", "password"),
			Confirm: field("new-password2", "password"), DeletePassword: field("delete-password", "password"), Open: "delete"}
	case "forgot":
		return Forgot{Common: c, FormToken: "t", FormError: "e", Email: field("email", "email")}
	case "reset":
		return Reset{Common: c, Address: "alice@example.com", FormError: "e",
			Password: field("password", "password"), Confirm: field("password2", "password")}
	case "mailbox":
		return Mailbox{Common: c, Mails: []Mail{{ID: 1, To: "alice@example.com", Subject: "s", Kind: "verify",
			Links: []string{"https://accounts.example.com/x"}, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}}
	}
	return c
}
