-- Accounts. Usernames and emails are unique whatever their case: the unique indexes are on
-- the case-folded copies, so two concurrent sign-ups cannot both win.
CREATE TABLE IF NOT EXISTS auth_users (
    id VARCHAR(36) NOT NULL,
    username VARCHAR(32) NOT NULL,
    username_lower VARCHAR(32) NOT NULL,
    email VARCHAR(254) NOT NULL,
    email_lower VARCHAR(254) NOT NULL,
    full_name VARCHAR(100) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    roles VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY auth_users_username_lower (username_lower),
    UNIQUE KEY auth_users_email_lower (email_lower),
    KEY auth_users_roles (roles)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
