-- +goose Up

-- A user account. The addresses live in emails; exactly one of them is primary.
CREATE TABLE users (
    id            INTEGER   PRIMARY KEY AUTOINCREMENT,
    password_hash TEXT      NOT NULL,
    -- change_seq is the state a set-primary link carries: every change request
    -- and every confirmation moves it on, so older links answer link_used.
    change_seq    INTEGER   NOT NULL DEFAULT 0,
    date_joined   TIMESTAMP NOT NULL
);

CREATE TABLE emails (
    id          INTEGER   PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT      NOT NULL CHECK (email <> ''),
    -- email_key is the normalized comparison form (case-folded, ASCII domain).
    email_key   TEXT      NOT NULL CHECK (email_key <> ''),
    verified    BOOLEAN   NOT NULL DEFAULT FALSE,
    is_primary  BOOLEAN   NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMP NOT NULL,
    verified_at TIMESTAMP,
    -- A user never holds the same address twice.
    CONSTRAINT emails_user_key UNIQUE (user_id, email_key),
    CONSTRAINT emails_verified_at CHECK (verified = (verified_at IS NOT NULL))
);
-- At most one primary address per user.
CREATE UNIQUE INDEX emails_one_primary ON emails (user_id) WHERE is_primary;
-- An address that is verified or primary belongs to one user only; unverified
-- secondary addresses block nobody.
CREATE UNIQUE INDEX emails_claimed_key ON emails (email_key) WHERE verified OR is_primary;

-- The primary address cannot be deleted while its user exists.
-- +goose StatementBegin
CREATE TRIGGER emails_keep_primary BEFORE DELETE ON emails
FOR EACH ROW WHEN OLD.is_primary AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    SELECT RAISE(ABORT, 'emails_keep_primary: the primary address cannot be deleted');
END;
-- +goose StatementEnd

CREATE TABLE sessions (
    -- SHA-256 of the session id: a leaked table holds no usable session.
    id_hash      BLOB      PRIMARY KEY,
    user_id      INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The mail outbox: rows are written in the transaction of the change that
-- promises the mail and hold its inputs, never a rendered body or a link.
CREATE TABLE outbox (
    id              INTEGER   PRIMARY KEY AUTOINCREMENT,
    kind            TEXT      NOT NULL,
    recipient       TEXT      NOT NULL,
    user_id         INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    payload         TEXT      NOT NULL,
    status          TEXT      NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    -- For queued rows: when to try. For sending rows: when the claim's lease
    -- ends and another dispatcher may take the row over.
    next_attempt_at TIMESTAMP NOT NULL,
    last_error      TEXT      NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status IN ('queued', 'sending');
CREATE INDEX outbox_status ON outbox (status, id);

-- Rate limits as GCRA: tat is the theoretical arrival time in Unix milliseconds.
CREATE TABLE rate_limits (
    key TEXT    PRIMARY KEY,
    tat INTEGER NOT NULL
) WITHOUT ROWID;

-- Security events, written in the transaction of the change they record.
CREATE TABLE audit_events (
    id         INTEGER   PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER   NOT NULL,
    event      TEXT      NOT NULL,
    email      TEXT      NOT NULL DEFAULT '',
    ip         TEXT      NOT NULL DEFAULT '',
    user_agent TEXT      NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_user ON audit_events (user_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE rate_limits;
DROP TABLE outbox;
DROP TABLE sessions;
DROP TRIGGER emails_keep_primary;
DROP TABLE emails;
DROP TABLE users;
