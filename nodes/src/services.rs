//! The services this build of `emporium` runs, one line each, in start order. A role is a
//! service's name; `all` is every production service. Adding a service: its crate exports
//! `definition()` (see `emporium_cluster::service`), and one line here.

use emporium_cluster::{ServiceCatalog, ServiceDefinition};

/// The production services, in start order (the gateway last, so the services of its node are
/// up when it opens).
fn production() -> Vec<ServiceDefinition> {
    vec![
        emporium_registry::definition(),
        emporium_auth::definition(),
        emporium_product::definition(),
        emporium_inventory::definition(),
        emporium_order::definition(),
        emporium_payment::definition(),
        emporium_notification::definition(),
        emporium_gateway::definition(),
    ]
}

/// The diagnostic services, never part of `all` (the `test-services` feature).
fn diagnostics() -> Vec<ServiceDefinition> {
    #[cfg(feature = "test-services")]
    return vec![emporium_echo::definition(), emporium_echo::probe_definition()];
    #[cfg(not(feature = "test-services"))]
    Vec::new()
}

/// Every service of this build.
pub fn catalog() -> ServiceCatalog {
    let mut definitions = production();
    let gateway = definitions.pop().expect("the gateway is the last production service");
    definitions.extend(diagnostics());
    definitions.push(gateway);
    ServiceCatalog::new(definitions)
}

/// The roles `all` stands for.
pub fn production_roles() -> Vec<&'static str> {
    production().iter().map(|definition| definition.name).collect()
}

/// Parses `--role`: comma-separated service names, `all` for every production service.
pub fn parse_roles(text: &str) -> Result<RoleList, String> {
    let catalog = catalog();
    let mut roles = Vec::new();
    for name in text.split(',').map(str::trim) {
        match name {
            "" => return Err("empty role name".to_string()),
            "all" => roles.extend(production_roles()),
            name => match catalog.get(name) {
                Some(definition) => roles.push(definition.name),
                None => {
                    return Err(format!("unknown role {name:?} (expected {} or all)", production_roles().join(", ")));
                }
            },
        }
    }
    roles.sort_by_key(|role| catalog.definitions().iter().position(|definition| definition.name == *role));
    roles.dedup();
    Ok(RoleList(roles))
}

/// The parsed `--role` value: service names, in start order.
#[derive(Debug, Clone)]
pub struct RoleList(pub Vec<&'static str>);

#[cfg(test)]
mod tests {
    use emporium_registry::config_store::ConfigStore;

    use super::*;

    #[test]
    fn all_is_every_production_service_in_start_order_with_the_gateway_last() {
        let roles = parse_roles("all").unwrap().0;
        assert_eq!(roles, production_roles());
        assert_eq!(roles.first(), Some(&"registry"));
        assert_eq!(roles.last(), Some(&"gateway"));
        assert_eq!(parse_roles("gateway, auth,auth").unwrap().0, vec!["auth", "gateway"]);
        assert!(parse_roles("auth,,order").is_err());
        let unknown = parse_roles("inventroy").unwrap_err();
        assert!(unknown.contains("inventroy") && unknown.contains("notification"), "{unknown}");
    }

    #[test]
    fn every_service_name_is_unique_and_every_settings_section_has_one_owner() {
        let catalog = catalog();
        let mut names: Vec<&str> = catalog.definitions().iter().map(|definition| definition.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), catalog.definitions().len());
        let mut sections: Vec<&str> = catalog.settings_schema().sections().iter().map(|section| section.name).collect();
        let before = sections.len();
        sections.sort();
        sections.dedup();
        assert_eq!(sections.len(), before);
        for section in sections {
            assert!(!emporium_cluster::settings::NODE_SECTIONS.contains(&section), "[{section}] belongs to the node");
        }
    }

    /// The repository's `config/` is valid for this build, in every profile it has.
    #[test]
    fn the_repository_configuration_is_valid_for_every_service() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        for profile in ["local", "prod"] {
            if let Err(error) =
                emporium_registry::config_store::ConfigStore::load(&dir, profile, catalog().settings_schema())
            {
                panic!("config/ with profile {profile}: {error}");
            }
        }
    }

    /// With no configuration directory the registry serves the repository's files, compiled
    /// in; the typed defaults agree with them too (a node that never reached a registry).
    #[test]
    fn the_built_in_configuration_is_the_repository_configuration() {
        let schema = catalog().settings_schema();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let repository = ConfigStore::load(&dir, "local", schema.clone()).unwrap();
        let missing = std::env::temp_dir().join(format!("no-config-{}", uuid::Uuid::new_v4().simple()));
        let built_in = ConfigStore::load_or_built_in(&missing, "local", schema.clone()).unwrap();
        assert_eq!(built_in.settings(), repository.settings());
        assert_eq!(built_in.file_names(), vec!["application-local.toml", "application.toml"]);

        let (written, defaults) = (repository.settings(), emporium_cluster::Settings::default());
        assert_eq!(written.log, defaults.log);
        assert_eq!(written.registry, defaults.registry);
        assert_eq!(written.supervision, defaults.supervision);
        assert_eq!(written.resilience.default, defaults.resilience.default);
        for section in schema.sections() {
            let value = written.sections.get(section.name).cloned().unwrap_or_default();
            assert_eq!(value, section.defaults(), "[{}] in config/application.toml", section.name);
        }
    }

    /// README.md's roles table lists every production role, and nothing else.
    #[test]
    fn the_readme_roles_table_lists_every_role() {
        let readme = include_str!("../../README.md");
        let table_roles: Vec<&str> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| role |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.split('|').nth(1))
            .map(|cell| cell.trim().trim_matches('`'))
            .filter(|role| *role != "all")
            .collect();
        let mut expected = production_roles();
        expected.sort();
        let mut listed = table_roles.clone();
        listed.sort();
        assert_eq!(listed, expected, "README.md roles table: {table_roles:?}");
    }
}
