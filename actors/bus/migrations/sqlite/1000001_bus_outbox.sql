-- The transactional outbox: a service inserts its events here in the transaction of its state
-- change; the relay publishes unsent rows in id order and marks them sent. AUTOINCREMENT keeps
-- ids increasing (never reused), so id order is publish order.
CREATE TABLE IF NOT EXISTS bus_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    exchange_name TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    subject TEXT NOT NULL,
    envelope TEXT NOT NULL,
    traceparent TEXT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS bus_outbox_pending ON bus_outbox (service, sent_at, id);
