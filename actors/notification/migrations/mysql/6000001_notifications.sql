-- One notification per consumed event (the unique event_id). `channel` is `email` when it is
-- to be sent over SMTP, `stored` when it is only kept for the API. `status`: PENDING (to send,
-- or to try again at next_attempt_at_ms), SENT, FAILED (attempts used up or refused for good,
-- last_error says why), STORED. Times are epoch milliseconds.
CREATE TABLE IF NOT EXISTS notifications (
    id VARCHAR(36) NOT NULL,
    event_id VARCHAR(128) NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    channel VARCHAR(16) NOT NULL,
    recipient VARCHAR(320) NULL,
    subject VARCHAR(255) NOT NULL,
    body TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    last_error VARCHAR(1000) NULL,
    next_attempt_at_ms BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY notifications_event (event_id),
    KEY notifications_user (user_id, created_at_ms),
    KEY notifications_due (status, next_attempt_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Where to email a user: learned from `user.registered` (the only event that carries it).
CREATE TABLE IF NOT EXISTS notification_recipients (
    user_id VARCHAR(64) NOT NULL,
    email VARCHAR(320) NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
