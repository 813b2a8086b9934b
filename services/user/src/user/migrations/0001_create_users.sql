CREATE TABLE users (
    id uuid PRIMARY KEY,
    -- normalized by the service: trimmed, domain lower-cased, local part as given
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    name text NOT NULL DEFAULT '' CHECK (char_length(name) <= 200),
    avatar_url text NOT NULL DEFAULT '' CHECK (char_length(avatar_url) <= 2048),
    created_at timestamptz NOT NULL
);

-- One user per e-mail, compared case-insensitively; also serves GetUserByEmail.
-- lower() folds non-ASCII letters only under a UTF-8 LC_CTYPE (C.UTF-8, en_US.UTF-8...);
-- under the C locale "Ä" and "ä" would be two users, unlike in the in-memory fake.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
