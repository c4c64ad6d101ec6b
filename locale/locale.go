// Package locale owns the words people read in useremail's pages and mails:
// one message file per language (messages/<tag>.toml, in go-i18n's format,
// for translators to edit), the languages offered, and the choice of one
// from an Accept-Language header. English is the source language: a message
// missing from another file is said in English, never as an error.
//
// It imports nothing of the project.
package locale

import (
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed messages/*.toml
var messagesFS embed.FS

// Languages are the languages offered, English (the fallback) first.
var Languages = []string{"en", "de", "fr", "es"}

// Fallback is the language of a missing message.
const Fallback = "en"

// Catalog is the messages of every language.
type Catalog struct {
	bundle  *i18n.Bundle
	matcher language.Matcher
	ids     map[string][]string // message ids by language
}

// Default returns the catalog of the embedded message files.
var Default = sync.OnceValue(func() *Catalog {
	c, err := Load(MessageFiles())
	if err != nil {
		// The files are embedded: their test catches this.
		panic(err)
	}
	return c
})

// Load reads <tag>.toml for each of Languages from fsys.
func Load(fsys fs.FS) (*Catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &Catalog{bundle: b, ids: make(map[string][]string)}
	tags := make([]language.Tag, 0, len(Languages))
	for _, lang := range Languages {
		f, err := b.LoadMessageFileFS(fsys, lang+".toml")
		if err != nil {
			return nil, fmt.Errorf("locale: %s.toml: %w", lang, err)
		}
		for _, m := range f.Messages {
			c.ids[lang] = append(c.ids[lang], m.ID)
		}
		slices.Sort(c.ids[lang])
		tags = append(tags, language.MustParse(lang))
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

// IDs returns the ids of the English messages, sorted.
func (c *Catalog) IDs() []string { return slices.Clone(c.ids[Fallback]) }

// Missing returns the ids of the English messages that lang lacks.
func (c *Catalog) Missing(lang string) []string {
	have := make(map[string]bool)
	for _, id := range c.ids[lang] {
		have[id] = true
	}
	var out []string
	for _, id := range c.ids[Fallback] {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// Match returns the offered language that an Accept-Language header (or a
// stored tag) asks for most, English when it asks for none of them.
func (c *Catalog) Match(acceptLanguage string) string {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return Fallback
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return Fallback
	}
	return Languages[i]
}

// Offered reports whether lang is one of Languages.
func Offered(lang string) bool { return slices.Contains(Languages, lang) }

// Localizer says messages in one language. It is not safe for concurrent
// use: it records the messages it had to say in English.
type Localizer struct {
	lang      string
	l         *i18n.Localizer
	fallbacks map[string]bool
}

// Localizer returns a Localizer for lang, one of Languages (any other
// tag is matched as Match does).
func (c *Catalog) Localizer(lang string) *Localizer {
	if !Offered(lang) {
		lang = c.Match(lang)
	}
	return &Localizer{lang: lang, l: i18n.NewLocalizer(c.bundle, lang)}
}

// Lang is the localizer's language, as a BCP 47 tag.
func (l *Localizer) Lang() string { return l.lang }

// T says message id, filling its {{.Name}} fields from pairs of name and
// value: T "mail.verify.intro" "Email" addr.
func (l *Localizer) T(id string, pairs ...any) string {
	return l.say(id, nil, pairs)
}

// N says message id in the plural form for count, which its fields see
// as {{.Count}} beside pairs.
func (l *Localizer) N(id string, count int, pairs ...any) string {
	return l.say(id, count, pairs)
}

func (l *Localizer) say(id string, count any, pairs []any) string {
	data := make(map[string]any, len(pairs)/2+1)
	for i := 0; i+1 < len(pairs); i += 2 {
		if k, ok := pairs[i].(string); ok {
			data[k] = pairs[i+1]
		}
	}
	if count != nil {
		data["Count"] = count
	}
	msg, tag, err := l.l.LocalizeWithTag(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if tag.String() != l.lang || err != nil {
		if l.fallbacks == nil {
			l.fallbacks = make(map[string]bool)
		}
		l.fallbacks[id] = true
	}
	if msg == "" && err != nil {
		// Not even in English: the id says at least what is meant.
		return id
	}
	return msg
}

// Fallbacks returns the ids of the messages this localizer said in
// English (or not at all) because lang lacks them, sorted.
func (l *Localizer) Fallbacks() []string {
	return slices.Sorted(maps.Keys(l.fallbacks))
}

// Names are the languages' own names, for a language menu.
var Names = map[string]string{"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}

// Name returns the name of lang in lang itself.
func Name(lang string) string {
	if n, ok := Names[lang]; ok {
		return n
	}
	return strings.ToUpper(lang)
}

// MessageFiles returns the embedded message files, <tag>.toml each.
func MessageFiles() fs.FS {
	sub, _ := fs.Sub(messagesFS, "messages")
	return sub
}
