-- The idempotent inbox: one row per (consumer, event id) applied, written in the transaction
-- of the consumer's effects, so a redelivered event is recognised and has no second effect.
CREATE TABLE IF NOT EXISTS bus_inbox (
    consumer VARCHAR(128) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    processed_at DATETIME(6) NOT NULL,
    PRIMARY KEY (consumer, event_id),
    KEY bus_inbox_processed_at (processed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
