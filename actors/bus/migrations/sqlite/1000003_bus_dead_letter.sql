-- Dead letters of the in-process bus (RabbitMQ keeps its own in each consumer's dead-letter
-- queue): messages that could not be read or whose handler failed too often.
CREATE TABLE IF NOT EXISTS bus_dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    event_id TEXT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    dead_lettered_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_dead_letter_consumer ON bus_dead_letter (consumer, id);
