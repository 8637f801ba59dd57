//! The JSON log line: one object per event with `timestamp`, `level`, `target`, the event's
//! fields (`message` among them), `span` (the current span's name and fields) and, at the top
//! level, the `trace_id` and `span_id` of the innermost span that carries them: every line
//! written while a request, an event batch or an ask is handled can be joined with its trace.
//!
//! [`SpanFields`] keeps each span's fields as JSON when the span is created (and when it
//! records more), so formatting a line reads them without parsing text again.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span's fields as JSON, kept in its extensions by [`SpanFieldsLayer`].
struct SpanFields(Map<String, Value>);

/// Records every span's fields into its extensions.
pub struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut fields = Map::new();
        attributes.record(&mut JsonVisitor(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(fields));
        }
    }
}

/// Writes each event as one JSON object (see the module documentation).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(&self, context: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        event.record(&mut JsonVisitor(&mut line));
        if let Some(scope) = context.event_scope() {
            let mut innermost = true;
            for span in scope {
                let extensions = span.extensions();
                let Some(SpanFields(fields)) = extensions.get::<SpanFields>() else { continue };
                if innermost {
                    let mut current = fields.clone();
                    current.insert("name".into(), span.name().into());
                    line.insert("span".into(), Value::Object(current));
                    innermost = false;
                }
                if let Some(trace_id) = fields.get("trace_id").filter(|id| id.as_str().is_some_and(|id| !id.is_empty()))
                {
                    line.entry("trace_id").or_insert_with(|| trace_id.clone());
                    if let Some(span_id) = fields.get("span_id") {
                        line.entry("span_id").or_insert_with(|| span_id.clone());
                    }
                    break;
                }
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects fields into a JSON object: numbers and booleans as such, everything else as text.
struct JsonVisitor<'map>(&'map mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(run: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(SpanFieldsLayer)
            .with(tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn lines_inside_a_traced_span_carry_its_ids_at_the_top_level() {
        let lines = lines_of(|| {
            tracing::info!(answer = 42, "before");
            let request = tracing::info_span!("http_request", trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", span_id = %"00f067aa0ba902b7");
            let _request = request.enter();
            let inner = tracing::info_span!("work", step = "stock");
            let _inner = inner.enter();
            tracing::warn!(ok = true, ratio = 0.5, "inside");
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "before");
        assert_eq!(lines[0]["answer"], 42);
        assert!(lines[0].get("trace_id").is_none() && lines[0].get("span").is_none());
        let inside = &lines[1];
        assert_eq!((inside["level"].as_str(), inside["target"].as_str()), (Some("WARN"), Some(module_path!())));
        assert_eq!((inside["ok"].as_bool(), inside["ratio"].as_f64()), (Some(true), Some(0.5)));
        assert_eq!(inside["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(inside["span_id"], "00f067aa0ba902b7");
        assert_eq!(inside["span"], serde_json::json!({"name": "work", "step": "stock"}));
        assert!(inside["timestamp"].as_str().is_some_and(|time| time.ends_with('Z')));
    }

    #[test]
    fn an_empty_trace_id_is_no_trace_id() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("apply_events", trace_id = "");
            let _span = span.enter();
            tracing::info!("untraced");
        });
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
    }
}
