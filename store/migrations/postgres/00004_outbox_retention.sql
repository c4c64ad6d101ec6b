-- +goose Up

-- The janitor deletes sent and cancelled mail once it is older than
-- USEREMAIL_OUTBOX_RETENTION, oldest first and a batch at a time: this index
-- finds those rows without reading the rest of the outbox. A mail's age is
-- counted from when it was sent, or queued if it never was.
CREATE INDEX outbox_finished ON outbox ((COALESCE(sent_at, created_at)), id)
    WHERE status IN ('sent', 'cancelled');

-- +goose Down
DROP INDEX outbox_finished;
