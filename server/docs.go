package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
	swaggerui "github.com/swaggest/swgui/v5/static"
	"github.com/vearutop/statigz"

	"github.com/useremail/useremail/session"
)

// The Swagger UI at /docs/: Swagger UI 5's files as embedded by
// github.com/swaggest/swgui, and our own page, init script and style
// (server/docs). Everything is served from the binary; the page loads
// nothing from anywhere else, and its Content-Security-Policy says so.

//go:embed docs
var docsFS embed.FS

// docsCSP allows exactly what Swagger UI needs, all from this origin:
// its bundle and init.js, its style sheet, the data: SVG icons of that
// style sheet, and fetch for the spec and "Try it out".
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// docsAssetCache lets browsers keep the static files a day; their URLs
// carry a version, so a new build is fetched at once anyway.
const docsAssetCache = "public, max-age=86400"

// docsAssets are the files served under /docs/, by name, each from its
// file system: Swagger UI's (gzipped, served as is to clients that accept
// gzip) or ours.
type docsAssets struct {
	index   *template.Template
	version string // of all the files together, for cache-busting URLs
	files   map[string]http.Handler
}

// swaggerUIFiles and ownDocsFiles are the assets of the page; everything
// else under /docs/ is 404 (Swagger UI's OAuth2 redirect page is not served: the API has no
// OAuth).
var (
	swaggerUIFiles = []string{"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png"}
	ownDocsFiles   = []string{"init.js", "docs.css"}
)

// loadDocsAssets indexes the embedded files once per process: they never
// change while it runs.
var loadDocsAssets = sync.OnceValues(func() (*docsAssets, error) {
	index, err := template.ParseFS(docsFS, "docs/index.html")
	if err != nil {
		return nil, err
	}
	own, err := fs.Sub(docsFS, "docs")
	if err != nil {
		return nil, err
	}
	a := &docsAssets{index: index, files: make(map[string]http.Handler)}
	h := sha256.New()
	add := func(fsys fs.ReadDirFS, names []string) error {
		server := statigz.FileServer(fsys)
		for _, name := range names {
			if !hasAsset(fsys, name) {
				return &fs.PathError{Op: "docs", Path: name, Err: fs.ErrNotExist}
			}
			a.files[name] = server
		}
		return fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := fs.ReadFile(fsys, path)
			h.Write([]byte(path))
			h.Write(data)
			return err
		})
	}
	if err := add(swaggerui.FS, swaggerUIFiles); err != nil {
		return nil, err
	}
	if err := add(own.(fs.ReadDirFS), ownDocsFiles); err != nil {
		return nil, err
	}
	a.version = hex.EncodeToString(h.Sum(nil))[:12]
	return a, nil
})

// hasAsset reports whether fsys holds name, plainly or gzipped.
func hasAsset(fsys fs.FS, name string) bool {
	for _, n := range []string{name, name + ".gz"} {
		if _, err := fs.Stat(fsys, n); err == nil {
			return true
		}
	}
	return false
}

// registerDocs serves Swagger UI: /docs redirects to /docs/, the page, and
// its assets. These routes are outside the spec (see isAPIPath).
func (s *Server) registerDocs(e *echo.Echo) {
	assets, err := loadDocsAssets()
	if err != nil {
		// The files are embedded: only a broken build gets here.
		panic("server: Swagger UI assets: " + err.Error())
	}
	methods := []string{http.MethodGet, http.MethodHead}
	e.Match(methods, "/docs", func(c echo.Context) error {
		target := "/docs/"
		if q := c.Request().URL.RawQuery; q != "" {
			target += "?" + q
		}
		return c.Redirect(http.StatusMovedPermanently, target)
	})
	e.Match(methods, "/docs/", func(c echo.Context) error { return s.docsPage(c, assets) })
	e.Match(methods, "/docs/:file", func(c echo.Context) error {
		file, ok := assets.files[c.Param("file")]
		if !ok {
			return errRouteNotFound
		}
		c.Response().Header().Set("Cache-Control", docsAssetCache)
		file.ServeHTTP(c.Response(), rewritePath(c.Request(), "/"+c.Param("file")))
		return nil
	})
}

// rewritePath returns r for path, as the file servers expect it.
func rewritePath(r *http.Request, path string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = path, ""
	r2.URL = &u
	return r2
}

// docsPage answers the Swagger UI page. A browser with a live session gets
// the session's CSRF token in <meta name="csrf-token"> (the contract), so
// the page is never cached.
func (s *Server) docsPage(c echo.Context, assets *docsAssets) error {
	req := c.Request()
	data := struct{ CSRFToken, Version string }{Version: assets.version}
	if hasSessionCookie(req) {
		// No session, an expired or unknown one, or a database that is away:
		// the page works all the same, without the token.
		if sess, err := s.resolveSession(req.Context(), req); err == nil {
			data.CSRFToken = sess.CSRFToken
		}
	}
	var buf bytes.Buffer
	if err := assets.index.Execute(&buf, data); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", docsCSP)
	// The page's own requests ("Try it out") must carry their Origin for
	// the CSRF origin check. Under "no-referrer" the Fetch standard has a
	// browser send "Origin: null" on POST (Chromium sends the origin all the
	// same for same-origin requests; others need not). The page's URL holds
	// no secret, and its requests go to this origin only.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

func hasSessionCookie(req *http.Request) bool {
	for _, ck := range req.Cookies() {
		if ck.Name == session.Cookie || ck.Name == session.OldCookie {
			return true
		}
	}
	return false
}
