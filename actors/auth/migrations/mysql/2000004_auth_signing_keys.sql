-- Public keys of every instance's signing keys: the JWKS is read from here, so every instance
-- publishes the keys of all. A key retired at `retired_at` stays published for the window.
CREATE TABLE IF NOT EXISTS auth_signing_keys (
    kid VARCHAR(64) NOT NULL,
    algorithm VARCHAR(16) NOT NULL,
    public_key VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT NULL,
    PRIMARY KEY (kid),
    KEY auth_signing_keys_retired (retired_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
