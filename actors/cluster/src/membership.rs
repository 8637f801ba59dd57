//! Keeps this node's instances registered: register, renew every heartbeat, re-register when
//! the registry has forgotten them (lease lapsed, registry restarted), report status changes
//! at once (DOWN from a supervisor, OUT_OF_SERVICE while draining), deregister on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use emporium_contracts::registry::{Heartbeat, InstanceStatus, RegisterInstance};
use emporium_runtime::ServiceHealth;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::live_config::LiveConfig;
use crate::registry_client::{RegistryClient, RegistryError};

/// An instance this node registers.
pub struct LocalInstance {
    /// What to register.
    pub registration: RegisterInstance,
    /// The service's health, when a supervisor reports it.
    pub health: Option<watch::Receiver<ServiceHealth>>,
    /// True once the registry accepted it (readiness reads this).
    pub registered: Arc<AtomicBool>,
}

/// The running registration loops.
pub struct Membership {
    tasks: Vec<JoinHandle<()>>,
    client: RegistryClient,
    instance_ids: Vec<String>,
    stop_tx: watch::Sender<bool>,
}

impl Membership {
    /// Starts one loop per instance. `draining` turns every instance OUT_OF_SERVICE; each
    /// heartbeat carries the configuration version `live_config` applied.
    pub fn start(
        client: RegistryClient,
        instances: Vec<LocalInstance>,
        heartbeat: Duration,
        draining: watch::Receiver<bool>,
        live_config: LiveConfig,
    ) -> Membership {
        let (stop_tx, stop_rx) = watch::channel(false);
        let instance_ids = instances.iter().map(|instance| instance.registration.id.clone()).collect();
        let tasks = instances
            .into_iter()
            .map(|instance| {
                let loop_ = keep_registered(
                    client.clone(),
                    instance,
                    heartbeat,
                    draining.clone(),
                    stop_rx.clone(),
                    live_config.clone(),
                );
                tokio::spawn(loop_)
            })
            .collect();
        Membership { tasks, client, instance_ids, stop_tx }
    }

    /// Stops renewing and deregisters every instance (bounded by `within`).
    pub async fn deregister_all(self, within: Duration) {
        self.stop_tx.send_replace(true);
        for task in self.tasks {
            task.abort();
        }
        let client = self.client;
        let deregistrations = self.instance_ids.iter().map(|id| {
            let client = client.clone();
            async move {
                if let Err(error) = client.deregister(id).await {
                    tracing::warn!(instance = %id, error = %error, "could not deregister");
                }
            }
        });
        if tokio::time::timeout(within, futures::future::join_all(deregistrations)).await.is_err() {
            tracing::warn!("deregistration did not finish in time; leases will lapse");
        }
    }
}

fn desired_status(health: &Option<watch::Receiver<ServiceHealth>>, draining: &watch::Receiver<bool>) -> InstanceStatus {
    if *draining.borrow() {
        return InstanceStatus::OutOfService;
    }
    match health.as_ref().map(|health| health.borrow().clone()) {
        Some(ServiceHealth::Down { .. }) => InstanceStatus::Down,
        _ => InstanceStatus::Up,
    }
}

async fn keep_registered(
    client: RegistryClient,
    mut instance: LocalInstance,
    heartbeat: Duration,
    mut draining: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    live_config: LiveConfig,
) {
    let mut interval = tokio::time::interval(heartbeat);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    let mut reported_status: Option<InstanceStatus> = None;
    let mut credential_refusal_logged = false;
    let mut unreachable_logged = false;
    let id = instance.registration.id.clone();
    loop {
        let status = desired_status(&instance.health, &draining);
        let result = if registered {
            let change = (reported_status != Some(status)).then_some(status);
            let applied = live_config.applied_version();
            let heartbeat = Heartbeat { status: change, config_version: (applied > 0).then_some(applied) };
            client.heartbeat(&id, &heartbeat).await.map(|_| ())
        } else {
            instance.registration.status = status;
            client.register(&instance.registration).await.map(|_| ())
        };
        match result {
            Ok(()) => {
                if !registered {
                    tracing::info!(instance = %id, status = ?status, "registered with the registry");
                }
                registered = true;
                reported_status = Some(status);
                unreachable_logged = false;
                instance.registered.store(true, Ordering::Release);
            }
            Err(RegistryError::UnknownInstance) => {
                tracing::warn!(instance = %id, "the registry forgot this instance; registering again");
                registered = false;
                interval.reset_immediately();
            }
            Err(RegistryError::CredentialRefused) => {
                if !credential_refusal_logged {
                    tracing::error!(instance = %id, "{}", RegistryError::CredentialRefused);
                    credential_refusal_logged = true;
                }
            }
            Err(error) => {
                if !unreachable_logged {
                    tracing::warn!(instance = %id, error = %error, "registry unreachable; will keep trying");
                    unreachable_logged = true;
                }
            }
        }
        let health_changed = async {
            match instance.health.as_mut() {
                Some(health) => health.changed().await.is_ok(),
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            _ = interval.tick() => {}
            _ = health_changed => {}
            _ = draining.changed() => {}
            _ = stop.changed() => return,
        }
    }
}
