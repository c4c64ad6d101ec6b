-- +goose Up

-- A failed login for an address no account holds is audited too, with no
-- user, so that both kinds of failure do the same work.
ALTER TABLE audit_events ALTER COLUMN user_id DROP NOT NULL;

-- +goose Down
DELETE FROM audit_events WHERE user_id IS NULL;
ALTER TABLE audit_events ALTER COLUMN user_id SET NOT NULL;
