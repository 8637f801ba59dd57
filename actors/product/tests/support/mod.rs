//! What the product tests share: a fresh store of either kind per test (MongoDB: a database of
//! its own on `EMPORIUM_TEST_MONGODB_URL`, dropped at the end; SQLite: a temporary file), the
//! service started on it as a node starts it, and the macro that runs one scenario on both.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emporium_cluster::{Cluster, ServiceContext, Settings};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::product::{CreateProduct, ProductRequest, ProductView};
use emporium_contracts::{Request, ServiceError};
use emporium_product::{ProductOptions, ProductStore, ProductStoreConfig};
use emporium_runtime::{CallMeta, LocalEndpoint};
use emporium_store::Database;
use tokio::sync::watch;

/// Where a test's catalog lives; dropped at the end.
pub enum TestStore {
    MongoDb { url: String, database: String },
    Sqlite { path: PathBuf, database: Database },
}

/// `base` (`mongodb://host:port[/db][?options]`) pointing at database `name`.
fn with_database(base: &str, name: &str) -> String {
    let (head, options) = match base.split_once('?') {
        Some((head, options)) => (head, format!("?{options}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |index| index + 3);
    let hosts_end = head[scheme_end..].find('/').map_or(head.len(), |index| scheme_end + index);
    format!("{}/{name}{options}", &head[..hosts_end])
}

impl TestStore {
    /// A fresh, empty store of `kind` (`"mongodb"` or `"sqlite"`).
    pub async fn open(kind: &str) -> (TestStore, ProductStore) {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match kind {
            "mongodb" => {
                let base = std::env::var("EMPORIUM_TEST_MONGODB_URL").unwrap_or_else(|_| {
                    panic!(
                        "EMPORIUM_TEST_MONGODB_URL is not set: the MongoDB half of the product suite needs a server. \
                         Run ops/test.sh, or start the MongoDB-compatible test server with ops/mongodb/start.sh and \
                         export the line it prints (or point the variable at a real MongoDB)"
                    )
                });
                let database = format!("product_test_{}", &unique[..16]);
                let url = with_database(&base, &database);
                let store = ProductStore::open(ProductStoreConfig::MongoDb { url: url.clone() })
                    .await
                    .unwrap_or_else(|error| panic!("MongoDB at {base} (EMPORIUM_TEST_MONGODB_URL): {error:#}"));
                (TestStore::MongoDb { url, database }, store)
            }
            _ => {
                let path = std::env::temp_dir().join(format!("product-test-{unique}.db"));
                let database = Database::open_sqlite_file(&path).await.unwrap();
                let store = ProductStore::open(ProductStoreConfig::Embedded(database.clone())).await.unwrap();
                (TestStore::Sqlite { path, database }, store)
            }
        }
    }

    /// Drops the test's database or file.
    pub async fn drop_it(self) {
        match self {
            TestStore::MongoDb { url, database } => {
                let client = mongodb::Client::with_uri_str(&url).await.unwrap();
                client.database(&database).drop().await.unwrap();
            }
            TestStore::Sqlite { path, database } => {
                database.close().await;
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

/// The product service, started on a store as a node starts it.
pub struct Catalog {
    pub endpoint: LocalEndpoint,
    pub cluster: Cluster,
    pub store: ProductStore,
    _settings: watch::Sender<Arc<Settings>>,
}

impl Catalog {
    pub async fn start(store: ProductStore) -> Catalog {
        let (settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
        let ctx = ServiceContext::standalone("product-test", settings_rx);
        let cluster = ctx.cluster.clone();
        let handle = emporium_product::start(ctx, ProductOptions { store: store.clone() }).await.unwrap();
        cluster.add_local(handle.endpoint.clone());
        Catalog { endpoint: handle.endpoint, cluster, store, _settings: settings_tx }
    }

    pub async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        let meta = CallMeta { deadline: Some(std::time::Instant::now() + Duration::from_secs(30)), trace: None };
        self.endpoint.route::<M>().expect("the product service handles it").ask(message, meta).await
    }

    /// Creates a product (as an admin) and answers it.
    pub async fn create(&self, request: ProductRequest) -> ProductView {
        let sku = request.sku.clone();
        self.ask(CreateProduct { caller: admin(), request })
            .await
            .unwrap_or_else(|error| panic!("creating {sku}: {error}"))
    }
}

pub fn admin() -> Caller {
    Caller { user_id: "admin-1".into(), roles: vec![Role::Admin], token_id: "t-admin".into() }
}

pub fn customer() -> Caller {
    Caller { user_id: "customer-1".into(), roles: vec![Role::Customer], token_id: "t-customer".into() }
}

/// A product request; change what the test cares about.
pub fn product(sku: &str, name: &str, price: &str, category: &str) -> ProductRequest {
    ProductRequest {
        sku: sku.into(),
        name: name.into(),
        description: String::new(),
        price: price.into(),
        currency: "USD".into(),
        category: category.into(),
        attributes: Default::default(),
    }
}

/// Runs `scenario` once on MongoDB and once on the embedded SQLite store, each on a fresh store
/// that is dropped afterwards.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, |$catalog:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($catalog: &support::Catalog) $body

            #[actix_rt::test]
            async fn mongodb() {
                let (store, products) = support::TestStore::open("mongodb").await;
                let catalog = support::Catalog::start(products).await;
                scenario(&catalog).await;
                store.drop_it().await;
            }

            #[actix_rt::test]
            async fn sqlite() {
                let (store, products) = support::TestStore::open("sqlite").await;
                let catalog = support::Catalog::start(products).await;
                scenario(&catalog).await;
                store.drop_it().await;
            }
        }
    };
}

#[test]
fn test_urls_name_their_database() {
    assert_eq!(with_database("mongodb://127.0.0.1:1234", "t"), "mongodb://127.0.0.1:1234/t");
    assert_eq!(with_database("mongodb://h:1/old?x=1", "t"), "mongodb://h:1/t?x=1");
    assert_eq!(with_database("mongodb://u:p@h:1/?replicaSet=rs", "t"), "mongodb://u:p@h:1/t?replicaSet=rs");
}
