//! What this node still holds of recent traces, for the dashboard's click-through from a fault
//! to its trace: the last log lines that carry a `trace_id` and the last finished spans, each
//! in a bounded ring (sizes below), searched by trace id on `GET /admin/v1/traces/{trace_id}`.
//!
//! Log lines are copied as they are written to stdout ([`TeeStdout`], the log writer), so a line
//! costs one copy into the ring and nothing is formatted twice. Spans arrive through the
//! process's span sink ([`install_span_sink`]), which also hands them to the OTLP exporter when
//! one is configured.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use emporium_runtime::spans::{self, FinishedSpan, SpanKind, SpanSink, SpanValue};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

/// Log lines with a trace id kept per node.
pub const RECENT_LOG_LINES: usize = 4096;
/// A longer line is kept cut to this many bytes.
const MAX_KEPT_LINE_BYTES: usize = 8 * 1024;
/// Spans kept per node.
pub const RECENT_SPANS: usize = 4096;

#[derive(Default)]
struct Rings {
    lines: Mutex<VecDeque<Arc<str>>>,
    spans: Mutex<VecDeque<FinishedSpan>>,
}

static RINGS: OnceLock<Rings> = OnceLock::new();

fn rings() -> &'static Rings {
    RINGS.get_or_init(Rings::default)
}

fn keep_line(line: &[u8]) {
    // Only lines of a trace are worth keeping: they are the ones a fault links to.
    if !contains(line, b"\"trace_id\":\"") {
        return;
    }
    let kept = &line[..line.len().min(MAX_KEPT_LINE_BYTES)];
    let text: Arc<str> = String::from_utf8_lossy(kept).trim_end().into();
    let mut lines = rings().lines.lock();
    if lines.len() == RECENT_LOG_LINES {
        lines.pop_front();
    }
    lines.push_back(text);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

fn keep_span(span: &FinishedSpan) {
    let mut spans = rings().spans.lock();
    if spans.len() == RECENT_SPANS {
        spans.pop_front();
    }
    spans.push_back(span.clone());
}

/// The log writer: stdout, with every line of a trace also kept in the ring.
pub struct TeeStdout;

/// One write of the formatter (a whole line).
pub struct TeeLine(std::io::Stdout);

impl Write for TeeLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        keep_line(buf);
        self.0.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TeeStdout {
    type Writer = TeeLine;

    fn make_writer(&'a self) -> Self::Writer {
        TeeLine(std::io::stdout())
    }
}

/// Installs the process's span sink: every finished span is kept in the ring, then handed to
/// `export` (the OTLP exporter) when there is one. Call once, before the node handles anything.
pub fn install_span_sink(export: Option<SpanSink>) -> Result<(), String> {
    let installed = spans::install_sink(Box::new(move |span| {
        keep_span(&span);
        if let Some(export) = &export {
            export(span);
        }
    }));
    if installed { Ok(()) } else { Err("a span sink is installed already".to_string()) }
}

/// A kept span, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanRecord {
    /// Its name.
    pub name: String,
    /// Its own id (16 hex digits).
    pub span_id: String,
    /// Its parent's id, when it has one.
    pub parent_span_id: Option<String>,
    /// `internal`, `server`, `client`, `producer` or `consumer`.
    pub kind: &'static str,
    /// When it started.
    pub start: DateTime<Utc>,
    /// How long it took.
    pub duration_micros: u64,
    /// `ok` or `error`.
    pub status: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its attributes.
    pub attributes: serde_json::Map<String, Value>,
}

/// What this node holds of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRecords {
    /// Its log lines (each as its JSON object), oldest first.
    pub logs: Vec<Value>,
    /// Its spans, by start time.
    pub spans: Vec<SpanRecord>,
}

/// Everything kept of the trace `trace_id` (32 lowercase hex digits).
pub fn lookup(trace_id: &str) -> TraceRecords {
    let needle = format!("\"trace_id\":\"{trace_id}\"");
    let logs = rings()
        .lines
        .lock()
        .iter()
        .filter(|line| line.contains(&needle))
        .cloned()
        .collect::<Vec<_>>()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_string())))
        .collect();
    let mut spans: Vec<SpanRecord> =
        rings().spans.lock().iter().filter(|span| span.context.trace_id_hex() == trace_id).map(span_record).collect();
    spans.sort_by_key(|span| span.start);
    TraceRecords { logs, spans }
}

fn span_record(span: &FinishedSpan) -> SpanRecord {
    let micros = |time: SystemTime| time.duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_micros()).unwrap_or(0);
    let attributes = span
        .attributes
        .iter()
        .map(|(key, value)| {
            let value = match value {
                SpanValue::Text(text) => Value::from(text.clone()),
                SpanValue::Int(number) => Value::from(*number),
            };
            (key.to_string(), value)
        })
        .collect();
    SpanRecord {
        name: span.name.to_string(),
        span_id: format!("{:016x}", span.context.span_id),
        parent_span_id: span.parent_span_id.map(|parent| format!("{parent:016x}")),
        kind: match span.kind {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        },
        start: DateTime::<Utc>::from(span.start),
        duration_micros: (micros(span.end).saturating_sub(micros(span.start))) as u64,
        status: if span.error.is_some() { "error" } else { "ok" },
        error: span.error.clone(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_of_a_trace_are_kept_and_found_by_its_id() {
        let trace = "0af7651916cd43dd8448eb211c80319c";
        keep_line(b"{\"level\":\"INFO\",\"message\":\"no trace\"}\n");
        keep_line(format!("{{\"level\":\"ERROR\",\"trace_id\":\"{trace}\",\"message\":\"boom\"}}\n").as_bytes());
        keep_line(b"{\"level\":\"INFO\",\"trace_id\":\"ffffffffffffffffffffffffffffffff\"}\n");
        let found = lookup(trace);
        assert_eq!(found.logs.len(), 1);
        assert_eq!(found.logs[0]["message"], "boom");
        assert!(lookup("00000000000000000000000000000001").logs.is_empty());
    }

    #[test]
    fn kept_spans_are_found_by_trace_with_readable_ids() {
        let root = emporium_runtime::TraceParent::new_root();
        let child = root.child();
        let now = SystemTime::now();
        keep_span(&FinishedSpan {
            name: "ask inventory/Reserve".into(),
            kind: SpanKind::Client,
            context: child,
            parent_span_id: Some(root.span_id),
            start: now,
            end: now + std::time::Duration::from_micros(1500),
            attributes: vec![("rpc.service", SpanValue::from("inventory"))],
            error: Some("timeout".into()),
        });
        let found = lookup(&root.trace_id_hex());
        assert_eq!(found.spans.len(), 1);
        let span = &found.spans[0];
        assert_eq!((span.kind, span.status, span.duration_micros), ("client", "error", 1500));
        assert_eq!(span.parent_span_id.as_deref(), Some(format!("{:016x}", root.span_id).as_str()));
        assert_eq!(span.attributes["rpc.service"], "inventory");
    }
}
