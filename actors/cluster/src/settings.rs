//! Typed settings, layered from `config/` and then `EMPORIUM__...` environment overrides.
//!
//! Layers, later wins: `application.toml`, `<service>.toml`, `application-<profile>.toml`,
//! `<service>-<profile>.toml`, then environment variables of the form
//! `EMPORIUM__SECTION__KEY=value` (double underscores separate the path) on the node. Unknown
//! keys are rejected with the path of the offending key. Secrets never live here.
//!
//! The node owns four sections (`log`, `registry`, `supervision`, `resilience`); every other
//! section belongs to a service crate, which declares its type ([`ServiceSettings`]: serde,
//! `deny_unknown_fields`, defaults, a `validate`). A node knows the sections of every service
//! compiled into it ([`SettingsSchema`]) and refuses an unknown section or a section its owner
//! refuses; a service reads its own with [`Settings::section`].

use std::collections::BTreeMap;
use std::time::Duration;

use emporium_runtime::{Backoff, Intensity, RestartStrategy, RestartType, SupervisionPolicy};
use serde::{Deserialize, Serialize};

/// The prefix of environment overrides of configuration keys.
pub const ENV_OVERRIDE_PREFIX: &str = "EMPORIUM__";

/// Every setting a node reads from the configuration repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    /// Logging.
    pub log: LogSettings,
    /// Registry leases and behaviour.
    pub registry: RegistrySettings,
    /// Supervision defaults for every service.
    pub supervision: SupervisionSettings,
    /// Resilience of outgoing calls, per target service (call site).
    pub resilience: ResilienceSettings,
    /// Fault injection by operators.
    pub chaos: ChaosSettings,
    /// How this node reaches other nodes.
    pub cluster: ClusterSettings,
    /// The sections of the service crates, by name, as written (see [`Settings::section`]).
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

/// The settings of one service crate: one section of the layered configuration, named
/// [`ServiceSettings::SECTION`]. The type rejects unknown keys (`deny_unknown_fields`) and
/// documents each field; missing keys take their defaults.
pub trait ServiceSettings:
    Serialize + serde::de::DeserializeOwned + Default + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static
{
    /// The section's name (`[inventory]`).
    const SECTION: &'static str;

    /// Checks values that types alone cannot.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A service section a node knows: its name and how to check a value of it.
#[derive(Debug, Clone, Copy)]
pub struct SectionSchema {
    /// The section's name.
    pub name: &'static str,
    check: fn(&serde_json::Value) -> Result<(), String>,
    defaults: fn() -> serde_json::Value,
}

impl SectionSchema {
    /// The schema of `T`'s section.
    pub fn of<T: ServiceSettings>() -> SectionSchema {
        SectionSchema { name: T::SECTION, check: check_section::<T>, defaults: default_section::<T> }
    }

    /// Checks `value` as this section: known keys, right types, valid values.
    pub fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        (self.check)(value)
    }

    /// The section with every default filled in (for documentation and `emporium config`).
    pub fn defaults(&self) -> serde_json::Value {
        (self.defaults)()
    }
}

fn check_section<T: ServiceSettings>(value: &serde_json::Value) -> Result<(), String> {
    let section: T = serde_json::from_value(value.clone()).map_err(|error| format!("[{}]: {error}", T::SECTION))?;
    section.validate().map_err(|error| format!("[{}]: {error}", T::SECTION))
}

fn default_section<T: ServiceSettings>() -> serde_json::Value {
    serde_json::to_value(T::default()).expect("settings serialize")
}

/// The service sections a node knows: those of every service compiled into it.
#[derive(Debug, Clone, Default)]
pub struct SettingsSchema {
    sections: Vec<SectionSchema>,
}

impl SettingsSchema {
    /// A schema of `sections`.
    pub fn new(sections: Vec<SectionSchema>) -> SettingsSchema {
        SettingsSchema { sections }
    }

    /// The known sections.
    pub fn sections(&self) -> &[SectionSchema] {
        &self.sections
    }

    /// Refuses sections nobody owns and sections their owner refuses.
    pub fn check(&self, settings: &Settings) -> Result<(), String> {
        for (name, value) in &settings.sections {
            match self.sections.iter().find(|section| section.name == name) {
                Some(section) => section.check(value)?,
                None => {
                    let known: Vec<&str> =
                        NODE_SECTIONS.iter().copied().chain(self.sections.iter().map(|section| section.name)).collect();
                    return Err(format!("unknown section [{name}] (known: {})", known.join(", ")));
                }
            }
        }
        Ok(())
    }
}

/// The sections the node itself owns.
pub const NODE_SECTIONS: [&str; 6] = ["log", "registry", "supervision", "resilience", "chaos", "cluster"];

/// Logging settings; `level` applies live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter directive, such as `info` or `info,emporium_cluster=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { level: "info".to_string() }
    }
}

/// Fault injection: off unless a cluster's configuration turns it on (a test or staging
/// cluster); applies live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ChaosSettings {
    /// Whether the dashboard may inject faults (panic, error, stall) into this node's actors.
    pub enabled: bool,
}

/// How a node reaches other nodes; applies live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// How asks leave this node.
    pub transport: ClusterTransport,
}

/// The transport of asks to other nodes (every node answers both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClusterTransport {
    /// Persistent frame links, many asks at once per connection (`crate::frames`).
    #[default]
    Frames,
    /// One HTTP/1.1 request per ask, `POST /cluster/v1/ask/{service}/{message}`.
    Http,
}

/// Registry settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// How often instances renew their lease.
    pub heartbeat_millis: u64,
    /// How long without renewal before an instance is evicted. The default, 2.8 s, with a sweep
    /// every twentieth of it, puts a silent host out within 3 s of its last renewal at worst.
    pub lease_millis: u64,
    /// Whether reads (`GET` instances, config, acks, watch) need no credential.
    pub public_reads: bool,
    /// Eviction pauses when more than this fraction of leases lapse in one sweep...
    pub self_preservation_threshold: f64,
    /// ...and at least this many instances are registered.
    pub self_preservation_min_instances: usize,
    /// How often the registry sends a keep-alive on watch streams.
    pub watch_ping_millis: u64,
    /// How often the registry looks for edits under `config/`.
    pub config_poll_millis: u64,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            heartbeat_millis: 1_000,
            lease_millis: 2_800,
            public_reads: false,
            self_preservation_threshold: 0.5,
            self_preservation_min_instances: 4,
            watch_ping_millis: 2_000,
            config_poll_millis: 500,
        }
    }
}

impl RegistrySettings {
    fn validate(&self) -> Result<(), String> {
        if self.heartbeat_millis == 0 || self.lease_millis <= self.heartbeat_millis {
            return Err("registry.lease_millis must be greater than registry.heartbeat_millis > 0".into());
        }
        if !(0.0..=1.0).contains(&self.self_preservation_threshold) {
            return Err("registry.self_preservation_threshold must be between 0 and 1".into());
        }
        if self.watch_ping_millis == 0 || self.config_poll_millis == 0 {
            return Err("registry.watch_ping_millis and registry.config_poll_millis must be positive".into());
        }
        Ok(())
    }
}

/// Supervision defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionSettings {
    /// `one_for_one`, `one_for_all` or `rest_for_one`.
    pub strategy: RestartStrategy,
    /// `permanent`, `transient` or `temporary`.
    pub restart: RestartType,
    /// Restarts allowed within `period_millis` before escalating.
    pub max_restarts: u32,
    /// The intensity period.
    pub period_millis: u64,
    /// First restart backoff.
    pub backoff_min_millis: u64,
    /// Backoff cap.
    pub backoff_max_millis: u64,
    /// Messages kept per actor in the flight recorder.
    pub flight_recorder_len: usize,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        SupervisionSettings {
            strategy: RestartStrategy::OneForOne,
            restart: RestartType::Permanent,
            max_restarts: 5,
            period_millis: 10_000,
            backoff_min_millis: 10,
            backoff_max_millis: 5_000,
            flight_recorder_len: 32,
        }
    }
}

impl SupervisionSettings {
    /// The runtime policy these settings describe.
    pub fn policy(&self) -> SupervisionPolicy {
        SupervisionPolicy {
            strategy: self.strategy,
            restart: self.restart,
            intensity: Intensity { max_restarts: self.max_restarts, period: Duration::from_millis(self.period_millis) },
            backoff: Backoff {
                min: Duration::from_millis(self.backoff_min_millis),
                max: Duration::from_millis(self.backoff_max_millis),
            },
        }
    }
}

/// Resilience of one call site (calls to one target service). Applies live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallSettings {
    /// Time budget of one call, retries included, unless the caller's deadline is shorter.
    pub timeout_millis: u64,
    /// Extra attempts after a retryable failure.
    pub max_retries: u32,
    /// First retry delay (exponential with jitter after that).
    pub retry_backoff_min_millis: u64,
    /// Retry delay cap.
    pub retry_backoff_max_millis: u64,
    /// Calls allowed in flight at once; more wait within their deadline.
    pub max_concurrency: usize,
    /// The breaker opens when this fraction of the calls in the window failed...
    pub breaker_failure_rate: f64,
    /// ...and at least this many calls were made in the window (low-traffic friendly).
    pub breaker_min_calls: u32,
    /// Or when this many consecutive calls failed, whatever the window holds.
    pub breaker_consecutive_failures: u32,
    /// The sliding window over which the failure rate is measured.
    pub breaker_window_millis: u64,
    /// How long the breaker stays open before letting a probe through (half-open).
    pub breaker_open_millis: u64,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            timeout_millis: 2_000,
            max_retries: 2,
            retry_backoff_min_millis: 10,
            retry_backoff_max_millis: 200,
            max_concurrency: 256,
            breaker_failure_rate: 0.5,
            breaker_min_calls: 10,
            breaker_consecutive_failures: 5,
            breaker_window_millis: 10_000,
            breaker_open_millis: 5_000,
        }
    }
}

impl CallSettings {
    fn validate(&self, site: &str) -> Result<(), String> {
        if self.timeout_millis == 0 || self.max_concurrency == 0 {
            return Err(format!("resilience.{site}: timeout_millis and max_concurrency must be positive"));
        }
        if !(0.0..=1.0).contains(&self.breaker_failure_rate) {
            return Err(format!("resilience.{site}.breaker_failure_rate must be between 0 and 1"));
        }
        if self.breaker_open_millis == 0 || self.breaker_window_millis == 0 || self.breaker_consecutive_failures == 0 {
            return Err(format!("resilience.{site}: breaker durations and consecutive failures must be positive"));
        }
        Ok(())
    }
}

/// Call settings: `default`, then one table per target service overriding some keys.
/// (Unknown keys are still rejected: inside each site table, by [`CallSettingsPatch`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ResilienceSettings {
    /// Applies to every call site.
    pub default: CallSettings,
    /// Per target service: only the keys given override `default`.
    #[serde(flatten)]
    pub sites: BTreeMap<String, CallSettingsPatch>,
}

/// Some keys of [`CallSettings`], the rest taken from `resilience.default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CallSettingsPatch {
    pub timeout_millis: Option<u64>,
    pub max_retries: Option<u32>,
    pub retry_backoff_min_millis: Option<u64>,
    pub retry_backoff_max_millis: Option<u64>,
    pub max_concurrency: Option<usize>,
    pub breaker_failure_rate: Option<f64>,
    pub breaker_min_calls: Option<u32>,
    pub breaker_consecutive_failures: Option<u32>,
    pub breaker_window_millis: Option<u64>,
    pub breaker_open_millis: Option<u64>,
}

impl ResilienceSettings {
    /// The settings of calls to `service`.
    pub fn for_site(&self, service: &str) -> CallSettings {
        let mut settings = self.default.clone();
        if let Some(patch) = self.sites.get(service) {
            macro_rules! apply {
                ($($field:ident),*) => { $( if let Some(value) = patch.$field { settings.$field = value; } )* };
            }
            apply!(
                timeout_millis,
                max_retries,
                retry_backoff_min_millis,
                retry_backoff_max_millis,
                max_concurrency,
                breaker_failure_rate,
                breaker_min_calls,
                breaker_consecutive_failures,
                breaker_window_millis,
                breaker_open_millis
            );
        }
        settings
    }
}

impl Settings {
    /// Reads settings from a merged TOML table, rejecting unknown keys and invalid values.
    pub fn from_toml(table: toml::Table, schema: &SettingsSchema) -> Result<Settings, String> {
        let settings: Settings =
            toml::Value::Table(table).try_into().map_err(|error: toml::de::Error| error.message().to_string())?;
        settings.validate()?;
        schema.check(&settings)?;
        Ok(settings)
    }

    /// Reads settings from the JSON form the registry serves.
    pub fn from_json(value: serde_json::Value, schema: &SettingsSchema) -> Result<Settings, String> {
        let settings: Settings = serde_json::from_value(value).map_err(|error| error.to_string())?;
        settings.validate()?;
        schema.check(&settings)?;
        Ok(settings)
    }

    /// The section of `T`, defaults filled in. A section that does not read as `T` (only
    /// possible when it bypassed [`SettingsSchema::check`]) gives the defaults, with a warning.
    pub fn section<T: ServiceSettings>(&self) -> T {
        match self.sections.get(T::SECTION) {
            None => T::default(),
            Some(value) => serde_json::from_value(value.clone()).unwrap_or_else(|error| {
                tracing::warn!(section = T::SECTION, error = %error, "unreadable section; using its defaults");
                T::default()
            }),
        }
    }

    /// Replaces the section of `T` (tests and tools).
    pub fn set_section<T: ServiceSettings>(&mut self, section: &T) {
        self.sections.insert(T::SECTION.to_string(), serde_json::to_value(section).expect("settings serialize"));
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.registry.validate()?;
        self.resilience.default.validate("default")?;
        for site in self.resilience.sites.keys() {
            self.resilience.for_site(site).validate(site)?;
        }
        if self.supervision.flight_recorder_len == 0 || self.supervision.period_millis == 0 {
            return Err("supervision.flight_recorder_len and supervision.period_millis must be positive".into());
        }
        Ok(())
    }
}

/// Merges `overlay` into `base`: tables merge key by key, anything else is replaced.
pub fn merge_tables(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(overlay_table)) => {
                merge_tables(base_table, overlay_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `EMPORIUM__SECTION__KEY=value` overrides from `env` to a JSON settings document.
/// Values parse as TOML scalars (numbers, booleans) and fall back to strings.
pub fn apply_env_overrides(document: &mut serde_json::Value, env: &[(String, String)]) -> Result<(), String> {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_OVERRIDE_PREFIX) else { continue };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            return Err(format!("{name}: empty key in the override path"));
        }
        let value = parse_scalar(raw);
        let mut cursor = &mut *document;
        for key in &keys[..keys.len() - 1] {
            if !cursor.is_object() {
                return Err(format!("{name}: {key} is not a table"));
            }
            cursor = cursor
                .as_object_mut()
                .expect("checked above")
                .entry(key.clone())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
        match cursor.as_object_mut() {
            Some(table) => {
                table.insert(keys[keys.len() - 1].clone(), value);
            }
            None => return Err(format!("{name}: the parent of the key is not a table")),
        }
    }
    Ok(())
}

fn parse_scalar(raw: &str) -> serde_json::Value {
    if let Ok(integer) = raw.parse::<i64>() {
        return integer.into();
    }
    if let Ok(float) = raw.parse::<f64>() {
        return float.into();
    }
    match raw {
        "true" => true.into(),
        "false" => false.into(),
        _ => raw.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let mut merged = table("[log]\nlevel = \"info\"\n[registry]\nlease_millis = 3000\nheartbeat_millis = 1000\n");
        merge_tables(&mut merged, table("[registry]\nlease_millis = 5000\n"));
        let settings = Settings::from_toml(merged, &SettingsSchema::default()).unwrap();
        assert_eq!(settings.registry.lease_millis, 5000);
        assert_eq!(settings.registry.heartbeat_millis, 1000);
        assert_eq!(settings.log.level, "info");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let error =
            Settings::from_toml(table("[registry]\nlease_milis = 3000\n"), &SettingsSchema::default()).unwrap_err();
        assert!(error.contains("lease_milis"), "{error}");
        let error = Settings::from_toml(table("[resilience.inventory]\ntimeout = 3\n"), &SettingsSchema::default())
            .unwrap_err();
        assert!(error.contains("timeout"), "{error}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let error =
            Settings::from_toml(table("[registry]\nlease_millis = 500\n"), &SettingsSchema::default()).unwrap_err();
        assert!(error.contains("lease_millis"), "{error}");
    }

    #[test]
    fn call_sites_inherit_the_default() {
        let settings = Settings::from_toml(
            table("[resilience.default]\nmax_retries = 4\n[resilience.inventory]\ntimeout_millis = 300\n"),
            &SettingsSchema::default(),
        )
        .unwrap();
        let inventory = settings.resilience.for_site("inventory");
        assert_eq!(inventory.timeout_millis, 300);
        assert_eq!(inventory.max_retries, 4);
        assert_eq!(settings.resilience.for_site("product").timeout_millis, 2_000);
    }

    #[test]
    fn env_overrides_reach_nested_keys_with_types() {
        let mut document = serde_json::to_value(Settings::default()).unwrap();
        let env = vec![
            ("EMPORIUM__LOG__LEVEL".to_string(), "debug".to_string()),
            ("EMPORIUM__RESILIENCE__INVENTORY__TIMEOUT_MILLIS".to_string(), "250".to_string()),
            ("EMPORIUM_ROLE".to_string(), "all".to_string()),
        ];
        apply_env_overrides(&mut document, &env).unwrap();
        let settings = Settings::from_json(document, &SettingsSchema::default()).unwrap();
        assert_eq!(settings.log.level, "debug");
        assert_eq!(settings.resilience.for_site("inventory").timeout_millis, 250);
    }

    #[test]
    fn an_env_override_with_an_unknown_key_is_rejected() {
        let mut document = serde_json::to_value(Settings::default()).unwrap();
        apply_env_overrides(&mut document, &[("EMPORIUM__LOG__COLOUR".into(), "red".into())]).unwrap();
        assert!(Settings::from_json(document, &SettingsSchema::default()).unwrap_err().contains("colour"));
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct ShelfSettings {
        shelves: u32,
        label: String,
    }

    impl Default for ShelfSettings {
        fn default() -> Self {
            ShelfSettings { shelves: 3, label: "main".into() }
        }
    }

    impl ServiceSettings for ShelfSettings {
        const SECTION: &'static str = "shelf";

        fn validate(&self) -> Result<(), String> {
            if self.shelves == 0 { Err("shelves must be positive".into()) } else { Ok(()) }
        }
    }

    fn shelf_schema() -> SettingsSchema {
        SettingsSchema::new(vec![SectionSchema::of::<ShelfSettings>()])
    }

    #[test]
    fn a_service_section_reads_with_defaults_and_env_overrides() {
        let settings = Settings::from_toml(table("[shelf]\nshelves = 7\n"), &shelf_schema()).unwrap();
        assert_eq!(settings.section::<ShelfSettings>(), ShelfSettings { shelves: 7, label: "main".into() });
        assert_eq!(Settings::default().section::<ShelfSettings>(), ShelfSettings::default());
        let mut document = serde_json::to_value(&settings).unwrap();
        apply_env_overrides(&mut document, &[("EMPORIUM__SHELF__LABEL".into(), "back".into())]).unwrap();
        let settings = Settings::from_json(document, &shelf_schema()).unwrap();
        assert_eq!(settings.section::<ShelfSettings>(), ShelfSettings { shelves: 7, label: "back".into() });
    }

    #[test]
    fn unknown_sections_keys_and_invalid_values_of_a_service_are_refused() {
        let error = Settings::from_toml(table("[shelfs]\nshelves = 7\n"), &shelf_schema()).unwrap_err();
        assert!(error.contains("unknown section [shelfs]") && error.contains("shelf"), "{error}");
        let error = Settings::from_toml(table("[shelf]\nshelfs = 7\n"), &shelf_schema()).unwrap_err();
        assert!(error.contains("[shelf]") && error.contains("shelfs"), "{error}");
        let error = Settings::from_toml(table("[shelf]\nshelves = 0\n"), &shelf_schema()).unwrap_err();
        assert_eq!(error, "[shelf]: shelves must be positive");
        let error = Settings::from_toml(table("[shelf]\nshelves = \"many\"\n"), &shelf_schema()).unwrap_err();
        assert!(error.contains("[shelf]"), "{error}");
    }
}
