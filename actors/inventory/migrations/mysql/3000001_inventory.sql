-- Stock per SKU. `available` can be sold; `reserved` is held for unpaid orders.
CREATE TABLE IF NOT EXISTS inventory_stock (
    sku VARCHAR(64) NOT NULL,
    available BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    reorder_level BIGINT NOT NULL DEFAULT 0,
    reorder_quantity BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (sku),
    CONSTRAINT inventory_stock_available_not_negative CHECK (available >= 0),
    CONSTRAINT inventory_stock_reserved_not_negative CHECK (reserved >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One reservation per order: RESERVED, then COMMITTED or RELEASED.
CREATE TABLE IF NOT EXISTS inventory_reservations (
    order_id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (order_id),
    KEY inventory_reservations_expiry (status, expires_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS inventory_reservation_lines (
    order_id VARCHAR(64) NOT NULL,
    sku VARCHAR(64) NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every manual change of stock, with its reason and who made it.
CREATE TABLE IF NOT EXISTS inventory_adjustments (
    id BIGINT NOT NULL AUTO_INCREMENT,
    sku VARCHAR(64) NOT NULL,
    delta BIGINT NOT NULL,
    reason VARCHAR(200) NOT NULL,
    actor VARCHAR(64) NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY inventory_adjustments_sku (sku)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
