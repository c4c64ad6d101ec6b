// The SDK against a real server, through whole flows: sign up, verify, log
// in, add an address, follow its verification link, request a change of the primary
// address, follow that link; reset the password, change it, sign out
// everywhere, delete the account. Run by `go test ./examples -run TestTypeScriptSDK`,
// which starts the server (USEREMAIL_URL) and a test-only mailbox that
// answers the mails the server sent (USEREMAIL_MAILBOX_URL).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createUseremailClient } from "../dist/index.js";

const baseUrl = process.env.USEREMAIL_URL;
const mailbox = process.env.USEREMAIL_MAILBOX_URL;
const skip = !baseUrl || !mailbox ? "USEREMAIL_URL and USEREMAIL_MAILBOX_URL are unset: run go test ./examples -run TestTypeScriptSDK" : false;
const password = "correct horse battery staple";

/** The newest link of kind mailed to address. */
async function mailedLink(address, kind) {
  const res = await fetch(`${mailbox}?to=${encodeURIComponent(address)}`);
  assert.equal(res.status, 200);
  const mails = (await res.json()).filter((m) => m.kind === kind);
  assert.ok(mails.length > 0, `no ${kind} mail to ${address}`);
  const links = mails.at(-1).links;
  assert.equal(links.length, 1);
  return links[0];
}

test("sign up, log in, add, verify, change the primary address", { skip }, async () => {
  const api = createUseremailClient({ baseUrl });
  const email = "ts-alice@example.com";
  const work = "ts-alice@work.example";
  const next = "ts-alice@new.example";

  const signUp = await api.POST("/users/", { body: { email, password } });
  assert.equal(signUp.response.status, 201);
  assert.equal(signUp.data.email, email);

  // The sign-up mailed a link to verify the first address.
  const first = await api.openLink(await mailedLink(email, "verify"));
  assert.equal(first.response.status, 200, JSON.stringify(first.error));
  assert.deepEqual([first.data.email, first.data.primary, first.data.verified], [email, true, true]);

  const login = await api.POST("/auth/login/", { body: { email, password } });
  assert.equal(login.response.status, 200, JSON.stringify(login.error));
  const id = login.data.user_id;
  assert.equal(id, signUp.data.id);
  // The cookies of the contract, kept for the next requests.
  assert.ok(api.cookies.get("sessionid"));
  assert.equal(api.cookies.get("osessionid"), api.cookies.get("sessionid"));
  assert.equal(api.cookies.csrfToken, login.data.csrf_token);

  const session = await api.GET("/auth/session/");
  assert.equal(session.response.status, 200);
  assert.equal(session.data.user_id, id);

  // A write: the session cookie and X-CSRFToken, both sent by the client.
  const added = await api.POST("/users/{id}/emails/", { params: { path: { id } }, body: { email: work } });
  assert.equal(added.response.status, 201, JSON.stringify(added.error));
  assert.deepEqual({ ...added.data, id: 0 }, { id: 0, email: work, verified: false, primary: false });

  const verified = await api.openLink(await mailedLink(work, "verify"));
  assert.equal(verified.response.status, 200, JSON.stringify(verified.error));
  assert.equal(verified.data.email, work);
  assert.equal(verified.data.verified, true);
  assert.equal(verified.data.primary, false);

  const change = await api.POST("/users/{id}/email-change/", { params: { path: { id } }, body: { new_email: next, password } });
  assert.equal(change.response.status, 204, JSON.stringify(change.error));

  const primary = await api.openLink(await mailedLink(next, "change_email"));
  assert.equal(primary.response.status, 200, JSON.stringify(primary.error));
  assert.equal(primary.data.email, next);
  assert.equal(primary.data.primary, true);
  assert.equal(primary.data.verified, true);

  // Single use.
  const again = await api.openLink(await mailedLink(next, "change_email"));
  assert.equal(again.response.status, 400);
  assert.equal(again.error.code, "link_used");

  const current = await api.GET("/users/{id}/primary-email/", { params: { path: { id } } });
  assert.equal(current.data.email, next);
  const list = await api.GET("/users/{id}/emails/", { params: { path: { id } } });
  // The primary first, then by age.
  assert.deepEqual(
    list.data.map((e) => [e.email, e.primary, e.verified]),
    [[next, true, true], [email, false, true], [work, false, true]],
  );
});

test("problems, CSRF and logout", { skip }, async () => {
  const api = createUseremailClient({ baseUrl: baseUrl + "/" });
  const email = "ts-bob@example.com";

  const anonymous = await api.GET("/auth/session/");
  assert.equal(anonymous.response.status, 401);
  assert.equal(anonymous.error.code, "not_authenticated");
  assert.equal(anonymous.response.headers.get("content-type"), "application/problem+json");

  assert.equal((await api.POST("/users/", { body: { email, password } })).response.status, 201);
  const taken = await api.POST("/users/", { body: { email, password } });
  assert.equal(taken.response.status, 400);
  assert.equal(taken.error.code, "email_taken");

  const login = await api.POST("/auth/login/", { body: { email, password } });
  const id = login.data.user_id;

  const bad = await api.POST("/users/{id}/emails/", { params: { path: { id } }, body: { email: "not an address" } });
  assert.equal(bad.response.status, 400);
  assert.equal(bad.error.code, "invalid_email");

  // Without the CSRF header (by hand, past the client) a write is refused.
  const res = await fetch(`${baseUrl}/users/${id}/emails/`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Cookie: api.cookies.header() },
    body: JSON.stringify({ email: "ts-bob@work.example" }),
  });
  assert.equal(res.status, 403);
  assert.equal((await res.json()).code, "csrf_failed");

  const other = await api.GET("/users/{id}/emails/", { params: { path: { id: id + 1000 } } });
  assert.equal(other.response.status, 403);
  assert.equal(other.error.code, "forbidden");

  const logout = await api.POST("/auth/logout/");
  assert.equal(logout.response.status, 204);
  assert.equal(api.cookies.get("sessionid"), undefined, "logout expires the session cookies");
  assert.equal(api.cookies.csrfToken, undefined);
  assert.equal((await api.GET("/auth/session/")).response.status, 401);

  await assert.rejects(api.openLink("https://example.com/elsewhere"), /not a useremail link/);
});

test("reset the password, change it, sign out everywhere, delete the account", { skip }, async () => {
  const api = createUseremailClient({ baseUrl });
  const email = "ts-carol@example.com";
  const fresh = "purple monkey dishwasher lamp";
  assert.equal((await api.POST("/users/", { body: { email, password } })).response.status, 201);

  // 202 and no body, whether or not anyone holds the address.
  for (const address of [email, "ts-nobody@example.com"]) {
    const asked = await api.POST("/auth/password-reset/", { body: { email: address } });
    assert.equal(asked.response.status, 202);
    assert.equal(await asked.response.text(), "");
  }
  const link = await mailedLink(email, "password_reset");
  const weak = await api.resetPassword(link, "password123");
  assert.equal(weak.response.status, 400);
  assert.equal(weak.error.code, "password_too_weak");
  const done = await api.resetPassword(link, fresh);
  assert.equal(done.response.status, 204, JSON.stringify(done.error));
  const used = await api.resetPassword(link, fresh + "!");
  assert.equal(used.error.code, "link_used");
  assert.equal((await api.POST("/auth/login/", { body: { email, password } })).response.status, 400);

  const login = await api.POST("/auth/login/", { body: { email, password: fresh } });
  assert.equal(login.response.status, 200, JSON.stringify(login.error));
  const id = login.data.user_id;
  const changed = await api.POST("/users/{id}/password/", { params: { path: { id } }, body: { password: fresh, new_password: password } });
  assert.equal(changed.response.status, 204, JSON.stringify(changed.error));
  assert.equal((await api.GET("/auth/session/")).response.status, 200, "a change keeps this session");

  const out = await api.DELETE("/users/{id}/sessions/", { params: { path: { id } } });
  assert.equal(out.response.status, 204);
  assert.equal(api.cookies.get("sessionid"), undefined, "sign out everywhere expires the cookies");

  assert.equal((await api.POST("/auth/login/", { body: { email, password } })).response.status, 200);
  const gone = await api.DELETE("/users/{id}/", { params: { path: { id } }, body: { password } });
  assert.equal(gone.response.status, 204, JSON.stringify(gone.error));
  assert.equal((await api.GET("/auth/session/")).response.status, 401);
  assert.equal((await api.POST("/users/", { body: { email, password } })).response.status, 201, "the address is free again");
  await assert.rejects(api.resetPassword("https://example.com/elsewhere/", fresh), /not a useremail password reset link/);
});
