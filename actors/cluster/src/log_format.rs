//! The JSON log line: one object per event with `timestamp`, `level`, `target`, the event's
//! fields (`message` among them), `span` (the current span's name and fields) and, at the top
//! level, the `trace_id` and `span_id` of the innermost span that carries them: every line
//! written while a request, an event batch or an ask is handled can be joined with its trace.
//!
//! Lines are written straight into one buffer, without building a JSON value first, and each
//! span keeps its fields already written as JSON ([`SpanFields`], made once when the span is
//! created): a line costs one buffer and no map (docs/BENCHMARKS.md, "Gateway after the
//! observability work").

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span's fields written as JSON members (`"key":value,...`), and its trace ids when it has
/// them; kept in its extensions by [`SpanFieldsLayer`].
#[derive(Default)]
struct SpanFields {
    members: String,
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl SpanFields {
    fn record(&mut self, values: &dyn RecordFields) {
        let mut visitor = JsonMembers { out: &mut self.members, trace_id: None, span_id: None };
        values.record_into(&mut visitor);
        let (trace_id, span_id) = (visitor.trace_id, visitor.span_id);
        if let Some(trace_id) = trace_id.filter(|id| !id.is_empty()) {
            self.trace_id = Some(trace_id);
        }
        if span_id.is_some() {
            self.span_id = span_id;
        }
    }
}

/// What can record its fields into a visitor: a span's attributes or a later record.
trait RecordFields {
    fn record_into(&self, visitor: &mut dyn Visit);
}

impl RecordFields for Attributes<'_> {
    fn record_into(&self, visitor: &mut dyn Visit) {
        self.record(visitor);
    }
}

impl RecordFields for Record<'_> {
    fn record_into(&self, visitor: &mut dyn Visit) {
        self.record(visitor);
    }
}

/// Records every span's fields into its extensions.
pub struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut fields = SpanFields::default();
        fields.record(attributes);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            fields.record(values);
        }
    }
}

/// The fmt layer's own text of a span's fields, which it makes for every new span: empty, since
/// [`JsonLines`] writes the fields that [`SpanFieldsLayer`] keeps (formatting them twice cost the
/// gateway about 1 % of its CPU per request).
pub struct NoFormattedFields;

impl<'writer> FormatFields<'writer> for NoFormattedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(&self, _: Writer<'writer>, _: R) -> fmt::Result {
        Ok(())
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
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":\"");
        line.push_str(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        line.push_str("\",\"level\":\"");
        line.push_str(metadata.level().as_str());
        line.push_str("\",\"target\":");
        push_json_string(&mut line, metadata.target());
        let mut members = JsonMembers { out: &mut line, trace_id: None, span_id: None };
        event.record(&mut members);
        let (has_trace_id, has_span_id) = (members.trace_id.is_some(), members.span_id.is_some());
        if let Some(scope) = context.event_scope() {
            let mut innermost = true;
            for span in scope {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<SpanFields>() else { continue };
                if innermost {
                    line.push_str(",\"span\":{");
                    line.push_str(&fields.members);
                    if !fields.members.is_empty() {
                        line.push(',');
                    }
                    line.push_str("\"name\":");
                    push_json_string(&mut line, span.name());
                    line.push('}');
                    innermost = false;
                }
                if let Some(trace_id) = &fields.trace_id {
                    if !has_trace_id {
                        line.push_str(",\"trace_id\":");
                        push_json_string(&mut line, trace_id);
                    }
                    if let Some(span_id) = fields.span_id.as_deref().filter(|_| !has_span_id) {
                        line.push_str(",\"span_id\":");
                        push_json_string(&mut line, span_id);
                    }
                    break;
                }
            }
        }
        line.push('}');
        writer.write_str(&line)?;
        writeln!(writer)
    }
}

/// Appends `text` as a JSON string (RFC 8259 escaping: quote, backslash, control characters).
fn push_json_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut plain_from = 0;
    for (at, character) in text.char_indices() {
        let escaped = match character {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            control if (control as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&text[plain_from..at]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", character as u32);
        } else {
            out.push_str(escaped);
        }
        plain_from = at + character.len_utf8();
    }
    out.push_str(&text[plain_from..]);
    out.push('"');
}

/// Writes fields as JSON members (each preceded by a comma when something came before):
/// numbers and booleans as such, everything else as text. Notes `trace_id` and `span_id`.
struct JsonMembers<'out> {
    out: &'out mut String,
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl JsonMembers<'_> {
    fn key(&mut self, field: &Field) {
        if !self.out.is_empty() && !self.out.ends_with('{') {
            self.out.push(',');
        }
        push_json_string(self.out, field.name());
        self.out.push(':');
    }

    fn text(&mut self, field: &Field, value: &str) {
        match field.name() {
            "trace_id" => self.trace_id = Some(value.to_string()),
            "span_id" => self.span_id = Some(value.to_string()),
            _ => {}
        }
        self.key(field);
        push_json_string(self.out, value);
    }
}

impl Visit for JsonMembers<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        match serde_json::Number::from_f64(value) {
            Some(number) => {
                let _ = write!(self.out, "{number}");
            }
            None => self.out.push_str("null"),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
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
        let subscriber = tracing_subscriber::registry().with(SpanFieldsLayer).with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(NoFormattedFields)
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
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

    #[test]
    fn text_is_escaped_and_an_event_trace_id_is_not_repeated() {
        let lines = lines_of(|| {
            let span = tracing::info_span!(
                "http_request",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7"
            );
            let _span = span.enter();
            tracing::info!(
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                path = "/a\"b\\c\n\u{1}é",
                "quoted \"message\""
            );
        });
        let line = &lines[0];
        assert_eq!(line["path"], "/a\"b\\c\n\u{1}é");
        assert_eq!(line["message"], "quoted \"message\"");
        assert_eq!(line["span_id"], "00f067aa0ba902b7", "the span's id when the event has none");
        assert_eq!(line["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
