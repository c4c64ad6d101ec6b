package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io"
	"net/http"
	"strings"
)

//go:embed templates
var templatesFS embed.FS

// page is what the link pages show. A page with a Button posts back to its
// own URL; with PasswordForm, its form asks for a new password twice, and
// Error tells what was wrong with the last try.
type page struct {
	Title, Heading, Message, Address, Button, Hint string
	PasswordForm                                   bool
	Error                                          string
	Style                                          template.CSS
}

// pages renders the link pages under a strict Content-Security-Policy: the
// one inline style is allowed by its hash, nothing else runs or loads.
type pages struct {
	tmpl   *template.Template
	style  template.CSS
	extras responseExtras // the pages' security headers
}

func newPages() (*pages, error) {
	tmpl, err := template.ParseFS(templatesFS, "templates/page.html")
	if err != nil {
		return nil, err
	}
	css, err := templatesFS.ReadFile("templates/page.css")
	if err != nil {
		return nil, err
	}
	style := strings.TrimSpace(string(css))
	sum := sha256.Sum256([]byte(style))
	csp := "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	header := http.Header{"Content-Security-Policy": {csp}}
	return &pages{tmpl: tmpl, style: template.CSS(style), extras: responseExtras{header: header}}, nil
}

// pageBody is a rendered page and the headers it must be served with.
type pageBody struct {
	r      io.Reader
	n      int64
	extras responseExtras
}

// renderPage renders p.
func (s *Server) renderPage(ctx context.Context, p page) pageBody {
	p.Style = s.pages.style
	var buf bytes.Buffer
	if err := s.pages.tmpl.Execute(&buf, p); err != nil {
		// The templates are embedded and their data plain strings: this
		// cannot fail at run time unless the template itself is broken.
		s.log.ErrorContext(ctx, "rendering a page failed", "error", err)
	}
	return pageBody{r: &buf, n: int64(buf.Len()), extras: s.pages.extras}
}
