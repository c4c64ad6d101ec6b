-- +goose Up

-- A failed login for an address no account holds is audited too, with no
-- user, so that both kinds of failure do the same work. SQLite cannot drop
-- a NOT NULL constraint: the table is made again.
CREATE TABLE audit_events_new (
    id         INTEGER   PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER,
    event      TEXT      NOT NULL,
    email      TEXT      NOT NULL DEFAULT '',
    ip         TEXT      NOT NULL DEFAULT '',
    user_agent TEXT      NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
INSERT INTO audit_events_new (id, user_id, event, email, ip, user_agent, created_at)
    SELECT id, user_id, event, email, ip, user_agent, created_at FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_user ON audit_events (user_id, id);

-- +goose Down
CREATE TABLE audit_events_old (
    id         INTEGER   PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER   NOT NULL,
    event      TEXT      NOT NULL,
    email      TEXT      NOT NULL DEFAULT '',
    ip         TEXT      NOT NULL DEFAULT '',
    user_agent TEXT      NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
INSERT INTO audit_events_old (id, user_id, event, email, ip, user_agent, created_at)
    SELECT id, user_id, event, email, ip, user_agent, created_at FROM audit_events WHERE user_id IS NOT NULL;
DROP TABLE audit_events;
ALTER TABLE audit_events_old RENAME TO audit_events;
CREATE INDEX audit_events_user ON audit_events (user_id, id);
