//! The probe actor: calls the echo service through `ServiceRef`, wherever it runs.

use std::collections::BTreeMap;
use std::time::Instant;

use emporium_cluster::ServiceRef;
use emporium_contracts::echo::{
    AskMeasurement, Echo, EchoReply, MeasureAsks, MeasureReservations, RelayEcho, RelayReserveStock,
};
use emporium_contracts::events::StockLine;
use emporium_contracts::inventory::{Reservation, ReserveStock};
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use futures::StreamExt;

/// Holds a reference to the echo service and asks it on request.
pub struct Probe {
    echo: ServiceRef,
    inventory: ServiceRef,
}

impl Probe {
    /// A probe that asks `echo` and `inventory`.
    pub fn new(echo: ServiceRef, inventory: ServiceRef) -> Self {
        Probe { echo, inventory }
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
        let text = "x".repeat(message.payload_bytes as usize);
        Box::pin(async move {
            Ok(measure(message.count, message.concurrency, move |_| {
                let echo = echo.clone();
                let text = text.clone();
                async move { echo.ask(Echo { text }).await.map(|reply| reply.node_id) }
            })
            .await)
        })
    }
}

impl ServiceHandler<RelayReserveStock> for Probe {
    fn handle(&mut self, message: RelayReserveStock, meta: &CallMeta) -> Reply<Reservation> {
        let inventory = self.inventory.clone();
        let meta = meta.clone();
        Box::pin(async move { Ok(inventory.ask_with(message.request, meta).await?) })
    }
}

impl ServiceHandler<MeasureReservations> for Probe {
    fn handle(&mut self, message: MeasureReservations, _meta: &CallMeta) -> Reply<AskMeasurement> {
        let inventory = self.inventory.clone();
        let run = uuid_like_prefix();
        Box::pin(async move {
            Ok(measure(message.count, message.concurrency, move |index| {
                let inventory = inventory.clone();
                let request = ReserveStock {
                    order_id: format!("bench-{run}-{index}"),
                    lines: vec![StockLine { sku: message.sku.clone(), quantity: 1 }],
                };
                async move { inventory.ask(request).await.map(|_| "inventory".to_string()) }
            })
            .await)
        })
    }
}

/// A prefix that makes order ids of one run unique across runs.
fn uuid_like_prefix() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    format!("{nanos:x}")
}

/// Runs `count` asks made by `ask(index)`, `concurrency` at a time; each answers the name of
/// who answered.
async fn measure<F, Fut>(count: u32, concurrency: u32, ask: F) -> AskMeasurement
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<String, emporium_contracts::ServiceError>>,
{
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..count)
        .map(|index| {
            let sent = Instant::now();
            let reply = ask(index);
            async move {
                let reply = reply.await;
                (sent.elapsed(), reply)
            }
        })
        .buffer_unordered(concurrency.max(1) as usize)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies: Vec<u64> = Vec::with_capacity(results.len());
    let mut answered_by: BTreeMap<String, u32> = BTreeMap::new();
    let mut num_errors = 0;
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    for (latency, reply) in results {
        match reply {
            Ok(answered) => {
                latencies.push(latency.as_micros() as u64);
                *answered_by.entry(answered).or_default() += 1;
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
    AskMeasurement {
        num_ok: latencies.len() as u32,
        num_errors,
        elapsed_micros: elapsed.as_micros() as u64,
        p50_micros: percentile(0.50),
        p99_micros: percentile(0.99),
        asks_per_second: latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        answered_by,
        errors,
    }
}
