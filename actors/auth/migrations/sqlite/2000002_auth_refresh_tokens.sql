-- Refresh tokens, stored as the SHA-256 of the token. A family is one sign-in and every token
-- rotated from it; `access_jti` is the access token issued with the row (logout finds it).
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    access_jti TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER NULL,
    revoked_at INTEGER NULL
);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_family ON auth_refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_user ON auth_refresh_tokens (user_id, expires_at);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_access ON auth_refresh_tokens (access_jti);
