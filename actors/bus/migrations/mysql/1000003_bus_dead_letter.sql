-- Dead letters of the in-process bus (RabbitMQ keeps its own in each consumer's dead-letter
-- queue): messages that could not be read or whose handler failed too often.
CREATE TABLE IF NOT EXISTS bus_dead_letter (
    id BIGINT NOT NULL AUTO_INCREMENT,
    consumer VARCHAR(128) NOT NULL,
    queue_name VARCHAR(255) NOT NULL,
    event_id VARCHAR(64) NULL,
    body LONGTEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INT NOT NULL,
    dead_lettered_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY bus_dead_letter_consumer (consumer, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
