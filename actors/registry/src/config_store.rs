//! The configuration repository the registry serves: the `*.toml` files of one directory,
//! validated as a whole, versioned, and merged per service and profile on request.
//!
//! Layers, later wins: `application.toml`, `<service>.toml`, `application-<profile>.toml`,
//! `<service>-<profile>.toml`. A set of files is accepted only when every file parses and names
//! only known keys, and every merge the registry could serve passes `Settings::from_toml`; a
//! rejected edit leaves the previous version in service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use emporium_cluster::settings::{Settings, SettingsSchema, merge_tables};
use emporium_contracts::registry::ConfigDocument;

use crate::config_git::GitSource;
use crate::error::RegistryError;

/// The layer every service inherits.
pub const APPLICATION: &str = "application";

/// The repository's `config/` files, compiled in: what a registry serves when it was named no
/// directory and `config/` does not exist (so `emporium` runs from any directory).
pub const BUILT_IN_FILES: [(&str, &str); 2] = [
    ("application.toml", include_str!("../../../config/application.toml")),
    ("application-local.toml", include_str!("../../../config/application-local.toml")),
];

/// Whether `name` may be a service or profile name: `^[a-z][a-z0-9-]{0,62}$`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
}

/// One accepted set of files: their text (the fingerprint) and their parsed tables.
#[derive(Debug, Clone, Default)]
struct ConfigFiles {
    texts: BTreeMap<String, String>,
    tables: BTreeMap<String, toml::Table>,
}

/// The versioned, validated contents of the configuration directory.
#[derive(Debug)]
pub struct ConfigStore {
    dir: PathBuf,
    profile: String,
    schema: SettingsSchema,
    version: u64,
    files: ConfigFiles,
    settings: Settings,
    last_error: Option<String>,
    /// Served while the directory does not exist (empty: the typed defaults).
    fallback: BTreeMap<String, String>,
    /// The git repository the files come from, instead of the directory.
    git: Option<GitSource>,
    /// The commit served, with a git repository.
    revision: Option<String>,
}

impl ConfigStore {
    /// Reads and validates `dir` for a registry running `profile`; the version is the files'
    /// fingerprint (see `fingerprint`).
    /// A missing directory holds no files (every setting takes its default).
    /// `schema` names the service sections the files may hold.
    pub fn load(dir: impl Into<PathBuf>, profile: &str, schema: SettingsSchema) -> Result<ConfigStore, RegistryError> {
        ConfigStore::load_with_fallback(dir.into(), profile, schema, BTreeMap::new())
    }

    /// Like [`ConfigStore::load`], but while `dir` does not exist it serves
    /// [`BUILT_IN_FILES`]; once the directory appears, its files are served instead.
    pub fn load_or_built_in(
        dir: impl Into<PathBuf>,
        profile: &str,
        schema: SettingsSchema,
    ) -> Result<ConfigStore, RegistryError> {
        let fallback = BUILT_IN_FILES.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect();
        ConfigStore::load_with_fallback(dir.into(), profile, schema, fallback)
    }

    fn load_with_fallback(
        dir: PathBuf,
        profile: &str,
        schema: SettingsSchema,
        fallback: BTreeMap<String, String>,
    ) -> Result<ConfigStore, RegistryError> {
        let texts = read_dir(&dir, &fallback).map_err(RegistryError::InvalidConfig)?;
        let shown = dir.clone();
        ConfigStore::validated(dir, &shown, profile, schema, texts, fallback, None)
    }

    /// A store serving `texts` once they validate; `shown` is how errors name their folder.
    fn validated(
        dir: PathBuf,
        shown: &Path,
        profile: &str,
        schema: SettingsSchema,
        texts: BTreeMap<String, String>,
        fallback: BTreeMap<String, String>,
        git: Option<(GitSource, String)>,
    ) -> Result<ConfigStore, RegistryError> {
        if !is_valid_name(profile) {
            return Err(RegistryError::InvalidName(format!("profile {profile:?} must match ^[a-z][a-z0-9-]{{0,62}}$")));
        }
        let (files, settings) = validate(shown, profile, texts, &schema).map_err(RegistryError::InvalidConfig)?;
        let (git, revision) = git.map_or((None, None), |(git, revision)| (Some(git), Some(revision)));
        Ok(ConfigStore {
            dir,
            profile: profile.to_string(),
            schema,
            version: fingerprint(&files.texts),
            files,
            settings,
            last_error: None,
            fallback,
            git,
            revision,
        })
    }

    /// Reads the configuration from the git repository `location` at `label` (see
    /// [`crate::config_git`]); a clone of a URL goes under `data_dir`.
    pub fn load_git(
        location: &str,
        label: &str,
        data_dir: &Path,
        profile: &str,
        schema: SettingsSchema,
    ) -> Result<ConfigStore, RegistryError> {
        let mut git = GitSource::open(location, label, data_dir).map_err(RegistryError::InvalidConfig)?;
        let read = git.read().map_err(RegistryError::InvalidConfig)?;
        let shown = PathBuf::from(git.display(&read.commit));
        let dir = PathBuf::from(git.location());
        ConfigStore::validated(dir, &shown, profile, schema, read.texts, BTreeMap::new(), Some((git, read.commit)))
    }

    /// Where `file` is served from: `file:<dir>/<file>`, or `<repository>@<commit>/<file>`.
    pub fn source_name(&self, file: &str) -> String {
        match (&self.git, &self.revision) {
            (Some(git), Some(commit)) => format!("{}/{file}", git.display(commit)),
            _ => format!("file:{}/{file}", self.dir.display()),
        }
    }

    /// The commit served, when the configuration comes from git.
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// The label served, when the configuration comes from git.
    pub fn label(&self) -> Option<&str> {
        self.git.as_ref().map(GitSource::label)
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registry's profile, the default of [`ConfigStore::document`].
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The version of the files being served.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The registry's own settings: the `application` layers for its profile.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Why the files on disk are not being served, when they are not.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The names of the files being served, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.files.texts.keys().cloned().collect()
    }

    /// Re-reads the directory. `Ok(true)`: the files changed and the new version is served;
    /// `Ok(false)`: nothing changed; `Err`: the files on disk are invalid and the previous
    /// version stays in service.
    pub fn reload(&mut self) -> Result<bool, RegistryError> {
        let read = match &mut self.git {
            Some(git) => git.read().map(|read| {
                let shown = PathBuf::from(git.display(&read.commit));
                (read.texts, shown, Some(read.commit))
            }),
            None => read_dir(&self.dir, &self.fallback).map(|texts| (texts, self.dir.clone(), None)),
        };
        let outcome = read.and_then(|(texts, shown, revision)| {
            if texts == self.files.texts {
                return Ok((None, revision));
            }
            validate(&shown, &self.profile, texts, &self.schema).map(|valid| (Some(valid), revision))
        });
        match outcome {
            Ok((None, revision)) => {
                // Another commit with the same files: served as it, under the same version.
                self.revision = revision;
                self.last_error = None;
                Ok(false)
            }
            Ok((Some((files, settings)), revision)) => {
                self.version = fingerprint(&files.texts);
                self.files = files;
                self.settings = settings;
                self.revision = revision;
                self.last_error = None;
                Ok(true)
            }
            Err(message) => {
                self.last_error = Some(message.clone());
                Err(RegistryError::InvalidConfig(message))
            }
        }
    }

    /// The layers of `application` for `profiles` that exist, first to last (later wins), with
    /// their file names: `application.toml`, `<application>.toml`, then for each profile in
    /// turn `application-<profile>.toml` and `<application>-<profile>.toml`. Any name is safe:
    /// it only selects among the files already loaded.
    pub fn layers(&self, application: &str, profiles: &[&str]) -> Vec<(String, toml::Table)> {
        let mut names = vec![format!("{APPLICATION}.toml"), format!("{application}.toml")];
        for profile in profiles {
            names.push(format!("{APPLICATION}-{profile}.toml"));
            names.push(format!("{application}-{profile}.toml"));
        }
        let mut seen = BTreeSet::new();
        names.retain(|name| seen.insert(name.clone()));
        names.into_iter().filter_map(|name| self.files.tables.get(&name).map(|table| (name, table.clone()))).collect()
    }

    /// The merged configuration of `service` for `profile` (the registry's when `None`).
    pub fn document(&self, service: &str, profile: Option<&str>) -> Result<ConfigDocument, RegistryError> {
        let profile = profile.unwrap_or(&self.profile);
        if !is_valid_name(service) {
            return Err(RegistryError::InvalidName(format!("service {service:?} must match ^[a-z][a-z0-9-]{{0,62}}$")));
        }
        if !is_valid_name(profile) {
            return Err(RegistryError::InvalidName(format!("profile {profile:?} must match ^[a-z][a-z0-9-]{{0,62}}$")));
        }
        let (sources, merged) = merge_layers(&self.files.tables, service, Some(profile));
        Ok(ConfigDocument {
            service: service.to_string(),
            profile: profile.to_string(),
            version: self.version,
            sources,
            settings: table_to_json(merged),
            revision: self.revision.clone(),
        })
    }
}

/// The file names of the layers of `service` (and `profile`), first to last, without repeats.
fn layer_names(service: &str, profile: Option<&str>) -> Vec<String> {
    let mut names = vec![format!("{APPLICATION}.toml"), format!("{service}.toml")];
    if let Some(profile) = profile {
        names.push(format!("{APPLICATION}-{profile}.toml"));
        names.push(format!("{service}-{profile}.toml"));
    }
    let mut seen = BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// Merges the layers that exist; returns the names used and the merged table.
fn merge_layers(
    tables: &BTreeMap<String, toml::Table>,
    service: &str,
    profile: Option<&str>,
) -> (Vec<String>, toml::Table) {
    let mut merged = toml::Table::new();
    let mut sources = Vec::new();
    for name in layer_names(service, profile) {
        if let Some(table) = tables.get(&name) {
            merge_tables(&mut merged, table.clone());
            sources.push(name);
        }
    }
    (sources, merged)
}

/// The version of a set of files: a fingerprint of their names and texts (64-bit FNV-1a, kept
/// to 53 bits so that JSON readers in JavaScript hold it exactly). The same files give the same
/// version on every registry and across restarts, so peers agree on it and a restarted registry
/// does not make every node fetch and apply again; any edit gives another one.
fn fingerprint(texts: &BTreeMap<String, String>) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for (name, text) in texts {
        for byte in name.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    }
    (hash & ((1 << 53) - 1)).max(1)
}

/// The text of every `*.toml` file directly in `dir`, by file name; `fallback` when `dir` does
/// not exist.
fn read_dir(dir: &Path, fallback: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let mut texts = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(fallback.clone()),
        Err(error) => return Err(format!("{}: {error}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|error| format!("{}: {error}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let Some(stem) = name.strip_suffix(".toml") else { continue };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        if !is_valid_name(stem) {
            return Err(format!(
                "{}: a configuration file is named <service>.toml or <service>-<profile>.toml \
                 (lowercase letters, digits and hyphens)",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        texts.insert(name, text);
    }
    Ok(texts)
}

/// Parses every file and checks every merge that could be served; errors name the file.
fn validate(
    dir: &Path,
    profile: &str,
    texts: BTreeMap<String, String>,
    schema: &SettingsSchema,
) -> Result<(ConfigFiles, Settings), String> {
    let mut tables = BTreeMap::new();
    for (name, text) in &texts {
        let path = dir.join(name);
        let table: toml::Table = toml::from_str(text).map_err(|error| describe_toml_error(&path, text, &error))?;
        // Each file on its own must name only known keys with the right types; values that
        // depend on other layers (lease > heartbeat) are checked on the merges below.
        toml::from_str::<Settings>(text).map_err(|error| describe_toml_error(&path, text, &error))?;
        tables.insert(name.clone(), table);
    }

    let stems: Vec<&str> = texts.keys().filter_map(|name| name.strip_suffix(".toml")).collect();
    let mut profiles: BTreeSet<&str> = BTreeSet::from([profile]);
    for stem in &stems {
        for (index, _) in stem.match_indices('-') {
            let (base, overlay) = (&stem[..index], &stem[index + 1..]);
            if (base == APPLICATION || stems.contains(&base)) && is_valid_name(overlay) {
                profiles.insert(overlay);
            }
        }
    }
    let mut services: BTreeSet<&str> = stems.iter().copied().collect();
    services.insert(APPLICATION);
    for service in &services {
        for candidate in std::iter::once(None).chain(profiles.iter().map(|profile| Some(*profile))) {
            let (sources, merged) = merge_layers(&tables, service, candidate);
            let Some(last) = sources.last() else { continue };
            if let Err(message) = Settings::from_toml(merged, schema) {
                let path = dir.join(last);
                return Err(match &sources[..sources.len() - 1] {
                    [] => format!("{}: {message}", path.display()),
                    earlier => format!("{} (merged over {}): {message}", path.display(), earlier.join(", ")),
                });
            }
        }
    }

    let (_, merged) = merge_layers(&tables, APPLICATION, Some(profile));
    let settings = Settings::from_toml(merged, schema).map_err(|message| format!("{}: {message}", dir.display()))?;
    Ok((ConfigFiles { texts, tables }, settings))
}

/// One line: the file, the line, the key (with its table) when the error points at one, and
/// the parser's message.
fn describe_toml_error(path: &Path, text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else { return format!("{}: {message}", path.display()) };
    let start = span.start.min(text.len());
    let line_number = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |index| index + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|candidate| candidate.starts_with('['))
        .map(|header| header.trim_matches(|character| character == '[' || character == ']').trim());
    let key = match line.split_once('=') {
        Some((key, _)) if !line.starts_with('[') => Some(key.trim()),
        _ => None,
    };
    let location = match (table, key) {
        (Some(table), Some(key)) => format!(" key {table}.{key}:"),
        (None, Some(key)) => format!(" key {key}:"),
        (_, None) if !line.is_empty() => format!(" at `{line}`:"),
        _ => String::new(),
    };
    format!("{}:{line_number}:{location} {message}", path.display())
}

/// The JSON form of a TOML table (datetimes become their TOML text).
pub fn table_to_json(table: toml::Table) -> serde_json::Value {
    serde_json::Value::Object(table.into_iter().map(|(key, value)| (key, value_to_json(value))).collect())
}

pub(crate) fn value_to_json(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(text) => serde_json::Value::String(text),
        toml::Value::Integer(integer) => integer.into(),
        toml::Value::Float(float) => {
            serde_json::Number::from_f64(float).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        toml::Value::Boolean(boolean) => boolean.into(),
        toml::Value::Datetime(datetime) => serde_json::Value::String(datetime.to_string()),
        toml::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(value_to_json).collect()),
        toml::Value::Table(table) => table_to_json(table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    const APPLICATION_TOML: &str =
        "[log]\nlevel = \"info\"\n\n[registry]\nheartbeat_millis = 1000\nlease_millis = 3000\n";

    #[test]
    fn names_are_lowercase_words_and_nothing_that_walks_the_tree() {
        for good in ["inventory", "a", "order-service", "x1-2", &"a".repeat(63)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "../etc", "..", "a/b", "Inventory", "1abc", "-a", "a_b", "a.b", "a b", &"a".repeat(64)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn layers_merge_in_order_with_the_profile_and_list_their_sources() {
        let dir = TestDir::new();
        dir.write("application.toml", APPLICATION_TOML);
        dir.write("inventory.toml", "[log]\nlevel = \"debug\"\n[resilience.product]\ntimeout_millis = 300\n");
        dir.write("application-prod.toml", "[registry]\nlease_millis = 5000\n[log]\nlevel = \"warn\"\n");
        dir.write("inventory-prod.toml", "[resilience.product]\nmax_retries = 0\n");
        dir.write("order.toml", "[log]\nlevel = \"trace\"\n");
        dir.write("README.md", "not configuration");
        let store = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        let again = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        assert_eq!(store.version(), again.version(), "the same files, the same version (peers, restarts)");
        assert_eq!(store.settings().registry.lease_millis, 3000, "local has no overlay");

        let document = store.document("inventory", Some("prod")).unwrap();
        assert_eq!(
            document.sources,
            ["application.toml", "inventory.toml", "application-prod.toml", "inventory-prod.toml"]
        );
        assert_eq!(document.profile, "prod");
        let settings = Settings::from_json(document.settings.clone(), &SettingsSchema::default()).unwrap();
        assert_eq!(settings.log.level, "warn", "application-<profile> comes after <service>");
        assert_eq!(settings.registry.lease_millis, 5000);
        assert_eq!(settings.resilience.for_site("product").timeout_millis, 300);
        assert_eq!(settings.resilience.for_site("product").max_retries, 0);

        let local = store.document("inventory", None).unwrap();
        assert_eq!(local.profile, "local");
        assert_eq!(local.sources, ["application.toml", "inventory.toml"]);
        assert_eq!(local.settings["log"]["level"], "debug");

        let unknown_service = store.document("payment", Some("prod")).unwrap();
        assert_eq!(unknown_service.sources, ["application.toml", "application-prod.toml"]);
        let application = store.document("application", Some("prod")).unwrap();
        assert_eq!(application.sources, ["application.toml", "application-prod.toml"]);

        let prod = ConfigStore::load(dir.path(), "prod", SettingsSchema::default()).unwrap();
        assert_eq!(prod.settings().registry.lease_millis, 5000, "the registry's own profile applies");
    }

    #[test]
    fn traversal_and_malformed_names_are_refused() {
        let dir = TestDir::new();
        dir.write("application.toml", APPLICATION_TOML);
        let store = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        for (service, profile) in
            [("../application", None), ("inventory", Some("../../etc")), ("a/b", None), ("", None)]
        {
            assert!(matches!(store.document(service, profile), Err(RegistryError::InvalidName(_))), "{service}");
        }
        assert!(matches!(
            ConfigStore::load(dir.path(), "../x", SettingsSchema::default()),
            Err(RegistryError::InvalidName(_))
        ));
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_file_line_and_key() {
        let dir = TestDir::new();
        dir.write("application.toml", APPLICATION_TOML);
        dir.write("inventory.toml", "[log]\nlevel = \"debug\"\n\n[registry]\nlease_milis = 4000\n");
        let error = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap_err().to_string();
        assert!(error.contains("inventory.toml:5: key registry.lease_milis:"), "{error}");
        assert!(error.contains("unknown field"), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn syntax_type_and_cross_layer_errors_name_the_file() {
        let dir = TestDir::new();
        dir.write("application.toml", "[registry\n");
        let error = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap_err().to_string();
        assert!(error.contains("application.toml:1"), "{error}");

        dir.write("application.toml", "[registry]\nlease_millis = \"long\"\n");
        let error = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap_err().to_string();
        assert!(error.contains("application.toml:2: key registry.lease_millis:"), "{error}");

        dir.write("application.toml", APPLICATION_TOML);
        dir.write("order-prod.toml", "[registry]\nheartbeat_millis = 5000\n");
        dir.write("order.toml", "");
        let error = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap_err().to_string();
        assert!(error.contains("order-prod.toml (merged over application.toml, order.toml)"), "{error}");
        assert!(error.contains("lease_millis must be greater"), "{error}");

        dir.remove("order-prod.toml");
        dir.write("Order.toml", "");
        let error = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap_err().to_string();
        assert!(error.contains("Order.toml"), "{error}");
    }

    #[test]
    fn a_missing_directory_serves_defaults() {
        let dir = TestDir::new();
        let store = ConfigStore::load(dir.path().join("absent"), "local", SettingsSchema::default()).unwrap();
        assert_eq!(store.settings(), &Settings::default());
        assert_eq!(store.document("inventory", None).unwrap().sources, Vec::<String>::new());
    }

    #[test]
    fn an_edit_changes_the_version_and_an_invalid_edit_keeps_the_old_one() {
        let dir = TestDir::new();
        dir.write("application.toml", APPLICATION_TOML);
        let mut store = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        let first = store.version();
        assert!(!store.reload().unwrap(), "nothing changed");
        assert_eq!(store.version(), first);

        dir.write("inventory.toml", "[log]\nlevel = \"debug\"\n");
        assert!(store.reload().unwrap());
        let second = store.version();
        assert_ne!(second, first);
        assert_eq!(store.document("inventory", None).unwrap().settings["log"]["level"], "debug");

        dir.write("inventory.toml", "[log]\nlevel = \"debug\"\ncolour = \"red\"\n");
        let error = store.reload().unwrap_err();
        assert!(matches!(error, RegistryError::InvalidConfig(ref message) if message.contains("inventory.toml")));
        assert_eq!(store.version(), second);
        assert!(store.last_error().unwrap().contains("colour"));
        let served = store.document("inventory", None).unwrap();
        assert_eq!((served.version, served.settings["log"]["level"].as_str()), (second, Some("debug")));

        dir.write("application.toml", "[registry]\nheartbeat_millis = 500\nlease_millis = 2000\n");
        dir.write("inventory.toml", "[log]\nlevel = \"warn\"\n");
        assert!(store.reload().unwrap());
        let third = store.version();
        assert!(third != second && third != first);
        assert_eq!(store.last_error(), None);
        assert_eq!(store.settings().registry.lease_millis, 2000);

        dir.remove("inventory.toml");
        assert!(store.reload().unwrap(), "a removed file is a change");
        assert!(![first, second, third].contains(&store.version()));
        assert_eq!(store.file_names(), ["application.toml"]);
        assert!(store.version() < 1 << 53, "exact in JavaScript");
    }

    #[test]
    fn datetimes_and_nested_tables_convert_to_json() {
        let table: toml::Table = "when = 1979-05-27T07:32:00Z\n[a.b]\nc = [1, 2.5, true]\n".parse().unwrap();
        let json = table_to_json(table);
        assert_eq!(json, serde_json::json!({"when": "1979-05-27T07:32:00Z", "a": {"b": {"c": [1, 2.5, true]}}}));
    }
}
