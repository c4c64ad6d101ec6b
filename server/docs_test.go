package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// The Swagger UI page at /docs/ and its assets. (The spec itself, at
// /openapi.yaml and /openapi.json, is checked in TestOperations.)

// wantDocsCSP is the policy of the page: everything from this origin, the
// data: icons of Swagger UI's style sheet, and nothing inline.
const wantDocsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// docsAssetTypes are the files the page loads, with their media types.
var docsAssetTypes = map[string]string{
	"swagger-ui-bundle.js": "application/javascript",
	"swagger-ui.css":       "text/css; charset=utf-8",
	"favicon-32x32.png":    "image/png",
	"favicon-16x16.png":    "image/png",
	"init.js":              "application/javascript",
	"docs.css":             "text/css; charset=utf-8",
}

var docsCSRFMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// getDocs fetches path without following redirects or validating against the
// spec (the docs are outside it).
func (e *env) getDocs(t *testing.T, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req := e.request(http.MethodGet, path, nil, header...)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// No transparent gzip: the tests look at what is on the wire.
	client.Transport = &http.Transport{DisableCompression: true}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res, body
}

func TestDocsPage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		alice := e.newUser("alice@example.com")

		res, body := e.getDocs(t, "/docs")
		if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/docs/" {
			t.Errorf("/docs: %d Location %q; want 301 to /docs/", res.StatusCode, res.Header.Get("Location"))
		}
		if res, _ := e.getDocs(t, "/docs?x=1"); res.Header.Get("Location") != "/docs/?x=1" {
			t.Errorf("/docs?x=1: Location %q; want the query kept", res.Header.Get("Location"))
		}

		// Not logged in: the page, without a CSRF token.
		res, body = e.getDocs(t, "/docs/")
		page := string(body)
		checkDocsPage(t, "anonymous", res, page)
		if docsCSRFMeta.MatchString(page) || strings.Contains(page, "csrf-token") {
			t.Errorf("anonymous /docs/ has a csrf-token meta tag")
		}

		// Logged in: the session's token, whichever session cookie is sent.
		for _, cookie := range []string{
			"sessionid=" + alice.sid,
			"osessionid=" + alice.sid,
			"sessionid=" + alice.sid + "; osessionid=" + alice.sid + "; csrftoken=" + alice.csrf,
		} {
			res, body = e.getDocs(t, "/docs/", "Cookie", cookie)
			checkDocsPage(t, cookie, res, string(body))
			m := docsCSRFMeta.FindStringSubmatch(string(body))
			if m == nil || m[1] != alice.csrf {
				t.Errorf("%s: csrf-token meta %q; want the session's token %q", cookie, m, alice.csrf)
			}
		}

		// Cookies that name no live session: the page, without a token.
		for _, cookie := range []string{
			"sessionid=nope",
			"sessionid=" + alice.sid + "; osessionid=other",
			"csrftoken=" + alice.csrf,
		} {
			res, body = e.getDocs(t, "/docs/", "Cookie", cookie)
			checkDocsPage(t, cookie, res, string(body))
			if docsCSRFMeta.Match(body) {
				t.Errorf("%s: csrf-token meta tag without a live session", cookie)
			}
		}

		// After logout the old cookie gets no token.
		if r, _ := alice.LogoutWithResponse(ctx); r.StatusCode() != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.StatusCode(), r.Body)
		}
		if _, body = e.getDocs(t, "/docs/", "Cookie", "sessionid="+alice.sid); docsCSRFMeta.Match(body) {
			t.Errorf("csrf-token meta tag for a session that was logged out")
		}
	})
}

// checkDocsPage checks what every answer of /docs/ carries.
func checkDocsPage(t *testing.T, what string, res *http.Response, page string) {
	t.Helper()
	h := res.Header
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("%s: /docs/ %d %s", what, res.StatusCode, h.Get("Content-Type"))
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": wantDocsCSP,
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		// Not no-referrer: a browser may then send "Origin: null" on the
		// page's POSTs, which the CSRF origin check refuses.
		"Referrer-Policy": "same-origin",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: /docs/ %s %q; want %q", what, name, got, want)
		}
	}
	// The CSP allows no inline code: every script is a file, no inline
	// style or handler.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(\s[^>]*)?>[^<]`),
		regexp.MustCompile(`<script(?:\s+[a-z]+="[^"]*")*\s*>`), // a script without src
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?i)https?://`), // nothing from elsewhere
	} {
		if m := bad.FindString(page); m != "" && !strings.Contains(m, "src=") {
			t.Errorf("%s: /docs/ has %q, which its CSP forbids", what, m)
		}
	}
	for name := range docsAssetTypes {
		if !strings.Contains(page, `"`+name+"?v=") {
			t.Errorf("%s: /docs/ does not load %s (with a version)", what, name)
		}
	}
}

func TestDocsAssets(t *testing.T) {
	e := newEnv(t, storetest.Open(t, store.SQLite))
	for name, ctype := range docsAssetTypes {
		res, body := e.getDocs(t, "/docs/"+name+"?v=1")
		h := res.Header
		if res.StatusCode != http.StatusOK || h.Get("Content-Type") != ctype || len(body) == 0 {
			t.Errorf("%s: %d %q %d bytes; want 200 %q", name, res.StatusCode, h.Get("Content-Type"), len(body), ctype)
			continue
		}
		if got := h.Get("Cache-Control"); got != "public, max-age=86400" {
			t.Errorf("%s: Cache-Control %q; want public, max-age=86400", name, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", name)
		}
		etag := h.Get("Etag")
		if etag == "" {
			t.Errorf("%s: no ETag", name)
			continue
		}
		if res, _ := e.getDocs(t, "/docs/"+name, "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-None-Match: %d; want 304", name, res.StatusCode)
		}
	}

	// Swagger UI's big files go out gzipped to clients that accept it, and
	// plain to those that do not.
	res, gz := e.getDocs(t, "/docs/swagger-ui-bundle.js", "Accept-Encoding", "gzip")
	_, plain := e.getDocs(t, "/docs/swagger-ui-bundle.js")
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("swagger-ui-bundle.js with Accept-Encoding gzip: Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain) || !bytes.Contains(plain, []byte("SwaggerUIBundle")) {
		t.Errorf("swagger-ui-bundle.js: gzipped and plain answers differ (%v), or it is not Swagger UI", err)
	}

	// The init script wires the CSRF header for writes and the local spec.
	_, initJS := e.getDocs(t, "/docs/init.js")
	for _, want := range []string{`url: "/openapi.json"`, `cookie("csrftoken")`, `"X-CSRFToken"`, `requestInterceptor`, `validatorUrl: null`} {
		if !bytes.Contains(initJS, []byte(want)) {
			t.Errorf("init.js lacks %s", want)
		}
	}

	// Anything else under /docs/ is a problem+json 404; writes are 405.
	for _, path := range []string{"/docs/nope.js", "/docs/init.js/", "/docs/oauth2-redirect.html", "/docs/swagger-ui.js", "/docs/a/b", "/docs/..%2Fgo.mod", "/docs/index.html"} {
		res, body := e.getDocs(t, path)
		if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %.100s; want a 404 problem", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	for _, path := range []string{"/docs/", "/docs/init.js"} {
		r := e.do(http.MethodPost, path, []byte("{}"), "Content-Type", "application/json")
		if r.status != http.StatusMethodNotAllowed || r.ContentType() != "application/problem+json" {
			t.Errorf("POST %s: %d %s; want a 405 problem", path, r.status, r.ContentType())
		}
	}
	// HEAD answers like GET, without a body.
	req := e.request(http.MethodHead, "/docs/", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Security-Policy") != wantDocsCSP {
		t.Errorf("HEAD /docs/: %d", res.StatusCode)
	}
}
