-- Refresh tokens, stored as the SHA-256 of the token. A family is one sign-in and every token
-- rotated from it; `access_jti` is the access token issued with the row (logout finds it).
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_hash CHAR(64) NOT NULL,
    family_id VARCHAR(36) NOT NULL,
    user_id VARCHAR(36) NOT NULL,
    access_jti VARCHAR(36) NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT NULL,
    revoked_at BIGINT NULL,
    PRIMARY KEY (token_hash),
    KEY auth_refresh_tokens_family (family_id),
    KEY auth_refresh_tokens_user (user_id, expires_at),
    KEY auth_refresh_tokens_access (access_jti),
    CONSTRAINT auth_refresh_tokens_user_fk FOREIGN KEY (user_id) REFERENCES auth_users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
