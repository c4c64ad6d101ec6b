package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// chromiumPath is Debian's chromium package; .ci/run installs it and sets
// USEREMAIL_REQUIRE_BROWSER, so that CI fails rather than skips.
const chromiumPath = "/usr/bin/chromium"

// TestDocsBrowser drives Swagger UI at /docs/ in headless Chromium like a
// person would: log in with "Try it out", then add an address with it,
// which needs the CSRF header that init.js copies from the cookie, then
// reset the password through a mailed link. It also
// checks that the page's Content-Security-Policy blocks nothing it needs and
// that nothing is fetched from anywhere but the server.
func TestDocsBrowser(t *testing.T) {
	requireBrowser(t)
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		const addr = "browser@example.com"
		user := e.signUp(addr) // through the API, before the browser
		start := time.Now()
		b := newDocsBrowser(t)
		t.Logf("%s started in %v", chromiumPath, time.Since(start).Round(time.Millisecond))
		docs := e.srv.URL + "/docs/"

		b.do(t, "open /docs/", chromedp.Navigate(docs))
		login := "#operations-auth-Login"
		b.waitJS(t, "Swagger UI rendered the operations", fmt.Sprintf(`!!document.querySelector(%q)`, login))
		title := b.waitJS(t, "the API title", `(document.querySelector(".info .title") || {}).textContent`)
		if !strings.HasPrefix(title, "useremail") {
			t.Errorf("Swagger UI shows title %q; want the spec's", title)
		}
		t.Logf("Swagger UI rendered after %v", time.Since(start).Round(time.Millisecond))
		if meta := b.evalString(t, `(document.querySelector('meta[name="csrf-token"]') || {content: ""}).content`); meta != "" {
			t.Errorf("the page of a browser that is not logged in has a csrf-token meta tag %q", meta)
		}

		// POST /auth/login/: expand, Try it out, fill the body, Execute.
		status, body := b.tryItOut(t, login, nil, mustJSON(map[string]string{"email": addr, "password": goodPasswd}))
		if status != "200" {
			t.Fatalf("Login in Swagger UI: status %q, body %s", status, body)
		}
		var sess struct {
			UserID    int64  `json:"user_id"`
			CSRFToken string `json:"csrf_token"`
		}
		if err := json.Unmarshal([]byte(body), &sess); err != nil || sess.UserID != user.Id {
			t.Fatalf("Login in Swagger UI answered %s (%v); want user %d", body, err, user.Id)
		}
		if got := b.evalString(t, `document.cookie`); !strings.Contains(got, "csrftoken="+sess.CSRFToken) {
			t.Errorf("after login the page sees cookies %q; want csrftoken=%s", got, sess.CSRFToken)
		}

		// POST /users/{id}/emails/ with the id and a body: needs the session
		// cookie (sent by the browser) and X-CSRFToken (init.js).
		added := "browser@work.example"
		status, body = b.tryItOut(t, "#operations-emails-AddEmail",
			map[string]string{"id": fmt.Sprint(user.Id)}, mustJSON(map[string]string{"email": added}))
		if status != "201" {
			t.Fatalf("AddEmail in Swagger UI: status %q, body %s", status, body)
		}
		t.Logf("logged in and added %s through Swagger UI after %v", added, time.Since(start).Round(time.Millisecond))
		// The page as a person sees it: the request and its 201.
		b.evalString(t, `document.querySelector("#operations-emails-AddEmail .live-responses-table").scrollIntoView({block: "center"})`)
		b.screenshot(t, "docs-"+string(db.Dialect())+".png")
		found := false
		for _, em := range e.emails(user.Id) {
			found = found || em.Email == added
		}
		if !found {
			t.Errorf("the store has no %s after Swagger UI answered 201", added)
		}

		// A logged-in browser gets the session's token in the page.
		b.do(t, "reload /docs/", chromedp.Navigate(docs))
		b.waitJS(t, "Swagger UI rendered the operations again", fmt.Sprintf(`!!document.querySelector(%q)`, login))
		if meta := b.evalString(t, `document.querySelector('meta[name="csrf-token"]').content`); meta != sess.CSRFToken {
			t.Errorf("logged-in /docs/: csrf-token meta %q; want the session's %q", meta, sess.CSRFToken)
		}

		// A password reset through Swagger UI: ask for the link, then POST
		// the new password to it (the link is read from the mail).
		status, body = b.tryItOut(t, "#operations-auth-RequestPasswordReset", nil, mustJSON(map[string]string{"email": addr}))
		if status != "202" {
			t.Fatalf("RequestPasswordReset in Swagger UI: status %q, body %s", status, body)
		}
		reset := e.newestLink(mail.KindPasswordReset, addr)
		status, body = b.tryItOut(t, "#operations-links-ConfirmPasswordReset",
			map[string]string{"user_id_key": reset.userKey, "token": reset.token}, mustJSON(map[string]string{"password": "purple monkey dishwasher lamp"}))
		if status != "204" {
			t.Fatalf("ConfirmPasswordReset in Swagger UI: status %q, body %s", status, body)
		}
		if got := e.loginWith(addr, "purple monkey dishwasher lamp"); got != 200 {
			t.Errorf("login with the password set through Swagger UI: %d", got)
		}

		b.checkClean(t, e.srv.URL)
	})
}

// docsBrowser is one headless Chromium with one tab, and what the tab reported.
type docsBrowser struct {
	ctx context.Context

	mu       sync.Mutex
	requests []string // URLs the page fetched
	problems []string // console errors, exceptions, CSP violations
}

// newDocsBrowser starts a headless Chromium; extra adds to its flags.
func newDocsBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *docsBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	b := &docsBrowser{}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	t.Cleanup(cancel)
	b.ctx = ctx
	// Starts the browser; no deadline here, or it would end the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	// CSP violations, as the page sees them (the DevTools script itself is
	// exempt from the page's policy).
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener("securitypolicyviolation",
			e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listen runs in the tab's event loop: it only records.
func (b *docsBrowser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			b.problems = append(b.problems, fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *runtime.EventExceptionThrown:
		b.problems = append(b.problems, "exception: "+ev.ExceptionDetails.Text+" "+describeRemote(ev.ExceptionDetails.Exception))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var args []string
			for _, a := range ev.Args {
				args = append(args, describeRemote(a))
			}
			b.problems = append(b.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	}
}

func describeRemote(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return ""
	case o.Description != "":
		return o.Description
	case len(o.Value) > 0:
		return string(o.Value)
	}
	return string(o.Type)
}

// do runs steps with a deadline.
func (b *docsBrowser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(t, what, err)
	}
}

func (b *docsBrowser) evalString(t *testing.T, expr string) string {
	t.Helper()
	s, err := b.tryEval(expr)
	if err != nil {
		b.fail(t, expr, err)
	}
	return s
}

// tryEval evaluates expr as a string, returning the error.
func (b *docsBrowser) tryEval(expr string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+expr+`)`))
}

// waitJS evaluates expr until it is truthy and returns it as a string. (Not
// chromedp.Poll: it compiles its predicate with new Function, which the
// page's CSP rightly refuses.)
func (b *docsBrowser) waitJS(t *testing.T, what, expr string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// While a navigation is under way the evaluation may fail (the old
		// page's context is gone): that is "not yet", too.
		v, err := b.tryEval(`(() => { const v = (` + expr + `); return v ? String(v) : ""; })()`)
		if err == nil && v != "" {
			return v
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			b.fail(t, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fail ends the test with what the page reported and a screenshot.
func (b *docsBrowser) fail(t *testing.T, what string, err error) {
	t.Helper()
	b.screenshot(t, "failure.png")
	b.mu.Lock()
	problems := strings.Join(b.problems, "\n  ")
	b.mu.Unlock()
	t.Fatalf("%s: %v\npage problems:\n  %s", what, err, problems)
}

// tryItOut expands the operation block op (a CSS id selector), presses "Try
// it out", fills the path parameters and the JSON body, presses Execute,
// and returns the status and the body that Swagger UI shows.
func (b *docsBrowser) tryItOut(t *testing.T, op string, params map[string]string, body []byte) (status, responseBody string) {
	t.Helper()
	b.do(t, "expand "+op,
		chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(op+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
	)
	for name, value := range params {
		sel := fmt.Sprintf(`%s tr[data-param-name=%q] input`, op, name)
		b.waitJS(t, "parameter "+name, fmt.Sprintf(`!!document.querySelector(%q)`, sel))
		b.setValue(t, sel, value)
	}
	if body != nil {
		sel := op + " textarea.body-param__text"
		b.waitJS(t, "body editor of "+op, fmt.Sprintf(`!!document.querySelector(%q)`, sel))
		b.setValue(t, sel, string(body))
	}
	b.do(t, "execute "+op, chromedp.Click(chromedp.CSS(op+" .btn.execute")))
	statusSel := op + " .live-responses-table .response .response-col_status"
	status = strings.TrimSpace(b.waitJS(t, "the response of "+op, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent`, statusSel)))
	responseBody = b.evalString(t, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent`,
		op+" .live-responses-table .response .response-col_description .microlight"))
	// The status cell may carry a note after the code ("201 Undocumented").
	if f := strings.Fields(status); len(f) > 0 {
		status = f[0]
	}
	return status, responseBody
}

// setValue types value into a React-controlled input or textarea: set
// through the native setter, then the input event React listens to. Swagger
// UI fills in the spec's example when "Try it out" opens, possibly after
// this ran: the value must still be there a moment later, or it is set
// again.
func (b *docsBrowser) setValue(t *testing.T, sel, value string) {
	t.Helper()
	set := fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (el.value !== %[2]q) {
			const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
			Object.getOwnPropertyDescriptor(proto, "value").set.call(el, %[2]q);
			el.dispatchEvent(new Event("input", { bubbles: true }));
			el.dispatchEvent(new Event("change", { bubbles: true }));
			return "set";
		}
		return "kept";
	})()`, sel, value)
	kept := 0
	for range 50 {
		if b.evalString(t, set) == "kept" {
			if kept++; kept == 3 {
				return
			}
		} else {
			kept = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.fail(t, "fill "+sel, fmt.Errorf("the page keeps changing the value away from %q", value))
}

// screenshot saves the viewport as PNG in the test's temporary folder (and in
// USEREMAIL_SCREENSHOT_DIR when set, to keep it).
func (b *docsBrowser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	dirs := []string{t.TempDir()}
	if keep := os.Getenv("USEREMAIL_SCREENSHOT_DIR"); keep != "" {
		dirs = append(dirs, keep)
	}
	for _, dir := range dirs {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Errorf("screenshot: %v", err)
			continue
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
}

// checkClean fails the test on CSP violations, console errors or
// exceptions (but those that hold one of expected), and on any request
// that left the server's origin.
func (b *docsBrowser) checkClean(t *testing.T, origin string, expected ...string) {
	t.Helper()
	if csp := b.evalString(t, `JSON.stringify(window.__csp || [])`); csp != "[]" {
		t.Errorf("the page's Content-Security-Policy blocked: %s", csp)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
problems:
	for _, p := range b.problems {
		for _, x := range expected {
			if strings.Contains(p, x) {
				continue problems
			}
		}
		t.Errorf("page problem: %s", p)
	}
	base, _ := url.Parse(origin)
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != base.Host) {
			t.Errorf("the page fetched %s, outside %s", r, origin)
		}
	}
	if len(b.requests) == 0 {
		t.Errorf("no requests recorded")
	}
	t.Logf("the page made %d requests, all to %s", len(b.requests), origin)
}
