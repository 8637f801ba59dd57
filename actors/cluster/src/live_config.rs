//! The node's live configuration: fetched from the registry, overlaid with `EMPORIUM__...`
//! environment overrides, validated, applied (log level, call-site resilience, and whatever
//! else subscribes), then acknowledged per instance so operators see who runs which version.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use emporium_contracts::registry::ConfigAck;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry_client::RegistryClient;
use crate::settings::{Settings, SettingsSchema, apply_env_overrides};

/// Applies one part of the settings live; answers an error to refuse the whole version.
pub type Applier = Box<dyn Fn(&Settings) -> Result<(), String> + Send + Sync>;

struct LiveConfigInner {
    client: RegistryClient,
    profile: String,
    env: Vec<(String, String)>,
    schema: SettingsSchema,
    settings_tx: watch::Sender<Arc<Settings>>,
    applied_version: AtomicU64,
    acked_version: AtomicU64,
    appliers: Mutex<Vec<Applier>>,
    instance_ids: Mutex<Vec<String>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

/// The live configuration; cheap to clone.
#[derive(Clone)]
pub struct LiveConfig {
    inner: Arc<LiveConfigInner>,
}

impl LiveConfig {
    /// Starts from the built-in defaults with `env` overrides applied; `schema` names the
    /// service sections this node knows.
    pub fn new(
        client: RegistryClient,
        profile: &str,
        env: Vec<(String, String)>,
        schema: SettingsSchema,
    ) -> Result<Self, String> {
        let mut document = serde_json::to_value(Settings::default()).expect("settings serialize");
        apply_env_overrides(&mut document, &env)?;
        let settings = Settings::from_json(document, &schema)?;
        let (settings_tx, _) = watch::channel(Arc::new(settings));
        Ok(LiveConfig {
            inner: Arc::new(LiveConfigInner {
                client,
                profile: profile.to_string(),
                env,
                schema,
                settings_tx,
                applied_version: AtomicU64::new(0),
                acked_version: AtomicU64::new(0),
                appliers: Mutex::new(Vec::new()),
                instance_ids: Mutex::new(Vec::new()),
                refresh_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The settings in force.
    pub fn current(&self) -> Arc<Settings> {
        self.inner.settings_tx.borrow().clone()
    }

    /// Follows the settings as they change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Settings>> {
        self.inner.settings_tx.subscribe()
    }

    /// The configuration version applied (0: built-in defaults).
    pub fn applied_version(&self) -> u64 {
        self.inner.applied_version.load(Ordering::Acquire)
    }

    /// Adds something to apply on every change; it is applied to the current settings now.
    pub fn add_applier(&self, applier: Applier) -> Result<(), String> {
        applier(&self.current())?;
        self.inner.appliers.lock().push(applier);
        Ok(())
    }

    /// The instances that acknowledge versions.
    pub fn set_instances(&self, instance_ids: Vec<String>) {
        *self.inner.instance_ids.lock() = instance_ids;
    }

    /// Before services start on a registry node: applies the registry's own settings (with
    /// this node's environment overrides), unversioned; the first refresh versions them.
    pub fn seed(&self, settings: &Settings) -> Result<(), String> {
        self.apply_document(serde_json::to_value(settings).map_err(|error| error.to_string())?)
    }

    /// Before services start: fetches and applies the registry's configuration once, within
    /// `within`, so services start with it. Nothing is acknowledged yet (no instance is
    /// registered); a registry that does not answer in time leaves the defaults in force.
    pub async fn prefetch(&self, within: std::time::Duration) {
        let fetch = self.inner.client.fetch_config("application", &self.inner.profile);
        match tokio::time::timeout(within, fetch).await {
            Ok(Ok(document)) => match self.apply_document(document.settings) {
                Ok(()) => self.inner.applied_version.store(document.version, Ordering::Release),
                Err(error) => {
                    tracing::error!(config_version = document.version, error = %error, "configuration refused")
                }
            },
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "configuration not fetched at start; using defaults for now")
            }
            Err(_) => tracing::warn!("the registry did not answer in time; starting with default configuration"),
        }
    }

    /// Fetches, validates and applies the registry's current configuration, then acknowledges
    /// it for every instance (`applied: false` with the reason when it was refused). Fails
    /// when the registry could not be reached or an acknowledgement was not taken.
    pub async fn refresh(&self) -> Result<u64, String> {
        let _one_at_a_time = self.inner.refresh_lock.lock().await;
        let document = self
            .inner
            .client
            .fetch_config("application", &self.inner.profile)
            .await
            .map_err(|error| error.to_string())?;
        let version = document.version;
        let outcome = if version == self.applied_version() {
            Ok(())
        } else {
            let outcome = self.apply_document(document.settings);
            match &outcome {
                Ok(()) => {
                    self.inner.applied_version.store(version, Ordering::Release);
                    tracing::info!(config_version = version, "configuration applied");
                }
                Err(error) => tracing::error!(config_version = version, error = %error, "configuration refused"),
            }
            outcome
        };
        let ack = ConfigAck { version, applied: outcome.is_ok(), error: outcome.as_ref().err().cloned() };
        let instance_ids = self.inner.instance_ids.lock().clone();
        let acks = instance_ids.iter().map(|id| self.inner.client.ack_config(id, &ack));
        for result in futures::future::join_all(acks).await {
            result.map_err(|error| format!("acknowledgement not taken: {error}"))?;
        }
        self.inner.acked_version.store(version, Ordering::Release);
        Ok(version)
    }

    fn apply_document(&self, mut document: serde_json::Value) -> Result<(), String> {
        apply_env_overrides(&mut document, &self.inner.env)?;
        let settings = Settings::from_json(document, &self.inner.schema)?;
        for applier in self.inner.appliers.lock().iter() {
            applier(&settings)?;
        }
        self.inner.settings_tx.send_replace(Arc::new(settings));
        Ok(())
    }

    /// Refreshes whenever the registry announces a version other than the acknowledged one.
    pub fn follow(&self, mut announced: watch::Receiver<u64>) -> JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            loop {
                let target = *announced.borrow_and_update();
                if target != 0
                    && target != live.inner.acked_version.load(Ordering::Acquire)
                    && let Err(error) = live.refresh().await
                {
                    tracing::warn!(error = %error, "configuration refresh failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
                if announced.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}
