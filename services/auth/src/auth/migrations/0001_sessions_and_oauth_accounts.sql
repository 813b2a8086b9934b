-- Sessions: the token is "<id>.<secret>"; only SHA-256(secret) is kept.
CREATE TABLE sessions (
    id text PRIMARY KEY,
    user_id uuid NOT NULL,
    secret_hash bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    expire_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expire_time ON sessions (expire_time);

-- A provider account (Google sub, GitHub id) belongs to at most one user.
CREATE TABLE oauth_accounts (
    provider text NOT NULL CHECK (provider IN ('google', 'github')),
    provider_user_id text NOT NULL CHECK (char_length(provider_user_id) BETWEEN 1 AND 255),
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (provider, provider_user_id)
);
CREATE INDEX oauth_accounts_user ON oauth_accounts (user_id);
