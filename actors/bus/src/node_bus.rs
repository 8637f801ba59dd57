//! The event bus of a node: one connection shared by every service of the node, made by the
//! first service that needs it ([`node_bus`]).

use anyhow::Context as _;
use emporium_cluster::NodeSetup;

use crate::bus::Bus;
use crate::config::{BusConfig, validate_namespace};

/// The variable that sets the namespace of a node's exchanges and queues.
pub const NAMESPACE_VARIABLE: &str = "EMPORIUM_BUS_NAMESPACE";

/// The node's bus: RabbitMQ when `EMPORIUM_AMQP_URL` is set, else in process, its exchanges and
/// queues prefixed by `EMPORIUM_BUS_NAMESPACE` (default `emporium`; letters, digits, '-', '_'
/// and '.') so that several clusters share one broker. The first call connects (declaring the
/// whole topology on RabbitMQ), makes readiness follow the broker (its watcher a supervised node task,
/// `node/event-bus-broker`), and opens in-process delivery once every service
/// of the node started (warning when a multi-node cluster would keep its events in this
/// process); later calls share that bus.
pub async fn node_bus(setup: &mut NodeSetup) -> anyhow::Result<Bus> {
    if let Some(bus) = setup.shared::<Bus>() {
        return Ok(bus);
    }
    let config = match setup.secret("EMPORIUM_AMQP_URL")? {
        Some(url) => BusConfig::amqp(&url),
        None => BusConfig::default(),
    };
    let config = match setup.secret(NAMESPACE_VARIABLE)? {
        Some(namespace) => config.with_namespace(namespace.trim()),
        None => config,
    };
    validate_namespace(&config.namespace).with_context(|| format!("{NAMESPACE_VARIABLE} is not usable"))?;
    let bus =
        Bus::connect(config).await.context("EMPORIUM_AMQP_URL is set but the event bus could not start on RabbitMQ")?;
    bus.supervise_broker_watch(setup.node());
    bus.report_to(setup.node().admin());
    let readiness_bus = bus.clone();
    setup.node().readiness().add_check("event bus", Box::new(move || readiness_bus.readiness()));
    let has_registry = setup.runs("registry");
    let delivery_bus = bus.clone();
    setup.on_finish(Box::new(move |_node| {
        delivery_bus.start_delivery();
        if !has_registry && let Some(warning) = delivery_bus.multi_node_warning() {
            tracing::warn!("{warning}");
        }
    }));
    setup.share(bus.clone());
    Ok(bus)
}
