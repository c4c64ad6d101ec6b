/**
 * The useremail admin API for TypeScript: `@useremail/client/admin`.
 *
 * For the operator's own backend, never for browsers: every request carries
 * `Authorization: Bearer <token>` with a token made by
 * `useremail admin-token create --name NAME [--read-only]`. Cookies play no
 * part and no CSRF applies. Lists are keyset pages: pass a page's
 * `next_after` as `after` for the next one, or let {@link pages} do it.
 *
 * ```ts
 * import { createAdminClient } from "@useremail/client/admin";
 *
 * const admin = createAdminClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.USEREMAIL_ADMIN_TOKEN! });
 * const { data } = await admin.GET("/admin/users/", { params: { query: { email: "alice@example.com" } } });
 * ```
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";
import type { JSONMedia, Problem } from "./index.js";

/** The admin API's paths. */
export type AdminPaths = Pick<paths, Extract<keyof paths, `/admin/${string}`>>;

/** A user with all its addresses. */
export type AdminUser = components["schemas"]["AdminUser"];
/** One mail of the outbox (never its link or body). */
export type OutboxMessage = components["schemas"]["OutboxMessage"];
/** One security event of the audit trail. */
export type AuditEntry = components["schemas"]["AuditEntry"];
/** One event (webhook) with its deliveries to the endpoints. */
export type Event = components["schemas"]["Event"];
export type { Problem };

/** Options of {@link createAdminClient}. */
export interface AdminOptions {
  /** The service's base URL. */
  baseUrl: string;
  /** An admin API token. */
  token: string;
  /** A fetch to use instead of the global one. */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/** The typed openapi-fetch client of the admin API. */
export type AdminClient = Client<AdminPaths, JSONMedia>;

/** Creates a client of the admin API under options.token. */
export function createAdminClient(options: AdminOptions): AdminClient {
  if (!options.token) {
    throw new Error("an admin token is required");
  }
  return createClient<AdminPaths, JSONMedia>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: { ...options.headers, Authorization: `Bearer ${options.token}` },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

/** A keyset page of a list. */
export interface Page<T> {
  items: T[];
  next_after: number | null;
}

/**
 * Yields every item of a list, page after page: fetchPage gets the `after`
 * of the page to fetch (undefined for the first) and answers it, or throws.
 *
 * ```ts
 * for await (const user of pages((after) => admin.GET("/admin/users/", { params: { query: { after } } }))) { … }
 * ```
 */
export async function* pages<T>(
  fetchPage: (after: number | undefined) => Promise<{ data?: Page<T>; error?: Problem }>,
): AsyncGenerator<T> {
  let after: number | undefined;
  for (;;) {
    const { data, error } = await fetchPage(after);
    if (!data) {
      throw new Error(`useremail admin: ${error?.code ?? "no answer"}${error?.detail ? `: ${error.detail}` : ""}`);
    }
    yield* data.items;
    if (data.next_after === null) {
      return;
    }
    after = data.next_after;
  }
}
