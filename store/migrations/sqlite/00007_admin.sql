-- +goose Up

-- Bearer tokens of the admin API, made by `useremail admin-token create`.
-- Only the SHA-256 of a token is stored: a token is 32 random bytes, so a
-- plain hash is as good as a slow one and lets a request find its row. A
-- name names one live token; a revoked token keeps its row (and its name in
-- the audit trail), and its name may be given to a new one.
CREATE TABLE admin_tokens (
    id           INTEGER   PRIMARY KEY AUTOINCREMENT,
    name         TEXT      NOT NULL CHECK (name <> ''),
    token_hash   BLOB      NOT NULL,
    read_only    BOOLEAN   NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP,
    last_used_at TIMESTAMP,
    CONSTRAINT admin_tokens_hash UNIQUE (token_hash)
);
CREATE UNIQUE INDEX admin_tokens_live_name ON admin_tokens (name) WHERE revoked_at IS NULL;

-- Who made a change: user, link, admin:<token name>, cli; '' for the
-- events recorded before this migration.
ALTER TABLE audit_events ADD COLUMN actor TEXT NOT NULL DEFAULT '';

-- The admin API's lists are keyset pages in id order; these let every
-- filter read only its page (the outbox by user has outbox_user of
-- migration 6).
CREATE INDEX emails_key ON emails (email_key, user_id);
CREATE INDEX outbox_recipient ON outbox (lower(recipient), id);
CREATE INDEX outbox_kind ON outbox (kind, id);

-- +goose Down
DROP INDEX outbox_kind;
DROP INDEX outbox_recipient;
DROP INDEX emails_key;
ALTER TABLE audit_events DROP COLUMN actor;
DROP TABLE admin_tokens;
