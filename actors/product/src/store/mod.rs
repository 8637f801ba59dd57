//! Where the catalog lives: one repository contract ([`ProductRepository`]) with two
//! implementations that behave the same, MongoDB ([`mongo`], production, `EMPORIUM_MONGODB_URL`)
//! and SQLite ([`sqlite`], the embedded default, `<data dir>/product.db`). [`ProductStore`] is
//! the cheap-to-clone handle the service, the node's readiness check and the demo seed share.
//!
//! The same semantics on both:
//! - **Money** is exact: MongoDB keeps the price as Decimal128 (`19.99`, `1500` for JPY), SQLite
//!   as integer minor units plus the amount in hundredths of the major unit for comparisons.
//!   Price filters and the price sort compare the amount in each product's own currency,
//!   exactly, across currencies (no exchange rates: `minPrice=10` means 10 USD for a USD product
//!   and 10 JPY for a JPY one).
//! - **Text search**: the words of `q` (letters, digits, `_`) must all appear as whole words in
//!   the name or the description, ignoring case and diacritics, without stemming (`boot` does
//!   not find `boots`). MongoDB: a `$text` index with `default_language: "none"`, each word a
//!   quoted phrase (phrases are ANDed); SQLite: an FTS5 index with the same tokens.
//! - **Order**: the sort key, then the id in the same direction, so pages never overlap; names
//!   compare by their UTF-8 bytes (`Z` before `a`) on both.
//! - **Ids** are 24 hex digits (MongoDB ObjectIds; the embedded store makes the same kind), so
//!   a malformed id is simply not found.

pub mod mongo;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use emporium_contracts::money::{CURRENCIES, Money};
use emporium_contracts::page::PageRequest;
use emporium_contracts::product::{ProductSort, ProductView};
use emporium_store::Database;
use futures::future::BoxFuture;

use crate::error::ProductError;

/// The most decimals any supported currency has: price comparisons use amounts scaled by
/// 10^`PRICE_DECIMALS` (hundredths).
pub const PRICE_DECIMALS: u32 = {
    let mut most = 0;
    let mut index = 0;
    while index < CURRENCIES.len() {
        if CURRENCIES[index].1 > most {
            most = CURRENCIES[index].1;
        }
        index += 1;
    }
    most
};

/// How long opening a store waits for MongoDB to answer before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `money` as an amount scaled by 10^[`PRICE_DECIMALS`] (JPY 1500 -> 150000, USD 19.99 -> 1999).
pub fn scaled_amount(money: Money) -> i64 {
    money.minor_units * 10_i64.pow(PRICE_DECIMALS.saturating_sub(money.decimals))
}

/// A scaled amount (see [`scaled_amount`]) as a decimal string (`1999` -> `"19.99"`).
pub fn scaled_decimal_string(scaled: i64) -> String {
    Money::from_minor_units(scaled, PRICE_DECIMALS).to_string()
}

/// A product's checked values, as a store writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductDraft {
    /// Stock keeping unit (unique).
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Price, exact.
    pub price: Money,
    /// ISO 4217 code, one of `money::CURRENCIES`.
    pub currency: String,
    /// Category.
    pub category: String,
    /// Attributes: strings, numbers, booleans under plain keys.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// A checked list query: typed values only.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuery {
    /// Exact category.
    pub category: Option<String>,
    /// Words that must all appear in the name or description (none: no text filter).
    pub words: Vec<String>,
    /// Lowest price, scaled (see [`scaled_amount`]).
    pub min_price: Option<i64>,
    /// Highest price, scaled.
    pub max_price: Option<i64>,
    /// Order.
    pub sort: ProductSort,
    /// Which page.
    pub page: PageRequest,
}

/// The product repository: what the service needs from a store. Object-safe (futures are
/// boxed) so the service holds either store behind one [`ProductStore`].
pub trait ProductRepository: Send + Sync + 'static {
    /// Adds a product; [`ProductError::SkuTaken`] when its SKU exists (from the unique index).
    fn insert<'a>(&'a self, draft: &'a ProductDraft) -> BoxFuture<'a, Result<ProductView, ProductError>>;
    /// Adds several products at once (the demo seed).
    fn insert_many<'a>(&'a self, drafts: &'a [ProductDraft]) -> BoxFuture<'a, Result<(), ProductError>>;
    /// Replaces the values of product `id`, keeping its creation time; `None` when there is no
    /// such product; [`ProductError::SkuTaken`] when the new SKU belongs to another.
    fn replace<'a>(
        &'a self,
        id: &'a str,
        draft: &'a ProductDraft,
    ) -> BoxFuture<'a, Result<Option<ProductView>, ProductError>>;
    /// Deletes product `id`; whether it existed.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ProductError>>;
    /// Product `id`.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProductView>, ProductError>>;
    /// A page of the products matching `query`, and how many match in all.
    fn list<'a>(&'a self, query: &'a ProductQuery) -> BoxFuture<'a, Result<(Vec<ProductView>, u64), ProductError>>;
    /// The products with these SKUs (those that exist).
    fn by_skus<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<ProductView>, ProductError>>;
    /// How many products there are.
    fn count(&self) -> BoxFuture<'_, Result<u64, ProductError>>;
    /// Whether the store answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), ProductError>>;
}

/// Which store to open.
pub enum ProductStoreConfig {
    /// MongoDB at `url` (`EMPORIUM_MONGODB_URL`): the database named in the URL's path, else
    /// `emporium`; collection `products`.
    MongoDb {
        /// `mongodb://...`
        url: String,
    },
    /// The embedded store in this SQLite database (the node opens `<data dir>/product.db`).
    Embedded(Database),
}

/// The catalog store, either kind. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct ProductStore {
    repository: Arc<dyn ProductRepository>,
    kind: &'static str,
}

impl ProductStore {
    /// Opens the store and gets it ready: MongoDB is reached (within [`CONNECT_TIMEOUT`]) and
    /// its indexes created; SQLite is migrated. A MongoDB URL that is set but unreachable is an
    /// error with the reason, never a fallback to the embedded store.
    pub async fn open(config: ProductStoreConfig) -> anyhow::Result<ProductStore> {
        match config {
            ProductStoreConfig::MongoDb { url } => {
                let store = mongo::MongoProductStore::connect(&url).await?;
                Ok(ProductStore { repository: Arc::new(store), kind: "mongodb" })
            }
            ProductStoreConfig::Embedded(database) => {
                let store = sqlite::SqliteProductStore::open(database).await?;
                Ok(ProductStore { repository: Arc::new(store), kind: "embedded" })
            }
        }
    }

    /// The catalog store of a node: MongoDB at `mongodb_url` when it is given, else the
    /// embedded `product.db` under `data_dir` (whatever `EMPORIUM_MYSQL_URL` says).
    pub async fn open_for_node(
        mongodb_url: Option<String>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<ProductStore> {
        use anyhow::Context as _;
        let config = match mongodb_url {
            Some(url) => ProductStoreConfig::MongoDb { url },
            None => {
                let path = data_dir.join("product.db");
                let database = Database::open_sqlite_file(&path)
                    .await
                    .with_context(|| format!("product: cannot open the embedded store {}", path.display()))?;
                ProductStoreConfig::Embedded(database)
            }
        };
        ProductStore::open(config).await
    }

    /// `"mongodb"` or `"embedded"`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether the store answers (the node's readiness check).
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.repository.ping().await.map_err(|error| match error {
            ProductError::Unexpected(cause) => cause,
            other => anyhow::anyhow!(other),
        })
    }

    /// See [`ProductRepository::insert`].
    pub async fn insert(&self, draft: &ProductDraft) -> Result<ProductView, ProductError> {
        self.repository.insert(draft).await
    }

    /// See [`ProductRepository::insert_many`].
    pub async fn insert_many(&self, drafts: &[ProductDraft]) -> Result<(), ProductError> {
        if drafts.is_empty() {
            return Ok(());
        }
        self.repository.insert_many(drafts).await
    }

    /// See [`ProductRepository::replace`].
    pub async fn replace(&self, id: &str, draft: &ProductDraft) -> Result<Option<ProductView>, ProductError> {
        self.repository.replace(id, draft).await
    }

    /// See [`ProductRepository::delete`].
    pub async fn delete(&self, id: &str) -> Result<bool, ProductError> {
        self.repository.delete(id).await
    }

    /// See [`ProductRepository::get`].
    pub async fn get(&self, id: &str) -> Result<Option<ProductView>, ProductError> {
        self.repository.get(id).await
    }

    /// See [`ProductRepository::list`].
    pub async fn list(&self, query: &ProductQuery) -> Result<(Vec<ProductView>, u64), ProductError> {
        self.repository.list(query).await
    }

    /// See [`ProductRepository::by_skus`].
    pub async fn by_skus(&self, skus: &[String]) -> Result<Vec<ProductView>, ProductError> {
        if skus.is_empty() {
            return Ok(Vec::new());
        }
        self.repository.by_skus(skus).await
    }

    /// See [`ProductRepository::count`].
    pub async fn count(&self) -> Result<u64, ProductError> {
        self.repository.count().await
    }
}

/// Whether `id` has the form of a product id (24 hex digits); anything else cannot exist.
pub fn is_product_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The instant `millis` milliseconds after the epoch.
pub fn time_of_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// Now, to the millisecond (what both stores keep, so a write answers what a read returns).
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// `url` without its credentials, for messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else { return url.to_string() };
    let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |index| scheme_end + index);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end], &url[scheme_end + at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_scale_to_hundredths_of_the_major_unit() {
        assert_eq!(PRICE_DECIMALS, 2);
        assert_eq!(scaled_amount(Money::parse("19.99", "USD").unwrap()), 1999);
        assert_eq!(scaled_amount(Money::parse("1500", "JPY").unwrap()), 150_000);
        assert_eq!(scaled_decimal_string(1999), "19.99");
        assert_eq!(scaled_decimal_string(10), "0.10");
    }

    #[test]
    fn ids_and_urls() {
        assert!(is_product_id("65a1b2c3d4e5f60718293a4b"));
        assert!(!is_product_id("65a1b2c3d4e5f60718293a4"));
        assert!(!is_product_id("{\"$ne\":null}"));
        assert_eq!(redact_url("mongodb://user:pw@db:27017/shop"), "mongodb://***@db:27017/shop");
        assert_eq!(redact_url("mongodb://127.0.0.1:27017"), "mongodb://127.0.0.1:27017");
        assert_eq!(redact_url("mongodb://u:p@a:1,b:2/?authSource=x@y"), "mongodb://***@a:1,b:2/?authSource=x@y");
        assert_eq!(redact_url("mongodb://h/db?tag=a@b"), "mongodb://h/db?tag=a@b");
    }
}
