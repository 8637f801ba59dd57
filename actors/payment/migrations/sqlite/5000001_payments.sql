-- One payment per order (the unique order_id), made when the payment service consumed the
-- order's `order.created`. Amounts are integer minor units of `currency`; times epoch millis.
CREATE TABLE IF NOT EXISTS payments (
    id TEXT NOT NULL PRIMARY KEY,
    order_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT NULL,
    provider_ref TEXT NULL,
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS payments_order ON payments (order_id);
CREATE INDEX IF NOT EXISTS payments_user ON payments (user_id, created_at_ms);
