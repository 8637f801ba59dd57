//! One run of the consumer's driver task: attach to the queue (again after the broker went
//! away, with backoff), take batches and hand them to [`ConsumerDriver::process`] until the
//! stop signal, then detach. A kill detaches at once, settling nothing more.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use super::DriverSetup;
use super::amqp_delivery::AmqpSession;
use super::delivery::{DeliveryIds, Source};
use super::shared::{Control, DriverShared};
use crate::amqp;
use crate::error::BusError;
use crate::inbox;
use crate::transport::Transport;

/// How often old inbox rows are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// Inbox rows purged at most per pass.
const MAX_PURGED_PER_PASS: usize = 10_000;

/// Why a consuming session ended.
enum SessionEnd {
    /// Asked to stop or die.
    Ended,
    /// The broker went away: reconnect.
    Broken(BusError),
}

/// The driver of one consumer, for one run of its supervised task.
pub(crate) struct ConsumerDriver {
    pub(crate) setup: Arc<DriverSetup>,
    pub(crate) shared: Arc<DriverShared>,
    /// The task's stop signal (the handle's stop or kill, or the node's stop).
    pub(crate) stop_rx: watch::Receiver<bool>,
    kill_rx: watch::Receiver<bool>,
    ids: DeliveryIds,
    last_purge: Instant,
}

impl ConsumerDriver {
    pub(crate) fn new(
        setup: Arc<DriverSetup>,
        shared: Arc<DriverShared>,
        stop_rx: watch::Receiver<bool>,
    ) -> ConsumerDriver {
        let kill_rx = shared.kill_tx.subscribe();
        ConsumerDriver { setup, shared, stop_rx, kill_rx, ids: DeliveryIds::default(), last_purge: Instant::now() }
    }

    /// Consumes until the stop signal, reconnecting while the broker is away.
    pub(crate) async fn run(mut self) {
        let queue = self.setup.names.queue.clone();
        let run_number = self.shared.num_driver_runs.fetch_add(1, Ordering::SeqCst) + 1;
        if run_number > 1 {
            tracing::warn!(queue = %queue, run_number, "consumer driver restarted");
        }
        self.shared.set_connected(false);
        let mut num_failures_in_a_row = 0u32;
        loop {
            if self.control() != Control::Run {
                break;
            }
            let opened = tokio::time::timeout(amqp::BROKER_OPERATION_TIMEOUT, self.open_source()).await;
            let opened = opened.unwrap_or_else(|_| Err(BusError::BrokerTimeout("attaching to the queue".to_string())));
            let source = match opened {
                Ok(source) => source,
                Err(error) => {
                    num_failures_in_a_row += 1;
                    let delay = self.setup.config.reconnect_delay_for(num_failures_in_a_row);
                    tracing::warn!(queue = %queue, error = %error, retry_in_ms = delay.as_millis() as u64, "consumer cannot attach to its queue");
                    self.shared.record_error(&error.to_string());
                    if self.pause(delay).await {
                        break;
                    }
                    continue;
                }
            };
            if num_failures_in_a_row > 0 {
                tracing::info!(queue = %queue, "consumer attached to its queue again");
            }
            num_failures_in_a_row = 0;
            self.shared.set_connected(true);
            let end = self.consume(source).await;
            self.shared.set_connected(false);
            match end {
                SessionEnd::Ended => break,
                SessionEnd::Broken(error) => {
                    tracing::warn!(queue = %queue, error = %error, "consumer lost its queue; reconnecting");
                    self.shared.record_error(&error.to_string());
                    if let Transport::Amqp { consume, .. } = &self.setup.transport {
                        consume.record_failure(&error);
                    }
                    num_failures_in_a_row += 1;
                    if self.pause(self.setup.config.reconnect_delay_for(num_failures_in_a_row)).await {
                        break;
                    }
                }
            }
        }
    }

    fn control(&self) -> Control {
        Control::from_signals(*self.stop_rx.borrow(), *self.kill_rx.borrow())
    }

    /// Sleeps `delay`; answers true when asked to end meanwhile.
    pub(crate) async fn pause(&mut self, delay: Duration) -> bool {
        let mut stop_rx = self.stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => self.control() != Control::Run,
            _ = stop_rx.wait_for(|stop| *stop) => true,
        }
    }

    async fn open_source(&self) -> Result<Source, BusError> {
        let setup = &self.setup;
        match &setup.transport {
            Transport::InProcess(_) => {
                let queue = setup.in_process_queue.clone().ok_or_else(|| {
                    BusError::Unexpected(anyhow::anyhow!("in-process consumer started without its queue"))
                })?;
                Ok(Source::InProcess(queue))
            }
            Transport::Amqp { consume, .. } => {
                let session = AmqpSession::open(consume, &setup.config, &setup.spec, &setup.names).await?;
                Ok(Source::Amqp(Box::new(session)))
            }
        }
    }

    /// Consumes until asked to end or the broker goes away.
    async fn consume(&mut self, mut source: Source) -> SessionEnd {
        let mut stop_rx = self.stop_rx.clone();
        let queue = self.setup.names.queue.clone();
        loop {
            if self.control() != Control::Run {
                source.close().await;
                return SessionEnd::Ended;
            }
            self.shared.panic_if_requested(&queue);
            let max = self.shared.retry_book.lock().next_batch_size(self.setup.config.consumer_step_size());
            let next = tokio::select! {
                batch = source.next_batch(max, &mut self.ids) => Some(batch),
                _ = stop_rx.wait_for(|stop| *stop) => None,
            };
            let batch = match next {
                None => {
                    source.close().await;
                    return SessionEnd::Ended;
                }
                Some(Ok(batch)) => batch,
                Some(Err(error)) => return SessionEnd::Broken(error),
            };
            // A panic asked for while the driver waited fires here: the batch goes back to the
            // queue unsettled, as it would after a crash.
            self.shared.panic_if_requested(&queue);
            let mut kill_rx = self.kill_rx.clone();
            let processed = tokio::select! {
                result = self.process(batch, &source) => Some(result),
                _ = kill_rx.wait_for(|kill| *kill) => None,
            };
            match processed {
                None => {
                    source.close().await;
                    return SessionEnd::Ended;
                }
                Some(Err(error)) => return SessionEnd::Broken(error),
                Some(Ok(())) => {}
            }
            self.purge_inbox_now_and_then().await;
        }
    }

    async fn purge_inbox_now_and_then(&mut self) {
        if self.last_purge.elapsed() < PURGE_INTERVAL {
            return;
        }
        self.last_purge = Instant::now();
        let retention = chrono::Duration::from_std(self.setup.config.inbox_retention).unwrap_or_default();
        let consumer = &self.setup.spec.consumer;
        let database = &self.setup.context.database;
        match inbox::purge_applied(database, consumer, Utc::now() - retention, MAX_PURGED_PER_PASS).await {
            Ok(num_purged) if num_purged > 0 => {
                tracing::info!(consumer = %consumer, num_purged, "purged old inbox rows")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(consumer = %consumer, error = %error, "could not purge the inbox"),
        }
    }
}
