-- One payment per order (the unique order_id), made when the payment service consumed the
-- order's `order.created`. Amounts are integer minor units of `currency`; times epoch millis.
CREATE TABLE IF NOT EXISTS payments (
    id VARCHAR(36) NOT NULL,
    order_id VARCHAR(64) NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency VARCHAR(8) NOT NULL,
    method VARCHAR(32) NOT NULL,
    status VARCHAR(16) NOT NULL,
    failure_reason VARCHAR(64) NULL,
    provider_ref VARCHAR(128) NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY payments_order (order_id),
    KEY payments_user (user_id, created_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
