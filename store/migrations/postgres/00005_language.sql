-- +goose Up

-- The language of a user's mails, a BCP 47 tag (en, de, fr, es, …):
-- recorded at sign-up, changeable by the user, carried by export.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en' CHECK (language <> '');

-- +goose Down
ALTER TABLE users DROP COLUMN language;
