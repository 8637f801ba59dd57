-- The idempotent inbox: one row per (consumer, event id) applied, written in the transaction
-- of the consumer's effects, so a redelivered event is recognised and has no second effect.
CREATE TABLE IF NOT EXISTS bus_inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bus_inbox_processed_at ON bus_inbox (processed_at);
