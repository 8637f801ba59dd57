//! The probe actor: calls the echo service through `ServiceRef`, wherever it runs.

use std::collections::BTreeMap;
use std::time::Instant;

use emporium_cluster::ServiceRef;
use emporium_contracts::echo::{AskMeasurement, Echo, EchoReply, MeasureAsks, RelayEcho};
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use futures::StreamExt;

/// Holds a reference to the echo service and asks it on request.
pub struct Probe {
    echo: ServiceRef,
}

impl Probe {
    /// A probe that asks `echo`.
    pub fn new(echo: ServiceRef) -> Self {
        Probe { echo }
    }
}

impl Behavior for Probe {}

impl ServiceHandler<RelayEcho> for Probe {
    fn handle(&mut self, message: RelayEcho, meta: &CallMeta) -> Reply<EchoReply> {
        let echo = self.echo.clone();
        let meta = meta.clone();
        Box::pin(async move { Ok(echo.ask_with(Echo { text: message.text }, meta).await?) })
    }
}

impl ServiceHandler<MeasureAsks> for Probe {
    fn handle(&mut self, message: MeasureAsks, _meta: &CallMeta) -> Reply<AskMeasurement> {
        let echo = self.echo.clone();
        Box::pin(async move {
            let text = "x".repeat(message.payload_bytes as usize);
            let started = Instant::now();
            let results: Vec<_> = futures::stream::iter(0..message.count)
                .map(|_| {
                    let echo = echo.clone();
                    let text = text.clone();
                    async move {
                        let sent = Instant::now();
                        let reply = echo.ask(Echo { text }).await;
                        (sent.elapsed(), reply)
                    }
                })
                .buffer_unordered(message.concurrency.max(1) as usize)
                .collect()
                .await;
            let elapsed = started.elapsed();
            let mut latencies: Vec<u64> = Vec::with_capacity(results.len());
            let mut answered_by: BTreeMap<String, u32> = BTreeMap::new();
            let mut num_errors = 0;
            let mut errors: BTreeMap<String, u32> = BTreeMap::new();
            for (latency, reply) in results {
                match reply {
                    Ok(reply) => {
                        latencies.push(latency.as_micros() as u64);
                        *answered_by.entry(reply.node_id).or_default() += 1;
                    }
                    Err(error) => {
                        num_errors += 1;
                        *errors.entry(format!("{}: {}", error.code, error.message)).or_default() += 1;
                    }
                }
            }
            latencies.sort_unstable();
            let percentile = |fraction: f64| -> u64 {
                if latencies.is_empty() {
                    return 0;
                }
                let index = ((latencies.len() as f64 - 1.0) * fraction).round() as usize;
                latencies[index]
            };
            Ok(AskMeasurement {
                num_ok: latencies.len() as u32,
                num_errors,
                elapsed_micros: elapsed.as_micros() as u64,
                p50_micros: percentile(0.50),
                p99_micros: percentile(0.99),
                asks_per_second: latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
                answered_by,
                errors,
            })
        })
    }
}
