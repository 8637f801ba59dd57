//! The bus's entry point: [`Bus::connect`], then per service [`Bus::start_relay`] and
//! [`Bus::subscribe`].

use std::sync::{Arc, OnceLock};

use emporium_cluster::admin::NodeAdmin;
use parking_lot::Mutex;

use emporium_cluster::{Node, ServiceContext};
use emporium_contracts::events::ALL_EXCHANGES;
use emporium_runtime::TaskHandle;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::ShortString;

use crate::amqp::{self, AmqpConnector, BrokerHealth};
use crate::broker_watch::{BROKER_WATCH_TASK, BrokerWatch};
use crate::config::{BusConfig, ConsumerSpec};
use crate::consumer::{ConsumerContext, InboxConsumer};
use crate::consumer_driver::shared::DriverShared;
use crate::consumer_driver::{self, ConsumerHandle, DriverSetup};
use crate::dead_letter_admin::DeadLetters;
use crate::error::BusError;
use crate::handler::EventHandler;
use crate::in_process::InProcessBroker;
use crate::relay::{OutboxRelay, RelayContext};
use crate::relay_driver::{self, RelayHandle, RelayState};
use crate::transport::Transport;
use emporium_store::Database;

/// What a node of a multi-node cluster prints when it runs the in-process bus.
pub const IN_PROCESS_BUS_WARNING: &str =
    "EMPORIUM_AMQP_URL is not set: this node runs the in-process event bus, so its events will not leave this process";

/// The event bus of a node: RabbitMQ when an AMQP URL is configured, otherwise in-process.
/// Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

struct BusInner {
    config: BusConfig,
    transport: Transport,
    /// RabbitMQ's watcher (none in process); it ends when the bus is closed or dropped.
    broker_watch: Option<BrokerWatch>,
    /// What the node's operator endpoints show of the bus and let operators do.
    operator_view: Arc<OperatorView>,
}

/// The relays and consumers of the bus as operators see them, and the node's operator
/// endpoints once [`Bus::report_to`] was called.
#[derive(Default)]
struct OperatorView {
    admin: OnceLock<NodeAdmin>,
    relays: Mutex<Vec<Arc<RelayState>>>,
    consumers: Mutex<Vec<(Arc<DriverShared>, String, String)>>,
}

impl Bus {
    /// Starts the bus. With an AMQP URL it connects and declares the whole topology of the
    /// contracts in its namespace (every exchange, every subscription's queue with its
    /// bindings and dead-letter queue; again after each reconnection, before anything is
    /// published), so events published before their consumers start wait in their queues. It
    /// fails with [`BusError::BrokerUnreachable`] when RabbitMQ cannot be reached, or with the
    /// broker's refusal when the topology cannot be declared; later outages are ridden out
    /// with reconnection and backoff.
    pub async fn connect(config: BusConfig) -> Result<Bus, BusError> {
        config.validate()?;
        let mut broker_watch = None;
        let transport = match &config.amqp_url {
            None => Transport::InProcess(Arc::new(InProcessBroker::default())),
            Some(url) => {
                let health = Arc::new(BrokerHealth::default());
                let publish = Arc::new(AmqpConnector::new(url, "publish", health.clone()).declaring_topology(&config));
                let consume = Arc::new(AmqpConnector::new(url, "consume", health.clone()));
                let channel = publish.channel().await?;
                let _ = channel.close(200, ShortString::from("topology declared")).await;
                broker_watch = Some(BrokerWatch::start(&publish, health.clone()));
                Transport::Amqp { publish, consume, health }
            }
        };
        tracing::info!(
            transport = if config.amqp_url.is_some() { "rabbitmq" } else { "in-process" },
            namespace = %config.namespace,
            "event bus started"
        );
        let operator_view = Arc::default();
        Ok(Bus { inner: Arc::new(BusInner { config, transport, broker_watch, operator_view }) })
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
    /// it after all services started). An event the contracts' topology has a consumer for but
    /// no queue of this process wants stays in the outbox (retried with backoff, counted as
    /// unroutable). RabbitMQ: nothing to do, the topology was declared at connection.
    pub fn start_delivery(&self) {
        if let Transport::InProcess(broker) = &self.inner.transport {
            broker.open_delivery();
        }
    }

    /// Shows the bus on the node's operator endpoints: the `outbox` section (each relay's lag
    /// and counters) and the `consumers` section (each consumer's counters and recent dead
    /// letters) of `/admin/v1/supervision`, and the retry and discard of each consumer
    /// queue's dead letters.
    pub fn report_to(&self, admin: &NodeAdmin) {
        let view = self.inner.operator_view.clone();
        if view.admin.set(admin.clone()).is_err() {
            return;
        }
        let relays = view.clone();
        admin.add_section(
            "outbox",
            Arc::new(move || {
                let snapshots: Vec<_> =
                    relays.relays.lock().iter().map(|state| state.snapshot.lock().clone()).collect();
                serde_json::to_value(snapshots).unwrap_or_default()
            }),
        );
        let consumers = view.clone();
        admin.add_section(
            "consumers",
            Arc::new(move || {
                let snapshots: Vec<_> = consumers
                    .consumers
                    .lock()
                    .iter()
                    .map(|(shared, consumer, queue)| shared.snapshot(consumer, queue))
                    .collect();
                serde_json::to_value(snapshots).unwrap_or_default()
            }),
        );
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
        let loops = relay_driver::spawn_loops(context, &cell, &mut group, &ctx.lifecycle);
        self.inner.operator_view.relays.lock().push(loops.state.clone());
        let supervision = group.finish();
        tracing::info!(service, "outbox relay started");
        Ok(RelayHandle::new(service, cell, supervision, loops))
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
        let setup = DriverSetup {
            spec: spec.clone(),
            names: names.clone(),
            config: config.clone(),
            transport: self.inner.transport.clone(),
            context: context.clone(),
            cell,
            faults: ctx.tree.faults(),
            in_process_queue: in_process_queue.clone(),
        };
        let driver = consumer_driver::spawn_loop(setup, &mut group, &ctx.lifecycle);
        let view = &self.inner.operator_view;
        view.consumers.lock().push((driver.shared.clone(), spec.consumer.clone(), names.queue.clone()));
        if let Some(admin) = view.admin.get() {
            let letters = DeadLetters {
                consumer: spec.consumer.clone(),
                names: names.clone(),
                transport: self.inner.transport.clone(),
                database: context.database.clone(),
                in_process_queue,
            };
            admin.add_dead_letters(&names.queue, letters.control());
        }
        let supervision = group.finish();
        tracing::info!(consumer = %spec.consumer, queue = %names.queue, "consumer subscribed");
        Ok(ConsumerHandle::new(spec, names, context.database.clone(), supervision, driver))
    }

    /// Hands the broker watcher (which keeps readiness following RabbitMQ) over to the node's
    /// supervision: a node task, `node/event-bus-broker`, whose panics are faults followed by
    /// restarts and which ends with the node's stop signal or when the bus is closed. Without
    /// this call the watcher still ends with the bus, unsupervised. `None` in process (there is
    /// nothing to watch).
    pub fn supervise_broker_watch(&self, node: &mut Node) -> Option<TaskHandle> {
        let watch = self.inner.broker_watch.as_ref()?;
        Some(node.spawn_node_task(BROKER_WATCH_TASK, watch.task_factory()))
    }

    /// Deletes from RabbitMQ every exchange and every queue (with its messages), dead-letter
    /// exchange and dead-letter queue of the contracts' topology in this bus's namespace: for
    /// tests and for retiring a namespace, never on a running cluster. Queues of consumers
    /// outside the topology are left alone. Nothing to do in process.
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        let Transport::Amqp { publish, .. } = &self.inner.transport else { return Ok(()) };
        let config = &self.inner.config;
        let channel = publish.channel().await?;
        for spec in ConsumerSpec::topology() {
            let names = config.queue_names(&spec.consumer, &spec.exchange);
            for queue in [&names.queue, &names.dead_letter_queue] {
                channel.queue_delete(queue.clone().into(), QueueDeleteOptions::default()).await?;
            }
            channel
                .exchange_delete(names.dead_letter_exchange.clone().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        for exchange in ALL_EXCHANGES {
            channel.exchange_delete(config.exchange_name(exchange).into(), ExchangeDeleteOptions::default()).await?;
        }
        let _ = channel.close(200, ShortString::from("topology deleted")).await;
        tracing::info!(namespace = %config.namespace, "rabbitmq topology deleted");
        Ok(())
    }

    /// Closes the broker connections and ends the broker watcher (stop relays and consumers
    /// first).
    pub async fn close(&self) {
        if let Some(watch) = &self.inner.broker_watch {
            watch.close();
        }
        if let Transport::Amqp { publish, consume, .. } = &self.inner.transport {
            publish.close().await;
            consume.close().await;
        }
    }
}
