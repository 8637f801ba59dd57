//! The embedded catalog: SQLite through `emporium_store::Database` (the node's
//! `<data dir>/product.db`), table `products` and its FTS5 text index `products_text`
//! (`migrations/sqlite/`, versions `7_000_001..=7_999_999`).
//!
//! Money is exact: `price_minor` (minor units of the product's currency) is what is shown;
//! `price_scaled` (hundredths of the major unit) is what filters and the price sort compare.
//! A duplicate SKU is the unique index's violation, never check-then-insert. Statements are
//! fixed text with `?` placeholders: list queries pick among fixed fragments and bind the
//! client's values, so nothing a client sends is ever SQL or FTS5 syntax.

use std::collections::BTreeMap;

use anyhow::Context;
use emporium_contracts::money::{Money, decimals_of};
use emporium_contracts::product::{ProductSort, ProductView};
use emporium_store::{AnyConnection, AnyRow, Database, Dialect, Migrations, Row};
use futures::future::BoxFuture;
use mongodb::bson::oid::ObjectId;
use sqlx::Arguments;
use sqlx::any::AnyArguments;

use super::{ProductDraft, ProductQuery, ProductRepository, is_product_id, now_millis, scaled_amount, time_of_millis};
use crate::error::ProductError;

/// Migrations of the embedded catalog (SQLite only: the catalog has no MySQL store, and the
/// store refuses a MySQL database before migrating).
const MIGRATIONS: Migrations = Migrations {
    owner: "product",
    list: &[(
        7_000_001,
        "product catalog",
        "-- the product catalog has no MySQL store (MongoDB in production, SQLite embedded)",
        include_str!("../../migrations/sqlite/7000001_products.sql"),
    )],
};

const COLUMNS: &str =
    "id, sku, name, description, price_minor, currency, category, attributes, created_at_ms, updated_at_ms";

/// The catalog in SQLite.
pub struct SqliteProductStore {
    database: Database,
}

impl SqliteProductStore {
    /// Migrates `database` (which must be SQLite) and answers the store on it.
    pub async fn open(database: Database) -> anyhow::Result<SqliteProductStore> {
        if database.dialect() != Dialect::Sqlite {
            anyhow::bail!(
                "the embedded product store is SQLite; give it the SQLite database <data dir>/product.db, not MySQL"
            );
        }
        database.migrate(&MIGRATIONS).await.context("cannot migrate the embedded product store")?;
        Ok(SqliteProductStore { database })
    }
}

fn is_sku_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error)
        if database_error.is_unique_violation() && database_error.message().contains("sku"))
}

fn view_of(row: &AnyRow) -> Result<ProductView, ProductError> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: String| ProductError::Unexpected(anyhow::anyhow!("stored product {id}: {what}"));
    let currency: String = row.try_get("currency")?;
    let decimals = decimals_of(&currency).ok_or_else(|| corrupt(format!("unknown currency {currency:?}")))?;
    let price = Money::from_minor_units(row.try_get("price_minor")?, decimals).to_string();
    let attributes: String = row.try_get("attributes")?;
    let attributes: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&attributes).map_err(|error| corrupt(format!("attributes: {error}")))?;
    Ok(ProductView {
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price,
        currency,
        category: row.try_get("category")?,
        attributes,
        created_at: time_of_millis(row.try_get("created_at_ms")?),
        updated_at: time_of_millis(row.try_get("updated_at_ms")?),
        id,
    })
}

fn attributes_text(draft: &ProductDraft) -> Result<String, ProductError> {
    serde_json::to_string(&draft.attributes).map_err(|error| ProductError::Unexpected(error.into()))
}

/// The FTS5 query of `words`: each word a quoted string (never an operator), all required.
fn match_expression(words: &[String]) -> String {
    words.iter().map(|word| format!("\"{}\"", word.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

fn order_of(sort: ProductSort) -> &'static str {
    match sort {
        ProductSort::PriceAsc => "price_scaled ASC, id ASC",
        ProductSort::PriceDesc => "price_scaled DESC, id DESC",
        ProductSort::NameAsc => "name ASC, id ASC",
        ProductSort::NameDesc => "name DESC, id DESC",
        ProductSort::CreatedAtDesc => "created_at_ms DESC, id DESC",
        ProductSort::CreatedAtAsc => "created_at_ms ASC, id ASC",
    }
}

/// A value a list query binds: one of the client's, never SQL.
#[derive(Debug, Clone, PartialEq)]
enum ListValue {
    Text(String),
    Integer(i64),
}

/// The `WHERE` clause of a list query (fixed fragments) and its values (the client's).
fn where_of(query: &ProductQuery) -> (String, Vec<ListValue>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(category) = &query.category {
        conditions.push("category = ?");
        values.push(ListValue::Text(category.clone()));
    }
    if !query.words.is_empty() {
        conditions.push("row_id IN (SELECT rowid FROM products_text WHERE products_text MATCH ?)");
        values.push(ListValue::Text(match_expression(&query.words)));
    }
    if let Some(min) = query.min_price {
        conditions.push("price_scaled >= ?");
        values.push(ListValue::Integer(min));
    }
    if let Some(max) = query.max_price {
        conditions.push("price_scaled <= ?");
        values.push(ListValue::Integer(max));
    }
    let clause = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    (clause, values)
}

/// The arguments of a statement that binds `values` in order.
fn arguments_of(values: &[ListValue]) -> Result<AnyArguments, ProductError> {
    let mut arguments = AnyArguments::default();
    for value in values {
        let added = match value {
            ListValue::Text(text) => arguments.add(text.clone()),
            ListValue::Integer(integer) => arguments.add(*integer),
        };
        added.map_err(|error| ProductError::Unexpected(anyhow::anyhow!("cannot bind a list argument: {error}")))?;
    }
    Ok(arguments)
}

async fn insert_row(connection: &mut AnyConnection, draft: &ProductDraft, now: i64) -> Result<String, sqlx::Error> {
    const INSERT: &str = "INSERT INTO products (id, sku, name, description, price_minor, price_scaled, currency, \
        category, attributes, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let id = ObjectId::new().to_hex();
    let attributes = serde_json::to_string(&draft.attributes).map_err(|error| sqlx::Error::Encode(error.into()))?;
    sqlx::query(INSERT)
        .bind(&id)
        .bind(&draft.sku)
        .bind(&draft.name)
        .bind(&draft.description)
        .bind(draft.price.minor_units)
        .bind(scaled_amount(draft.price))
        .bind(&draft.currency)
        .bind(&draft.category)
        .bind(attributes)
        .bind(now)
        .bind(now)
        .execute(connection)
        .await?;
    Ok(id)
}

impl ProductRepository for SqliteProductStore {
    fn insert<'a>(&'a self, draft: &'a ProductDraft) -> BoxFuture<'a, Result<ProductView, ProductError>> {
        Box::pin(async move {
            let now = now_millis();
            let mut connection = self.database.pool().acquire().await?;
            match insert_row(&mut connection, draft, now).await {
                Ok(id) => Ok(ProductView {
                    id,
                    sku: draft.sku.clone(),
                    name: draft.name.clone(),
                    description: draft.description.clone(),
                    price: draft.price.to_string(),
                    currency: draft.currency.clone(),
                    category: draft.category.clone(),
                    attributes: draft.attributes.clone(),
                    created_at: time_of_millis(now),
                    updated_at: time_of_millis(now),
                }),
                Err(error) if is_sku_violation(&error) => Err(ProductError::SkuTaken(draft.sku.clone())),
                Err(error) => Err(error.into()),
            }
        })
    }

    fn insert_many<'a>(&'a self, drafts: &'a [ProductDraft]) -> BoxFuture<'a, Result<(), ProductError>> {
        Box::pin(async move {
            let now = now_millis();
            let mut tx = self.database.begin().await?;
            for draft in drafts {
                match insert_row(tx.connection(), draft, now).await {
                    Ok(_) => {}
                    Err(error) if is_sku_violation(&error) => return Err(ProductError::SkuTaken(draft.sku.clone())),
                    Err(error) => return Err(error.into()),
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn replace<'a>(
        &'a self,
        id: &'a str,
        draft: &'a ProductDraft,
    ) -> BoxFuture<'a, Result<Option<ProductView>, ProductError>> {
        Box::pin(async move {
            if !is_product_id(id) {
                return Ok(None);
            }
            let update = sqlx::AssertSqlSafe(format!(
                "UPDATE products SET sku = ?, name = ?, description = ?, price_minor = ?, price_scaled = ?, \
                 currency = ?, category = ?, attributes = ?, updated_at_ms = ? WHERE id = ? RETURNING {COLUMNS}"
            ));
            let updated = sqlx::query(update)
                .bind(&draft.sku)
                .bind(&draft.name)
                .bind(&draft.description)
                .bind(draft.price.minor_units)
                .bind(scaled_amount(draft.price))
                .bind(&draft.currency)
                .bind(&draft.category)
                .bind(attributes_text(draft)?)
                .bind(now_millis())
                .bind(id)
                .fetch_optional(self.database.pool())
                .await;
            match updated {
                Ok(Some(row)) => Ok(Some(view_of(&row)?)),
                Ok(None) => Ok(None),
                Err(error) if is_sku_violation(&error) => Err(ProductError::SkuTaken(draft.sku.clone())),
                Err(error) => Err(error.into()),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ProductError>> {
        Box::pin(async move {
            if !is_product_id(id) {
                return Ok(false);
            }
            let deleted =
                sqlx::query("DELETE FROM products WHERE id = ?").bind(id).execute(self.database.pool()).await?;
            Ok(deleted.rows_affected() == 1)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProductView>, ProductError>> {
        Box::pin(async move {
            if !is_product_id(id) {
                return Ok(None);
            }
            let select = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM products WHERE id = ?"));
            match sqlx::query(select).bind(id).fetch_optional(self.database.pool()).await? {
                Some(row) => Ok(Some(view_of(&row)?)),
                None => Ok(None),
            }
        })
    }

    fn list<'a>(&'a self, query: &'a ProductQuery) -> BoxFuture<'a, Result<(Vec<ProductView>, u64), ProductError>> {
        Box::pin(async move {
            let (clause, values) = where_of(query);
            let count = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM products{clause}"));
            let total: i64 =
                sqlx::query_scalar_with(count, arguments_of(&values)?).fetch_one(self.database.pool()).await?;
            let total = total.max(0) as u64;
            if query.page.offset() >= total {
                return Ok((Vec::new(), total));
            }
            let select = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM products{clause} ORDER BY {} LIMIT {} OFFSET {}",
                order_of(query.sort),
                query.page.size,
                query.page.offset()
            ));
            let rows = sqlx::query_with(select, arguments_of(&values)?).fetch_all(self.database.pool()).await?;
            let items = rows.iter().map(view_of).collect::<Result<Vec<_>, _>>()?;
            Ok((items, total))
        })
    }

    fn by_skus<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<ProductView>, ProductError>> {
        Box::pin(async move {
            let placeholders = vec!["?"; skus.len()].join(", ");
            let select = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM products WHERE sku IN ({placeholders})"));
            let mut statement = sqlx::query(select);
            for sku in skus {
                statement = statement.bind(sku);
            }
            let rows = statement.fetch_all(self.database.pool()).await?;
            rows.iter().map(view_of).collect()
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, ProductError>> {
        Box::pin(async move {
            let total: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM products").fetch_one(self.database.pool()).await?;
            Ok(total.max(0) as u64)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), ProductError>> {
        Box::pin(async move { Ok(self.database.ping().await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_the_product_range() {
        MIGRATIONS.check().unwrap();
        assert!(MIGRATIONS.list.iter().all(|(version, ..)| (7_000_001..8_000_000).contains(version)));
    }

    #[test]
    fn search_words_become_quoted_fts_strings() {
        assert_eq!(match_expression(&["red".into(), "NOT".into()]), "\"red\" \"NOT\"");
        assert_eq!(match_expression(&["a\"b".into()]), "\"a\"\"b\"");
    }
}
