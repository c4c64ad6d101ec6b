-- +goose Up

-- A claim of an outbox row is (id, claim_seq): claim_seq counts the row's
-- claims and, unlike attempts, is never given back, so a late report of an
-- older claim never matches a newer one. claimed_by names the dispatcher of
-- the last claim: the key of the session-level advisory lock it holds while
-- it runs. A sending row whose owner holds no lock is taken back by the
-- other dispatchers within seconds; 0 (a claim without an owner, as all
-- were before this migration) is left to its lease.
ALTER TABLE outbox ADD COLUMN claimed_by BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN claim_seq  BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE outbox DROP COLUMN claim_seq;
ALTER TABLE outbox DROP COLUMN claimed_by;
