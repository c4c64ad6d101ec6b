package locale_test

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/useremail/useremail/locale"
)

// TestComplete checks that every language has every English message, and
// nothing English lacks.
func TestComplete(t *testing.T) {
	c := locale.Default()
	if n := len(c.IDs()); n < 100 {
		t.Fatalf("English has %d messages; the files did not load", n)
	}
	for _, lang := range locale.Languages {
		if missing := c.Missing(lang); len(missing) > 0 {
			t.Errorf("%s.toml lacks %v", lang, missing)
		}
		l := c.Localizer(lang)
		for _, id := range c.IDs() {
			if got := l.N(id, 2, "Email", "a@example.com", "Brand", "B", "Product", "P", "Account", "a•••e@example.com",
				"Recipient", "r@example.com", "Expiry", "3", "Language", "L", "Via", "v@example.com"); got == "" || strings.Contains(got, "<no value>") {
				t.Errorf("%s %s says %q", lang, id, got)
			}
		}
		if fb := l.Fallbacks(); len(fb) > 0 {
			t.Errorf("%s fell back to English for %v", lang, fb)
		}
	}
}

func TestMatch(t *testing.T) {
	c := locale.Default()
	for _, tt := range []struct{ header, want string }{
		{"", "en"},
		{"de-DE,de;q=0.9,en;q=0.8", "de"},
		{"fr-CA", "fr"},
		{"es-419,es;q=0.9", "es"},
		{"ja, zh;q=0.5", "en"},
		{"en-GB;q=0.5, fr;q=0.9", "fr"},
		{"garbage;;;", "en"},
		{"de", "de"},
	} {
		if got := c.Match(tt.header); got != tt.want {
			t.Errorf("Match(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

// TestFallback removes one German message: it is said in English, and
// recorded as a fallback, never an error.
func TestFallback(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, lang := range locale.Languages {
		b, err := fs.ReadFile(locale.MessageFiles(), lang+".toml")
		if err != nil {
			t.Fatal(err)
		}
		if lang == "de" {
			b = []byte(strings.Replace(string(b), `"page.signout" = "Abmelden"`, "", 1))
		}
		fsys[lang+".toml"] = &fstest.MapFile{Data: b}
	}
	c, err := locale.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Missing("de"); len(got) != 1 || got[0] != "page.signout" {
		t.Fatalf("Missing(de) = %v", got)
	}
	l := c.Localizer("de")
	if got := l.T("page.signout"); got != "Sign out" {
		t.Errorf("the missing message says %q; want English", got)
	}
	if got := l.T("page.account_link"); got != "Ihr Konto" {
		t.Errorf("a present message says %q", got)
	}
	if got := l.Fallbacks(); len(got) != 1 || got[0] != "page.signout" {
		t.Errorf("Fallbacks = %v", got)
	}
	if got := l.T("no.such.message"); got != "no.such.message" {
		t.Errorf("an unknown id says %q", got)
	}
}
