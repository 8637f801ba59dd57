//! The registry: service discovery with leases, a versioned watch stream, and the configuration
//! repository with per-instance acks (DESIGN.md section 4, API.md section 3).
//!
//! One actor owns all state; the HTTP routes only send it messages.
//!
//! - [`start`] loads and validates `config/`, starts the [`actor::RegistryActor`] with its
//!   eviction sweep and configuration poll, and returns a [`Registry`] handle whose
//!   [`Registry::configure`] mounts the `/registry/v1/...` routes ([`routes`]).
//! - [`state::InstanceTable`]: instances, leases, the version counter, the bounded event log,
//!   self-preservation and config acks, as a plain value with explicit time.
//! - [`config_store::ConfigStore`]: the layered, validated, versioned `config/` files, from a
//!   directory or a git repository ([`config_git`]).
//! - [`messages`]: `Register`, `RenewLease`, `Deregister`, `ListInstances`, `GetState`,
//!   `Subscribe`, `GetConfig`, `RefreshConfig`, `AckConfig`, `ListConfigAcks`.
//! - [`journal::Journal`]: instances' registrations, status changes and evictions, and
//!   operators' actions recorded by a gateway (`/registry/v1/journal`).
//! - [`peers`]: several registries replicating the directory to each other, no leader.
//! - [`scrape_targets`]: the directory as Prometheus HTTP service-discovery target groups.
//! - [`eureka`]: the directory through Eureka's REST API (`/eureka/apps`, register,
//!   heartbeat, cancel, status override), for Eureka clients and Prometheus.
//! - [`spring_config`]: the configuration as Spring Cloud Config `Environment` documents
//!   (`GET /config/{application}/{profile}`), for Spring Boot applications.
//! - [`error::RegistryError`]: every failure, with its HTTP status and stable code.
//!
//! Metrics: `emporium_registry_instances{service,status}`, `emporium_registry_evictions_total`,
//! `emporium_registry_self_preservation`, `emporium_registry_version`.
#![warn(missing_docs)]

pub mod actor;
pub mod config_git;
pub mod config_store;
mod definition;
pub mod error;
pub mod eureka;
mod handle;
pub mod journal;
pub mod messages;
pub mod peers;
pub mod routes;
pub mod scrape_targets;
pub mod spring_config;
pub mod state;
#[cfg(test)]
mod test_dir;

pub use definition::definition;
pub use error::RegistryError;
pub use handle::{ConfigRepo, Registry, RegistryOptions, start};
