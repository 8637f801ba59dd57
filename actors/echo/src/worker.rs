//! The echo worker actor.

use std::time::Duration;

use emporium_contracts::echo::{Crash, CrashMode, Echo, EchoReply, IncrementCounter, Sleep};
use emporium_runtime::{Behavior, CallMeta, HandlerError, Reply, ServiceHandler};

/// Echoes, counts, sleeps and crashes; its counter starts at zero after every restart.
pub struct EchoWorker {
    node_id: String,
    counter: u64,
}

impl EchoWorker {
    /// A fresh worker on node `node_id`.
    pub fn new(node_id: String) -> Self {
        EchoWorker { node_id, counter: 0 }
    }
}

impl Behavior for EchoWorker {}

impl ServiceHandler<Echo> for EchoWorker {
    fn handle(&mut self, message: Echo, _meta: &CallMeta) -> Reply<EchoReply> {
        let reply = EchoReply { text: message.text, node_id: self.node_id.clone() };
        Box::pin(async move { Ok(reply) })
    }
}

impl ServiceHandler<IncrementCounter> for EchoWorker {
    fn handle(&mut self, _message: IncrementCounter, _meta: &CallMeta) -> Reply<u64> {
        self.counter += 1;
        let counter = self.counter;
        Box::pin(async move { Ok(counter) })
    }
}

impl ServiceHandler<Crash> for EchoWorker {
    fn handle(&mut self, message: Crash, _meta: &CallMeta) -> Reply<()> {
        match message.mode {
            CrashMode::Panic => panic!("echo worker asked to panic"),
            CrashMode::PanicAfterAwait => Box::pin(async {
                tokio::task::yield_now().await;
                panic!("echo worker asked to panic after an await")
            }),
            CrashMode::Fatal => Box::pin(async { Err(HandlerError::Fatal("echo worker asked to fail".to_string())) }),
        }
    }
}

impl ServiceHandler<Sleep> for EchoWorker {
    fn handle(&mut self, message: Sleep, _meta: &CallMeta) -> Reply<()> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(message.millis)).await;
            Ok(())
        })
    }
}
