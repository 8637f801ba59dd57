//! Messages of the bus's actors. They implement [`Request`] so that the supervised cells of
//! the runtime can handle them; they belong to the pseudo-service `bus` and are never routed
//! to another node.

use serde::{Deserialize, Serialize};

use emporium_contracts::Request;

use crate::handler::ReceivedEvent;
use crate::outbox::OutboxLag;

/// The pseudo-service of the bus's messages.
pub const SERVICE: &str = "bus";

/// Publish the next pending outbox rows of the relay's service, with confirms, and mark them
/// sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishPendingEvents {
    /// Rows to publish at most.
    pub max_rows: usize,
}

/// What a [`PublishPendingEvents`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishProgress {
    /// Rows published and marked sent.
    pub num_published: usize,
    /// Whether the batch was full, so more rows may wait.
    pub more_pending: bool,
}

impl Request for PublishPendingEvents {
    type Reply = PublishProgress;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "PublishPendingEvents";
    const IDEMPOTENT: bool = true;

    fn summary(&self) -> String {
        format!("maxRows={}", self.max_rows)
    }
}

/// Measure how far the relay is behind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MeasureOutboxLag {}

impl Request for MeasureOutboxLag {
    type Reply = OutboxLag;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "MeasureOutboxLag";
    const IDEMPOTENT: bool = true;
}

/// One delivery handed to a consumer actor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingEvent {
    /// The driver's id of the delivery, to match the outcome.
    pub delivery_id: u64,
    /// The event.
    pub event: ReceivedEvent,
}

/// Apply these events in one transaction (with their inbox rows) and commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyEvents {
    /// The deliveries, in arrival order.
    pub events: Vec<PendingEvent>,
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum EventOutcome {
    /// Applied and committed with its inbox row.
    Applied,
    /// Already in the inbox: no second effect.
    Duplicate,
    /// The handler failed; nothing of it was committed.
    Failed {
        /// The handler's reason.
        reason: String,
        /// Whether retrying is pointless.
        permanent: bool,
    },
}

/// The outcome of one delivery of an [`ApplyEvents`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOutcome {
    /// The driver's id of the delivery.
    pub delivery_id: u64,
    /// What became of it.
    pub outcome: EventOutcome,
}

impl Request for ApplyEvents {
    type Reply = Vec<DeliveryOutcome>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ApplyEvents";
    const IDEMPOTENT: bool = true;

    fn summary(&self) -> String {
        format!("events={}", self.events.len())
    }
}
