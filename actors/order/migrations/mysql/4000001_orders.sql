-- Orders: PENDING_PAYMENT, then CONFIRMED or CANCELLED. Money in minor units of `currency`.
CREATE TABLE IF NOT EXISTS orders (
    id VARCHAR(64) NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    status VARCHAR(20) NOT NULL,
    currency CHAR(3) NOT NULL,
    total_minor BIGINT NOT NULL,
    cancellation_reason VARCHAR(200) NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY orders_by_user (user_id, created_at_ms),
    KEY orders_by_status (status, created_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS order_items (
    order_id VARCHAR(64) NOT NULL,
    line_no INT NOT NULL,
    sku VARCHAR(64) NOT NULL,
    name VARCHAR(200) NOT NULL,
    quantity INT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    line_total_minor BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Idempotency keys per user: the hash of the request they came with and the order they made.
CREATE TABLE IF NOT EXISTS order_idempotency_keys (
    user_id VARCHAR(64) NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL,
    request_hash CHAR(64) NOT NULL,
    order_id VARCHAR(64) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
