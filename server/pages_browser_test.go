package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/pages"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// The pages in headless Chromium: the whole journey with JavaScript on,
// sign-in and add with it off, and every page in light and dark at 1280
// and 360 px, screenshotted (into server/testdata/screenshots, or
// USEREMAIL_SCREENSHOT_DIR) and checked by axe-core for WCAG 2.1 AA.
//
// The browser reaches the test server as publicURL's host (a host
// resolver rule), so the mailed links work as mailed.

// requireBrowser skips the test without Chromium, or fails it under
// USEREMAIL_REQUIRE_BROWSER.
func requireBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_BROWSER") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_BROWSER is set but %s is missing: apt-get install chromium", chromiumPath)
		}
		t.Skipf("%s is missing (apt-get install chromium); set USEREMAIL_REQUIRE_BROWSER to make this a failure", chromiumPath)
	}
}

// axeDir holds the axe-core npm package (tools/axe, `npm ci` there).
const axeDir = "../tools/axe"

var axeOnce = sync.OnceValues(func() (string, error) {
	path := filepath.Join(axeDir, "node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(path); err != nil {
		// The test's own setup: install the pinned package.
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		cmd.Dir = axeDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("npm ci in tools/axe: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(path)
	return string(b), err
})

// axeSource returns axe.min.js, installing it first if need be.
func axeSource(t *testing.T) string {
	t.Helper()
	src, err := axeOnce()
	if err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_BROWSER") != "" || os.Getenv("USEREMAIL_REQUIRE_NODE") != "" {
			t.Fatalf("axe-core is not installed: %v", err)
		}
		t.Skipf("axe-core is not installed (%v); set USEREMAIL_REQUIRE_BROWSER to make this a failure", err)
	}
	return src
}

// pageBrowser is a Chromium that reaches the test server as publicURL.
type pageBrowser struct {
	*docsBrowser
	base string
}

func newPageBrowser(t *testing.T, e *env, js bool) *pageBrowser {
	t.Helper()
	srv, _ := url.Parse(e.srv.URL)
	pub, _ := url.Parse(publicURL)
	rule := fmt.Sprintf("MAP %s:80 %s", pub.Hostname(), srv.Host)
	b := &pageBrowser{docsBrowser: newDocsBrowser(t, chromedp.Flag("host-resolver-rules", rule)), base: publicURL}
	if !js {
		if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// open navigates to path and waits for the page.
func (b *pageBrowser) open(t *testing.T, path string) {
	t.Helper()
	b.do(t, "open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// fill types value into the input sel, which is empty.
func (b *pageBrowser) fill(t *testing.T, sel, value string) {
	t.Helper()
	b.do(t, "fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// submit clicks sel, a form's button, and waits for the answer's page.
func (b *pageBrowser) submit(t *testing.T, sel string) {
	t.Helper()
	before := b.location(t)
	b.evalString(t, `document.documentElement.dataset.old = "1"`)
	b.do(t, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
	b.waitJS(t, "the page after "+sel+" on "+before,
		`document.readyState === "complete" && document.documentElement.dataset.old !== "1"`)
}

// follow clicks the link sel and waits for its page.
func (b *pageBrowser) follow(t *testing.T, sel string) { b.submit(t, sel) }

func (b *pageBrowser) location(t *testing.T) string {
	t.Helper()
	return b.evalString(t, `location.pathname + location.search`)
}

// text is the text content of sel, "" when there is none.
func (b *pageBrowser) text(t *testing.T, sel string) string {
	t.Helper()
	return b.evalString(t, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent.trim()`, sel))
}

// wantAt checks the page's path and that sel says want.
func (b *pageBrowser) wantAt(t *testing.T, path, sel, want string) {
	t.Helper()
	if got := b.location(t); got != path {
		b.fail(t, "location", fmt.Errorf("at %s, want %s", got, path))
	}
	if got := b.text(t, sel); !strings.Contains(got, want) {
		b.fail(t, "page text", fmt.Errorf("%s says %q, want %q", sel, got, want))
	}
}

// mailedLink returns the newest link of kind mailed to addr, from the
// dev mailbox's JSON.
func (e *env) mailboxLink(t *testing.T, kind, addr string) string {
	t.Helper()
	e.deliver()
	for _, m := range e.cfg.Mailbox.Mails() {
		if m.Kind == kind && m.To == addr && len(m.Links) == 1 {
			return m.Links[0]
		}
	}
	t.Fatalf("the mailbox has no %s mail to %s", kind, addr)
	return ""
}

// clickMailedLink opens the dev mailbox and clicks the link of a mail.
func (b *pageBrowser) clickMailedLink(t *testing.T, link string) {
	t.Helper()
	b.open(t, "/dev/mailbox/")
	b.follow(t, fmt.Sprintf(`.mail-links a[href=%q]`, link))
}

// TestAccountBrowserJourney: sign up, add an address, verify it through
// the mailed link from the dev mailbox, make it primary through its link,
// sign out and sign in with it; change the password, sign out, sign in
// again; sign out everywhere, reset the password through the mailed link,
// sign in, delete the account; JavaScript on.
func TestAccountBrowserJourney(t *testing.T) {
	requireBrowser(t)
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withMailbox(), withoutLimits())
		b := newPageBrowser(t, e, true)
		const first, second = "journey@example.com", "journey@work.example"

		b.open(t, "/account/signup/")
		b.fill(t, "#email", first)
		b.fill(t, "#password", goodPasswd)
		b.submit(t, `form button[type="submit"]`)
		b.wantAt(t, "/account/", ".flash", "We sent a link to "+first)

		b.fill(t, "#add-email", second)
		b.submit(t, `form[action="/account/emails/"] button`)
		b.wantAt(t, "/account/", ".flash", second+" was added")

		b.clickMailedLink(t, e.mailboxLink(t, mail.KindVerify, second))
		b.wantAt(t, b.location(t), "h1", "Verify your email address")
		if got := b.text(t, ".meta"); got != "Account: j•••y@example.com" {
			t.Errorf("the verify page names the account as %q", got)
		}
		b.submit(t, `main form button`)
		b.wantAt(t, b.location(t), "h1", "Address verified")
		b.follow(t, `main .actions a[href="/account/"]`)

		var workID int64
		for _, em := range e.emails(e.count(`SELECT MAX(id) FROM users`)) {
			if em.Email == second {
				workID = em.ID
				if !em.Verified {
					t.Fatalf("%s is not verified after the click", second)
				}
			}
		}
		form := fmt.Sprintf(`form[action="/account/emails/%d/primary/"]`, workID)
		b.do(t, "open make primary", chromedp.Click(chromedp.CSS(fmt.Sprintf(`li:has(%s) summary`, form))))
		b.fill(t, fmt.Sprintf("#password-%d", workID), goodPasswd)
		b.submit(t, form+" button")
		b.wantAt(t, "/account/", ".flash", "We sent a link to "+second)

		b.clickMailedLink(t, e.mailboxLink(t, mail.KindChangeEmail, second))
		b.wantAt(t, b.location(t), "h1", "Change your primary email address")
		b.submit(t, `main form button`)
		b.wantAt(t, b.location(t), "h1", "Primary address changed")
		b.follow(t, `main .actions a[href="/account/"]`)
		b.wantAt(t, "/account/", ".meta", "Signed in as "+second)

		b.submit(t, `header form button`)
		b.wantAt(t, "/account/login/", ".flash", "You are signed out.")
		b.fill(t, "#email", second)
		b.fill(t, "#password", goodPasswd)
		b.submit(t, `form button[type="submit"]`)
		b.wantAt(t, "/account/", ".meta", "Signed in as "+second)

		b.fill(t, "#current-password", goodPasswd)
		b.fill(t, "#new-password", newPasswd)
		b.fill(t, "#new-password2", newPasswd)
		b.submit(t, `form[action="/account/password/"] button`)
		b.wantAt(t, "/account/", ".flash", "Your password is changed.")
		b.submit(t, `header form button`)
		b.wantAt(t, "/account/login/", ".flash", "You are signed out.")
		b.fill(t, "#email", second)
		b.fill(t, "#password", newPasswd)
		b.submit(t, `form button[type="submit"]`)
		b.wantAt(t, "/account/", ".meta", "Signed in as "+second)

		b.submit(t, `form[action="/account/sessions/end/"] button`)
		b.wantAt(t, "/account/login/", ".flash", "You are signed out everywhere.")
		b.follow(t, `a[href="/account/password-reset/"]`)
		b.fill(t, "#email", second)
		b.submit(t, `main form button`)
		b.wantAt(t, "/account/password-reset/", ".flash", "If "+second+" belongs to an account")
		const third = "seven silent swans gliding"
		b.clickMailedLink(t, e.mailboxLink(t, mail.KindPasswordReset, second))
		b.wantAt(t, b.location(t), "h1", "Choose a new password")
		b.fill(t, "#password", third)
		b.fill(t, "#password2", third)
		b.submit(t, `main form button`)
		b.wantAt(t, b.location(t), "h1", "Password changed")
		b.follow(t, `main .actions a[href="/account/login/"]`)
		b.fill(t, "#email", second)
		b.fill(t, "#password", third)
		b.submit(t, `form button[type="submit"]`)
		b.wantAt(t, "/account/", ".meta", "Signed in as "+second)

		b.do(t, "open delete", chromedp.Click(chromedp.CSS(`details:has(form[action="/account/delete/"]) summary`)))
		b.fill(t, "#delete-password", third)
		b.submit(t, `form[action="/account/delete/"] button`)
		b.wantAt(t, "/account/login/", ".flash", "Your account is deleted.")
		if n := e.count(`SELECT COUNT(*) FROM users`); n != 0 {
			t.Fatalf("%d users after the deletion", n)
		}
		b.checkClean(t, b.base)
	})
}

// TestAccountBrowserNoJS: sign in and add an address with JavaScript off.
func TestAccountBrowserNoJS(t *testing.T) {
	requireBrowser(t)
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withoutLimits())
		user := e.signUp("nojs@example.com")
		b := newPageBrowser(t, e, false)
		// With scripts off, <noscript> holds elements, not text.
		b.do(t, "probe", chromedp.Navigate(`data:text/html,<noscript><p id="off">off</p></noscript>`))
		if off := b.evalString(t, `!!document.getElementById("off")`); off != "true" {
			t.Fatalf("JavaScript is not off in the browser")
		}
		b.open(t, "/account/")
		if got := b.location(t); got != "/account/login/?next=%2Faccount%2F" {
			t.Fatalf("signed out, /account/ went to %s", got)
		}
		b.fill(t, "#email", "nojs@example.com")
		b.fill(t, "#password", goodPasswd)
		b.submit(t, `form button[type="submit"]`)
		b.wantAt(t, "/account/", ".flash", "You are signed in.")
		b.fill(t, "#add-email", "nojs@work.example")
		b.submit(t, `form[action="/account/emails/"] button`)
		b.wantAt(t, "/account/", ".flash", "nojs@work.example was added")
		if ems := e.emails(user.Id); len(ems) != 2 || ems[1].Email != "nojs@work.example" {
			t.Fatalf("the store has %+v", ems)
		}
	})
}

// TestPagesLook shows every page in light and dark at 1280 and 360 px:
// screenshots, axe-core (WCAG 2.1 A and AA) with no violation, and no
// horizontal scrolling at 360 px.
func TestPagesLook(t *testing.T) {
	requireBrowser(t)
	axe := axeSource(t)
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, withMailbox(), withoutLimits(), withBrand("useremail", "https://app.example.com/"))
		u := e.verifiedUser("look@example.com")
		e.addEmail(u, "look@work.example")
		e.confirmVerify("look@work.example")
		e.addEmail(u, "look.pending@example.org")
		e.addEmail(u, "look.unverified@example.net")
		e.requestChange(u, "look@new.example")
		verifyLink := e.mailboxLink(t, mail.KindVerify, "look.pending@example.org")
		changeLink := e.mailboxLink(t, mail.KindChangeEmail, "look@new.example")
		// Another user's reset link: using it leaves look's session be.
		e.verifiedUser("look.reset@example.com")
		e.requestReset("look.reset@example.com")
		resetLink := strings.TrimPrefix(e.mailboxLink(t, mail.KindPasswordReset, "look.reset@example.com"), publicURL)
		b := newPageBrowser(t, e, true)
		dir := screenshotDir(t)
		var workID int64
		for _, em := range e.emails(u.id) {
			if em.Email == "look@work.example" {
				workID = em.ID
			}
		}
		steps := []struct {
			name string
			show func()
		}{
			{"login", func() { b.open(t, "/account/login/") }},
			{"login-error", func() {
				b.fill(t, "#email", "look@example.com")
				b.fill(t, "#password", "not the password")
				b.submit(t, `form button[type="submit"]`)
			}},
			{"signup", func() { b.open(t, "/account/signup/") }},
			{"signup-error", func() {
				b.fill(t, "#email", "look@example.com")
				b.fill(t, "#password", "short")
				b.submit(t, `form button[type="submit"]`)
			}},
			{"verify-link", func() { b.open(t, strings.TrimPrefix(verifyLink, publicURL)) }},
			{"verify-done", func() { b.submit(t, "main form button") }},
			{"link-error", func() { b.open(t, strings.TrimPrefix(verifyLink, publicURL)+"x") }},
			{"not-found", func() { b.open(t, "/account/nowhere/") }},
			{"account", func() {
				b.open(t, "/account/login/?next=/account/")
				b.fill(t, "#email", "look@example.com")
				b.fill(t, "#password", goodPasswd)
				b.submit(t, `form button[type="submit"]`)
			}},
			{"account-error", func() {
				form := fmt.Sprintf(`form[action="/account/emails/%d/primary/"]`, workID)
				b.do(t, "open make primary", chromedp.Click(chromedp.CSS(fmt.Sprintf(`li:has(%s) summary`, form))))
				b.fill(t, fmt.Sprintf("#password-%d", workID), "wrong password")
				b.submit(t, form+" button")
			}},
			{"account-password-error", func() {
				b.open(t, "/account/")
				b.fill(t, "#current-password", goodPasswd)
				b.fill(t, "#new-password", newPasswd)
				b.fill(t, "#new-password2", newPasswd+"!")
				b.submit(t, `form[action="/account/password/"] button`)
			}},
			{"account-delete-error", func() {
				b.do(t, "open delete", chromedp.Click(chromedp.CSS(`details:has(form[action="/account/delete/"]) summary`)))
				b.fill(t, "#delete-password", "wrong password")
				b.submit(t, `form[action="/account/delete/"] button`)
			}},
			{"primary-link", func() { b.open(t, strings.TrimPrefix(changeLink, publicURL)) }},
			{"primary-done", func() { b.submit(t, "main form button") }},
			{"mailbox", func() { b.open(t, "/dev/mailbox/") }},
			{"forgot", func() { b.open(t, "/account/password-reset/") }},
			{"forgot-sent", func() {
				b.fill(t, "#email", "look.reset@example.com")
				b.submit(t, `main form button`)
			}},
			{"reset-link", func() { b.open(t, resetLink) }},
			{"reset-error", func() {
				b.fill(t, "#password", "password1")
				b.fill(t, "#password2", "password1")
				b.submit(t, `main form button`)
			}},
			{"reset-done", func() {
				b.fill(t, "#password", newPasswd)
				b.fill(t, "#password2", newPasswd)
				b.submit(t, `main form button`)
			}},
			{"reset-used", func() { b.open(t, resetLink) }},
		}
		for _, step := range steps {
			step.show()
			for _, scheme := range []string{"light", "dark"} {
				for _, width := range []int64{1280, 360} {
					b.emulate(t, scheme, width)
					name := fmt.Sprintf("%s-%s-%d.png", step.name, scheme, width)
					b.shot(t, dir, string(db.Dialect())+"-"+name)
					if width == 360 {
						if w := b.evalString(t, `document.documentElement.scrollWidth`); w != "360" {
							t.Errorf("%s: the page is %s px wide at 360 px", name, w)
						}
					}
					if width == 1280 || scheme == "light" {
						b.checkAxe(t, axe, name)
					}
				}
			}
		}
		// The other languages at 360 px: longer words, same layout.
		b.emulate(t, "light", 360)
		for _, lang := range []string{"de", "fr", "es"} {
			if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": lang}}); err != nil {
				t.Fatal(err)
			}
			for _, pg := range []struct{ name, path string }{
				{"account", "/account/"}, {"mailbox", "/dev/mailbox/"}, {"link-error", strings.TrimPrefix(verifyLink, publicURL) + "x"},
				{"forgot", "/account/password-reset/"}, {"reset-used", resetLink},
			} {
				path := pg.path
				b.open(t, path)
				if got := b.evalString(t, `document.documentElement.lang`); got != lang {
					t.Errorf("%s in %s says lang=%q", path, lang, got)
				}
				if w := b.evalString(t, `document.documentElement.scrollWidth`); w != "360" {
					t.Errorf("%s in %s is %s px wide at 360 px", path, lang, w)
				}
				name := fmt.Sprintf("%s-%s-light-360.png", pg.name, lang)
				b.shot(t, dir, string(db.Dialect())+"-"+name)
				b.checkAxe(t, axe, name)
			}
		}
		b.checkClean(t, b.base, "the server responded with a status of 400", "the server responded with a status of 404")
	})
}

// emulate sets the colour scheme and the viewport's width.
func (b *pageBrowser) emulate(t *testing.T, scheme string, width int64) {
	t.Helper()
	b.do(t, "emulate", chromedp.EmulateViewport(width, 900),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}))
}

// screenshotDir is where TestPagesLook keeps its screenshots.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("USEREMAIL_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot saves the whole page as PNG.
func (b *pageBrowser) shot(t *testing.T, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkAxe runs axe-core on the page and fails on any WCAG 2.1 A or AA
// violation.
func (b *pageBrowser) checkAxe(t *testing.T, axe, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axe+"\n;true")); err != nil {
		b.fail(t, "inject axe-core", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
		resultTypes: ["violations"],
	}).then(r => JSON.stringify({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id, help: v.help,
		nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)}))}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail(t, "axe.run", err)
	}
	var res struct {
		Passes     int
		Violations []struct {
			ID, Help string
			Nodes    []string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Violations {
		t.Errorf("%s: axe %s (%s):\n  %s", name, v.ID, v.Help, strings.Join(v.Nodes, "\n  "))
	}
	if res.Passes == 0 {
		t.Errorf("%s: axe checked nothing", name)
	}
}

// TestTemplatesAxe renders every page template with its sample data in
// every language, and checks each in light and dark with axe-core.
func TestTemplatesAxe(t *testing.T) {
	requireBrowser(t)
	axe := axeSource(t)
	r, err := pages.New("")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/assets/style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Write(r.Style())
	})
	mux.HandleFunc("/assets/icon.svg", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Write(pages.Icon())
	})
	mux.HandleFunc("/sample/{name}/{lang}", func(w http.ResponseWriter, req *http.Request) {
		html, err := r.Render(req.PathValue("name"), pages.Sample(req.PathValue("name"), locale.Default().Localizer(req.PathValue("lang"))))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Security-Policy", pages.CSP())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	b := &pageBrowser{docsBrowser: newDocsBrowser(t), base: ts.URL}
	for _, name := range pages.Names {
		for _, lang := range locale.Languages {
			b.open(t, "/sample/"+name+"/"+lang)
			for _, scheme := range []string{"light", "dark"} {
				b.emulate(t, scheme, 1280)
				b.checkAxe(t, axe, fmt.Sprintf("template %s in %s, %s", name, lang, scheme))
			}
		}
	}
	b.checkClean(t, ts.URL)
}
