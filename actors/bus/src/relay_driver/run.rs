//! One run of the relay's driver loop: take (or keep) the relay lock, ask the relay actor to
//! publish, wait for the next commit or the poll interval, back off after failures (a batch
//! with unroutable rows is one: those rows stay in the outbox and are published again after
//! the backoff).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use emporium_runtime::CellHandle;
use emporium_store::Dialect;
use tokio::sync::watch;

use super::lock::RelayLock;
use super::{RelayRole, RelayState};
use crate::ask::ask;
use crate::messages::PublishPendingEvents;
use crate::relay::{OutboxRelay, RelayContext};
use crate::transport::Transport;

/// How often a standby relay tries to take over.
const STANDBY_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopping relay lets its current batch finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Resolves once `stop_rx` says stop (or its sender is gone).
pub(crate) async fn stop_requested(stop_rx: &mut watch::Receiver<bool>) {
    let _ = stop_rx.wait_for(|stop| *stop).await;
}

/// The driver of one relay, for one run of its supervised task.
pub(crate) struct RelayDriver {
    context: Arc<RelayContext>,
    cell: CellHandle<OutboxRelay>,
    state: Arc<RelayState>,
    stop_rx: watch::Receiver<bool>,
}

impl RelayDriver {
    pub(crate) fn new(
        context: Arc<RelayContext>,
        cell: CellHandle<OutboxRelay>,
        state: Arc<RelayState>,
        stop_rx: watch::Receiver<bool>,
    ) -> RelayDriver {
        RelayDriver { context, cell, state, stop_rx }
    }

    /// Relays until the stop signal; leaves the lock free and the role `Stopped`.
    pub(crate) async fn run(mut self) {
        let service = self.context.service.clone();
        let run_number = self.state.num_driver_runs.fetch_add(1, Ordering::SeqCst) + 1;
        let held_lock_before = self.state.lock_held.load(Ordering::SeqCst);
        if run_number > 1 {
            tracing::warn!(service = %service, run_number, held_lock_before, "relay driver restarted");
        }
        self.state.set_role(RelayRole::Starting);
        if let Transport::InProcess(broker) = &self.context.transport
            && !broker.is_open()
        {
            tracing::info!(service = %service, "in-process relay waits until every consumer subscribed (Bus::start_delivery)");
            tokio::select! {
                _ = broker.wait_until_open() => {}
                _ = stop_requested(&mut self.stop_rx) => return self.state.set_role(RelayRole::Stopped),
            }
        }
        let wake = self.context.database.commit_signal(&crate::outbox::relay_signal_name(&service));
        let mut lock = match self.context.database.dialect() {
            Dialect::MySql => Some(RelayLock::new(self.context.database.pool().clone(), &service, held_lock_before)),
            Dialect::Sqlite => None,
        };
        let mut num_failures_in_a_row = 0u32;
        let max_rows = self.context.config.relay_batch_size;
        loop {
            if *self.stop_rx.borrow() {
                break;
            }
            self.state.panic_if_requested();
            if let Some(lock) = lock.as_mut() {
                let held = lock.hold().await;
                self.state.lock_held.store(matches!(held, Ok(true)), Ordering::SeqCst);
                match held {
                    Ok(true) => self.state.set_role(RelayRole::Active),
                    Ok(false) => {
                        self.state.set_role(RelayRole::Standby);
                        if self.pause(STANDBY_RETRY_INTERVAL).await {
                            break;
                        }
                        continue;
                    }
                    Err(error) => {
                        num_failures_in_a_row += 1;
                        self.state.record_failure(&error.to_string());
                        if self.pause(self.context.config.reconnect_delay_for(num_failures_in_a_row)).await {
                            break;
                        }
                        continue;
                    }
                }
            } else {
                self.state.set_role(RelayRole::Active);
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
                    // consumers that may be gone. The relay actor counts what it published.
                    let _ = tokio::time::timeout(STOP_GRACE, &mut publishing).await;
                    break;
                }
            };
            match published {
                Ok(progress) => {
                    if num_failures_in_a_row > 0 {
                        tracing::info!(service = %service, "relay publishes again");
                    }
                    num_failures_in_a_row = 0;
                    self.state.record_success();
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
                    self.state.record_failure(&error.to_string());
                    if self.pause(delay).await {
                        break;
                    }
                }
            }
        }
        if let Some(lock) = lock.as_mut() {
            lock.release().await;
        }
        self.state.lock_held.store(false, Ordering::SeqCst);
        self.state.set_role(RelayRole::Stopped);
    }

    /// Sleeps `delay`; answers true when asked to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => *self.stop_rx.borrow(),
            _ = stop_requested(&mut self.stop_rx) => true,
        }
    }
}
