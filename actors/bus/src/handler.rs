//! What a consuming service implements: an [`EventHandler`] that applies one event inside the
//! transaction the bus gives it.

use std::future::Future;
use std::sync::Arc;

use emporium_contracts::EventEnvelope;
use emporium_runtime::TraceParent;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::BusError;
use emporium_store::{DbTx, StoreError};

/// An event as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedEvent {
    /// The CloudEvents envelope.
    pub envelope: EventEnvelope,
    /// The W3C trace context of the transaction that published it.
    pub traceparent: Option<String>,
    /// 1 for the first time the handler sees it, then 2, 3, ... after failures.
    pub attempt: u32,
}

impl ReceivedEvent {
    /// The publisher's trace context, parsed.
    pub fn trace(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }
}

/// Why a handler could not apply an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// It may work later (a dependency is down, a lock timed out): retried up to
    /// `max_attempts` times, then dead-lettered.
    #[error("{0}")]
    Transient(String),
    /// It will never work (the payload is not acceptable): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

impl EventError {
    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        matches!(self, EventError::Permanent(_))
    }
}

impl From<BusError> for EventError {
    fn from(error: BusError) -> Self {
        EventError::Transient(error.to_string())
    }
}

impl From<emporium_store::StoreError> for EventError {
    fn from(error: emporium_store::StoreError) -> Self {
        EventError::Transient(error.to_string())
    }
}

impl From<sqlx::Error> for EventError {
    fn from(error: sqlx::Error) -> Self {
        EventError::Transient(format!("database error: {error}"))
    }
}

/// Applies events of one consumer. The effects go into `tx`, which the handler gives back;
/// the bus then records the event id in the inbox in the same transaction, commits, and only
/// then acknowledges the message. Returning an error rolls the effects back.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` within `tx`.
    fn handle(&self, event: ReceivedEvent, tx: DbTx) -> BoxFuture<'static, Result<DbTx, EventError>>;

    /// Runs once at the start of each batch transaction, before any of `events` (those the
    /// batch is about to apply) is handled. A handler whose events update shared rows takes
    /// their locks here, all in one fixed order, so a batch cannot deadlock with requests
    /// that take the same rows in that order. A failure rolls the batch back; it is run again
    /// later, as when the database cannot be reached. By default, nothing.
    fn prepare(&self, events: &[ReceivedEvent], tx: DbTx) -> BoxFuture<'static, Result<DbTx, StoreError>> {
        let _ = events;
        Box::pin(async move { Ok(tx) })
    }
}

struct HandlerFn<F>(F);

impl<F, Fut> EventHandler for HandlerFn<F>
where
    F: Fn(ReceivedEvent, DbTx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<DbTx, EventError>> + Send + 'static,
{
    fn handle(&self, event: ReceivedEvent, tx: DbTx) -> BoxFuture<'static, Result<DbTx, EventError>> {
        Box::pin((self.0)(event, tx))
    }
}

/// An [`EventHandler`] from an async closure.
pub fn handler_fn<F, Fut>(handle: F) -> Arc<dyn EventHandler>
where
    F: Fn(ReceivedEvent, DbTx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<DbTx, EventError>> + Send + 'static,
{
    Arc::new(HandlerFn(handle))
}
