//! One telemetry set-up per node: JSON logs on stdout through `tracing` (each line carries
//! the fields of its span, and `trace_id` and `span_id` at the top level: [`crate::log_format`]),
//! a log filter that the live
//! configuration can change, and the Prometheus recorder behind `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Handles on the node's telemetry.
#[derive(Clone)]
pub struct Telemetry {
    filter: reload::Handle<EnvFilter, Registry>,
    level: std::sync::Arc<parking_lot::RwLock<String>>,
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
            .with_ansi(false)
            .fmt_fields(crate::log_format::NoFormattedFields)
            .event_format(crate::log_format::JsonLines)
            .with_writer(crate::recent::TeeStdout);
        tracing_subscriber::registry()
            .with(filter)
            .with(crate::log_format::SpanFieldsLayer)
            .with(format)
            .try_init()
            .map_err(|error| format!("telemetry already set up: {error}"))?;
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
            .map_err(|error| error.to_string())?
            .build_recorder();
        let metrics = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|error| format!("metrics recorder already set: {error}"))?;
        Ok(Telemetry {
            filter: handle,
            level: std::sync::Arc::new(parking_lot::RwLock::new(level.to_string())),
            metrics,
        })
    }

    /// Changes the log filter live.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|error| format!("invalid log level {level:?}: {error}"))?;
        self.filter.reload(filter).map_err(|error| error.to_string())?;
        *self.level.write() = level.to_string();
        Ok(())
    }

    /// The log filter in force.
    pub fn level(&self) -> String {
        self.level.read().clone()
    }

    /// The Prometheus text of every metric, the process's own (`process_*`, read from /proc
    /// now) and `emporium_build_info` included.
    pub fn render_metrics(&self) -> String {
        export_process_metrics();
        metrics::gauge!("emporium_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        self.metrics.run_upkeep();
        counters_typed_as_counters(self.metrics.render())
    }
}

/// The recorder's counters hold whole numbers, so the CPU seconds are set as a gauge; the text
/// says what the series is, a counter (as the Prometheus client libraries export it).
fn counters_typed_as_counters(text: String) -> String {
    text.replacen("# TYPE process_cpu_seconds_total gauge", "# TYPE process_cpu_seconds_total counter", 1)
}

/// The standard process metrics of the Prometheus client libraries, from /proc/self (Linux;
/// nothing elsewhere): CPU seconds, resident and virtual memory, open file descriptors, threads
/// and the start time.
fn export_process_metrics() {
    let Some(process) = ProcessStats::read() else { return };
    // Set as a gauge because this recorder's counters are whole numbers; typed as the counter
    // it is in the text (`counters_typed_as_counters`).
    metrics::gauge!("process_cpu_seconds_total").set(process.cpu_seconds);
    metrics::gauge!("process_resident_memory_bytes").set(process.resident_bytes as f64);
    metrics::gauge!("process_virtual_memory_bytes").set(process.virtual_bytes as f64);
    metrics::gauge!("process_open_fds").set(process.open_fds as f64);
    metrics::gauge!("process_threads").set(process.threads as f64);
    metrics::gauge!("process_start_time_seconds").set(process.start_time_seconds);
}

/// What /proc says about this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    /// CPU time used, user and system.
    pub cpu_seconds: f64,
    /// Resident memory.
    pub resident_bytes: u64,
    /// Virtual memory.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: usize,
    /// Threads.
    pub threads: u64,
    /// When the process started, in seconds since the epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads /proc/self; `None` off Linux.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime ").and_then(|seconds| seconds.trim().parse::<f64>().ok()))?;
        let open_fds = std::fs::read_dir("/proc/self/fd").map(|entries| entries.count()).unwrap_or(0);
        Self::parse(&stat, boot_time, open_fds)
    }

    /// From the text of /proc/self/stat (fields after the command name, which may hold spaces),
    /// with clock ticks of 100 Hz and pages of 4 KiB, as on every Linux this runs on.
    fn parse(stat: &str, boot_time: f64, open_fds: usize) -> Option<ProcessStats> {
        const TICKS_PER_SECOND: f64 = 100.0;
        const PAGE_BYTES: u64 = 4096;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the command: state is field 3, so field N of proc(5) is fields[N - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|value| value.parse::<u64>().ok());
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / TICKS_PER_SECOND,
            threads: field(20)?,
            start_time_seconds: boot_time + field(22)? as f64 / TICKS_PER_SECOND,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * PAGE_BYTES,
            open_fds,
        })
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

#[cfg(test)]
mod process_tests {
    use super::{ProcessStats, counters_typed_as_counters};

    #[test]
    fn proc_self_stat_is_read_field_by_field() {
        let stat = "4242 (emporium (node)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 7 0 \
                    123400 104857600 2560 18446744073709551615";
        let stats = ProcessStats::parse(stat, 1_800_000_000.0, 12).unwrap();
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_bytes: 2560 * 4096,
                virtual_bytes: 104_857_600,
                open_fds: 12,
                threads: 7,
                start_time_seconds: 1_800_001_234.0,
            }
        );
        assert!(ProcessStats::parse("garbage", 0.0, 0).is_none());
        assert!(ProcessStats::read().is_some(), "this test runs on Linux");
    }

    #[test]
    fn cpu_seconds_are_typed_as_a_counter() {
        let text =
            "# TYPE process_cpu_seconds_total gauge\nprocess_cpu_seconds_total 1.5\n# TYPE process_threads gauge\n";
        assert_eq!(
            counters_typed_as_counters(text.to_string()),
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n# TYPE process_threads gauge\n"
        );
    }
}
