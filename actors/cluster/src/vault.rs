//! Secrets from HashiCorp Vault's KV version 2 engine.
//!
//! A secret `NAME` comes from Vault when `NAME_VAULT` says where: `<mount>/<path>#<key>`, for
//! example `EMPORIUM_MYSQL_URL_VAULT=secret/emporium#mysql_url` reads the key `mysql_url` of
//! `GET {EMPORIUM_VAULT_ADDR}/v1/secret/data/emporium`. The node signs in with
//! `EMPORIUM_VAULT_TOKEN` (or `_FILE`), or with AppRole (`EMPORIUM_VAULT_ROLE_ID` and
//! `EMPORIUM_VAULT_SECRET_ID`, or `_FILE`: `POST /v1/auth/approle/login`). Every secret is read
//! once at start, before the services start; a renewable token is then renewed at half its TTL
//! (`POST /v1/auth/token/renew-self`) for as long as the node runs, so that the same token keeps
//! working for whoever needs it later. A secret that cannot be read stops the start with the
//! reason (never the token or the value).
//!
//! Tested against a stand-in that speaks the documented HTTP API (`nodes/tests/vault.rs`): no
//! Vault server can be installed where the tests run. docker-compose.yml runs a real one in dev
//! mode and reads the database URL from it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use crate::service::Environment;

/// The suffix of a variable that names a secret's place in Vault.
pub const VAULT_SUFFIX: &str = "_VAULT";

/// Secrets read from Vault, by variable name, and the token kept alive for the node.
pub struct VaultSecrets {
    /// `NAME` -> (value, `mount/path#key`).
    pub secrets: BTreeMap<String, (String, String)>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl VaultSecrets {
    /// Stops renewing the token (at shutdown).
    pub fn stop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

impl Drop for VaultSecrets {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where one secret is: the KV v2 mount, the path under it, and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    mount: String,
    path: String,
    key: String,
}

impl Location {
    fn parse(variable: &str, text: &str) -> anyhow::Result<Location> {
        let (place, key) = text
            .trim()
            .split_once('#')
            .ok_or_else(|| anyhow!("{variable} must be <mount>/<path>#<key>, like secret/emporium#mysql_url"))?;
        let (mount, path) = place
            .trim_matches('/')
            .split_once('/')
            .ok_or_else(|| anyhow!("{variable} must be <mount>/<path>#<key>, like secret/emporium#mysql_url"))?;
        let is_plain = |part: &str| {
            !part.is_empty()
                && part.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..")
                && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        };
        if !is_plain(mount) || !is_plain(path) || key.is_empty() {
            bail!("{variable}: {text:?} is not <mount>/<path>#<key> (letters, digits, -, _, . and /)");
        }
        Ok(Location { mount: mount.to_string(), path: path.to_string(), key: key.to_string() })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}#{}", self.mount, self.path, self.key)
    }
}

/// The process's environment with its Vault secrets read, and the Vault session (kept for as
/// long as the node runs: it renews the token).
pub async fn process_environment() -> anyhow::Result<(Environment, Option<VaultSecrets>)> {
    let environment = Environment::new(std::env::vars().collect());
    match read_secrets(&environment).await? {
        Some(vault) => Ok((environment.with_vault_secrets(vault.secrets.clone()), Some(vault))),
        None => Ok((environment, None)),
    }
}

/// Reads every secret whose `NAME_VAULT` is set; `None` when there is none.
pub async fn read_secrets(environment: &Environment) -> anyhow::Result<Option<VaultSecrets>> {
    let mut wanted = Vec::new();
    for (variable, value) in environment.variables() {
        if let Some(name) = variable.strip_suffix(VAULT_SUFFIX)
            && name.starts_with("EMPORIUM_")
            && name != "EMPORIUM"
            && !value.trim().is_empty()
        {
            wanted.push((name.to_string(), Location::parse(variable, value)?));
        }
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    let address = environment
        .get("EMPORIUM_VAULT_ADDR")
        .ok_or_else(|| anyhow!("{}{VAULT_SUFFIX} is set but EMPORIUM_VAULT_ADDR is not", wanted[0].0))?
        .trim_end_matches('/')
        .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot make the HTTP client for Vault")?;
    let vault = Vault { client, address };
    let token = vault.sign_in(environment).await?;

    let mut documents: HashMap<(String, String), serde_json::Map<String, Value>> = HashMap::new();
    let mut secrets = BTreeMap::new();
    for (name, location) in wanted {
        let document_key = (location.mount.clone(), location.path.clone());
        if !documents.contains_key(&document_key) {
            let document = vault.read(&token.value, &location).await?;
            documents.insert(document_key.clone(), document);
        }
        let value = documents[&document_key]
            .get(&location.key)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{name}: Vault has no text under the key {:?} of {location}", location.key))?;
        tracing::info!(secret = %name, source = "vault", location = %location, "secret provided");
        secrets.insert(name, (value.to_string(), location.to_string()));
    }
    let renewal = token.renewable.then(|| {
        let vault = vault.clone();
        tokio::spawn(async move { vault.keep_renewing(token).await })
    });
    Ok(Some(VaultSecrets { secrets, renewal }))
}

/// A Vault token and how long it lives.
struct Token {
    value: String,
    renewable: bool,
    ttl: Duration,
}

#[derive(Clone)]
struct Vault {
    client: reqwest::Client,
    address: String,
}

impl Vault {
    /// The token given, or one from an AppRole sign-in.
    async fn sign_in(&self, environment: &Environment) -> anyhow::Result<Token> {
        if let Some(value) = environment.secret("EMPORIUM_VAULT_TOKEN")? {
            // A token given by the operator: ask Vault whether (and for how long) it renews.
            let body = self
                .call(reqwest::Method::GET, "/v1/auth/token/lookup-self", Some(&value), None)
                .await
                .context("Vault did not accept EMPORIUM_VAULT_TOKEN")?;
            let data = &body["data"];
            let ttl = Duration::from_secs(data["ttl"].as_u64().unwrap_or(0));
            let renewable = data["renewable"].as_bool().unwrap_or(false) && !ttl.is_zero();
            return Ok(Token { value, renewable, ttl });
        }
        let role_id = environment.secret("EMPORIUM_VAULT_ROLE_ID")?;
        let secret_id = environment.secret("EMPORIUM_VAULT_SECRET_ID")?;
        let (Some(role_id), Some(secret_id)) = (role_id, secret_id) else {
            bail!("Vault needs EMPORIUM_VAULT_TOKEN, or EMPORIUM_VAULT_ROLE_ID and EMPORIUM_VAULT_SECRET_ID (AppRole)");
        };
        let body = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/approle/login",
                None,
                Some(serde_json::json!({"role_id": role_id, "secret_id": secret_id})),
            )
            .await
            .context("the AppRole sign-in to Vault failed")?;
        let auth = &body["auth"];
        let value = auth["client_token"]
            .as_str()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| anyhow!("Vault's AppRole answer has no client_token"))?
            .to_string();
        let ttl = Duration::from_secs(auth["lease_duration"].as_u64().unwrap_or(0));
        let renewable = auth["renewable"].as_bool().unwrap_or(false) && !ttl.is_zero();
        tracing::info!(ttl_secs = ttl.as_secs(), renewable, "signed in to Vault with AppRole");
        Ok(Token { value, renewable, ttl })
    }

    /// The `data.data` object of a KV v2 secret.
    async fn read(&self, token: &str, location: &Location) -> anyhow::Result<serde_json::Map<String, Value>> {
        let url_path = format!("/v1/{}/data/{}", location.mount, location.path);
        let body = self
            .call(reqwest::Method::GET, &url_path, Some(token), None)
            .await
            .with_context(|| format!("cannot read {location} from Vault"))?;
        body["data"]["data"]
            .as_object()
            .cloned()
            .ok_or_else(|| anyhow!("{location}: Vault's answer is not a KV version 2 secret (no data.data)"))
    }

    /// Renews the token at half its TTL until the task is aborted; a failure is logged and
    /// retried sooner.
    async fn keep_renewing(self, mut token: Token) {
        loop {
            let wait = (token.ttl / 2).max(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
            match self.call(reqwest::Method::POST, "/v1/auth/token/renew-self", Some(&token.value), None).await {
                Ok(body) => {
                    let ttl = body["auth"]["lease_duration"].as_u64().unwrap_or(0);
                    if ttl > 0 {
                        token.ttl = Duration::from_secs(ttl);
                    }
                    tracing::debug!(ttl_secs = token.ttl.as_secs(), "renewed the Vault token");
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "could not renew the Vault token; trying again");
                    token.ttl = Duration::from_secs(2);
                }
            }
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request.send().await.map_err(|error| anyhow!("Vault at {} did not answer: {error}", self.address))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // Vault's `errors` are messages of its own, never the token.
            let errors = body["errors"]
                .as_array()
                .map(|errors| errors.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
            bail!(
                "Vault answered {status}{}",
                errors.filter(|text| !text.is_empty()).map(|text| format!(": {text}")).unwrap_or_default()
            );
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_mount_path_and_key() {
        let location = Location::parse("X_VAULT", "secret/emporium/prod#mysql_url").unwrap();
        assert_eq!(
            location,
            Location { mount: "secret".into(), path: "emporium/prod".into(), key: "mysql_url".into() }
        );
        assert_eq!(location.to_string(), "secret/emporium/prod#mysql_url");
        for bad in ["secret/emporium", "secret#key", "secret/../sys#key", "secret/a b#key", "/#key", "secret/x#"] {
            assert!(Location::parse("X_VAULT", bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn no_vault_variable_means_no_vault() {
        let environment = Environment::new(vec![("EMPORIUM_VAULT_ADDR".into(), "http://127.0.0.1:1".into())]);
        assert!(read_secrets(&environment).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_vault_variable_without_an_address_is_an_error() {
        let environment = Environment::new(vec![("EMPORIUM_MYSQL_URL_VAULT".into(), "secret/e#mysql_url".into())]);
        let error = read_secrets(&environment).await.err().unwrap().to_string();
        assert!(error.contains("EMPORIUM_VAULT_ADDR"), "{error}");
    }
}
