package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io"
	"strings"

	"github.com/useremail/useremail/gen"
)

//go:embed templates
var templatesFS embed.FS

// page is what the link pages show. A page with a Button posts back to its
// own URL.
type page struct {
	Title, Heading, Message, Address, Button, Hint string
	Style                                          template.CSS
}

// pages renders the link pages under a strict Content-Security-Policy: the
// one inline style is allowed by its hash, nothing else runs or loads.
type pages struct {
	tmpl  *template.Template
	style template.CSS
	csp   string
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
	return &pages{tmpl: tmpl, style: template.CSS(style), csp: csp}, nil
}

type pageBody struct {
	r io.Reader
	n int64
}

// renderPage renders p and asks for the page's security headers.
func (s *Server) renderPage(ctx context.Context, p page) pageBody {
	p.Style = s.pages.style
	var buf bytes.Buffer
	if err := s.pages.tmpl.Execute(&buf, p); err != nil {
		// The templates are embedded and their data plain strings: this
		// cannot fail at run time unless the template itself is broken.
		s.log.ErrorContext(ctx, "rendering a page failed", "error", err)
	}
	info := infoFrom(ctx)
	if info.header == nil {
		info.header = make(map[string][]string)
	}
	info.header.Set("Content-Security-Policy", s.pages.csp)
	return pageBody{r: &buf, n: int64(buf.Len())}
}

// linkErrorPage answers a link failure to a person: an HTML page for the
// link errors, or the error itself (rendered as a problem) for anything
// else, such as an unreachable database.
func linkErrorPage[R any](s *Server, ctx context.Context, err error, respond func(pageBody) R) (R, error) {
	var zero R
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != 400 {
		return zero, err
	}
	p := page{Title: titles[ae.code], Heading: titles[ae.code], Message: ae.detail}
	switch ae.code {
	case gen.ErrorCodeLinkExpired, gen.ErrorCodeLinkUsed, gen.ErrorCodeLinkInvalid:
		p.Hint = "You can ask for a new link from your account's email settings."
	case gen.ErrorCodeEmailTaken:
		p.Message = "This address is in use by another account by now."
	}
	return respond(s.renderPage(ctx, p)), nil
}
