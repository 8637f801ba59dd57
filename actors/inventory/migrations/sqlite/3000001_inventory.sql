-- Stock per SKU. `available` can be sold; `reserved` is held for unpaid orders.
CREATE TABLE IF NOT EXISTS inventory_stock (
    sku TEXT NOT NULL PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    reorder_level INTEGER NOT NULL DEFAULT 0,
    reorder_quantity INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- One reservation per order: RESERVED, then COMMITTED or RELEASED.
CREATE TABLE IF NOT EXISTS inventory_reservations (
    order_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inventory_reservations_expiry ON inventory_reservations (status, expires_at_ms);

CREATE TABLE IF NOT EXISTS inventory_reservation_lines (
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (order_id, sku)
) WITHOUT ROWID;

-- Every manual change of stock, with its reason and who made it.
CREATE TABLE IF NOT EXISTS inventory_adjustments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL,
    delta INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inventory_adjustments_sku ON inventory_adjustments (sku);
