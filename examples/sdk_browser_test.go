package examples_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/useremail/useremail/examples/internal/testserver"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// chromiumPath is Debian's chromium package; .ci/run installs it and sets
// USEREMAIL_REQUIRE_BROWSER, so that CI fails rather than skips.
const chromiumPath = "/usr/bin/chromium"

// TestTypeScriptBrowser runs the SDK's browser client in headless Chromium
// on an app's page of another origin than the service's, which lists it in
// TrustedOrigins: CORS with credentials, the cookies kept by the browser,
// the CSRF token from the cookie and from GET /auth/session/, and no CORS
// on /admin/. The same page on an origin the service does not trust can
// read nothing.
func TestTypeScriptBrowser(t *testing.T) {
	node := nodeSDK(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_BROWSER") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_BROWSER is set but %s is missing: apt-get install chromium", chromiumPath)
		}
		t.Skipf("%s is missing (apt-get install chromium); set USEREMAIL_REQUIRE_BROWSER to make this a failure", chromiumPath)
	}
	runIn(t, sdkDir, nil, node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json")
	// The app: the SDK's files under /sdk/, the page under /.
	files := http.StripPrefix("/sdk/", http.FileServer(http.Dir(sdkDir)))
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.ServeFile(w, r, sdkDir+"/test/browser/index.html")
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(app.Close)
	untrusted := httptest.NewServer(app.Config.Handler)
	t.Cleanup(untrusted.Close)

	storetest.Run(t, func(t *testing.T, db *store.DB) {
		srv := testserver.Start(t, db, func(c *server.Config) { c.TrustedOrigins = []string{app.URL} })
		ctx := newBrowser(t)

		steps := runPage(t, ctx, app.URL, srv.URL, "browser-"+string(db.Dialect())+"@example.com")
		want := map[string]any{
			"signUp": 201.0, "login": 200.0, "session": 200.0, "sameUser": true, "tokenFromCookie": true,
			"addWithCookieToken": 201.0, "tokenFromSession": true, "addWithSessionToken": 201.0,
			"problemCode": "email_taken", "admin": "blocked", "logout": 204.0, "afterLogout": "not_authenticated",
		}
		for k, v := range want {
			if steps[k] != v {
				t.Errorf("%s: %v, want %v", k, steps[k], v)
			}
		}
		addr := "browser-" + string(db.Dialect()) + "@example.com"
		got, _ := steps["addresses"].([]any)
		if !slices.Equal(got, []any{addr, "work." + addr, "home." + addr}) {
			t.Errorf("addresses %v", got)
		}

		// From an origin the service does not trust, the same page's
		// requests fail in the browser: it sees no CORS headers.
		steps = runPage(t, ctx, untrusted.URL, srv.URL, "untrusted-"+string(db.Dialect())+"@example.com")
		if steps["error"] == nil {
			t.Errorf("the untrusted origin's page ran: %v", steps)
		}
	})
}

// newBrowser starts headless Chromium with one tab, ended with the test.
func newBrowser(t *testing.T) context.Context {
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
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// runPage opens the app's page with the service at api and answers what
// its flow reported: the steps, or {"error": …}.
func runPage(t *testing.T, ctx context.Context, appURL, api, email string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	page := appURL + "/?api=" + url.QueryEscape(api) + "&email=" + url.QueryEscape(email)
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	var raw string
	for raw == "" {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.result === undefined ? "" : JSON.stringify(window.result)`))
		if err != nil {
			t.Fatalf("%s: waiting for the flow: %v", page, err)
		}
		raw = v
		if raw == "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	var result struct {
		Steps map[string]any `json:"steps"`
		Error any            `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &result); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	if result.Error != nil {
		t.Logf("%s: %v", appURL, result.Error)
		return map[string]any{"error": result.Error}
	}
	t.Logf("%s: %v", appURL, result.Steps)
	return result.Steps
}
