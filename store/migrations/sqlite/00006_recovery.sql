-- +goose Up

-- A mail outlives its user: the account_deleted notice is queued as the
-- user goes, and the janitor and the admin's outbox keep the rows of
-- deleted users (user_id NULL). A deletion cancels the user's unsent mail
-- (status 'cancelled'). SQLite cannot change a column's constraints: the
-- table is made again, with every column and index of migrations 1 to 5.
CREATE TABLE outbox_new (
    id              INTEGER   PRIMARY KEY AUTOINCREMENT,
    kind            TEXT      NOT NULL,
    recipient       TEXT      NOT NULL,
    user_id         INTEGER   REFERENCES users (id) ON DELETE SET NULL,
    payload         TEXT      NOT NULL,
    status          TEXT      NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error      TEXT      NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP,
    claimed_by      INTEGER   NOT NULL DEFAULT 0,
    claim_seq       INTEGER   NOT NULL DEFAULT 0
);
INSERT INTO outbox_new (id, kind, recipient, user_id, payload, status, attempts, next_attempt_at,
        last_error, created_at, sent_at, claimed_by, claim_seq)
    SELECT id, kind, recipient, user_id, payload, status, attempts, next_attempt_at,
        last_error, created_at, sent_at, claimed_by, claim_seq FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status IN ('queued', 'sending');
CREATE INDEX outbox_status ON outbox (status, id);
CREATE INDEX outbox_finished ON outbox (COALESCE(sent_at, created_at), id)
    WHERE status IN ('sent', 'cancelled');
-- Finds a user's unsent mail to cancel (and, for the admin, a user's mail).
CREATE INDEX outbox_user ON outbox (user_id, id);

-- +goose Down
-- The rows of deleted users go; cancelled mail becomes failed mail.
CREATE TABLE outbox_old (
    id              INTEGER   PRIMARY KEY AUTOINCREMENT,
    kind            TEXT      NOT NULL,
    recipient       TEXT      NOT NULL,
    user_id         INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    payload         TEXT      NOT NULL,
    status          TEXT      NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error      TEXT      NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP,
    claimed_by      INTEGER   NOT NULL DEFAULT 0,
    claim_seq       INTEGER   NOT NULL DEFAULT 0
);
INSERT INTO outbox_old (id, kind, recipient, user_id, payload, status, attempts, next_attempt_at,
        last_error, created_at, sent_at, claimed_by, claim_seq)
    SELECT id, kind, recipient, user_id, payload,
        CASE status WHEN 'cancelled' THEN 'failed' ELSE status END,
        attempts, next_attempt_at,
        CASE status WHEN 'cancelled' THEN 'cancelled' ELSE last_error END,
        created_at, sent_at, claimed_by, claim_seq
    FROM outbox WHERE user_id IS NOT NULL;
DROP TABLE outbox;
ALTER TABLE outbox_old RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status IN ('queued', 'sending');
CREATE INDEX outbox_status ON outbox (status, id);
CREATE INDEX outbox_finished ON outbox (COALESCE(sent_at, created_at), id)
    WHERE status IN ('sent', 'cancelled');
