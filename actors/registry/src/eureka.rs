//! Eureka REST compatibility under `/eureka`: the part of Eureka's API that Eureka clients
//! (Spring Cloud Netflix, Prometheus's `eureka_sd_configs`, Go and Python clients) use.
//!
//! - `GET /eureka/apps` (and `/eureka/apps/delta`), `GET /eureka/apps/{app}`,
//!   `GET /eureka/apps/{app}/{id}`, `GET /eureka/instances/{id}`: the directory as Eureka
//!   `applications`, in XML (Eureka's default, what Prometheus reads) or JSON when the `Accept`
//!   header asks for it. Every Emporium instance is an instance of the application named after
//!   its service in capitals (`ORDER`), at its node's cluster listener.
//! - `POST /eureka/apps/{app}` (a JSON `{"instance": {...}}`), `PUT /eureka/apps/{app}/{id}`
//!   (heartbeat; 404 when unknown, so the client registers again), `DELETE
//!   /eureka/apps/{app}/{id}` (cancel), `PUT /eureka/apps/{app}/{id}/status?value=OUT_OF_SERVICE`
//!   and `DELETE .../status` (the operator's status override). An instance registered this way
//!   is an ordinary registry instance of service `{app}` in lower case, with the lease it asked
//!   for (`leaseInfo.durationInSecs`, 90 s when absent) and the metadata
//!   `registeredThrough = eureka`.
//!
//! Not served: delta computation (`/apps/delta` answers the whole directory; the client's
//! hash check then always agrees with the server's), the `/eureka/vips` and `/eureka/svips`
//! queries, XML request bodies, and metadata updates (`PUT .../metadata`).

use std::collections::BTreeMap;

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use emporium_contracts::registry::{Heartbeat, InstanceInfo, InstanceStatus, RegisterInstance};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config_store::is_valid_name;
use crate::error::RegistryError;
use crate::handle::Registry;
use crate::messages::{Deregister, ListInstances, OverrideStatus, Register, RenewLease};

pub use emporium_contracts::registry::REGISTERED_THROUGH_EUREKA as REGISTERED_THROUGH;

/// Eureka's lease when a client names none.
const DEFAULT_LEASE_SECS: u64 = 90;

/// Mounts the Eureka routes in a scope that already checks credentials.
pub(crate) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .service(web::resource("/apps").get(all_apps))
        .service(web::resource("/apps/delta").get(all_apps))
        .service(web::resource("/apps/{app}").get(one_app).post(register))
        .service(web::resource("/apps/{app}/{id}").get(one_instance).put(heartbeat).delete(cancel))
        .service(web::resource("/apps/{app}/{id}/status").put(override_status).delete(remove_override))
        .service(web::resource("/instances/{id}").get(instance_by_id))
}

// ---------------------------------------------------------------------------------------------
// Reads

async fn all_apps(registry: web::Data<Registry>, request: HttpRequest) -> Result<HttpResponse, RegistryError> {
    let instances = registry.addr.send(ListInstances { service: None }).await??;
    Ok(respond(&request, applications(&registry, &instances)))
}

async fn one_app(
    registry: web::Data<Registry>,
    request: HttpRequest,
    app: web::Path<String>,
) -> Result<HttpResponse, RegistryError> {
    let service = service_of(&app)?;
    let instances = registry.addr.send(ListInstances { service: Some(service) }).await??;
    if instances.is_empty() {
        return Err(RegistryError::UnknownInstance(format!("of application {app}")));
    }
    Ok(respond(&request, application(&registry, &app.to_ascii_uppercase(), &instances)))
}

async fn one_instance(
    registry: web::Data<Registry>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RegistryError> {
    let (app, id) = path.into_inner();
    let instances = registry.addr.send(ListInstances { service: Some(service_of(&app)?) }).await??;
    let info = instances.iter().find(|info| info.id == id).ok_or(RegistryError::UnknownInstance(id))?;
    Ok(respond(&request, instance(&registry, info)))
}

async fn instance_by_id(
    registry: web::Data<Registry>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, RegistryError> {
    let instances = registry.addr.send(ListInstances { service: None }).await??;
    let id = id.into_inner();
    let info = instances.iter().find(|info| info.id == id).ok_or(RegistryError::UnknownInstance(id))?;
    Ok(respond(&request, instance(&registry, info)))
}

/// JSON when the client's `Accept` names it, else XML (Eureka's default).
fn respond(request: &HttpRequest, document: Element) -> HttpResponse {
    let wants_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("json"));
    if wants_json {
        HttpResponse::Ok().json(document.to_json_document())
    } else {
        HttpResponse::Ok().insert_header((CONTENT_TYPE, "application/xml")).body(document.to_xml_document())
    }
}

/// `<applications>`: every instance, grouped by application, and the status hash code the
/// client checks its own copy against.
fn applications(registry: &Registry, instances: &[InstanceInfo]) -> Element {
    let mut by_app: BTreeMap<String, Vec<InstanceInfo>> = BTreeMap::new();
    let mut by_status: BTreeMap<&'static str, usize> = BTreeMap::new();
    for info in instances {
        by_app.entry(info.service.to_ascii_uppercase()).or_default().push(info.clone());
        *by_status.entry(status_name(info.status)).or_default() += 1;
    }
    let hash_code: String = by_status.iter().map(|(status, count)| format!("{status}_{count}_")).collect();
    let mut children = vec![Element::text("versions__delta", "1"), Element::text("apps__hashcode", hash_code)];
    children.extend(by_app.iter().map(|(app, instances)| application(registry, app, instances)));
    Element::parent("applications", children)
}

fn application(registry: &Registry, app: &str, instances: &[InstanceInfo]) -> Element {
    let mut children = vec![Element::text("name", app)];
    children.extend(instances.iter().map(|info| instance(registry, info)));
    Element::parent("application", children)
}

/// One instance as Eureka describes it.
fn instance(registry: &Registry, info: &InstanceInfo) -> Element {
    let terms = registry.settings.read().registry.clone();
    let (host, port) = split_address(&info.address);
    let base = format!("http://{}", info.address);
    let registered = info.registered_at.timestamp_millis();
    let renewed = info.last_heartbeat_at.timestamp_millis();
    let lease_millis = info.lease_millis.unwrap_or(terms.lease_millis);
    let metadata = info
        .metadata
        .iter()
        .filter(|(key, _)| is_xml_name(key))
        .map(|(key, value)| Element::text(key, value.as_str()))
        .collect();
    Element::parent(
        "instance",
        vec![
            Element::text("instanceId", info.id.as_str()),
            Element::text("hostName", host),
            Element::text("app", info.service.to_ascii_uppercase()),
            Element::text("ipAddr", host),
            Element::text("status", status_name(info.status)),
            Element::text("overriddenStatus", "UNKNOWN"),
            Element::number("port", i64::from(port)).with_attribute("enabled", "true"),
            Element::number("securePort", 443).with_attribute("enabled", "false"),
            Element::number("countryId", 1),
            Element::parent("dataCenterInfo", vec![Element::text("name", "MyOwn")])
                .with_attribute("class", "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"),
            Element::parent(
                "leaseInfo",
                vec![
                    Element::number("renewalIntervalInSecs", seconds_rounded_up(terms.heartbeat_millis)),
                    Element::number("durationInSecs", seconds_rounded_up(lease_millis)),
                    Element::number("registrationTimestamp", registered),
                    Element::number("lastRenewalTimestamp", renewed),
                    Element::number("evictionTimestamp", 0),
                    Element::number("serviceUpTimestamp", registered),
                ],
            ),
            Element::parent("metadata", metadata),
            Element::text("homePageUrl", format!("{base}/")),
            Element::text("statusPageUrl", format!("{base}/health/live")),
            Element::text("healthCheckUrl", format!("{base}/health/ready")),
            Element::text("vipAddress", info.service.as_str()),
            Element::text("secureVipAddress", info.service.as_str()),
            Element::text("isCoordinatingDiscoveryServer", "false"),
            Element::text("lastUpdatedTimestamp", renewed.to_string()),
            Element::text("lastDirtyTimestamp", renewed.to_string()),
            Element::text("actionType", "ADDED"),
        ],
    )
}

fn status_name(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::Starting => "STARTING",
        InstanceStatus::Up => "UP",
        InstanceStatus::Down => "DOWN",
        InstanceStatus::OutOfService => "OUT_OF_SERVICE",
    }
}

/// `host` and `port` of `host:port` (port 80 when there is none).
fn split_address(address: &str) -> (&str, u16) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(80)),
        None => (address, 80),
    }
}

fn seconds_rounded_up(millis: u64) -> i64 {
    millis.div_ceil(1000) as i64
}

/// Whether `name` can be an XML element name (metadata keys become elements).
fn is_xml_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

// ---------------------------------------------------------------------------------------------
// Writes

/// `{"instance": {...}}` as Eureka clients send it (the fields Emporium uses).
#[derive(Debug, Deserialize)]
struct RegistrationBody {
    instance: EurekaInstance,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EurekaInstance {
    instance_id: Option<String>,
    host_name: String,
    ip_addr: Option<String>,
    status: Option<String>,
    port: Option<EurekaPort>,
    secure_port: Option<EurekaPort>,
    lease_info: Option<EurekaLeaseInfo>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// `{"$": 8080, "@enabled": "true"}`: numbers and booleans may come as strings.
#[derive(Debug, Deserialize)]
struct EurekaPort {
    #[serde(rename = "$")]
    port: Value,
    #[serde(rename = "@enabled", default)]
    enabled: Option<Value>,
}

impl EurekaPort {
    /// The port when it is enabled (enabled unless it says `false`).
    fn enabled_port(&self) -> Option<u16> {
        let enabled = !matches!(&self.enabled, Some(Value::Bool(false)))
            && !matches!(&self.enabled, Some(Value::String(text)) if text == "false");
        let port = match &self.port {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        };
        port.filter(|port| enabled && (1..=65_535).contains(port)).map(|port| port as u16)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EurekaLeaseInfo {
    duration_in_secs: Option<u64>,
}

async fn register(
    registry: web::Data<Registry>,
    app: web::Path<String>,
    body: Bytes,
) -> Result<HttpResponse, RegistryError> {
    let body: RegistrationBody = serde_json::from_slice(&body).map_err(|error| {
        RegistryError::MalformedJson(format!("a Eureka registration is JSON {{\"instance\": {{...}}}}: {error}"))
    })?;
    let registration = registration_of(&app, body.instance)?;
    tracing::info!(instance_id = %registration.id, service = %registration.service, address = %registration.address, "instance registered through the Eureka API");
    registry.addr.send(Register(registration)).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// The registry's registration for a Eureka client's instance of `app`.
fn registration_of(app: &str, instance: EurekaInstance) -> Result<RegisterInstance, RegistryError> {
    let service = service_of(app)?;
    let port = instance
        .port
        .as_ref()
        .and_then(EurekaPort::enabled_port)
        .or_else(|| instance.secure_port.as_ref().and_then(EurekaPort::enabled_port))
        .ok_or_else(|| RegistryError::InvalidInstance("the instance enables no port (port or securePort)".into()))?;
    let host = instance.ip_addr.filter(|ip| !ip.trim().is_empty()).unwrap_or(instance.host_name);
    let id =
        instance.instance_id.filter(|id| !id.trim().is_empty()).unwrap_or_else(|| format!("{host}:{service}:{port}"));
    let status = match instance.status.as_deref().unwrap_or("UP") {
        "UP" => InstanceStatus::Up,
        "DOWN" => InstanceStatus::Down,
        "OUT_OF_SERVICE" => InstanceStatus::OutOfService,
        _ => InstanceStatus::Starting,
    };
    let lease_secs = instance.lease_info.and_then(|lease| lease.duration_in_secs).unwrap_or(DEFAULT_LEASE_SECS);
    let mut metadata: BTreeMap<String, String> = instance
        .metadata
        .into_iter()
        .filter(|(key, _)| !key.starts_with('@'))
        .map(|(key, value)| (key, value.as_str().map_or_else(|| value.to_string(), str::to_string)))
        .collect();
    metadata.insert(REGISTERED_THROUGH.0.to_string(), REGISTERED_THROUGH.1.to_string());
    Ok(RegisterInstance {
        node_id: id.clone(),
        id,
        service,
        address: format!("{host}:{port}"),
        status,
        roles: Vec::new(),
        version: String::new(),
        metadata,
        lease_millis: Some(lease_secs.saturating_mul(1000)),
    })
}

#[derive(Debug, Deserialize)]
struct HeartbeatQuery {
    status: Option<String>,
}

async fn heartbeat(
    registry: web::Data<Registry>,
    path: web::Path<(String, String)>,
    query: web::Query<HeartbeatQuery>,
) -> Result<HttpResponse, RegistryError> {
    let (app, id) = path.into_inner();
    service_of(&app)?;
    let status = match query.status.as_deref() {
        Some("UP") => Some(InstanceStatus::Up),
        Some("DOWN") => Some(InstanceStatus::Down),
        Some("STARTING") => Some(InstanceStatus::Starting),
        _ => None,
    };
    registry.addr.send(RenewLease { instance_id: id, heartbeat: Heartbeat { status, config_version: None } }).await??;
    Ok(HttpResponse::Ok().finish())
}

async fn cancel(
    registry: web::Data<Registry>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RegistryError> {
    let (app, id) = path.into_inner();
    service_of(&app)?;
    registry.addr.send(Deregister { instance_id: id }).await??;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    value: Option<String>,
}

async fn override_status(
    registry: web::Data<Registry>,
    path: web::Path<(String, String)>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, RegistryError> {
    let (app, id) = path.into_inner();
    service_of(&app)?;
    let status = match query.value.as_deref() {
        Some("OUT_OF_SERVICE") => InstanceStatus::OutOfService,
        Some("UP") => InstanceStatus::Up,
        other => {
            return Err(RegistryError::InvalidQuery(format!(
                "value must be OUT_OF_SERVICE or UP (the overrides Emporium keeps), not {other:?}"
            )));
        }
    };
    registry.addr.send(OverrideStatus { instance_id: id, status }).await??;
    Ok(HttpResponse::Ok().finish())
}

async fn remove_override(
    registry: web::Data<Registry>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RegistryError> {
    let (app, id) = path.into_inner();
    service_of(&app)?;
    registry.addr.send(OverrideStatus { instance_id: id, status: InstanceStatus::Up }).await??;
    Ok(HttpResponse::Ok().finish())
}

/// The registry service of the Eureka application `app` (`ORDER` -> `order`).
fn service_of(app: &str) -> Result<String, RegistryError> {
    let service = app.to_ascii_lowercase();
    if !is_valid_name(&service) {
        return Err(RegistryError::InvalidName(format!(
            "application {app:?} must be a service name: ^[a-z][a-z0-9-]{{0,62}}$ in any case"
        )));
    }
    Ok(service)
}

// ---------------------------------------------------------------------------------------------
// Eureka's documents, written as XML or as the JSON Eureka's Jackson codec produces

/// One element of a Eureka document.
#[derive(Debug, Clone, PartialEq)]
struct Element {
    name: String,
    attributes: Vec<(&'static str, String)>,
    body: Body,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Text(String),
    Number(i64),
    Children(Vec<Element>),
}

/// Elements that repeat: a JSON array even when there is one.
const REPEATED: [&str; 2] = ["application", "instance"];

impl Element {
    fn text(name: &str, text: impl Into<String>) -> Element {
        Element { name: name.to_string(), attributes: Vec::new(), body: Body::Text(text.into()) }
    }

    fn number(name: &str, number: i64) -> Element {
        Element { name: name.to_string(), attributes: Vec::new(), body: Body::Number(number) }
    }

    fn parent(name: &str, children: Vec<Element>) -> Element {
        Element { name: name.to_string(), attributes: Vec::new(), body: Body::Children(children) }
    }

    fn with_attribute(mut self, name: &'static str, value: &str) -> Element {
        self.attributes.push((name, value.to_string()));
        self
    }

    fn to_xml_document(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        self.write_xml(&mut out);
        out
    }

    fn write_xml(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (name, value) in &self.attributes {
            out.push_str(&format!(" {name}=\"{}\"", escape_xml(value)));
        }
        out.push('>');
        match &self.body {
            Body::Text(text) => out.push_str(&escape_xml(text)),
            Body::Number(number) => out.push_str(&number.to_string()),
            Body::Children(children) => children.iter().for_each(|child| child.write_xml(out)),
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    /// `{"<name>": <value>}`.
    fn to_json_document(&self) -> Value {
        Value::Object(Map::from_iter([(self.name.clone(), self.to_json())]))
    }

    /// Attributes become `@name`; a leaf with attributes keeps its value under `$`.
    fn to_json(&self) -> Value {
        let leaf = match &self.body {
            Body::Text(text) => Some(Value::String(text.clone())),
            Body::Number(number) => Some(Value::from(*number)),
            Body::Children(_) => None,
        };
        let mut object = Map::new();
        if let Some(leaf) = leaf {
            if self.attributes.is_empty() {
                return leaf;
            }
            object.insert("$".to_string(), leaf);
        }
        for (name, value) in &self.attributes {
            object.insert(format!("@{name}"), Value::String(value.clone()));
        }
        if let Body::Children(children) = &self.body {
            for child in children {
                if REPEATED.contains(&child.name.as_str()) {
                    let list = object.entry(child.name.clone()).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(items) = list {
                        items.push(child.to_json());
                    }
                } else {
                    object.insert(child.name.clone(), child.to_json());
                }
            }
        }
        Value::Object(object)
    }
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            character if (character as u32) < 0x20 && !matches!(character, '\t' | '\n' | '\r') => {}
            character => out.push(character),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eureka_instance(body: Value) -> EurekaInstance {
        serde_json::from_value::<RegistrationBody>(body).unwrap().instance
    }

    #[test]
    fn a_spring_registration_becomes_a_registry_instance() {
        let instance = eureka_instance(json!({"instance": {
            "instanceId": "10.0.0.7:billing:8080", "hostName": "billing.local", "app": "BILLING",
            "ipAddr": "10.0.0.7", "status": "UP", "overriddenStatus": "UNKNOWN",
            "port": {"$": 8080, "@enabled": "true"}, "securePort": {"$": 443, "@enabled": "false"},
            "countryId": 1,
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
            "metadata": {"@class": "java.util.Collections$EmptyMap", "zone": "a", "weight": 3},
            "vipAddress": "billing"
        }}));
        let registration = registration_of("BILLING", instance).unwrap();
        assert_eq!(registration.id, "10.0.0.7:billing:8080");
        assert_eq!(registration.service, "billing");
        assert_eq!(registration.address, "10.0.0.7:8080");
        assert_eq!(registration.status, InstanceStatus::Up);
        assert_eq!(registration.lease_millis, Some(90_000));
        assert_eq!(registration.metadata.get("zone").map(String::as_str), Some("a"));
        assert_eq!(registration.metadata.get("weight").map(String::as_str), Some("3"));
        assert_eq!(registration.metadata.get("registeredThrough").map(String::as_str), Some("eureka"));
        assert!(!registration.metadata.contains_key("@class"));
    }

    #[test]
    fn a_registration_without_an_id_or_an_open_port_is_handled() {
        let minimal = eureka_instance(json!({"instance": {"hostName": "h", "port": {"$": "9000"}}}));
        let registration = registration_of("svc", minimal).unwrap();
        assert_eq!((registration.id.as_str(), registration.address.as_str()), ("h:svc:9000", "h:9000"));
        let closed = eureka_instance(json!({"instance": {"hostName": "h", "port": {"$": 9000, "@enabled": "false"}}}));
        assert!(matches!(registration_of("svc", closed), Err(RegistryError::InvalidInstance(_))));
        let secure_only = eureka_instance(json!({"instance": {"hostName": "h",
            "port": {"$": 80, "@enabled": false}, "securePort": {"$": 8443, "@enabled": "true"}}}));
        assert_eq!(registration_of("svc", secure_only).unwrap().address, "h:8443");
        let any = eureka_instance(json!({"instance": {"hostName": "h", "port": {"$": 1}}}));
        assert!(matches!(registration_of("my_app", any), Err(RegistryError::InvalidName(_))));
    }

    #[test]
    fn documents_have_eurekas_xml_and_json_shapes() {
        let document = Element::parent(
            "applications",
            vec![
                Element::text("apps__hashcode", "UP_1_"),
                Element::parent(
                    "application",
                    vec![
                        Element::text("name", "ORDER"),
                        Element::parent(
                            "instance",
                            vec![
                                Element::number("port", 8080).with_attribute("enabled", "true"),
                                Element::parent("metadata", vec![Element::text("note", "a<b & \"c\"")]),
                            ],
                        ),
                    ],
                ),
            ],
        );
        assert_eq!(
            document.to_json_document(),
            json!({"applications": {"apps__hashcode": "UP_1_", "application": [{"name": "ORDER",
                "instance": [{"port": {"$": 8080, "@enabled": "true"}, "metadata": {"note": "a<b & \"c\""}}]}]}})
        );
        assert_eq!(
            document.to_xml_document(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<applications><apps__hashcode>UP_1_</apps__hashcode>\
             <application><name>ORDER</name><instance><port enabled=\"true\">8080</port>\
             <metadata><note>a&lt;b &amp; &quot;c&quot;</note></metadata></instance></application></applications>"
        );
    }

    #[test]
    fn metadata_keys_that_cannot_be_xml_names_are_left_out() {
        assert!(is_xml_name("management.port") && is_xml_name("zone") && is_xml_name("_x"));
        assert!(!is_xml_name("1st") && !is_xml_name("a b") && !is_xml_name("") && !is_xml_name("xmlns"));
        assert_eq!(split_address("10.0.0.1:8080"), ("10.0.0.1", 8080));
        assert_eq!(split_address("host"), ("host", 80));
    }
}
