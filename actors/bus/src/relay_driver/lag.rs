//! One run of the relay's lag reporter: measures the outbox lag, exports it as gauges, keeps
//! it in the relay's snapshot, and purges sent rows past their retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use emporium_runtime::CellHandle;
use tokio::sync::watch;

use super::RelayState;
use super::run::stop_requested;
use crate::ask::ask;
use crate::messages::MeasureOutboxLag;
use crate::outbox;
use crate::relay::{OutboxRelay, RelayContext};

/// How often sent rows past their retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// Sent rows purged at most per pass.
const MAX_PURGED_PER_PASS: usize = 10_000;

/// Measures the relay's lag, exports it, and purges old sent rows.
pub(crate) struct LagReporter {
    context: Arc<RelayContext>,
    cell: CellHandle<OutboxRelay>,
    state: Arc<RelayState>,
    stop_rx: watch::Receiver<bool>,
}

impl LagReporter {
    pub(crate) fn new(
        context: Arc<RelayContext>,
        cell: CellHandle<OutboxRelay>,
        state: Arc<RelayState>,
        stop_rx: watch::Receiver<bool>,
    ) -> LagReporter {
        LagReporter { context, cell, state, stop_rx }
    }

    /// Reports until the stop signal.
    pub(crate) async fn run(mut self) {
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
                self.purge(&service).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.context.config.lag_report_interval) => {}
                _ = stop_requested(&mut self.stop_rx) => break,
            }
        }
    }

    async fn purge(&self, service: &str) {
        let retention = chrono::Duration::from_std(self.context.config.outbox_retention).unwrap_or_default();
        let purged =
            outbox::purge_sent(&self.context.database, service, Utc::now() - retention, MAX_PURGED_PER_PASS).await;
        match purged {
            Ok(num_purged) if num_purged > 0 => tracing::info!(service, num_purged, "purged sent outbox rows"),
            Ok(_) => {}
            Err(error) => tracing::warn!(service, error = %error, "could not purge the outbox"),
        }
    }
}
