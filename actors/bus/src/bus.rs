//! The bus's entry point: [`Bus::connect`], then per service [`Bus::start_relay`] and
//! [`Bus::subscribe`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use emporium_cluster::ServiceContext;
use emporium_contracts::events::ALL_EXCHANGES;
use lapin::types::ShortString;

use crate::amqp::{self, AmqpConnector, BrokerHealth};
use crate::config::{BusConfig, ConsumerSpec};
use crate::consumer::{ConsumerContext, InboxConsumer};
use crate::consumer_driver::{self, ConsumerHandle, DriverSetup};
use crate::error::BusError;
use crate::handler::EventHandler;
use crate::in_process::InProcessBroker;
use crate::relay::{OutboxRelay, RelayContext};
use crate::relay_driver::{self, RelayHandle};
use crate::transport::Transport;
use emporium_store::Database;

/// What a node of a multi-node cluster prints when it runs the in-process bus.
pub const IN_PROCESS_BUS_WARNING: &str =
    "EMPORIUM_AMQP_URL is not set: this node runs the in-process event bus, so its events will not leave this process";

/// How often the broker connection is checked (and re-opened) for readiness.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The event bus of a node: RabbitMQ when an AMQP URL is configured, otherwise in-process.
/// Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

struct BusInner {
    config: BusConfig,
    transport: Transport,
}

impl Bus {
    /// Starts the bus. With an AMQP URL it connects and declares the exchanges, and fails with
    /// [`BusError::BrokerUnreachable`] when RabbitMQ cannot be reached; later outages are
    /// ridden out with reconnection and backoff.
    pub async fn connect(config: BusConfig) -> Result<Bus, BusError> {
        config.validate()?;
        let transport = match &config.amqp_url {
            None => Transport::InProcess(Arc::new(InProcessBroker::default())),
            Some(url) => {
                let health = Arc::new(BrokerHealth::default());
                let publish = Arc::new(AmqpConnector::new(url, "publish", health.clone()));
                let consume = Arc::new(AmqpConnector::new(url, "consume", health.clone()));
                let channel = publish.channel().await?;
                amqp::declare_exchanges(&channel, &config, &ALL_EXCHANGES).await?;
                let _ = channel.close(200, ShortString::from("exchanges declared")).await;
                tokio::spawn(watch_broker(Arc::downgrade(&publish), health.clone()));
                Transport::Amqp { publish, consume, health }
            }
        };
        tracing::info!(
            transport = if config.amqp_url.is_some() { "rabbitmq" } else { "in-process" },
            namespace = %config.namespace,
            "event bus started"
        );
        Ok(Bus { inner: Arc::new(BusInner { config, transport }) })
    }

    /// The settings.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// Whether this is the in-process bus (no RabbitMQ).
    pub fn is_in_process(&self) -> bool {
        matches!(self.inner.transport, Transport::InProcess(_))
    }

    /// `Ok` while events can flow: always for the in-process bus; for RabbitMQ, while the
    /// broker is connected, else the reason. For `Readiness::add_check`.
    pub fn readiness(&self) -> Result<(), String> {
        match &self.inner.transport {
            Transport::InProcess(_) => Ok(()),
            Transport::Amqp { health, .. } => health.readiness(),
        }
    }

    /// The one line a node of a multi-node cluster prints when its events cannot leave the
    /// process; `None` with RabbitMQ.
    pub fn multi_node_warning(&self) -> Option<&'static str> {
        self.is_in_process().then_some(IN_PROCESS_BUS_WARNING)
    }

    /// In-process bus: lets relays publish, once every consumer of the process subscribed (call
    /// it after all services started; rows published to a queue nobody declared yet would
    /// reach no one). RabbitMQ: nothing to do, queues are durable.
    pub fn start_delivery(&self) {
        if let Transport::InProcess(broker) = &self.inner.transport {
            broker.open_delivery();
        }
    }

    /// Starts the outbox relay of `service` on `database`: a supervised actor
    /// (`<service>.outbox/relay`) and its driver. Creates the bus's tables when missing.
    pub async fn start_relay(
        &self,
        ctx: &ServiceContext,
        service: &str,
        database: Database,
    ) -> Result<RelayHandle, BusError> {
        if service.is_empty() || service.len() > 64 {
            return Err(BusError::InvalidConfig(format!("service name {service:?} must be 1 to 64 characters")));
        }
        crate::schema::migrate(&database).await?;
        let context =
            Arc::new(RelayContext::new(service, database, self.inner.config.clone(), self.inner.transport.clone()));
        let mut group = ctx.group(&format!("{service}.outbox"));
        let factory_context = context.clone();
        let cell = group.spawn("relay", move || {
            factory_context.drop_channel();
            OutboxRelay::new(factory_context.clone())
        });
        let supervision = group.finish();
        tracing::info!(service, "outbox relay started");
        Ok(relay_driver::start_driver(context, cell, supervision, &ctx.arbiter))
    }

    /// Subscribes `handler` to `spec`: declares the consumer's queue (with its bindings and
    /// dead-letter queue), then starts a supervised actor (`<consumer>.<exchange>/consumer`)
    /// and its driver. Creates the bus's tables in `database` when missing.
    pub async fn subscribe(
        &self,
        ctx: &ServiceContext,
        spec: ConsumerSpec,
        database: Database,
        handler: Arc<dyn EventHandler>,
    ) -> Result<ConsumerHandle, BusError> {
        spec.validate()?;
        crate::schema::migrate(&database).await?;
        let config = &self.inner.config;
        let names = config.queue_names(&spec.consumer, &spec.exchange);
        let in_process_queue = match &self.inner.transport {
            Transport::InProcess(broker) => Some(broker.declare_queue(&names.queue, &spec)),
            Transport::Amqp { consume, .. } => {
                let channel = consume.channel().await?;
                amqp::declare_consumer_queue(&channel, config, &spec, &names).await?;
                let _ = channel.close(200, ShortString::from("queue declared")).await;
                None
            }
        };
        let context = Arc::new(ConsumerContext { consumer: spec.consumer.clone(), database, handler });
        let mut group = ctx.group(&format!("{}.{}", spec.consumer, spec.exchange));
        let factory_context = context.clone();
        let cell = group.spawn("consumer", move || InboxConsumer::new(factory_context.clone()));
        let supervision = group.finish();
        tracing::info!(consumer = %spec.consumer, queue = %names.queue, "consumer subscribed");
        let setup = DriverSetup {
            spec,
            names,
            config: config.clone(),
            transport: self.inner.transport.clone(),
            context,
            cell,
            supervision,
            faults: ctx.tree.faults(),
            in_process_queue,
        };
        Ok(consumer_driver::start_driver(setup, &ctx.arbiter))
    }

    /// Closes the broker connections (stop relays and consumers first).
    pub async fn close(&self) {
        if let Transport::Amqp { publish, consume, .. } = &self.inner.transport {
            publish.close().await;
            consume.close().await;
        }
    }
}

/// Checks the publishing connection every second and opens it again when it dropped, so
/// readiness follows the broker even on a node with nothing to publish.
async fn watch_broker(publish: Weak<AmqpConnector>, health: Arc<BrokerHealth>) {
    loop {
        tokio::time::sleep(BROKER_CHECK_INTERVAL).await;
        let Some(connector) = publish.upgrade() else { return };
        if connector.is_connected().await {
            health.record_up();
            continue;
        }
        match connector.channel().await {
            Ok(channel) => {
                let _ = channel.close(200, ShortString::from("reconnected")).await;
            }
            Err(error) => tracing::debug!(error = %error, "rabbitmq still unreachable"),
        }
    }
}
