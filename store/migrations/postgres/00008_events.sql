-- +goose Up

-- The events of users' state changes, written in the transaction of the
-- change. user_id has no foreign key: a user's events outlive the user.
-- sequence counts a user's events from 1 without gaps (allocated under the
-- user's row lock); data is the JSON object of the event's own fields.
CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT      NOT NULL,
    sequence   BIGINT      NOT NULL CHECK (sequence > 0),
    type       TEXT        NOT NULL,
    actor      TEXT        NOT NULL,
    data       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
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
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    sequence        BIGINT      NOT NULL,
    endpoint        TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    -- For pending rows: when to try. For sending rows: when the claim's
    -- lease ends.
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT        NOT NULL DEFAULT '',
    claimed_by      BIGINT      NOT NULL DEFAULT 0,
    claim_seq       BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    CONSTRAINT event_deliveries_event_endpoint UNIQUE (event_id, endpoint)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at, id) WHERE status IN ('pending', 'sending');
CREATE INDEX event_deliveries_queue ON event_deliveries (user_id, endpoint, sequence) WHERE status IN ('pending', 'sending');

-- +goose Down
DROP TABLE event_deliveries;
DROP TABLE events;
