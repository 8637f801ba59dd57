-- The catalog of the embedded store. `id` is the public id (24 hex digits, the format of a MongoDB
-- ObjectId, so ids look the same on both stores); `row_id` only links the text index.
-- Money: `price_minor` is the price in the currency's minor units (exact, what the product says);
-- `price_scaled` is the same amount in hundredths of the major unit (JPY 1500 -> 150000), so
-- price filters and the price sort compare amounts exactly across currencies.
CREATE TABLE IF NOT EXISTS products (
    row_id INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    price_scaled INTEGER NOT NULL CHECK (price_scaled >= 0),
    currency TEXT NOT NULL,
    category TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS products_sku ON products (sku);
CREATE INDEX IF NOT EXISTS products_category ON products (category, price_scaled);
CREATE INDEX IF NOT EXISTS products_price ON products (price_scaled);
CREATE INDEX IF NOT EXISTS products_name ON products (name);
CREATE INDEX IF NOT EXISTS products_created ON products (created_at_ms);

-- Words of the name and description (FTS5, kept in step by triggers). Tokens: letters, digits
-- and `_`, case and diacritics folded, no stemming: what the MongoDB text index does with
-- `default_language: "none"`.
CREATE VIRTUAL TABLE IF NOT EXISTS products_text USING fts5(
    name,
    description,
    content = 'products',
    content_rowid = 'row_id',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE TRIGGER IF NOT EXISTS products_text_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_text (rowid, name, description) VALUES (new.row_id, new.name, new.description);
END;

CREATE TRIGGER IF NOT EXISTS products_text_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_text (products_text, rowid, name, description)
        VALUES ('delete', old.row_id, old.name, old.description);
END;

CREATE TRIGGER IF NOT EXISTS products_text_update AFTER UPDATE OF name, description ON products BEGIN
    INSERT INTO products_text (products_text, rowid, name, description)
        VALUES ('delete', old.row_id, old.name, old.description);
    INSERT INTO products_text (rowid, name, description) VALUES (new.row_id, new.name, new.description);
END;
