-- Public keys of every instance's signing keys: the JWKS is read from here, so every instance
-- publishes the keys of all. A key retired at `retired_at` stays published for the window.
CREATE TABLE IF NOT EXISTS auth_signing_keys (
    kid TEXT NOT NULL PRIMARY KEY,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER NULL
);
CREATE INDEX IF NOT EXISTS auth_signing_keys_retired ON auth_signing_keys (retired_at);
