//! The registry's entry point: [`start`] loads the configuration and starts the actor;
//! [`Registry`] is the cheap, cloneable handle the node's HTTP server mounts.

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Addr};
use emporium_cluster::credential::OperatorAccess;
use emporium_cluster::settings::{Settings, SettingsSchema};
use parking_lot::RwLock;

use crate::actor::RegistryActor;
use crate::config_store::ConfigStore;
use crate::peers::PeerLink;

/// What the registry needs to start.
pub struct RegistryOptions {
    /// The configuration repository it serves (`config/`).
    pub config_dir: PathBuf,
    /// The profile of this node: selects the overlays of the registry's own settings and is the
    /// default profile of configuration requests.
    pub profile: String,
    /// Who may call: every write needs the cluster credential; every read (unless
    /// `registry.public_reads`) the credential or an admin access token.
    pub access: OperatorAccess,
    /// The service sections the configuration may hold (every service compiled in).
    pub schema: SettingsSchema,
    /// Serve the built-in configuration ([`crate::config_store::BUILT_IN_FILES`]) while
    /// `config_dir` does not exist, instead of the bare typed defaults.
    pub built_in_when_missing: bool,
    /// The other registries' URLs ([`crate::peers`]); this registry's own may be among them.
    pub peers: Vec<String>,
    /// Read the configuration from this git repository instead of `config_dir`.
    pub config_repo: Option<ConfigRepo>,
}

/// A git repository the configuration comes from (`--config-repo`, `--config-label`).
#[derive(Debug, Clone)]
pub struct ConfigRepo {
    /// A repository path, or a `file://` URL.
    pub location: String,
    /// The branch, tag or commit served.
    pub label: String,
    /// Where a URL is cloned (the node's data directory).
    pub data_dir: PathBuf,
}

/// A handle on a running registry: mount its routes with [`Registry::configure`].
#[derive(Clone)]
pub struct Registry {
    pub(crate) addr: Addr<RegistryActor>,
    pub(crate) access: OperatorAccess,
    pub(crate) settings: Arc<RwLock<Settings>>,
}

/// Loads and validates the configuration directory, then starts the registry actor with its
/// eviction sweep and configuration poll. Must be called inside a running actix `System`.
pub fn start(options: RegistryOptions) -> anyhow::Result<Registry> {
    anyhow::ensure!(actix::System::try_current().is_some(), "the registry must start inside a running actix system");
    // The error already names the file, the line and the key: keep it one line as it is.
    let store = if let Some(repo) = &options.config_repo {
        ConfigStore::load_git(&repo.location, &repo.label, &repo.data_dir, &options.profile, options.schema.clone())
    } else if options.built_in_when_missing {
        ConfigStore::load_or_built_in(&options.config_dir, &options.profile, options.schema.clone())
    } else {
        ConfigStore::load(&options.config_dir, &options.profile, options.schema.clone())
    }
    .map_err(anyhow::Error::new)?;
    let settings = Arc::new(RwLock::new(store.settings().clone()));
    let peers = (!options.peers.is_empty()).then(|| {
        tracing::info!(peers = ?options.peers, "registry peers: replicating the directory");
        PeerLink::start(options.peers.clone(), options.access.secret().clone(), crate::peers::new_registry_id())
    });
    let addr = RegistryActor::new(store, settings.clone(), peers).start();
    Ok(Registry { addr, access: options.access, settings })
}

impl Registry {
    /// The registry's current settings (the merged `application` layers for its profile).
    pub async fn settings(&self) -> Settings {
        self.settings.read().clone()
    }

    /// Whether reads need no credential under the current settings.
    pub(crate) fn public_reads(&self) -> bool {
        self.settings.read().registry.public_reads
    }
}
