//! The relay's driver task and the handle a service keeps: it asks the relay actor to publish
//! whenever a commit enqueued events (or the poll interval passed), backs off while the broker
//! or the database is down, measures the outbox lag, and, on MariaDB/MySQL, makes sure only
//! one instance of a service relays at a time.
//!
//! Single relay per service and database: the driver holds `GET_LOCK('emporium_bus_relay:..',
//! 0)` on a dedicated connection while it relays; other instances stand by and try again every
//! second. The lock goes with its connection, so a crashed instance frees it at once. Its
//! hold is checked at most every second: in the short window after a lost connection two
//! relays may publish the same rows, which consumers dedupe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use emporium_runtime::{CellHandle, ServiceSupervision};
use emporium_store::{AnyConnection, Dialect, Row};
use parking_lot::Mutex;
use serde::Serialize;
use sqlx::{AnyPool, Connection};
use tokio::sync::watch;

use crate::ask::ask;
use crate::error::BusError;
use crate::messages::{MeasureOutboxLag, PublishPendingEvents};
use crate::outbox::{self, OutboxLag};
use crate::relay::{OutboxRelay, RelayContext};
use crate::transport::Transport;

/// How often a standby relay tries to take over, and how often the active one checks its lock.
const LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopping relay lets its current batch finish.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often sent rows past their retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// What a relay is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayRole {
    /// Starting, or waiting until the in-process bus opens delivery.
    Starting,
    /// Publishing.
    Active,
    /// Another instance of the service relays; this one waits to take over.
    Standby,
    /// Stopped.
    Stopped,
}

/// A serializable view of a relay.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelaySnapshot {
    /// The service whose outbox it relays.
    pub service: String,
    /// What it is doing.
    pub role: RelayRole,
    /// The last measured lag.
    pub lag: OutboxLag,
    /// Rows published since start.
    pub num_published: u64,
    /// Failed publish batches since start.
    pub num_failures: u64,
    /// The last failure, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

struct RelayState {
    snapshot: Mutex<RelaySnapshot>,
}

/// A running relay.
pub struct RelayHandle {
    service: String,
    cell: CellHandle<OutboxRelay>,
    supervision: ServiceSupervision,
    state: Arc<RelayState>,
    stop_tx: watch::Sender<bool>,
    finished_rx: watch::Receiver<bool>,
}

impl RelayHandle {
    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The relay's state: role, last lag, counters.
    pub fn snapshot(&self) -> RelaySnapshot {
        self.state.snapshot.lock().clone()
    }

    /// Measures the lag now.
    pub async fn measure_lag(&self) -> Result<OutboxLag, BusError> {
        Ok(ask(&self.cell, MeasureOutboxLag {}, None).await?)
    }

    /// The relay actor's supervisor and health.
    pub fn supervision(&self) -> &ServiceSupervision {
        &self.supervision
    }

    /// Stops relaying (the current batch finishes first) and frees the relay lock.
    pub async fn stop(&self) {
        self.stop_tx.send_replace(true);
        let mut finished = self.finished_rx.clone();
        let _ = finished.wait_for(|finished| *finished).await;
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.stop_tx.send_replace(true);
    }
}

/// Spawns the driver of `cell` on the current runtime and answers the handle.
pub(crate) fn start_driver(
    context: Arc<RelayContext>,
    cell: CellHandle<OutboxRelay>,
    supervision: ServiceSupervision,
    arbiter: &actix::ArbiterHandle,
) -> RelayHandle {
    let state = Arc::new(RelayState {
        snapshot: Mutex::new(RelaySnapshot {
            service: context.service.clone(),
            role: RelayRole::Starting,
            lag: OutboxLag::default(),
            num_published: 0,
            num_failures: 0,
            last_error: None,
        }),
    });
    let service = context.service.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (finished_tx, finished_rx) = watch::channel(false);
    let driver =
        RelayDriver { context: context.clone(), cell: cell.clone(), state: state.clone(), stop_rx: stop_rx.clone() };
    arbiter.spawn(async move {
        driver.run().await;
        finished_tx.send_replace(true);
    });
    let reporter = LagReporter { context, cell: cell.clone(), state: state.clone(), stop_rx };
    arbiter.spawn(reporter.run());
    RelayHandle { service, cell, supervision, state, stop_tx, finished_rx }
}

/// Resolves once `stop_rx` says stop.
pub(crate) async fn stop_requested(stop_rx: &mut watch::Receiver<bool>) {
    let _ = stop_rx.wait_for(|stop| *stop).await;
}

struct RelayDriver {
    context: Arc<RelayContext>,
    cell: CellHandle<OutboxRelay>,
    state: Arc<RelayState>,
    stop_rx: watch::Receiver<bool>,
}

impl RelayDriver {
    async fn run(mut self) {
        let service = self.context.service.clone();
        if let Transport::InProcess(broker) = &self.context.transport
            && !broker.is_open()
        {
            tracing::info!(service = %service, "in-process relay waits until every consumer subscribed (Bus::start_delivery)");
            tokio::select! {
                _ = broker.wait_until_open() => {}
                _ = stop_requested(&mut self.stop_rx) => return self.set_role(RelayRole::Stopped),
            }
        }
        let wake = self.context.database.commit_signal(&crate::outbox::relay_signal_name(&service));
        let mut lock = match self.context.database.dialect() {
            Dialect::MySql => Some(RelayLock::new(self.context.database.pool().clone(), &service)),
            Dialect::Sqlite => None,
        };
        let mut num_failures_in_a_row = 0u32;
        let max_rows = self.context.config.relay_batch_size;
        loop {
            if *self.stop_rx.borrow() {
                break;
            }
            if let Some(lock) = lock.as_mut() {
                match lock.hold().await {
                    Ok(true) => self.set_role(RelayRole::Active),
                    Ok(false) => {
                        self.set_role(RelayRole::Standby);
                        if self.pause(LOCK_CHECK_INTERVAL).await {
                            break;
                        }
                        continue;
                    }
                    Err(error) => {
                        num_failures_in_a_row += 1;
                        self.record_failure(&error.to_string());
                        if self.pause(self.context.config.reconnect_delay_for(num_failures_in_a_row)).await {
                            break;
                        }
                        continue;
                    }
                }
            } else {
                self.set_role(RelayRole::Active);
            }
            // Registered before the batch, so that a commit during the batch is not missed.
            let woken = wake.notified();
            let cell = self.cell.clone();
            let publishing = ask(&cell, PublishPendingEvents { max_rows }, None);
            tokio::pin!(publishing);
            let published = tokio::select! {
                published = &mut publishing => published,
                _ = stop_requested(&mut self.stop_rx) => {
                    // Let the batch finish (so its rows are marked sent before another
                    // instance takes over), but not for long: an in-process publish waits for
                    // consumers that may be gone.
                    if let Ok(Ok(progress)) = tokio::time::timeout(STOP_GRACE, &mut publishing).await {
                        self.state.snapshot.lock().num_published += progress.num_published as u64;
                    }
                    break;
                }
            };
            match published {
                Ok(progress) => {
                    if num_failures_in_a_row > 0 {
                        tracing::info!(service = %service, "relay publishes again");
                    }
                    num_failures_in_a_row = 0;
                    {
                        let mut snapshot = self.state.snapshot.lock();
                        snapshot.num_published += progress.num_published as u64;
                        snapshot.last_error = None;
                    }
                    if progress.more_pending {
                        continue;
                    }
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(self.context.config.relay_poll_interval) => {}
                        _ = stop_requested(&mut self.stop_rx) => break,
                    }
                }
                Err(error) => {
                    num_failures_in_a_row += 1;
                    let delay = self.context.config.reconnect_delay_for(num_failures_in_a_row);
                    tracing::warn!(service = %service, error = %error, retry_in_ms = delay.as_millis() as u64, "relay could not publish");
                    self.record_failure(&error.to_string());
                    if self.pause(delay).await {
                        break;
                    }
                }
            }
        }
        if let Some(lock) = lock.as_mut() {
            lock.release().await;
        }
        self.set_role(RelayRole::Stopped);
    }

    fn set_role(&self, role: RelayRole) {
        self.state.snapshot.lock().role = role;
    }

    fn record_failure(&self, error: &str) {
        let mut snapshot = self.state.snapshot.lock();
        snapshot.num_failures += 1;
        snapshot.last_error = Some(error.to_string());
    }

    /// Sleeps `delay`; answers true when asked to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => *self.stop_rx.borrow(),
            _ = stop_requested(&mut self.stop_rx) => true,
        }
    }
}

/// Measures the relay's lag, exports it, and purges old sent rows.
struct LagReporter {
    context: Arc<RelayContext>,
    cell: CellHandle<OutboxRelay>,
    state: Arc<RelayState>,
    stop_rx: watch::Receiver<bool>,
}

impl LagReporter {
    async fn run(mut self) {
        let service = self.context.service.clone();
        let mut last_purge = Instant::now();
        loop {
            match ask(&self.cell, MeasureOutboxLag {}, None).await {
                Ok(lag) => {
                    metrics::gauge!("emporium_outbox_unsent", "service" => service.clone()).set(lag.num_unsent as f64);
                    metrics::gauge!("emporium_outbox_oldest_unsent_seconds", "service" => service.clone())
                        .set(lag.oldest_unsent_age_secs);
                    self.state.snapshot.lock().lag = lag;
                }
                Err(error) => tracing::debug!(service = %service, error = %error, "could not measure the outbox lag"),
            }
            if last_purge.elapsed() >= PURGE_INTERVAL {
                last_purge = Instant::now();
                let retention = chrono::Duration::from_std(self.context.config.outbox_retention).unwrap_or_default();
                match outbox::purge_sent(&self.context.database, &service, Utc::now() - retention, 10_000).await {
                    Ok(num_purged) if num_purged > 0 => {
                        tracing::info!(service = %service, num_purged, "purged sent outbox rows")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(service = %service, error = %error, "could not purge the outbox"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.context.config.lag_report_interval) => {}
                _ = stop_requested(&mut self.stop_rx) => break,
            }
        }
    }
}

/// `GET_LOCK` held on a dedicated connection while this instance relays.
struct RelayLock {
    pool: AnyPool,
    service: String,
    name: Option<String>,
    connection: Option<AnyConnection>,
    verified_at: Option<Instant>,
}

impl RelayLock {
    fn new(pool: AnyPool, service: &str) -> Self {
        RelayLock { pool, service: service.to_string(), name: None, connection: None, verified_at: None }
    }

    /// Whether this instance holds the lock (taking it when free).
    async fn hold(&mut self) -> Result<bool, BusError> {
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
        let mut connection = self.pool.acquire().await?.detach();
        let got = sqlx::query("SELECT CAST(COALESCE(GET_LOCK(?, 0), 0) AS SIGNED) AS got")
            .bind(&name)
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

    async fn release(&mut self) {
        if let (Some(mut connection), Some(name)) = (self.connection.take(), self.name.as_ref()) {
            let _ = sqlx::query("SELECT RELEASE_LOCK(?)").bind(name).execute(&mut connection).await;
            let _ = connection.close().await;
        }
    }
}

/// The lock name of `service`'s relay on `database`, at most 64 characters (MySQL's limit).
fn relay_lock_name(database: &str, service: &str) -> String {
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
