//! Which store each service uses: MariaDB/MySQL when `EMPORIUM_MYSQL_URL` is set (every service
//! in the same database, each in its own tables), otherwise an embedded SQLite file per service
//! under `--data-dir`. A URL that is set but unreachable stops the node with the reason: there
//! is never a silent fallback to the embedded store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use emporium_bus::Database;
use emporium_cluster::node::Readiness;
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

/// Makes readiness follow `database`: a background ping every two seconds.
pub fn watch_database(readiness: &Readiness, service: &str, database: Database) {
    let healthy = Arc::new(AtomicBool::new(true));
    let reason = Arc::new(Mutex::new(String::new()));
    let (healthy_check, reason_check) = (healthy.clone(), reason.clone());
    readiness.add_check(
        &format!("{service} database"),
        Box::new(move || if healthy_check.load(Ordering::Acquire) { Ok(()) } else { Err(reason_check.lock().clone()) }),
    );
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), database.ping()).await {
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
