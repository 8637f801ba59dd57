//! Finished spans of the distributed trace, for export (OTLP, set up by the node's telemetry
//! in emporium-cluster). The runtime, the bus and the gateway time their hops with
//! [`SpanTimer`]; nothing is built unless a sink is installed, so a node without a trace
//! collector pays one atomic load per hop.
//!
//! Ids are the W3C ones that travel in `traceparent` ([`TraceParent`]): every span that is
//! recorded is the parent named by the `traceparent` its callees receive, so the spans of one
//! order form one tree across nodes and the broker.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::trace_context::TraceParent;

/// The role of a span in its trace (OpenTelemetry's span kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside one process.
    Internal,
    /// Answering a request from another process (a public HTTP request, a cluster ask).
    Server,
    /// Calling another process and waiting for its answer.
    Client,
    /// Handing a message to the broker.
    Producer,
    /// Processing a message from the broker.
    Consumer,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum SpanValue {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
}

impl From<&str> for SpanValue {
    fn from(value: &str) -> Self {
        SpanValue::Text(value.to_string())
    }
}

impl From<String> for SpanValue {
    fn from(value: String) -> Self {
        SpanValue::Text(value)
    }
}

impl From<i64> for SpanValue {
    fn from(value: i64) -> Self {
        SpanValue::Int(value)
    }
}

/// A span that has ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    /// Its name (`POST /api/v1/orders`, `publish emporium.orders` ...).
    pub name: Cow<'static, str>,
    /// Its kind.
    pub kind: SpanKind,
    /// Its trace id and its own span id.
    pub context: TraceParent,
    /// The span it is a child of, when it has one.
    pub parent_span_id: Option<u64>,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Attributes, with OpenTelemetry semantic-convention keys where one exists.
    pub attributes: Vec<(&'static str, SpanValue)>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Where finished spans go.
pub type SpanSink = Box<dyn Fn(FinishedSpan) + Send + Sync>;

static SINK: OnceLock<SpanSink> = OnceLock::new();

tokio::task_local! {
    /// The span a traced message is being handled in, for work that has no `CallMeta` to carry
    /// it (a database transaction).
    static CURRENT: TraceParent;
}

/// Runs `future` with `trace` as the current span ([`current`]).
pub async fn within<F: std::future::Future>(trace: TraceParent, future: F) -> F::Output {
    CURRENT.scope(trace, future).await
}

/// The span the running message is handled in, when spans are recorded and it is traced.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|trace| *trace).ok()
}

/// Installs the process's span sink; `false` when one was installed already.
pub fn install_sink(sink: SpanSink) -> bool {
    SINK.set(sink).is_ok()
}

/// Whether spans are recorded in this process.
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// A span being timed. Made only when spans are recorded; [`SpanTimer::finish`] hands it to the
/// sink.
#[derive(Debug)]
pub struct SpanTimer {
    span: FinishedSpan,
}

impl SpanTimer {
    /// Starts timing the span `context` (child of `parent_span_id`) now; `None` when no sink is
    /// installed.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        context: TraceParent,
        parent_span_id: Option<u64>,
    ) -> Option<SpanTimer> {
        if !enabled() {
            return None;
        }
        let now = SystemTime::now();
        Some(SpanTimer {
            span: FinishedSpan {
                name: name.into(),
                kind,
                context,
                parent_span_id,
                start: now,
                end: now,
                attributes: Vec::new(),
                error: None,
            },
        })
    }

    /// Adds an attribute.
    pub fn attribute(&mut self, key: &'static str, value: impl Into<SpanValue>) -> &mut Self {
        self.span.attributes.push((key, value.into()));
        self
    }

    /// Ends the span now and records it, failed with `error` when given.
    pub fn finish(mut self, error: Option<String>) {
        self.span.end = SystemTime::now();
        self.span.error = error;
        if let Some(sink) = SINK.get() {
            sink(self.span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The sink is process-wide; this is the only test of this crate that installs one.
    #[test]
    fn a_timed_span_reaches_the_sink_with_its_ids_and_attributes() {
        let context = TraceParent::new_root();
        assert!(SpanTimer::start("before", SpanKind::Internal, context, None).is_none());

        let (sender, receiver) = std::sync::mpsc::channel();
        let sender = std::sync::Mutex::new(sender);
        assert!(install_sink(Box::new(move |span| sender.lock().unwrap().send(span).unwrap())));
        assert!(!install_sink(Box::new(|_| {})), "one sink per process");

        let child = context.child();
        let mut timer = SpanTimer::start("ask inventory/reserve", SpanKind::Client, child, Some(context.span_id))
            .expect("a sink is installed");
        timer.attribute("rpc.service", "inventory").attribute("emporium.lines", 3);
        timer.finish(Some("timeout".to_string()));

        let span = receiver.recv().unwrap();
        assert_eq!(span.name, "ask inventory/reserve");
        assert_eq!((span.kind, span.context, span.parent_span_id), (SpanKind::Client, child, Some(context.span_id)));
        assert_eq!(
            span.attributes,
            vec![("rpc.service", SpanValue::from("inventory")), ("emporium.lines", SpanValue::Int(3))]
        );
        assert_eq!(span.error.as_deref(), Some("timeout"));
        assert!(span.end >= span.start);
    }
}
