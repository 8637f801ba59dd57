//! One telemetry set-up per node: JSON logs on stdout through `tracing` (each line carries
//! the fields of its span, `trace_id` and `span_id` included), a log filter that the live
//! configuration can change, and the Prometheus recorder behind `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Handles on the node's telemetry.
#[derive(Clone)]
pub struct Telemetry {
    filter: reload::Handle<EnvFilter, Registry>,
    metrics: PrometheusHandle,
}

/// Latency buckets, in seconds, of every `_seconds` histogram.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl Telemetry {
    /// Installs the subscriber and the metrics recorder for this process, with `level` as the
    /// initial filter.
    pub fn init(level: &str) -> Result<Telemetry, String> {
        let filter = EnvFilter::try_new(level).map_err(|error| format!("invalid log level {level:?}: {error}"))?;
        let (filter, handle) = reload::Layer::new(filter);
        let format = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_writer(std::io::stdout);
        tracing_subscriber::registry()
            .with(filter)
            .with(format)
            .try_init()
            .map_err(|error| format!("telemetry already set up: {error}"))?;
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
            .map_err(|error| error.to_string())?
            .build_recorder();
        let metrics = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|error| format!("metrics recorder already set: {error}"))?;
        Ok(Telemetry { filter: handle, metrics })
    }

    /// Changes the log filter live.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|error| format!("invalid log level {level:?}: {error}"))?;
        self.filter.reload(filter).map_err(|error| error.to_string())
    }

    /// The Prometheus text of every metric.
    pub fn render_metrics(&self) -> String {
        self.metrics.run_upkeep();
        self.metrics.render()
    }
}
/// The `method` label of the HTTP metrics: the standard methods by name, anything else
/// `OTHER`, so a client inventing methods cannot grow the label set (and the memory of every
/// series) without bound.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}
