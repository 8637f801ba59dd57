//! The event bus: events that are never lost and never applied twice, over RabbitMQ or, in the
//! embedded default, in process, with the same semantics.
//!
//! **Publishing (transactional outbox).** A service writes its state change and its events in
//! one SQL transaction of its [`emporium_store::Database`] (`begin`, [`outbox::enqueue`],
//! `commit`). Its relay ([`Bus::start_relay`]: the supervised actor [`relay::OutboxRelay`],
//! `<service>.outbox/relay`, and two supervised tasks, `<service>.outbox/driver` and
//! `<service>.outbox/lag`) publishes pending `bus_outbox` rows in id order with publisher
//! confirms, in pipelined batches, and marks them sent; a commit that enqueued events wakes it
//! at once. Broker outages are ridden out with reconnection and backoff; rows are never lost,
//! and published again (consumers dedupe) rather than skipped. On MariaDB/MySQL one instance
//! per service relays at a time (`GET_LOCK` on a dedicated connection). Lag is observable:
//! [`RelayHandle::snapshot`] and the gauges `emporium_outbox_unsent` and
//! `emporium_outbox_oldest_unsent_seconds` (label `service`).
//!
//! **No event lost for want of a queue.** The topology (which service consumes which event
//! types from which exchange) is data of the contracts
//! ([`emporium_contracts::events::SUBSCRIPTIONS`]); services subscribe from it
//! ([`ConsumerSpec::from_topology`]). On RabbitMQ, [`Bus::connect`] declares all of it (every
//! exchange, every subscription's queue with its bindings and dead-letter queue, exactly as
//! [`Bus::subscribe`] does) before any relay publishes, and again after each reconnection,
//! whatever services the node runs: an event published before its consumer started waits in
//! the consumer's queue. Events a consumer of the topology wants are published `mandatory`; one
//! that reaches no queue anyway (RabbitMQ returned it, or, in process, no queue of the process
//! took it) is not marked sent: it stays in the outbox, is published again after a backoff,
//! and is counted (`emporium_bus_unroutable_total`, [`RelaySnapshot::num_unroutable`], and an
//! error of the relay actor in the supervision tree). Names are prefixed by the namespace
//! ([`BusConfig::namespace`], `EMPORIUM_BUS_NAMESPACE` on a node, default `emporium`), so
//! several clusters share one broker.
//!
//! **Consuming (idempotent inbox).** [`Bus::subscribe`] declares the consumer's durable queue
//! `<consumer>.<exchange>` with its routing-key bindings and dead-letter exchange and queue,
//! and starts a supervised actor ([`consumer::InboxConsumer`], `<consumer>.<exchange>/consumer`)
//! with a supervised driver task, `<consumer>.<exchange>/driver` (manual acks, prefetch 256).
//! The service's [`EventHandler`] applies each event inside the transaction the bus gives it;
//! the bus adds the `bus_inbox` row (consumer, event id) to the same transaction, commits, and
//! only then acks. Events are applied in batches (up to [`BusConfig::consumer_batch_size`] per
//! transaction) split into lanes by subject ([`BusConfig::consumer_lanes`] transactions at
//! once on MariaDB, one on SQLite): the events of one subject keep their order, events of
//! different subjects may not. A redelivered event already in the inbox is acked without a
//! second effect.
//! An unreadable message, or one whose handler failed `max_attempts` times, goes to the
//! dead-letter queue with the reason in its headers, and is recorded as a fault in the node's
//! supervision snapshot; consuming goes on.
//!
//! **In process.** Without `EMPORIUM_AMQP_URL` the same API runs on an in-memory broker
//! ([`in_process`]) with the same outbox and inbox tables: a row is marked sent only once every
//! subscribed queue settled it, so a crash publishes it again and the inboxes dedupe it; an
//! event the topology has a consumer for that no queue of the process takes stays in the
//! outbox, as on RabbitMQ. Dead letters go to the `bus_dead_letter` table. Call
//! [`Bus::start_delivery`] once every service subscribed.
//!
//! **Supervision.** No loop of the bus runs outside supervision or outlives its owner. The
//! relay's and the consumer's drivers are supervised tasks of their service's group (see
//! `emporium_runtime::task`): a panic inside one, or a loop that ends on its own, is a fault in
//! the node's supervision tree (`/admin/v1/supervision`) and the loop runs again with a fresh
//! future after the policy's backoff, from the state kept beside it (counters, snapshot, retry
//! book; a restarted relay takes its `GET_LOCK` again). They end for good when their handle is
//! stopped or dropped, or at the node's stop signal (`ServiceContext::lifecycle`), which waits
//! for them. The broker watcher, which keeps readiness following RabbitMQ, lives as long as the
//! [`Bus`] (it ends on [`Bus::close`] or when the last clone is dropped) and becomes a
//! supervised node task with [`Bus::supervise_broker_watch`] (as [`node_bus()`] does).
//!
//! **Wire format.** See [`amqp`]: structured-mode CloudEvents JSON
//! (`application/cloudevents+json`), persistent, `traceparent` in the AMQP headers.
//!
//! **Migrations.** The bus's tables come from `migrations/{mysql,sqlite}/`, embedded at compile
//! time ([`MIGRATIONS`], versions `1_000_001..=1_999_999`) and applied by [`migrate`] (also run
//! by `start_relay` and `subscribe`) under the store's migration lock (see `emporium_store`).
//!
//! Messages of the bus's actors: [`messages`].
#![warn(missing_docs)]

pub mod amqp;
mod ask;
mod broker_watch;
pub mod bus;
pub mod config;
pub mod consumer;
pub mod consumer_driver;
mod dead_letter_admin;
pub mod error;
pub mod handler;
pub mod in_process;
pub mod inbox;
pub mod messages;
pub mod node_bus;
pub mod outbox;
pub mod relay;
pub mod relay_driver;
mod schema;
mod stop_signal;
mod transport;

pub use broker_watch::BROKER_WATCH_TASK;
pub use bus::{Bus, IN_PROCESS_BUS_WARNING};
pub use config::{BusConfig, ConsumerSpec, DEFAULT_NAMESPACE, QueueNames, validate_namespace};
pub use consumer_driver::{ConsumerHandle, ConsumerSnapshot};
pub use error::BusError;
pub use handler::{EventError, EventHandler, ReceivedEvent, handler_fn};
pub use inbox::DeadLetter;
pub use node_bus::{NAMESPACE_VARIABLE, node_bus};
pub use outbox::OutboxLag;
pub use relay_driver::{RelayHandle, RelayRole, RelaySnapshot};
pub use schema::{MIGRATIONS, migrate};
