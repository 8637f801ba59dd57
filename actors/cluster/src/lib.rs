//! The cluster layer of a node: how services find and call each other, and how a node joins
//! the cluster.
//!
//! - [`service_ref`]: [`Cluster`] and [`ServiceRef`], location-transparent `ask`.
//! - [`transport`]: asks between nodes, client and server: over frame links ([`frames`],
//!   [`frame_link`] calling, [`frame_server`] answering) or `POST /cluster/v1/ask/{service}/{message}`.
//! - [`call_site`] and [`breaker`]: timeout, retry, circuit breaker and bulkhead per target.
//! - [`directory`]: the instances the registry knows, cached; [`watcher`] keeps it current.
//! - [`registry_client`], [`membership`]: registration, leases, deregistration.
//! - [`settings`], [`live_config`]: typed, layered configuration applied live and acked.
//! - [`credential`]: the cluster secret.
//! - [`node`]: a node's life, its listener and its health, metrics and supervision routes;
//!   [`admin`]: the operator endpoints the dashboard reads and acts through; [`recent`]: the
//!   log lines and spans of recent traces a node keeps for them.
//! - [`edge`]: helpers for services' public HTTP routes (errors, caller, request context).
//! - [`service`]: how a service declares itself ([`ServiceDefinition`]) and what its start
//!   function gets from the node ([`NodeSetup`]).
//! - [`context`]: what a service's `start` receives ([`ServiceContext`]) and returns.
//! - [`vault`]: secrets from Vault's KV v2 engine, read at start.
//! - [`telemetry`]: JSON logs and Prometheus metrics; [`trace_export`]: spans to an OTLP
//!   collector.
#![warn(missing_docs)]

pub mod admin;
pub mod breaker;
pub mod call_site;
pub mod context;
pub mod credential;
pub mod directory;
pub mod edge;
pub mod edge_server;
pub mod frame_link;
pub mod frame_server;
pub mod frames;
pub use emporium_runtime::input_errors;
pub mod live_config;
pub mod log_format;
pub mod membership;
pub mod node;
pub mod recent;
pub mod registry_client;
pub mod routes_kit;
pub mod service;
pub mod service_ref;
pub mod settings;
pub mod telemetry;
pub mod trace_export;
pub mod transport;
pub mod vault;
pub mod watcher;

pub use context::{Lifecycle, ServiceContext, ServiceHandle};
pub use credential::{AdminTokenCheck, ClusterSecret, OperatorAccess};
pub use node::{Node, NodeError, NodeOptions};
pub use service::{NodeSetup, ServiceCatalog, ServiceDefinition};
pub use service_ref::{Cluster, ServiceRef};
pub use settings::Settings;
pub use telemetry::Telemetry;
