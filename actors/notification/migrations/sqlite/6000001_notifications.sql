-- One notification per consumed event (the unique event_id). `channel` is `email` when it is
-- to be sent over SMTP, `stored` when it is only kept for the API. `status`: PENDING (to send,
-- or to try again at next_attempt_at_ms), SENT, FAILED (attempts used up or refused for good,
-- last_error says why), STORED. Times are epoch milliseconds.
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT NOT NULL PRIMARY KEY,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    sent_at_ms INTEGER NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS notifications_event ON notifications (event_id);
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user_id, created_at_ms);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (status, next_attempt_at_ms);

-- Where to email a user: learned from `user.registered` (the only event that carries it).
CREATE TABLE IF NOT EXISTS notification_recipients (
    user_id TEXT NOT NULL PRIMARY KEY,
    email TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
