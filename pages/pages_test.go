package pages_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/pages"
)

// TestEveryPageEveryLanguage renders every page in every language: the
// page says its language, and no message was said in English for want of
// a translation.
func TestEveryPageEveryLanguage(t *testing.T) {
	r, err := pages.New("")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range locale.Languages {
		for _, name := range pages.Names {
			l := locale.Default().Localizer(lang)
			html, err := r.Render(name, pages.Sample(name, l))
			if err != nil {
				t.Fatalf("%s in %s: %v", name, lang, err)
			}
			if !strings.Contains(string(html), `<html lang="`+lang+`">`) {
				t.Errorf("%s in %s does not say its language", name, lang)
			}
			if fb := l.Fallbacks(); len(fb) > 0 {
				t.Errorf("%s in %s said in English: %v", name, lang, fb)
			}
			if messageID.Match(html) {
				t.Errorf("%s in %s shows a message id:\n%s", name, lang, html)
			}
		}
	}
}

var messageID = regexp.MustCompile(`\b(page|error|mail)\.[a-z]`)

// TestMissingMessage deletes one German message: every page still
// renders, saying it in English.
func TestMissingMessage(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, lang := range locale.Languages {
		b, err := fs.ReadFile(locale.MessageFiles(), lang+".toml")
		if err != nil {
			t.Fatal(err)
		}
		if lang == "de" {
			re := regexp.MustCompile(`(?m)^"page\.account_link" = .*$`)
			if !re.Match(b) {
				t.Fatal("de.toml has no page.account_link")
			}
			b = re.ReplaceAll(b, nil)
		}
		fsys[lang+".toml"] = &fstest.MapFile{Data: b}
	}
	catalog, err := locale.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pages.New("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pages.Names {
		l := catalog.Localizer("de")
		html, err := r.Render(name, pages.Sample(name, l))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(string(html), ">Your account</a>") {
			t.Errorf("%s lacks the English fallback", name)
		}
		if !strings.Contains(string(html), `lang="de"`) {
			t.Errorf("%s is not German any more", name)
		}
	}
}

// TestOverride: a file of the template directory replaces the embedded
// template of its name; a broken one fails New, naming file and line.
func TestOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pages"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pages", "error.html")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{{define "content"}}<h1>ACME: {{.Heading}}</h1>{{end}}`)
	r, err := pages.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	html, err := r.Render("error", pages.Error{Common: pages.Common{L: locale.Default().Localizer("fr"), Brand: "ACME"}, Heading: "Oups"})
	if err != nil || !strings.Contains(string(html), "<h1>ACME: Oups</h1>") || !strings.Contains(string(html), "ACME</a>") {
		t.Fatalf("override not used (%v):\n%s", err, html)
	}
	for _, tt := range []struct{ text, want string }{
		{"{{define \"content\"}}\n<p>\n{{.Heading}\n{{end}}", path + ":3"},
		{"{{define \"content\"}}\n{{.NoSuchField}}{{end}}", path + ":2"},
		{"<p>no content</p>", "must define"},
	} {
		write(tt.text)
		if _, err := pages.New(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("broken %q: %v; want it to name %s", tt.text, err, tt.want)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com": "a•••e@example.com",
		"al@example.com":    "a•••@example.com",
		"é@example.com":     "é•••@example.com",
		"bad":               "•••",
	} {
		if got := pages.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
