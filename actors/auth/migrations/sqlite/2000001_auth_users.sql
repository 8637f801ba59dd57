-- Accounts. Usernames and emails are unique whatever their case: the unique indexes are on
-- the case-folded copies, so two concurrent sign-ups cannot both win.
CREATE TABLE IF NOT EXISTS auth_users (
    id TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    full_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_users_username_lower ON auth_users (username_lower);
CREATE UNIQUE INDEX IF NOT EXISTS auth_users_email_lower ON auth_users (email_lower);
CREATE INDEX IF NOT EXISTS auth_users_roles ON auth_users (roles);
