//! Messages of the diagnostic `echo` service, which the cluster tests and benchmarks use to
//! exercise supervision and the transport without any store.

use serde::{Deserialize, Serialize};

use crate::Request;

/// The service name of the echo service.
pub const SERVICE: &str = "echo";

/// Answer the text back, with the instance that answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Echo {
    /// What to send back.
    pub text: String,
}

/// The reply to [`Echo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoReply {
    /// The text of the request.
    pub text: String,
    /// The node that answered.
    pub node_id: String,
}

impl Request for Echo {
    type Reply = EchoReply;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "Echo";
    const IDEMPOTENT: bool = true;
}

/// Add one to the actor's in-memory counter and answer the new value. The counter starts at
/// zero again after a restart, which shows that the actor's state is fresh.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IncrementCounter {}

impl Request for IncrementCounter {
    type Reply = u64;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "IncrementCounter";
    const IDEMPOTENT: bool = false;
}

/// How [`Crash`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashMode {
    /// Panic inside the handler, before any await.
    Panic,
    /// Panic inside the handler's future, after an await.
    PanicAfterAwait,
    /// Return a fatal error that stops and restarts the actor.
    Fatal,
}

/// Crash the handler on purpose (chaos and supervision tests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Crash {
    /// How to fail.
    pub mode: CrashMode,
}

impl Request for Crash {
    type Reply = ();
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "Crash";
    const IDEMPOTENT: bool = false;
}

/// Wait this long before answering (deadline and drain tests).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sleep {
    /// Milliseconds to wait.
    pub millis: u64,
}

impl Request for Sleep {
    type Reply = ();
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "Sleep";
    const IDEMPOTENT: bool = true;
}

/// The service name of the probe service, which calls the echo service through `ServiceRef`
/// (locally or across nodes) on request, for tests and benchmarks.
pub const PROBE_SERVICE: &str = "probe";

/// Ask the echo service for `text` through `ServiceRef`, from the probe's node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayEcho {
    /// What to echo.
    pub text: String,
}

impl Request for RelayEcho {
    type Reply = EchoReply;
    const SERVICE: &'static str = PROBE_SERVICE;
    const NAME: &'static str = "RelayEcho";
    const IDEMPOTENT: bool = true;
}

/// Make `count` echo asks through `ServiceRef`, `concurrency` at a time, and report latency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasureAsks {
    /// Asks to make.
    pub count: u32,
    /// Asks in flight at once.
    pub concurrency: u32,
    /// Bytes of text per ask.
    pub payload_bytes: u32,
}

impl Request for MeasureAsks {
    type Reply = AskMeasurement;
    const SERVICE: &'static str = PROBE_SERVICE;
    const NAME: &'static str = "MeasureAsks";
    const IDEMPOTENT: bool = true;
}

/// The result of [`MeasureAsks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AskMeasurement {
    /// Asks answered successfully.
    pub num_ok: u32,
    /// Asks answered with an error.
    pub num_errors: u32,
    /// Wall time of the whole run, in microseconds.
    pub elapsed_micros: u64,
    /// Median ask latency, in microseconds.
    pub p50_micros: u64,
    /// 99th percentile ask latency, in microseconds.
    pub p99_micros: u64,
    /// Successful asks per second.
    pub asks_per_second: f64,
    /// The nodes that answered, with how many asks each.
    pub answered_by: std::collections::BTreeMap<String, u32>,
    /// The error codes of failed asks, with how many each.
    pub errors: std::collections::BTreeMap<String, u32>,
}

/// Ask the inventory for a reservation through `ServiceRef`, from the probe's node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayReserveStock {
    /// The reservation to ask for.
    pub request: crate::inventory::ReserveStock,
}

impl Request for RelayReserveStock {
    type Reply = crate::inventory::Reservation;
    const SERVICE: &'static str = PROBE_SERVICE;
    const NAME: &'static str = "RelayReserveStock";
    const IDEMPOTENT: bool = true;
}

/// Make `count` reservations of one unit of `sku` (a fresh order id each) through
/// `ServiceRef`, `concurrency` at a time, and report latency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasureReservations {
    /// Reservations to make.
    pub count: u32,
    /// Reservations in flight at once.
    pub concurrency: u32,
    /// The SKU to reserve.
    pub sku: String,
}

impl Request for MeasureReservations {
    type Reply = AskMeasurement;
    const SERVICE: &'static str = PROBE_SERVICE;
    const NAME: &'static str = "MeasureReservations";
    const IDEMPOTENT: bool = false;
}
