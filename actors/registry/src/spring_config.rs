//! Spring Cloud Config Server compatibility: `GET /config/{application}/{profile}[/{label}]`
//! answers the `Environment` document a Spring Boot application's config client asks for
//! (`spring.config.import=configserver:http://<registry>/config`), from the same layered
//! `config/` files the nodes get.
//!
//! The property sources come highest priority first, as Spring orders them:
//! `<application>-<profile>.toml`, `application-<profile>.toml` (the last profile of a
//! comma-separated list first), `<application>.toml`, `application.toml`. Each file's tables are
//! flattened into Spring's dotted keys (`[order] payment_timeout_millis = 5` becomes
//! `order.payment_timeout_millis`; arrays become `key[0]`, `key[1]`). The version is the
//! configuration version. A directory has no labels: a request that names one is answered 404
//! `no_such_label`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::config_store::{ConfigStore, value_to_json};
use crate::error::RegistryError;
use crate::handle::Registry;
use crate::messages::GetSpringEnvironment;

/// The longest application, profile or label name accepted.
const MAX_NAME_LEN: usize = 128;

/// Spring's `org.springframework.cloud.config.environment.Environment`, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpringEnvironment {
    /// The application.
    pub name: String,
    /// The profiles, as asked.
    pub profiles: Vec<String>,
    /// The label, as asked.
    pub label: Option<String>,
    /// The configuration version.
    pub version: Option<String>,
    /// Always null (Spring's git backend uses it for a remote's state).
    pub state: Option<String>,
    /// The layers, highest priority first.
    pub property_sources: Vec<PropertySource>,
}

/// One file's settings, flattened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertySource {
    /// Where it comes from: `file:<config dir>/<file>`.
    pub name: String,
    /// Its settings under Spring's dotted keys.
    pub source: serde_json::Map<String, serde_json::Value>,
}

/// What a Spring config client asked for.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvironmentRequest {
    application: String,
    profile: String,
    label: Option<String>,
}

/// Mounts the Spring Cloud Config routes in a scope that already checks credentials.
pub(crate) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .service(web::resource("/{application}/{profile}").get(environment))
        .service(web::resource("/{application}/{profile}/{label}").get(environment))
}

#[tracing::instrument(skip_all, fields(application = %path.application))]
async fn environment(
    registry: web::Data<Registry>,
    path: web::Path<EnvironmentRequest>,
) -> Result<HttpResponse, RegistryError> {
    let request = path.into_inner();
    Ok(HttpResponse::Ok().json(registry.addr.send(GetSpringEnvironment(request)).await??))
}

/// The `Environment` of `request` from `store`.
pub fn environment_of(store: &ConfigStore, request: EnvironmentRequest) -> Result<SpringEnvironment, RegistryError> {
    check_name("application", &request.application)?;
    let profiles: Vec<&str> = request.profile.split(',').map(str::trim).filter(|name| !name.is_empty()).collect();
    if profiles.is_empty() {
        return Err(RegistryError::InvalidName("profile must name at least one profile".to_string()));
    }
    for profile in &profiles {
        check_name("profile", profile)?;
    }
    if let Some(label) = &request.label {
        check_name("label", label)?;
        match store.label() {
            Some(served) if served == label => {}
            Some(served) => {
                return Err(RegistryError::NoSuchLabel(format!(
                    "label {label:?}: this registry serves {served} of {}",
                    store.dir().display()
                )));
            }
            None => {
                return Err(RegistryError::NoSuchLabel(format!(
                    "label {label:?}: the configuration comes from the directory {}, which has no labels",
                    store.dir().display()
                )));
            }
        }
    }
    let property_sources = store
        .layers(&request.application, &profiles)
        .into_iter()
        .rev()
        .map(|(file, table)| {
            let mut source = serde_json::Map::new();
            for (key, value) in table {
                flatten(key, value, &mut source);
            }
            PropertySource { name: store.source_name(&file), source }
        })
        .collect();
    Ok(SpringEnvironment {
        name: request.application,
        profiles: profiles.into_iter().map(str::to_string).collect(),
        label: store.label().map(str::to_string),
        version: Some(store.revision().map_or_else(|| store.version().to_string(), str::to_string)),
        state: None,
        property_sources,
    })
}

/// Spring's names are freer than Emporium's (`my_app`, `Prod`): any of `[A-Za-z0-9._-]`, at
/// most 128 characters. The name only selects among loaded files.
fn check_name(what: &str, name: &str) -> Result<(), RegistryError> {
    let allowed = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.as_bytes().iter().all(allowed) {
        return Err(RegistryError::InvalidName(format!(
            "{what} {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )));
    }
    Ok(())
}

/// Adds `value` under `key` to `out`, tables and arrays spread into Spring's dotted and indexed
/// keys.
fn flatten(key: String, value: toml::Value, out: &mut serde_json::Map<String, serde_json::Value>) {
    match value {
        toml::Value::Table(table) => {
            for (name, value) in table {
                flatten(format!("{key}.{name}"), value, out);
            }
        }
        toml::Value::Array(items) => {
            for (index, value) in items.into_iter().enumerate() {
                flatten(format!("{key}[{index}]"), value, out);
            }
        }
        scalar => {
            out.insert(key, value_to_json(scalar));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use emporium_cluster::settings::SettingsSchema;
    use serde_json::json;

    fn dir_with(files: &[(&str, &str)]) -> TestDir {
        let dir = TestDir::new();
        for (name, text) in files {
            dir.write(name, text);
        }
        dir
    }

    fn request(application: &str, profile: &str, label: Option<&str>) -> EnvironmentRequest {
        EnvironmentRequest {
            application: application.to_string(),
            profile: profile.to_string(),
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn layers_come_highest_priority_first_with_dotted_keys() {
        let dir = dir_with(&[
            ("application.toml", "[log]\nlevel = \"info\"\n[registry]\nheartbeat_millis = 1000\n"),
            ("order.toml", "[log]\nlevel = \"debug\"\n"),
            ("application-prod.toml", "[registry]\nheartbeat_millis = 500\n"),
        ]);
        let store = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        let environment = environment_of(&store, request("order", "prod", None)).unwrap();
        let names: Vec<&str> =
            environment.property_sources.iter().map(|source| source.name.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["application-prod.toml", "order.toml", "application.toml"]);
        assert_eq!(environment.property_sources[0].source["registry.heartbeat_millis"], json!(500));
        assert_eq!(environment.property_sources[1].source["log.level"], json!("debug"));
        let document = serde_json::to_value(&environment).unwrap();
        assert_eq!(document["name"], "order");
        assert_eq!(document["profiles"], json!(["prod"]));
        assert_eq!(document["label"], json!(null));
        assert_eq!(document["state"], json!(null));
        assert_eq!(document["version"], json!(store.version().to_string()));
        assert!(document["propertySources"][0]["name"].as_str().unwrap().starts_with("file:"));
    }

    #[test]
    fn arrays_are_indexed_and_several_profiles_stack() {
        let mut out = serde_json::Map::new();
        let value: toml::Table = toml::from_str("[a]\nlist = [1, 2]\nnested = { b = true }\n").unwrap();
        for (key, value) in value {
            flatten(key, value, &mut out);
        }
        assert_eq!(serde_json::Value::Object(out), json!({"a.list[0]": 1, "a.list[1]": 2, "a.nested.b": true}));

        let dir = dir_with(&[
            ("application.toml", ""),
            ("application-a.toml", "[log]\nlevel = \"warn\"\n"),
            ("application-b.toml", "[log]\nlevel = \"error\"\n"),
        ]);
        let store = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        let environment = environment_of(&store, request("anything", "a,b", None)).unwrap();
        let first = environment.property_sources[0].name.rsplit('/').next().unwrap();
        assert_eq!(first, "application-b.toml", "the last profile wins");
    }

    #[test]
    fn bad_names_and_labels_are_refused() {
        let dir = dir_with(&[("application.toml", "")]);
        let store = ConfigStore::load(dir.path(), "local", SettingsSchema::default()).unwrap();
        for (application, profile) in [("../etc", "prod"), ("order", ""), ("order", "p rod"), ("order", ",")] {
            let error = environment_of(&store, request(application, profile, None)).unwrap_err();
            assert!(matches!(error, RegistryError::InvalidName(_)), "{application} {profile}: {error}");
        }
        let error = environment_of(&store, request("order", "default", Some("main"))).unwrap_err();
        assert!(matches!(error, RegistryError::NoSuchLabel(_)), "{error}");
    }
}
