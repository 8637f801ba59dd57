-- The transactional outbox: a service inserts its events here in the transaction of its state
-- change; the relay publishes unsent rows in id order and marks them sent.
CREATE TABLE IF NOT EXISTS bus_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT,
    service VARCHAR(64) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    exchange_name VARCHAR(128) NOT NULL,
    routing_key VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    envelope LONGTEXT NOT NULL,
    traceparent VARCHAR(64) NULL,
    created_at DATETIME(6) NOT NULL,
    sent_at DATETIME(6) NULL,
    attempts INT NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    UNIQUE KEY bus_outbox_event_id (event_id),
    KEY bus_outbox_pending (service, sent_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
