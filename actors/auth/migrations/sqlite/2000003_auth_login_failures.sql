-- Failed sign-ins, for the per-account and per-address limits of every instance. The account
-- key is `user:<id>`, or `login:<sha-256 of the name>` for names of no account.
CREATE TABLE IF NOT EXISTS auth_login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_key TEXT NOT NULL,
    client_address TEXT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_login_failures_account ON auth_login_failures (account_key, failed_at);
CREATE INDEX IF NOT EXISTS auth_login_failures_address ON auth_login_failures (client_address, failed_at);
CREATE INDEX IF NOT EXISTS auth_login_failures_time ON auth_login_failures (failed_at);
