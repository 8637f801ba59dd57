-- Orders: PENDING_PAYMENT, then CONFIRMED or CANCELLED. Money in minor units of `currency`.
CREATE TABLE IF NOT EXISTS orders (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor INTEGER NOT NULL,
    cancellation_reason TEXT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, created_at_ms);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, created_at_ms);

CREATE TABLE IF NOT EXISTS order_items (
    order_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price_minor INTEGER NOT NULL,
    line_total_minor INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

-- Idempotency keys per user: the hash of the request they came with and the order they made.
CREATE TABLE IF NOT EXISTS order_idempotency_keys (
    user_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    order_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
) WITHOUT ROWID;
