//! The stop signal of a bus loop (a relay's or a consumer's driver): it turns on when the
//! loop's handle stops it (or is dropped) or when the node stops, whichever comes first.
//!
//! The supervised task that runs the loop watches this one signal: once it is on, the loop's
//! return is an orderly end, not a fault, and the task is not started again.

use tokio::sync::watch;

/// A stop signal that follows the node's stop signal and can also be turned on by its owner.
pub(crate) struct StopSignal {
    stop_tx: watch::Sender<bool>,
}

impl StopSignal {
    /// A signal that is off, and turns on with `node_stop_rx` or [`StopSignal::stop`]. The
    /// small task that relays the node's signal ends as soon as this one is on, or when the
    /// signal is dropped: it never outlives its owner.
    pub(crate) fn following(mut node_stop_rx: watch::Receiver<bool>) -> StopSignal {
        let (stop_tx, mut own_stop_rx) = watch::channel(false);
        let forwarded_tx = stop_tx.clone();
        tokio::spawn(async move {
            let node_stopped = tokio::select! {
                node_stopping = node_stop_rx.wait_for(|stop| *stop) => node_stopping.is_ok(),
                _ = own_stop_rx.wait_for(|stop| *stop) => return,
            };
            if node_stopped {
                forwarded_tx.send_replace(true);
            } else {
                // The node's signal is gone without turning on: only the owner can stop it now.
                let _ = own_stop_rx.wait_for(|stop| *stop).await;
            }
        });
        StopSignal { stop_tx }
    }

    /// Turns the signal on (once; later calls change nothing).
    pub(crate) fn stop(&self) {
        self.stop_tx.send_if_modified(|stop| !std::mem::replace(stop, true));
    }

    /// Whether the signal is on.
    pub(crate) fn is_on(&self) -> bool {
        *self.stop_tx.borrow()
    }

    /// A receiver of the signal, for the supervised task.
    pub(crate) fn receiver(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    async fn wait_for_on(receiver: &mut watch::Receiver<bool>) {
        tokio::time::timeout(PATIENCE, receiver.wait_for(|stop| *stop)).await.expect("turned on").expect("open");
    }

    /// The forwarding task holds one receiver of the node's signal while it runs.
    async fn wait_for_forwarder_end(node_stop_tx: &watch::Sender<bool>) {
        tokio::time::timeout(PATIENCE, async {
            while node_stop_tx.receiver_count() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the forwarding task ended");
    }

    #[tokio::test]
    async fn the_node_stopping_turns_it_on() {
        let (node_stop_tx, node_stop_rx) = watch::channel(false);
        let signal = StopSignal::following(node_stop_rx);
        let mut receiver = signal.receiver();
        assert!(!signal.is_on());
        node_stop_tx.send_replace(true);
        wait_for_on(&mut receiver).await;
        assert!(signal.is_on());
        wait_for_forwarder_end(&node_stop_tx).await;
    }

    #[tokio::test]
    async fn its_owner_turns_it_on_and_the_forwarder_ends() {
        let (node_stop_tx, node_stop_rx) = watch::channel(false);
        let signal = StopSignal::following(node_stop_rx);
        let mut receiver = signal.receiver();
        signal.stop();
        signal.stop();
        wait_for_on(&mut receiver).await;
        wait_for_forwarder_end(&node_stop_tx).await;
        assert!(!*node_stop_tx.borrow(), "the node is not stopped by one loop");
    }

    #[tokio::test]
    async fn dropping_it_turns_it_on_and_the_forwarder_ends() {
        let (node_stop_tx, node_stop_rx) = watch::channel(false);
        let signal = StopSignal::following(node_stop_rx);
        let mut receiver = signal.receiver();
        drop(signal);
        assert!(*receiver.borrow_and_update());
        wait_for_forwarder_end(&node_stop_tx).await;
    }

    #[tokio::test]
    async fn a_node_signal_dropped_unset_leaves_the_owner_in_charge() {
        let (node_stop_tx, node_stop_rx) = watch::channel(false);
        let signal = StopSignal::following(node_stop_rx);
        drop(node_stop_tx);
        tokio::task::yield_now().await;
        assert!(!signal.is_on());
        let mut receiver = signal.receiver();
        signal.stop();
        wait_for_on(&mut receiver).await;
    }
}
