//! What an operator can do to one actor from the dashboard: restart it, or inject a fault
//! (where chaos is enabled: the node checks that, not the runtime). An injected panic or
//! error goes down the same path as a real one: caught, recorded as a fault with the flight
//! record, counted against the supervisor's intensity, followed by a restart.

use std::time::Duration;

use actix::Message;
use serde::{Deserialize, Serialize};

/// The message type a flight record shows for an injected fault.
pub const INJECTED_FAULT: &str = "InjectedFault";

/// A fault an operator injects into an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectedFault {
    /// The actor panics while handling the injection.
    Panic,
    /// The actor's handler returns a fatal error.
    Error,
    /// The actor stops taking messages for this long (they queue meanwhile), as a stuck
    /// handler would.
    Stall(Duration),
}

/// An operator's instruction to one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "Result<(), String>")]
pub enum OperatorControl {
    /// Restart with fresh state (not counted against the supervisor's intensity).
    Restart,
    /// Fail as told.
    Inject(InjectedFault),
}

/// Why an operator's instruction could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No actor at that path on this node.
    #[error("no actor {0} on this node")]
    UnknownActor(String),
    /// No service of that name on this node.
    #[error("no service {0} on this node")]
    UnknownService(String),
    /// The actor refused (a task cannot stall) or is gone.
    #[error("{0}")]
    Refused(String),
}
