-- +goose Up

-- A claim of an outbox row is (id, claim_seq): claim_seq counts the row's
-- claims and, unlike attempts, is never given back, so a late report of an
-- older claim never matches a newer one. claimed_by names the dispatcher of
-- the last claim. One serve holds an SQLite file at a time (its lock file),
-- and takes back every sending row when it starts.
ALTER TABLE outbox ADD COLUMN claimed_by INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN claim_seq  INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE outbox DROP COLUMN claim_seq;
ALTER TABLE outbox DROP COLUMN claimed_by;
