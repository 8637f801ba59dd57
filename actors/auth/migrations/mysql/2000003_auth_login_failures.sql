-- Failed sign-ins, for the per-account and per-address limits of every instance. The account
-- key is `user:<id>`, or `login:<sha-256 of the name>` for names of no account.
CREATE TABLE IF NOT EXISTS auth_login_failures (
    id BIGINT NOT NULL AUTO_INCREMENT,
    account_key VARCHAR(80) NOT NULL,
    client_address VARCHAR(64) NULL,
    failed_at BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY auth_login_failures_account (account_key, failed_at),
    KEY auth_login_failures_address (client_address, failed_at),
    KEY auth_login_failures_time (failed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
