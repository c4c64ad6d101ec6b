-- +goose Up

-- A mail outlives its user: the account_deleted notice is queued as the
-- user goes, and the janitor and the admin's outbox keep the rows of
-- deleted users (user_id NULL). A deletion cancels the user's unsent mail
-- (status 'cancelled').
ALTER TABLE outbox ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_user_id_fkey,
    ADD CONSTRAINT outbox_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check,
    ADD CONSTRAINT outbox_status_check CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'cancelled'));
-- Finds a user's unsent mail to cancel (and, for the admin, a user's mail);
-- it also serves the foreign key's SET NULL.
CREATE INDEX outbox_user ON outbox (user_id, id);

-- +goose Down
-- The rows of deleted users go; cancelled mail becomes failed mail.
DROP INDEX outbox_user;
DELETE FROM outbox WHERE user_id IS NULL;
UPDATE outbox SET status = 'failed', last_error = 'cancelled' WHERE status = 'cancelled';
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check,
    ADD CONSTRAINT outbox_status_check CHECK (status IN ('queued', 'sending', 'sent', 'failed'));
ALTER TABLE outbox DROP CONSTRAINT outbox_user_id_fkey,
    ADD CONSTRAINT outbox_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE outbox ALTER COLUMN user_id SET NOT NULL;
