// The browser client on a page of another origin (an app beside the
// service): sign up, log in, read the session, add addresses with the CSRF
// token from the cookie and, once the page cannot read it, from
// GET /auth/session/. Loaded by index.html, which TestTypeScriptBrowser
// (examples/sdk_browser_test.go) opens in headless Chromium; the outcome is
// window.result.
import { createBrowserClient } from "/sdk/dist/index.js";

const params = new URLSearchParams(location.search);
const baseUrl = params.get("api");
const email = params.get("email");
const password = "correct horse battery staple";

async function flow() {
  const steps = {};
  const api = createBrowserClient({ baseUrl });
  const signUp = await api.POST("/users/", { body: { email, password } });
  steps.signUp = signUp.response.status;
  const login = await api.POST("/auth/login/", { body: { email, password } });
  steps.login = login.response.status;
  const session = await api.GET("/auth/session/");
  steps.session = session.response.status;
  const id = session.data?.user_id;
  steps.sameUser = id === signUp.data?.id;
  steps.tokenFromCookie = (await api.csrfToken()) === session.data?.csrf_token;

  const added = await api.POST("/users/{id}/emails/", { params: { path: { id } }, body: { email: "work." + email } });
  steps.addWithCookieToken = added.response.status;

  // The page can no longer read the csrftoken cookie (as on another site's
  // host without USEREMAIL_COOKIE_DOMAIN): a new client asks the session.
  document.cookie = "csrftoken=; Max-Age=0; Path=/";
  const fresh = createBrowserClient({ baseUrl });
  steps.tokenFromSession = (await fresh.csrfToken()) === session.data?.csrf_token;
  const again = await fresh.POST("/users/{id}/emails/", { params: { path: { id } }, body: { email: "home." + email } });
  steps.addWithSessionToken = again.response.status;

  // A problem is readable across origins too.
  const taken = await fresh.POST("/users/{id}/emails/", { params: { path: { id } }, body: { email: "home." + email } });
  steps.problemCode = taken.error?.code;

  const list = await api.GET("/users/{id}/emails/", { params: { path: { id } } });
  steps.addresses = list.data?.map((e) => e.email);

  // The admin API gives this origin no CORS: the browser hides its answer.
  try {
    await fetch(`${baseUrl}/admin/users/`, { credentials: "include" });
    steps.admin = "readable";
  } catch {
    steps.admin = "blocked";
  }

  const logout = await api.POST("/auth/logout/");
  steps.logout = logout.response.status;
  const after = await api.GET("/auth/session/");
  steps.afterLogout = after.error?.code;
  return steps;
}

flow().then(
  (steps) => { window.result = { steps }; },
  (err) => { window.result = { error: String(err && err.stack || err) }; },
);
