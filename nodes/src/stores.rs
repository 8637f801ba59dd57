//! Which store each service uses: MariaDB/MySQL when `EMPORIUM_MYSQL_URL` is set (every service
//! in the same database, each in its own tables), otherwise an embedded SQLite file per service
//! under `--data-dir`; the catalog uses MongoDB when `EMPORIUM_MONGODB_URL` is set. A URL that is set but unreachable stops the node with the reason: there
//! is never a silent fallback to the embedded store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use emporium_cluster::node::Readiness;
use emporium_product::{ProductStore, ProductStoreConfig};
use emporium_store::Database;
use parking_lot::Mutex;

/// The SQL database of `service`.
pub async fn sql_database(service: &str, mysql_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Database> {
    match mysql_url {
        Some(url) => Database::connect(url)
            .await
            .with_context(|| format!("{service}: EMPORIUM_MYSQL_URL is set but the database cannot be reached")),
        None => {
            let path = data_dir.join(format!("{service}.db"));
            Database::open_sqlite_file(&path)
                .await
                .with_context(|| format!("{service}: cannot open the embedded store {}", path.display()))
        }
    }
}

/// The catalog's store: MongoDB when `EMPORIUM_MONGODB_URL` is set, else an embedded SQLite
/// file (`product.db`), whatever `EMPORIUM_MYSQL_URL` says.
pub async fn product_store(mongodb_url: Option<&str>, data_dir: &Path) -> anyhow::Result<ProductStore> {
    let config = match mongodb_url {
        Some(url) => ProductStoreConfig::MongoDb { url: url.to_string() },
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

/// Makes readiness follow the catalog's store.
pub fn watch_product_store(readiness: &Readiness, store: ProductStore) {
    watch("product store", readiness, move || {
        let store = store.clone();
        async move { store.ping().await.map_err(|error| format!("{error:#}")) }
    });
}

/// Makes readiness follow `database`: a background ping every two seconds.
pub fn watch_database(readiness: &Readiness, service: &str, database: Database) {
    watch(&format!("{service} database"), readiness, move || {
        let database = database.clone();
        async move { database.ping().await.map_err(|error| error.to_string()) }
    });
}

/// Runs `ping` every two seconds and makes readiness fail with its error while it fails.
fn watch<F, Fut>(name: &str, readiness: &Readiness, ping: F)
where
    F: Fn() -> Fut + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    let healthy = Arc::new(AtomicBool::new(true));
    let reason = Arc::new(Mutex::new(String::new()));
    let (healthy_check, reason_check) = (healthy.clone(), reason.clone());
    readiness.add_check(
        name,
        Box::new(move || if healthy_check.load(Ordering::Acquire) { Ok(()) } else { Err(reason_check.lock().clone()) }),
    );
    actix_web::rt::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), ping()).await {
                Ok(Ok(())) => healthy.store(true, Ordering::Release),
                Ok(Err(error)) => {
                    *reason.lock() = format!("unreachable: {error}");
                    healthy.store(false, Ordering::Release);
                }
                Err(_) => {
                    *reason.lock() = "no answer within 2 s".to_string();
                    healthy.store(false, Ordering::Release);
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}
