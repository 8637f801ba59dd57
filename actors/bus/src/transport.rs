//! Where events go: RabbitMQ, or the in-process broker of the embedded default.

use std::sync::Arc;

use crate::amqp::{AmqpConnector, BrokerHealth};
use crate::in_process::InProcessBroker;

/// The bus's transport, shared by its relays and consumers.
#[derive(Clone)]
pub(crate) enum Transport {
    /// RabbitMQ: one connection for publishing, one for consuming (so that flow control on
    /// publishers never stalls consumers).
    Amqp {
        /// Relays and dead letters publish here.
        publish: Arc<AmqpConnector>,
        /// Consumers read here.
        consume: Arc<AmqpConnector>,
        /// Reachability, for readiness.
        health: Arc<BrokerHealth>,
    },
    /// The in-process broker.
    InProcess(Arc<InProcessBroker>),
}
