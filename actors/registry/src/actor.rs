//! [`RegistryActor`]: the one owner of the registry's state. It handles the messages of
//! [`crate::messages`], sweeps lapsed leases, polls the configuration directory and broadcasts
//! every change to the watch streams.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, AsyncContext, Context, Handler, SpawnHandle};
use chrono::Utc;
use emporium_cluster::settings::Settings;
use emporium_contracts::registry::{
    ConfigAcks, ConfigDocument, InstanceInfo, InstanceStatus, JournalEntry, Lease, PeerSync, PeerSyncReply,
    RegistryState, WatchEvent,
};
use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::config_store::ConfigStore;
use crate::error::RegistryError;
use crate::journal::Journal;
use crate::messages::{
    AckConfig, Deregister, GetConfig, GetSpringEnvironment, GetState, ListConfigAcks, ListInstances, ListJournal,
    MergePeerView, NodeGone, OverrideStatus, RecordInJournal, RefreshConfig, RefreshOutcome, Register, RenewLease,
    Subscribe, Subscription, WatcherClosed,
};
use crate::peers::PeerLink;
use crate::state::{EVENT_LOG_CAPACITY, InstanceTable};

/// The shortest period between two eviction sweeps.
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(100);

/// The registry actor.
pub struct RegistryActor {
    table: InstanceTable,
    store: ConfigStore,
    events_tx: broadcast::Sender<WatchEvent>,
    published_settings: Arc<RwLock<Settings>>,
    sweeper: Option<(Duration, SpawnHandle)>,
    config_poller: Option<(Duration, SpawnHandle)>,
    published_gauges: HashSet<(String, InstanceStatus)>,
    journal: Journal,
    /// The other registries, when there are any.
    peers: Option<PeerLink>,
    /// This registry's id for its run (peers tell themselves apart by it).
    registry_id: String,
}

impl RegistryActor {
    /// An actor serving `store`; it publishes its current settings into `published_settings`.
    pub(crate) fn new(store: ConfigStore, published_settings: Arc<RwLock<Settings>>, peers: Option<PeerLink>) -> Self {
        let settings = store.settings().clone();
        *published_settings.write() = settings.clone();
        // Versions start from the wall clock so that a watcher resuming from a previous run of
        // the registry is never mistaken for one that is merely behind: it gets a snapshot.
        let initial_version =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64);
        let table = InstanceTable::new(settings.registry, initial_version, store.version());
        let (events_tx, _) = broadcast::channel(EVENT_LOG_CAPACITY);
        RegistryActor {
            table,
            store,
            events_tx,
            published_settings,
            sweeper: None,
            config_poller: None,
            published_gauges: HashSet::new(),
            journal: Journal::default(),
            registry_id: peers
                .as_ref()
                .map_or_else(crate::peers::new_registry_id, |peers| peers.registry_id().to_string()),
            peers,
        }
    }

    /// Broadcasts the events of the last operation and refreshes the gauges.
    fn publish(&mut self) {
        let events = self.table.take_unpublished();
        if events.is_empty() {
            return;
        }
        let wall = Utc::now();
        for event in events {
            self.journal.observe(&event, wall);
            // No receiver is not an error: nobody is watching.
            let _ = self.events_tx.send(event);
        }
        self.publish_gauges();
        self.send_to_peers();
    }

    /// Hands this registry's view to the peers' sender (no-op without peers).
    fn send_to_peers(&self) {
        if let Some(peers) = &self.peers {
            let (instances, removed) = self.table.peer_view();
            peers.send(PeerSync { registry_id: peers.registry_id().to_string(), instances, removed });
        }
    }

    fn publish_gauges(&mut self) {
        let counts = self.table.counts_by_service_and_status();
        for stale in self.published_gauges.iter().filter(|key| !counts.contains_key(*key)) {
            metrics::gauge!("emporium_registry_instances", "service" => stale.0.clone(), "status" => status_label(stale.1))
                .set(0.0);
        }
        for ((service, status), count) in &counts {
            metrics::gauge!("emporium_registry_instances", "service" => service.clone(), "status" => status_label(*status))
                .set(*count as f64);
        }
        self.published_gauges = counts.into_keys().collect();
        metrics::gauge!("emporium_registry_self_preservation").set(if self.table.self_preservation() {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("emporium_registry_version").set(self.table.version() as f64);
    }

    fn sweep(&mut self) {
        let was_preserving = self.table.self_preservation();
        let evicted = self.table.sweep(Instant::now());
        for instance in &evicted {
            tracing::info!(instance_id = %instance.id, service = %instance.service, node_id = %instance.node_id, "lease lapsed; instance evicted");
        }
        if !evicted.is_empty() {
            metrics::counter!("emporium_registry_evictions_total").increment(evicted.len() as u64);
        }
        match (was_preserving, self.table.state()) {
            (false, RegistryState { self_preservation: true, self_preservation_reason, .. }) => {
                tracing::warn!(reason = self_preservation_reason.as_deref().unwrap_or(""), "self-preservation on");
            }
            (true, RegistryState { self_preservation: false, .. }) => {
                tracing::info!("self-preservation off; eviction resumed");
            }
            _ => {}
        }
        self.publish();
    }

    /// Re-reads the configuration; on a change, announces it and applies the registry's own
    /// settings (lease terms, periods) live.
    fn reload_config(&mut self, ctx: &mut Context<Self>) -> Result<bool, RegistryError> {
        let previous_error = self.store.last_error().map(str::to_string);
        match self.store.reload() {
            Ok(changed) => {
                if changed {
                    let settings = self.store.settings().clone();
                    self.table.set_terms(settings.registry.clone());
                    *self.published_settings.write() = settings;
                    self.table.set_config_version(self.store.version());
                    tracing::info!(
                        config_version = self.store.version(),
                        revision = self.store.revision().unwrap_or(""),
                        "configuration reloaded"
                    );
                    self.schedule_timers(ctx);
                    self.publish();
                } else if previous_error.is_some() {
                    tracing::info!(config_version = self.store.version(), "configuration files valid again");
                }
                Ok(changed)
            }
            Err(error) => {
                if previous_error.as_deref() != self.store.last_error() {
                    tracing::error!(
                        error = %error,
                        config_version = self.store.version(),
                        "configuration change rejected; the previous version is still served"
                    );
                }
                Err(error)
            }
        }
    }

    /// (Re)starts the eviction sweep and the configuration poll when their periods changed.
    fn schedule_timers(&mut self, ctx: &mut Context<Self>) {
        let terms = self.table.terms();
        // A lapsed lease is noticed within a twentieth of the lease (140 ms for 2.8 s), so a
        // silent instance is gone within the lease and a twentieth (2.94 s); a sweep is cheap.
        let sweep_period = Duration::from_millis(terms.lease_millis / 20).max(MIN_SWEEP_PERIOD);
        let poll_period = Duration::from_millis(terms.config_poll_millis.max(1));
        if self.sweeper.as_ref().is_none_or(|(period, _)| *period != sweep_period) {
            if let Some((_, handle)) = self.sweeper.take() {
                ctx.cancel_future(handle);
            }
            let handle = ctx.run_interval(sweep_period, |actor, _| actor.sweep());
            self.sweeper = Some((sweep_period, handle));
        }
        if self.config_poller.as_ref().is_none_or(|(period, _)| *period != poll_period) {
            if let Some((_, handle)) = self.config_poller.take() {
                ctx.cancel_future(handle);
            }
            let handle = ctx.run_interval(poll_period, |actor, ctx| {
                let _ = actor.reload_config(ctx);
            });
            self.config_poller = Some((poll_period, handle));
        }
    }
}

fn status_label(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::Starting => "STARTING",
        InstanceStatus::Up => "UP",
        InstanceStatus::Down => "DOWN",
        InstanceStatus::OutOfService => "OUT_OF_SERVICE",
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.schedule_timers(ctx);
        self.publish_gauges();
        if self.peers.is_some() {
            // Renewals and acks change no watch event: they reach the peers with this.
            ctx.run_interval(crate::peers::SYNC_PERIOD, |actor, _| actor.send_to_peers());
            self.send_to_peers();
        }
        tracing::info!(
            config_dir = %self.store.dir().display(),
            profile = self.store.profile(),
            config_version = self.store.version(),
            files = ?self.store.file_names(),
            "registry started"
        );
    }
}

impl Handler<Register> for RegistryActor {
    type Result = Result<Lease, RegistryError>;

    fn handle(&mut self, message: Register, _: &mut Self::Context) -> Self::Result {
        let registration = message.0;
        let (instance_id, service) = (registration.id.clone(), registration.service.clone());
        let lease = self.table.register(registration, Instant::now(), Utc::now())?;
        tracing::info!(instance_id = %instance_id, service = %service, "instance registered");
        self.publish();
        Ok(lease)
    }
}

impl Handler<RenewLease> for RegistryActor {
    type Result = Result<Lease, RegistryError>;

    fn handle(&mut self, message: RenewLease, _: &mut Self::Context) -> Self::Result {
        let lease = self.table.heartbeat(&message.instance_id, message.heartbeat, Instant::now(), Utc::now());
        self.publish();
        lease
    }
}

impl Handler<Deregister> for RegistryActor {
    type Result = Result<(), RegistryError>;

    fn handle(&mut self, message: Deregister, _: &mut Self::Context) -> Self::Result {
        let instance = self.table.deregister(&message.instance_id, Instant::now(), Utc::now())?;
        tracing::info!(instance_id = %instance.id, service = %instance.service, "instance deregistered");
        self.publish();
        Ok(())
    }
}

/// When a node's listener is probed after its watch connection closed: at once, then twice
/// more, since the kernel closes a dying process's sockets one after the other.
const GONE_PROBE_DELAYS: [Duration; 3] = [Duration::ZERO, Duration::from_millis(100), Duration::from_millis(300)];
/// How long one probe waits for a connection before leaving the node to its lease.
const GONE_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

impl Handler<WatcherClosed> for RegistryActor {
    type Result = ();

    /// A watch connection that closes is either a node that reconnects (its listener still
    /// accepts) or a process that died (the kernel closed its sockets: its listener refuses).
    /// A node that is only slow keeps its connection open, and a host that vanished refuses
    /// nothing: both are left to the lease.
    fn handle(&mut self, message: WatcherClosed, ctx: &mut Self::Context) {
        let registry = ctx.address();
        for address in self.table.addresses_of_node(&message.node_id) {
            let registry = registry.clone();
            let node_id = message.node_id.clone();
            actix::spawn(async move {
                for delay in GONE_PROBE_DELAYS {
                    tokio::time::sleep(delay).await;
                    match tokio::time::timeout(GONE_PROBE_TIMEOUT, tokio::net::TcpStream::connect(&address)).await {
                        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                            registry.do_send(NodeGone { node_id, address });
                            return;
                        }
                        Ok(Ok(_)) => continue,
                        // A timeout or another error says nothing for sure: the lease decides.
                        _ => return,
                    }
                }
            });
        }
    }
}

impl Handler<NodeGone> for RegistryActor {
    type Result = ();

    fn handle(&mut self, message: NodeGone, _: &mut Self::Context) {
        let removed = self.table.remove_node(&message.node_id, &message.address, Instant::now(), Utc::now());
        for instance in &removed {
            tracing::info!(
                instance_id = %instance.id,
                service = %instance.service,
                node_id = %instance.node_id,
                "watch connection closed and the node's listener refuses connections; instance evicted"
            );
        }
        if !removed.is_empty() {
            metrics::counter!("emporium_registry_evictions_total").increment(removed.len() as u64);
            self.publish();
        }
    }
}

impl Handler<ListInstances> for RegistryActor {
    type Result = Result<Vec<InstanceInfo>, RegistryError>;

    fn handle(&mut self, message: ListInstances, _: &mut Self::Context) -> Self::Result {
        Ok(self.table.list(message.service.as_deref()))
    }
}

impl Handler<GetState> for RegistryActor {
    type Result = Result<RegistryState, RegistryError>;

    fn handle(&mut self, _: GetState, _: &mut Self::Context) -> Self::Result {
        Ok(self.table.state())
    }
}

impl Handler<Subscribe> for RegistryActor {
    type Result = Result<Subscription, RegistryError>;

    fn handle(&mut self, message: Subscribe, _: &mut Self::Context) -> Self::Result {
        // Everything emitted so far has been broadcast, so the backlog or snapshot and the
        // receiver meet exactly at the current version.
        self.publish();
        let initial_events = message
            .since
            .and_then(|since| self.table.events_since(since))
            .unwrap_or_else(|| vec![self.table.snapshot()]);
        Ok(Subscription { initial_events, events_rx: self.events_tx.subscribe() })
    }
}

impl Handler<GetConfig> for RegistryActor {
    type Result = Result<ConfigDocument, RegistryError>;

    fn handle(&mut self, message: GetConfig, _: &mut Self::Context) -> Self::Result {
        self.store.document(&message.service, message.profile.as_deref())
    }
}

impl Handler<MergePeerView> for RegistryActor {
    type Result = Result<PeerSyncReply, RegistryError>;

    fn handle(&mut self, message: MergePeerView, _: &mut Self::Context) -> Self::Result {
        let registry_id = self.registry_id.clone();
        if message.0.registry_id != registry_id {
            self.table.merge_peer(message.0.instances, message.0.removed, Instant::now(), Utc::now());
            self.publish();
        }
        Ok(PeerSyncReply { registry_id })
    }
}

impl Handler<GetSpringEnvironment> for RegistryActor {
    type Result = Result<crate::spring_config::SpringEnvironment, RegistryError>;

    fn handle(&mut self, message: GetSpringEnvironment, _: &mut Self::Context) -> Self::Result {
        crate::spring_config::environment_of(&self.store, message.0)
    }
}

impl Handler<RefreshConfig> for RegistryActor {
    type Result = Result<RefreshOutcome, RegistryError>;

    fn handle(&mut self, _: RefreshConfig, ctx: &mut Self::Context) -> Self::Result {
        let changed = self.reload_config(ctx)?;
        Ok(RefreshOutcome {
            config_version: self.store.version(),
            changed,
            config_revision: self.store.revision().map(str::to_string),
        })
    }
}

impl Handler<AckConfig> for RegistryActor {
    type Result = Result<(), RegistryError>;

    fn handle(&mut self, message: AckConfig, _: &mut Self::Context) -> Self::Result {
        let AckConfig { instance_id, ack } = message;
        if !ack.applied {
            tracing::warn!(instance_id = %instance_id, config_version = ack.version, error = ack.error.as_deref().unwrap_or(""), "instance refused a configuration version");
        }
        self.table.ack_config(&instance_id, ack, Utc::now())
    }
}

impl Handler<ListConfigAcks> for RegistryActor {
    type Result = Result<ConfigAcks, RegistryError>;

    fn handle(&mut self, _: ListConfigAcks, _: &mut Self::Context) -> Self::Result {
        Ok(self.table.config_acks())
    }
}

impl Handler<OverrideStatus> for RegistryActor {
    type Result = Result<InstanceInfo, RegistryError>;

    fn handle(&mut self, message: OverrideStatus, _: &mut Self::Context) -> Self::Result {
        let instance = self.table.override_status(&message.instance_id, message.status, Utc::now())?;
        tracing::info!(instance_id = %instance.id, status = ?message.status, "status overridden by an operator");
        self.publish();
        Ok(instance)
    }
}

impl Handler<RecordInJournal> for RegistryActor {
    type Result = Result<JournalEntry, RegistryError>;

    fn handle(&mut self, message: RecordInJournal, _: &mut Self::Context) -> Self::Result {
        Ok(self.journal.record(message.0, Utc::now()))
    }
}

impl Handler<ListJournal> for RegistryActor {
    type Result = Result<Vec<JournalEntry>, RegistryError>;

    fn handle(&mut self, message: ListJournal, _: &mut Self::Context) -> Self::Result {
        Ok(self.journal.list(message.since, message.limit))
    }
}
