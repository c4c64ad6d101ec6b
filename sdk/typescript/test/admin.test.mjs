// The admin entry point against a real server: look a user up by address,
// page through users, add a verified address, read the outbox and the audit
// trail, and the refusals of a read-only and a wrong token. Run by
// `go test ./examples -run TestTypeScriptSDK`, which starts the server
// (USEREMAIL_URL) and makes the tokens (USEREMAIL_ADMIN_TOKEN,
// USEREMAIL_ADMIN_READONLY_TOKEN).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createUseremailClient } from "../dist/index.js";
import { createAdminClient, pages } from "../dist/admin.js";

const baseUrl = process.env.USEREMAIL_URL;
const token = process.env.USEREMAIL_ADMIN_TOKEN;
const readOnly = process.env.USEREMAIL_ADMIN_READONLY_TOKEN;
const skip = !baseUrl || !token || !readOnly ? "USEREMAIL_URL and the admin tokens are unset: run go test ./examples -run TestTypeScriptSDK" : false;
const password = "correct horse battery staple";

test("admin: users, addresses, outbox, audit", { skip }, async () => {
  const api = createUseremailClient({ baseUrl });
  const email = "ts-admin-bob@example.com";
  const signUp = await api.POST("/users/", { body: { email, password } });
  assert.equal(signUp.response.status, 201);
  const id = signUp.data.id;

  const admin = createAdminClient({ baseUrl, token });
  const found = await admin.GET("/admin/users/", { params: { query: { email: "TS-ADMIN-BOB@example.com" } } });
  assert.equal(found.response.status, 200, JSON.stringify(found.error));
  assert.deepEqual(found.data.items.map((u) => u.id), [id]);
  assert.equal(found.data.next_after, null);
  assert.equal(found.data.items[0].emails[0].verified, false);

  const added = await admin.POST("/admin/users/{id}/emails/", {
    params: { path: { id } },
    body: { email: "ts-admin-bob@work.example", verified: true },
  });
  assert.equal(added.response.status, 201, JSON.stringify(added.error));
  assert.equal(added.data.verified, true);
  const primary = await admin.POST("/admin/users/{id}/emails/{email_id}/make-primary/", {
    params: { path: { id, email_id: added.data.id } },
  });
  assert.equal(primary.response.status, 200, JSON.stringify(primary.error));
  assert.equal(primary.data.primary, true);

  const user = await admin.GET("/admin/users/{id}/", { params: { path: { id } } });
  assert.equal(user.data.email, "ts-admin-bob@work.example");
  assert.equal(user.data.emails.length, 2);

  // Every user, one a page.
  const ids = [];
  for await (const u of pages((after) => admin.GET("/admin/users/", { params: { query: { after, limit: 1 } } }))) {
    ids.push(u.id);
  }
  assert.ok(ids.includes(id));
  assert.deepEqual([...ids].sort((a, b) => a - b), ids);

  const outbox = await admin.GET("/admin/outbox/", { params: { query: { recipient: email, kind: "verify" } } });
  assert.equal(outbox.response.status, 200);
  assert.equal(outbox.data.items.length, 1);
  assert.equal(outbox.data.items[0].user_id, id);
  assert.equal("payload" in outbox.data.items[0], false);

  const audit = await admin.GET("/admin/audit/", { params: { query: { user_id: id } } });
  assert.deepEqual(
    audit.data.items.map((e) => `${e.action} ${e.actor}`),
    ["signup user", "email_added admin:ts", "email_verified admin:ts", "primary_changed admin:ts"],
  );

  // A read-only token reads, and may not write.
  const reader = createAdminClient({ baseUrl, token: readOnly });
  assert.equal((await reader.GET("/admin/users/{id}/", { params: { path: { id } } })).response.status, 200);
  const refused = await reader.DELETE("/admin/users/{id}/sessions/", { params: { path: { id } } });
  assert.equal(refused.response.status, 403);
  assert.equal(refused.error.code, "forbidden");

  const wrong = createAdminClient({ baseUrl, token: "uea_" + "A".repeat(43) });
  const denied = await wrong.GET("/admin/users/", {});
  assert.equal(denied.response.status, 401);
  assert.equal(denied.error.code, "token_invalid");
});
