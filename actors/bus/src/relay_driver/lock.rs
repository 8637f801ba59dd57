//! The single-relay lock on MariaDB/MySQL: `GET_LOCK` held on a dedicated connection while
//! this instance relays. The lock goes with its connection: closing it, or dropping it with a
//! driver run that panicked, frees the lock on the server.

use std::time::{Duration, Instant};

use emporium_store::{AnyConnection, Row};
use sqlx::{AnyPool, Connection};

use crate::error::BusError;

/// How often the active relay checks that it still holds its lock.
const LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a restarted driver that held the lock waits for the server to free the lock of
/// its previous run (whose connection was dropped with it) before it stands by.
const LOCK_RETAKE_WAIT_SECS: i64 = 2;

/// `GET_LOCK` held on a dedicated connection while this instance relays.
pub(crate) struct RelayLock {
    pool: AnyPool,
    service: String,
    name: Option<String>,
    connection: Option<AnyConnection>,
    verified_at: Option<Instant>,
    /// Whether the next attempt to take the lock may wait (see [`LOCK_RETAKE_WAIT_SECS`]).
    retaking: bool,
}

impl RelayLock {
    /// A lock not held yet; `retaking` when the previous run of the driver held it.
    pub(crate) fn new(pool: AnyPool, service: &str, retaking: bool) -> Self {
        RelayLock { pool, service: service.to_string(), name: None, connection: None, verified_at: None, retaking }
    }

    /// Whether this instance holds the lock (taking it when free).
    pub(crate) async fn hold(&mut self) -> Result<bool, BusError> {
        let name = match &self.name {
            Some(name) => name.clone(),
            None => {
                let row = sqlx::query("SELECT DATABASE() AS name").fetch_one(&self.pool).await?;
                let database: Option<String> = row.try_get("name")?;
                let name = relay_lock_name(database.as_deref().unwrap_or(""), &self.service);
                self.name = Some(name.clone());
                name
            }
        };
        if let Some(connection) = self.connection.as_mut() {
            if self.verified_at.is_some_and(|at| at.elapsed() < LOCK_CHECK_INTERVAL) {
                return Ok(true);
            }
            let held = sqlx::query("SELECT CAST(COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0) AS SIGNED) AS held")
                .bind(&name)
                .fetch_one(&mut *connection)
                .await
                .and_then(|row| row.try_get::<i64, _>("held"));
            match held {
                Ok(1) => {
                    self.verified_at = Some(Instant::now());
                    return Ok(true);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(service = %self.service, lock = %name, "relay lost its lock; trying to take it again");
                    self.connection = None;
                }
            }
        }
        let wait_secs = if std::mem::take(&mut self.retaking) { LOCK_RETAKE_WAIT_SECS } else { 0 };
        let mut connection = self.pool.acquire().await?.detach();
        let got = sqlx::query("SELECT CAST(COALESCE(GET_LOCK(?, ?), 0) AS SIGNED) AS got")
            .bind(&name)
            .bind(wait_secs)
            .fetch_one(&mut connection)
            .await?
            .try_get::<i64, _>("got")?;
        if got == 1 {
            tracing::info!(service = %self.service, lock = %name, "relay took the outbox lock");
            self.connection = Some(connection);
            self.verified_at = Some(Instant::now());
            Ok(true)
        } else {
            let _ = connection.close().await;
            Ok(false)
        }
    }

    /// Frees the lock and closes its connection.
    pub(crate) async fn release(&mut self) {
        if let (Some(mut connection), Some(name)) = (self.connection.take(), self.name.as_ref()) {
            let _ = sqlx::query("SELECT RELEASE_LOCK(?)").bind(name).execute(&mut connection).await;
            let _ = connection.close().await;
        }
    }
}

/// The lock name of `service`'s relay on `database`, at most 64 characters (MySQL's limit).
pub(crate) fn relay_lock_name(database: &str, service: &str) -> String {
    let name = format!("emporium_bus_relay:{database}:{service}");
    if name.len() <= 64 {
        return name;
    }
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3));
    format!("emporium_bus_relay:{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_mysql_and_stay_distinct() {
        assert_eq!(relay_lock_name("shop", "order"), "emporium_bus_relay:shop:order");
        let long_a = relay_lock_name(&"a".repeat(60), "order");
        let long_b = relay_lock_name(&"a".repeat(60), "payment");
        assert!(long_a.len() <= 64 && long_b.len() <= 64);
        assert_ne!(long_a, long_b);
        assert_eq!(long_a, relay_lock_name(&"a".repeat(60), "order"), "stable");
    }
}
