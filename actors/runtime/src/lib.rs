//! The runtime every Emporium service runs on: supervision that survives panics, fault
//! records, observation snapshots and the local message table.
//!
//! - [`cell::Cell`]: the actix actor that runs a service's [`cell::Behavior`], catches panics
//!   and fatal errors, records them as [`fault::Fault`]s and restarts with fresh state behind
//!   the same address.
//! - [`supervisor::ServiceSupervisor`]: one per service; OTP-style strategy, restart type,
//!   intensity and backoff ([`policy`]); escalates by marking the service DOWN.
//! - [`monitor::ActorMonitor`]: counters, mailbox depth, handler-time histogram, current
//!   message and flight recorder of each actor; [`tree::SupervisionTree`] gathers them.
//! - [`task::TaskCell`]: a supervised long-running task (a loop beside the actors), its panics
//!   and errors recorded as faults and followed by restarts like an actor's.
//! - [`endpoint::LocalEndpoint`]: message name to cell, typed for local callers and JSON for
//!   the cluster transport.
//! - [`control::OperatorControl`]: an operator restarts an actor or injects a fault into it.
//! - [`trace_context::TraceParent`]: W3C trace context carried by every call; [`spans`]: the
//!   finished spans of those traces, for export.
#![warn(missing_docs)]

pub mod cell;
pub mod control;
pub mod endpoint;
pub mod fault;
pub mod input_errors;
pub mod monitor;
pub mod policy;
pub mod spans;
pub mod supervisor;
pub mod task;
pub mod trace_context;
pub mod tree;

pub use cell::{Ask, Behavior, CallMeta, HandlerError, Reply, ServiceHandler};
pub use endpoint::{LocalEndpoint, LocalRoute};
pub use policy::{Backoff, Intensity, RestartStrategy, RestartType, SupervisionPolicy};
pub use supervisor::{CellHandle, ServiceGroup, ServiceSupervision};
pub use task::{TaskContext, TaskHandle};
pub use trace_context::TraceParent;
pub use tree::{ServiceHealth, SupervisionTree};
