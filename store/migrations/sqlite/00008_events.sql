-- +goose Up

-- The events of users' state changes, written in the transaction of the
-- change. user_id has no foreign key: a user's events outlive the user.
-- sequence counts a user's events from 1 without gaps (allocated under the
-- user's row lock); data is the JSON object of the event's own fields.
CREATE TABLE events (
    id         INTEGER     PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER     NOT NULL,
    sequence   INTEGER     NOT NULL CHECK (sequence > 0),
    type       TEXT        NOT NULL,
    actor      TEXT        NOT NULL,
    data       TEXT        NOT NULL,
    created_at TIMESTAMP   NOT NULL,
    CONSTRAINT events_user_sequence UNIQUE (user_id, sequence)
);
CREATE INDEX events_type ON events (type, id);

-- One row per event and webhook endpoint: claimed, retried and reported
-- like the outbox's mail (claimed_by, claim_seq). user_id and sequence are
-- the event's, kept here so that a delivery waits for the user's earlier
-- ones to the same endpoint (event_deliveries_queue). event_id names the
-- event without a foreign key, whose check would cost every change that
-- records events: the two are written together, by one statement.
CREATE TABLE event_deliveries (
    id              INTEGER     PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER     NOT NULL,
    user_id         INTEGER     NOT NULL,
    sequence        INTEGER     NOT NULL,
    endpoint        TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    -- For pending rows: when to try. For sending rows: when the claim's
    -- lease ends.
    next_attempt_at TIMESTAMP   NOT NULL,
    last_error      TEXT        NOT NULL DEFAULT '',
    claimed_by      INTEGER     NOT NULL DEFAULT 0,
    claim_seq       INTEGER     NOT NULL DEFAULT 0,
    created_at      TIMESTAMP   NOT NULL,
    delivered_at    TIMESTAMP,
    CONSTRAINT event_deliveries_event_endpoint UNIQUE (event_id, endpoint)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at, id) WHERE status IN ('pending', 'sending');
CREATE INDEX event_deliveries_queue ON event_deliveries (user_id, endpoint, sequence) WHERE status IN ('pending', 'sending');

-- RecordEvents writes an event and its deliveries with one statement: an
-- insert into this view, whose trigger takes the user's next sequence and
-- queues a delivery to each endpoint of the JSON array endpoints (a
-- statement costs more here than the rows it writes).
CREATE VIEW events_to_record AS
    SELECT user_id, type, actor, data, created_at, '[]' AS endpoints FROM events WHERE 0;
-- +goose StatementBegin
CREATE TRIGGER events_to_record INSTEAD OF INSERT ON events_to_record
BEGIN
    INSERT INTO events (user_id, sequence, type, actor, data, created_at)
        SELECT NEW.user_id, COALESCE(MAX(sequence), 0) + 1, NEW.type, NEW.actor, NEW.data, NEW.created_at
        FROM events WHERE user_id = NEW.user_id;
    -- Behind a pending delivery of the user to the endpoint that is not
    -- due yet, a new one is due when that one is (store.RecordEvents).
    INSERT INTO event_deliveries (event_id, user_id, sequence, endpoint, status, next_attempt_at, created_at)
        SELECT e.id, e.user_id, e.sequence, j.value, 'pending', COALESCE((SELECT
                CASE WHEN p.status = 'pending' AND p.next_attempt_at > NEW.created_at THEN p.next_attempt_at END
            FROM event_deliveries p WHERE p.user_id = e.user_id AND p.endpoint = j.value
            AND p.status IN ('pending', 'sending') ORDER BY p.sequence DESC LIMIT 1), NEW.created_at), NEW.created_at
        FROM events e, json_each(NEW.endpoints) j WHERE e.id = last_insert_rowid();
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER events_to_record;
DROP VIEW events_to_record;
DROP TABLE event_deliveries;
DROP TABLE events;
