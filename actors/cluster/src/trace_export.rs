//! Trace export over OTLP (HTTP with protobuf, or gRPC): the spans the node records
//! ([`emporium_runtime::spans`]) go to a collector (Jaeger, Tempo, the OpenTelemetry
//! Collector) through OpenTelemetry's batch span processor.
//!
//! Enabled by `EMPORIUM_OTLP_ENDPOINT` (the collector's base URL: `http://jaeger:4318`, to which
//! `/v1/traces` is added; for gRPC `http://jaeger:4317` as it is) or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. The resource is `service.name` (`OTEL_SERVICE_NAME`, else
//! `emporium-<roles>`), `service.instance.id` (the node id), `service.version`, and whatever
//! `OTEL_RESOURCE_ATTRIBUTES` adds. Sampling is parent-based with a ratio
//! (`OTEL_TRACES_SAMPLER_ARG`, 1.0 by default): a trace the caller did not sample is not recorded,
//! and the others are kept when their trace id falls under the ratio, the same decision on every
//! node.
//!
//! The transport is OTLP/HTTP with protobuf, or gRPC when `OTEL_EXPORTER_OTLP_PROTOCOL` (or
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`) is `grpc`; `http/json` is refused at start.
//!
//! Export never holds up a request: spans are queued (2048 at most) and sent in batches by the
//! processor's own thread. A batch the collector does not take is dropped and counted in
//! `emporium_trace_spans_dropped_total`.

use std::borrow::Cow;
use std::time::Duration;

use emporium_runtime::spans::{FinishedSpan, SpanKind, SpanSink, SpanValue};
use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanExporter, SpanProcessor};

use crate::service::Environment;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// HTTP with protobuf bodies (`http/protobuf`, port 4318): the default.
    HttpProtobuf,
    /// gRPC (`grpc`, port 4317).
    Grpc,
}

/// How the node exports its traces, read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExportSettings {
    /// The collector's traces URL when given by `EMPORIUM_OTLP_ENDPOINT`; `None` lets the
    /// exporter read the standard `OTEL_EXPORTER_OTLP_*` variables.
    pub endpoint: Option<String>,
    /// HTTP or gRPC (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: OtlpProtocol,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Share of traces kept, 0.0 to 1.0.
    pub sample_ratio: f64,
}

impl TraceExportSettings {
    /// The settings, or `None` when no collector is configured.
    pub fn from_environment(environment: &Environment, roles: &[String]) -> Result<Option<Self>, String> {
        let ours = environment.get("EMPORIUM_OTLP_ENDPOINT").filter(|value| !value.trim().is_empty());
        let standard = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
            .iter()
            .any(|name| environment.get(name).is_some_and(|value| !value.trim().is_empty()));
        if ours.is_none() && !standard {
            return Ok(None);
        }
        let protocol_setting = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
            .iter()
            .find_map(|name| environment.get(name).map(|value| (*name, value.trim())));
        let protocol = match protocol_setting {
            None | Some((_, "http/protobuf")) => OtlpProtocol::HttpProtobuf,
            Some((_, "grpc")) => OtlpProtocol::Grpc,
            Some((name, other)) => {
                return Err(format!(
                    "{name}={other}: traces are exported with http/protobuf (port 4318) or grpc (port 4317)"
                ));
            }
        };
        let endpoint = ours.map(|base| {
            let base = base.trim().trim_end_matches('/');
            match protocol {
                OtlpProtocol::Grpc => base.to_string(),
                OtlpProtocol::HttpProtobuf if base.ends_with("/v1/traces") => base.to_string(),
                OtlpProtocol::HttpProtobuf => format!("{base}/v1/traces"),
            }
        });
        let service_name = environment
            .get("OTEL_SERVICE_NAME")
            .filter(|name| !name.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("emporium-{}", roles.join("+")));
        let sample_ratio = match environment.get("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
                _ => return Err(format!("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not {text:?}")),
            },
        };
        Ok(Some(TraceExportSettings { endpoint, protocol, service_name, sample_ratio }))
    }
}

/// The running export; [`TraceExport::shutdown`] sends what is queued.
pub struct TraceExport {
    processor: std::sync::Arc<BatchSpanProcessor>,
}

impl TraceExport {
    /// Builds the exporter; the sink it answers goes to [`crate::recent::install_span_sink`].
    pub fn start(settings: &TraceExportSettings, node_id: &str) -> Result<(TraceExport, SpanSink), String> {
        let exporter = OtlpExporter::build(settings)?;
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attributes([
                KeyValue::new("service.instance.id", node_id.to_string()),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(2048)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        processor.set_resource(&resource);
        let processor = std::sync::Arc::new(processor);

        let scope = InstrumentationScope::builder("emporium").with_version(env!("CARGO_PKG_VERSION")).build();
        let sampler = RatioSampler::new(settings.sample_ratio);
        let sink_processor = processor.clone();
        let sink: SpanSink = Box::new(move |span| {
            if sampler.keeps(&span) {
                sink_processor.on_end(span_data(span, &scope));
            }
        });
        tracing::info!(
            service_name = %settings.service_name,
            endpoint = settings.endpoint.as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_*"),
            sample_ratio = settings.sample_ratio,
            protocol = ?settings.protocol,
            "exporting traces over OTLP"
        );
        Ok((TraceExport { processor }, sink))
    }

    /// Sends the queued spans (at most `within`) and stops the export thread.
    pub fn shutdown(&self, within: Duration) {
        if let Err(error) = self.processor.shutdown_with_timeout(within) {
            tracing::warn!(error = %error, "some spans could not be sent at shutdown");
        }
    }
}

/// Parent-based ratio sampling: the caller's "not sampled" flag is followed; otherwise the
/// trace is kept when the low 64 bits of its id fall under the ratio (as OpenTelemetry's
/// `TraceIdRatioBased` does), which every node decides alike.
struct RatioSampler {
    threshold: u64,
    keep_all: bool,
}

impl RatioSampler {
    fn new(ratio: f64) -> Self {
        RatioSampler { threshold: (ratio * u64::MAX as f64) as u64, keep_all: ratio >= 1.0 }
    }

    fn keeps(&self, span: &FinishedSpan) -> bool {
        if span.context.flags & 1 == 0 {
            return false;
        }
        self.keep_all || (span.context.trace_id as u64) < self.threshold
    }
}

fn span_data(span: FinishedSpan, scope: &InstrumentationScope) -> SpanData {
    let context = SpanContext::new(
        TraceId::from_bytes(span.context.trace_id.to_be_bytes()),
        SpanId::from_bytes(span.context.span_id.to_be_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let status = match span.error {
        Some(description) => Status::error(description),
        None => Status::Unset,
    };
    SpanData {
        span_context: context,
        parent_span_id: span.parent_span_id.map_or(SpanId::INVALID, |id| SpanId::from_bytes(id.to_be_bytes())),
        parent_span_is_remote: matches!(span.kind, SpanKind::Server | SpanKind::Consumer),
        span_kind: match span.kind {
            SpanKind::Internal => opentelemetry::trace::SpanKind::Internal,
            SpanKind::Server => opentelemetry::trace::SpanKind::Server,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
            SpanKind::Producer => opentelemetry::trace::SpanKind::Producer,
            SpanKind::Consumer => opentelemetry::trace::SpanKind::Consumer,
        },
        name: span.name,
        start_time: span.start,
        end_time: span.end,
        attributes: span
            .attributes
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    SpanValue::Text(text) => Value::String(text.into()),
                    SpanValue::Int(number) => Value::I64(number),
                };
                KeyValue::new(Cow::Borrowed(key), value)
            })
            .collect(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// The OTLP exporter of either transport, counting the spans of every batch the collector did
/// not take. It runs on the batch processor's own thread: the blocking HTTP client as it is, the
/// gRPC client on a small runtime of its own (tonic needs one; the processor's thread has none).
#[derive(Debug)]
struct OtlpExporter {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: Option<tokio::runtime::Runtime>,
}

impl OtlpExporter {
    fn build(settings: &TraceExportSettings) -> Result<OtlpExporter, String> {
        let settings = settings.clone();
        // Neither client may be made (nor the runtime started) on the node's async threads.
        std::thread::spawn(move || {
            let failed = |error: opentelemetry_otlp::ExporterBuildError| {
                format!("the OTLP trace exporter could not be set up: {error}")
            };
            match settings.protocol {
                OtlpProtocol::HttpProtobuf => {
                    let builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_protocol(Protocol::HttpBinary)
                        .with_timeout(Duration::from_secs(5));
                    let builder = match settings.endpoint {
                        Some(endpoint) => builder.with_endpoint(endpoint),
                        None => builder,
                    };
                    Ok(OtlpExporter { inner: builder.build().map_err(failed)?, runtime: None })
                }
                OtlpProtocol::Grpc => {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .thread_name("otlp-grpc")
                        .enable_all()
                        .build()
                        .map_err(|error| format!("cannot start the OTLP gRPC runtime: {error}"))?;
                    let inner = runtime.block_on(async {
                        let builder = opentelemetry_otlp::SpanExporter::builder()
                            .with_tonic()
                            .with_timeout(Duration::from_secs(5));
                        let builder = match settings.endpoint {
                            Some(endpoint) => builder.with_endpoint(endpoint),
                            None => builder,
                        };
                        builder.build().map_err(failed)
                    })?;
                    Ok(OtlpExporter { inner, runtime: Some(runtime) })
                }
            }
        })
        .join()
        .map_err(|_| "the OTLP trace exporter could not be set up".to_string())?
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let size = batch.len() as u64;
        let result = match &self.runtime {
            Some(runtime) => runtime.block_on(self.inner.export(batch)),
            None => self.inner.export(batch).await,
        };
        if result.is_err() {
            metrics::counter!("emporium_trace_spans_dropped_total").increment(size);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _runtime = self.runtime.as_ref().map(tokio::runtime::Runtime::enter);
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _runtime = self.runtime.as_ref().map(tokio::runtime::Runtime::enter);
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_runtime::TraceParent;

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        Environment::new(pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect())
    }

    #[test]
    fn no_endpoint_means_no_export() {
        assert_eq!(TraceExportSettings::from_environment(&environment(&[]), &["order".into()]), Ok(None));
    }

    #[test]
    fn our_endpoint_gets_the_traces_path_and_a_name_from_the_roles() {
        let settings = TraceExportSettings::from_environment(
            &environment(&[("EMPORIUM_OTLP_ENDPOINT", "http://jaeger:4318/")]),
            &["gateway".into(), "order".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.endpoint.as_deref(), Some("http://jaeger:4318/v1/traces"));
        assert_eq!(settings.service_name, "emporium-gateway+order");
        assert_eq!(settings.sample_ratio, 1.0);
    }

    #[test]
    fn the_standard_variables_name_the_service_and_the_ratio() {
        let settings = TraceExportSettings::from_environment(
            &environment(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SERVICE_NAME", "shop"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ]),
            &["all".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!((settings.endpoint, settings.service_name.as_str(), settings.sample_ratio), (None, "shop", 0.25));
        let refused = TraceExportSettings::from_environment(
            &environment(&[("EMPORIUM_OTLP_ENDPOINT", "http://x:4318"), ("OTEL_TRACES_SAMPLER_ARG", "2")]),
            &[],
        );
        assert!(refused.unwrap_err().contains("OTEL_TRACES_SAMPLER_ARG"));
        let grpc = TraceExportSettings::from_environment(
            &environment(&[("EMPORIUM_OTLP_ENDPOINT", "http://x:4317/"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!((grpc.protocol, grpc.endpoint.as_deref()), (OtlpProtocol::Grpc, Some("http://x:4317")));
        let json = TraceExportSettings::from_environment(
            &environment(&[("EMPORIUM_OTLP_ENDPOINT", "http://x:4318"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
            &[],
        );
        assert!(json.unwrap_err().contains("http/protobuf (port 4318) or grpc"));
    }

    #[test]
    fn sampling_follows_the_caller_and_the_ratio_on_every_node_alike() {
        let span = |trace_id: u128, flags: u8| FinishedSpan {
            name: "x".into(),
            kind: SpanKind::Internal,
            context: TraceParent { trace_id, span_id: 1, flags },
            parent_span_id: None,
            start: std::time::SystemTime::now(),
            end: std::time::SystemTime::now(),
            attributes: vec![],
            error: None,
        };
        let everything = RatioSampler::new(1.0);
        assert!(everything.keeps(&span(u128::MAX, 1)));
        assert!(!everything.keeps(&span(7, 0)), "the caller did not sample it");
        let half = RatioSampler::new(0.5);
        assert!(half.keeps(&span(1, 1)));
        assert!(!half.keeps(&span(u64::MAX as u128, 1)));
        assert!(!RatioSampler::new(0.0).keeps(&span(1, 1)));
    }
}
