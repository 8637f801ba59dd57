//! Resilience per call site (calls from this node to one target service): timeout, retry with
//! backoff and jitter, circuit breaker and concurrency limit, all from `[resilience.*]` in
//! `config/` and changed live when the configuration changes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use emporium_runtime::fault::{Fault, FaultKind, FaultLog};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::breaker::{BreakerPolicy, BreakerState, CircuitBreaker, Rejected};
use crate::settings::{CallSettings, ResilienceSettings};

/// What the dashboard and the supervision snapshot show of a call site.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSiteSnapshot {
    /// The target service.
    pub service: String,
    /// The breaker's state.
    pub breaker: BreakerState,
    /// Times the breaker opened.
    pub num_breaker_opened: u64,
    /// Calls refused by the open breaker.
    pub num_rejected: u64,
    /// Calls made (attempts not counted).
    pub num_calls: u64,
    /// Calls that failed.
    pub num_failures: u64,
    /// Retries made.
    pub num_retries: u64,
    /// Calls in flight now.
    pub num_in_flight: usize,
    /// The settings in force.
    pub settings: CallSettings,
    /// Until when an operator holds the breaker in its state, if one does.
    pub forced_until: Option<DateTime<Utc>>,
}

/// The message type of the fault recorded when a breaker opens.
pub const BREAKER_OPENED: &str = "BreakerOpened";

/// A state an operator holds a breaker in for a while (the dashboard's "force open/closed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForcedBreaker {
    /// Every call is refused at once, as if the target were failing.
    Open,
    /// Every call goes through, whatever the failures.
    Closed,
}

#[derive(Debug, Clone, Copy)]
struct Forced {
    state: ForcedBreaker,
    until: Instant,
    until_wall: DateTime<Utc>,
}

/// Resilience state for calls to one service.
pub struct CallSite {
    service: String,
    settings: RwLock<CallSettings>,
    breaker: Mutex<CircuitBreaker>,
    bulkhead: RwLock<(usize, Arc<Semaphore>)>,
    num_calls: AtomicU64,
    num_failures: AtomicU64,
    num_retries: AtomicU64,
    forced: Mutex<Option<Forced>>,
    faults: Arc<OnceLock<Arc<FaultLog>>>,
}

fn breaker_policy(settings: &CallSettings) -> BreakerPolicy {
    BreakerPolicy {
        failure_rate: settings.breaker_failure_rate,
        min_calls: settings.breaker_min_calls,
        consecutive_failures: settings.breaker_consecutive_failures,
        window: Duration::from_millis(settings.breaker_window_millis),
        open_for: Duration::from_millis(settings.breaker_open_millis),
    }
}

impl CallSite {
    /// A call site for `service` with `settings`.
    pub fn new(service: &str, settings: CallSettings) -> Self {
        Self::reporting_to(service, settings, Arc::default())
    }

    /// A call site whose breaker openings are recorded in `faults` once it is set.
    fn reporting_to(service: &str, settings: CallSettings, faults: Arc<OnceLock<Arc<FaultLog>>>) -> Self {
        CallSite {
            forced: Mutex::new(None),
            faults,
            service: service.to_string(),
            breaker: Mutex::new(CircuitBreaker::new(breaker_policy(&settings))),
            bulkhead: RwLock::new((settings.max_concurrency, Arc::new(Semaphore::new(settings.max_concurrency)))),
            settings: RwLock::new(settings),
            num_calls: AtomicU64::new(0),
            num_failures: AtomicU64::new(0),
            num_retries: AtomicU64::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> CallSettings {
        self.settings.read().clone()
    }

    /// Applies new settings; breaker state and calls in flight are kept.
    pub fn update(&self, settings: CallSettings) {
        self.breaker.lock().set_policy(breaker_policy(&settings));
        let mut bulkhead = self.bulkhead.write();
        if bulkhead.0 != settings.max_concurrency {
            *bulkhead = (settings.max_concurrency, Arc::new(Semaphore::new(settings.max_concurrency)));
        }
        *self.settings.write() = settings;
    }

    /// Waits for a concurrency slot until `deadline`; `None` when none came in time.
    pub async fn enter_bulkhead(&self, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.bulkhead.read().1.clone();
        tokio::time::timeout_at(deadline.into(), semaphore.acquire_owned()).await.ok()?.ok()
    }

    /// Asks the breaker for permission.
    pub fn try_pass_breaker(&self) -> Result<(), Rejected> {
        let now = Instant::now();
        match self.forced_now(now) {
            Some(Forced { state: ForcedBreaker::Open, until, .. }) => Err(Rejected { retry_after: until - now }),
            Some(Forced { state: ForcedBreaker::Closed, .. }) => Ok(()),
            None => self.breaker.lock().try_acquire(now),
        }
    }

    /// Holds the breaker open or closed for `duration`, whatever the calls' outcomes; then
    /// it goes back to judging them (from closed).
    pub fn force(&self, state: ForcedBreaker, duration: Duration) {
        let until = Instant::now() + duration;
        let until_wall = Utc::now() + duration;
        tracing::warn!(service = %self.service, ?state, seconds = duration.as_secs(), "circuit breaker forced by an operator");
        *self.forced.lock() = Some(Forced { state, until, until_wall });
        *self.breaker.lock() = CircuitBreaker::new(breaker_policy(&self.settings.read()));
        let gauge = match state {
            ForcedBreaker::Open => BreakerState::Open,
            ForcedBreaker::Closed => BreakerState::Closed,
        };
        metrics::gauge!("emporium_breaker_state", "service" => self.service.clone()).set(gauge.gauge_value());
    }

    fn forced_now(&self, now: Instant) -> Option<Forced> {
        let mut forced = self.forced.lock();
        if forced.is_some_and(|forced| now >= forced.until) {
            *forced = None;
        }
        *forced
    }

    /// Records how a call that passed the breaker ended; `None` says nothing about the target.
    pub fn record_outcome(&self, target_healthy: Option<bool>) {
        self.num_calls.fetch_add(1, Ordering::Relaxed);
        let mut breaker = self.breaker.lock();
        match target_healthy {
            Some(healthy) => {
                if !healthy {
                    self.num_failures.fetch_add(1, Ordering::Relaxed);
                }
                if self.forced_now(Instant::now()).is_some() {
                    return;
                }
                let before = breaker.state(Instant::now());
                breaker.record(Instant::now(), healthy);
                let after = breaker.state(Instant::now());
                if before != after {
                    tracing::warn!(service = %self.service, from = ?before, to = ?after, "circuit breaker changed state");
                }
                if after == BreakerState::Open && before != BreakerState::Open {
                    self.record_opening(breaker.num_opened());
                }
                metrics::gauge!("emporium_breaker_state", "service" => self.service.clone()).set(after.gauge_value());
            }
            None => breaker.release_without_outcome(),
        }
    }

    /// Shows the opening among the node's faults, so the dashboard's timeline has it.
    fn record_opening(&self, num_opened: u64) {
        let Some(faults) = self.faults.get() else { return };
        let failures = self.num_failures.load(Ordering::Relaxed);
        faults.record(Fault {
            id: 0,
            at: Utc::now(),
            actor_path: format!("calls/{}", self.service),
            message_type: BREAKER_OPENED,
            kind: FaultKind::BreakerOpened,
            error: format!(
                "the circuit breaker for calls to {} opened (opening {num_opened}; {failures} failed calls so far)",
                self.service
            ),
            backtrace: None,
            trace_id: None,
            flight_record: Vec::new(),
        });
    }

    /// Records a retry.
    pub fn record_retry(&self) {
        self.num_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Delays between retries: exponential from the minimum to the cap, with jitter.
    pub fn retry_delays(&self) -> impl Iterator<Item = Duration> {
        let settings = self.settings.read();
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(settings.retry_backoff_min_millis))
            .with_max_delay(Duration::from_millis(settings.retry_backoff_max_millis))
            .with_max_times(settings.max_retries as usize)
            .with_jitter()
            .build()
    }

    /// A serializable copy of the call site's state.
    pub fn snapshot(&self) -> CallSiteSnapshot {
        let now = Instant::now();
        let forced = self.forced_now(now);
        let breaker = self.breaker.lock();
        let bulkhead = self.bulkhead.read();
        let state = match forced {
            Some(Forced { state: ForcedBreaker::Open, .. }) => BreakerState::Open,
            Some(Forced { state: ForcedBreaker::Closed, .. }) => BreakerState::Closed,
            None => breaker.state(now),
        };
        CallSiteSnapshot {
            service: self.service.clone(),
            breaker: state,
            forced_until: forced.map(|forced| forced.until_wall),
            num_breaker_opened: breaker.num_opened(),
            num_rejected: breaker.num_rejected(),
            num_calls: self.num_calls.load(Ordering::Relaxed),
            num_failures: self.num_failures.load(Ordering::Relaxed),
            num_retries: self.num_retries.load(Ordering::Relaxed),
            num_in_flight: bulkhead.0.saturating_sub(bulkhead.1.available_permits()),
            settings: self.settings.read().clone(),
        }
    }
}

/// Every call site of this node, created on first use.
#[derive(Default)]
pub struct CallSites {
    sites: RwLock<BTreeMap<String, Arc<CallSite>>>,
    resilience: RwLock<ResilienceSettings>,
    faults: Arc<OnceLock<Arc<FaultLog>>>,
}

impl CallSites {
    /// Breaker openings are recorded in `faults` (the node's) from now on.
    pub fn report_faults_to(&self, faults: Arc<FaultLog>) {
        let _ = self.faults.set(faults);
    }

    /// The call site for `service`, if a call to it was made.
    pub fn existing(&self, service: &str) -> Option<Arc<CallSite>> {
        self.sites.read().get(service).cloned()
    }

    /// A new instance of `service` came up: its open breaker, if any, probes at once.
    pub fn instance_came_up(&self, service: &str) {
        if let Some(site) = self.sites.read().get(service) {
            let mut breaker = site.breaker.lock();
            if breaker.state(Instant::now()) == BreakerState::Open {
                tracing::info!(service, "a new instance is up: the open circuit breaker lets a probe through now");
                breaker.probe_now();
            }
        }
    }

    /// The call site for `service`.
    pub fn get(&self, service: &str) -> Arc<CallSite> {
        if let Some(site) = self.sites.read().get(service) {
            return site.clone();
        }
        let settings = self.resilience.read().for_site(service);
        self.sites
            .write()
            .entry(service.to_string())
            .or_insert_with(|| Arc::new(CallSite::reporting_to(service, settings, self.faults.clone())))
            .clone()
    }

    /// Applies new resilience settings to every call site.
    pub fn apply(&self, resilience: &ResilienceSettings) {
        *self.resilience.write() = resilience.clone();
        for (service, site) in self.sites.read().iter() {
            site.update(resilience.for_site(service));
        }
    }

    /// Snapshots of every call site.
    pub fn snapshot(&self) -> Vec<CallSiteSnapshot> {
        self.sites.read().values().map(|site| site.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_settings_reach_existing_sites_and_keep_breaker_state() {
        let sites = CallSites::default();
        let site = sites.get("inventory");
        for _ in 0..5 {
            site.try_pass_breaker().unwrap();
            site.record_outcome(Some(false));
        }
        assert_eq!(site.snapshot().breaker, BreakerState::Open);
        let mut resilience = ResilienceSettings::default();
        resilience.default.timeout_millis = 123;
        resilience.default.max_concurrency = 3;
        sites.apply(&resilience);
        let snapshot = sites.get("inventory").snapshot();
        assert_eq!(snapshot.settings.timeout_millis, 123);
        assert_eq!(snapshot.breaker, BreakerState::Open);
        assert_eq!(snapshot.num_failures, 5);
    }

    #[test]
    fn retry_delays_follow_the_settings() {
        let site = CallSite::new("echo", CallSettings { max_retries: 3, ..CallSettings::default() });
        let delays: Vec<_> = site.retry_delays().collect();
        assert_eq!(delays.len(), 3);
        assert!(delays.iter().all(|delay| *delay <= Duration::from_millis(400)));
    }

    #[tokio::test]
    async fn the_bulkhead_waits_within_the_deadline() {
        let site = CallSite::new("echo", CallSettings { max_concurrency: 1, ..CallSettings::default() });
        let held = site.enter_bulkhead(Instant::now() + Duration::from_secs(1)).await.unwrap();
        assert!(site.enter_bulkhead(Instant::now() + Duration::from_millis(20)).await.is_none());
        drop(held);
        assert!(site.enter_bulkhead(Instant::now() + Duration::from_millis(20)).await.is_some());
    }
}
