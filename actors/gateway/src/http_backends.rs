//! HTTP routes to services outside Emporium: a Spring Boot (or any HTTP) service registered
//! through the registry's Eureka API is reached through the gateway by its service name, as
//! Spring Cloud Gateway's `lb://billing` routes do.
//!
//! `[gateway.http_routes.<name>]` maps a public path prefix to a registry service. The gateway
//! checks the caller as the route says (`public`, `signed_in`, `admin`), picks an UP instance of
//! the service in turn, and forwards the request (method, path, query, headers but hop-by-hop
//! ones, body) with `x-request-id`, `traceparent` and `x-forwarded-*`; the answer comes back as
//! the service gave it. No UP instance: 503 `no_instance`; an instance that refuses the
//! connection is set aside and the next one tried once; no answer in the request's time budget:
//! 504 `upstream_timeout`; anything else: 502 `bad_gateway`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use emporium_cluster::Cluster;
use emporium_cluster::edge::{ApiError, RequestContext, request_error_response};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::registry::{InstanceInfo, InstanceStatus};
use emporium_contracts::{ErrorKind, ServiceError};

use crate::settings::{HttpRoute, RouteAccess};

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The largest answer relayed from a backend.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One configured route and what it needs at run time.
struct Backend {
    name: String,
    route: HttpRoute,
    cluster: Cluster,
    http: reqwest::Client,
    next: AtomicUsize,
    timeout: Duration,
}

/// Mounts every route of `routes` on the gateway's app.
pub fn configure(config: &mut web::ServiceConfig, backends: &[Arc<BackendRoute>]) {
    for backend in backends {
        let prefix = backend.0.route.prefix.clone();
        let data = web::Data::from(backend.clone());
        config.service(web::resource(prefix.clone()).app_data(data.clone()).to(forward));
        config.service(web::resource(format!("{prefix}/{{rest:.*}}")).app_data(data).to(forward));
    }
}

/// A route, shared by the gateway's workers.
pub struct BackendRoute(Backend);

impl BackendRoute {
    /// Every configured route, ready to mount; `timeout` is the gateway's request budget.
    pub fn all(
        routes: &std::collections::BTreeMap<String, HttpRoute>,
        cluster: &Cluster,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Arc<BackendRoute>>> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).build()?;
        Ok(routes
            .iter()
            .map(|(name, route)| {
                tracing::info!(route = %name, prefix = %route.prefix, service = %route.service, "HTTP route to a registered service");
                Arc::new(BackendRoute(Backend {
                    name: name.clone(),
                    route: route.clone(),
                    cluster: cluster.clone(),
                    http: http.clone(),
                    next: AtomicUsize::new(0),
                    timeout,
                }))
            })
            .collect())
    }
}

async fn forward(
    backend: web::Data<BackendRoute>,
    request: HttpRequest,
    context: RequestContext,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let backend = &backend.0;
    check_access(backend.route.access, request.extensions().get::<Caller>())
        .map_err(|error| ApiError::for_request(error, &context))?;
    let mut instances = backend.up_instances();
    if instances.is_empty() {
        let error = ServiceError::new(
            ErrorKind::Unavailable,
            "no_instance",
            format!("no instance of {} is UP in the registry", backend.route.service),
        );
        return Err(ApiError::for_request(error, &context));
    }
    let first = backend.next.fetch_add(1, Ordering::Relaxed) % instances.len();
    instances.rotate_left(first);
    let mut last_error = None;
    for instance in instances.iter().take(2) {
        match backend.send(instance, &request, &context, body.clone()).await {
            Ok(response) => return Ok(response),
            Err(Failure::Refused(message)) => {
                backend.cluster.directory().set_aside(&instance.id);
                last_error = Some(ServiceError::new(ErrorKind::Unavailable, "bad_gateway", message));
            }
            Err(Failure::Other(error)) if error.code == "bad_gateway" => return Ok(bad_gateway(&error, &context)),
            Err(Failure::Other(error)) => return Err(ApiError::for_request(error, &context)),
        }
    }
    let error = last_error.unwrap_or_else(|| ServiceError::new(ErrorKind::Unavailable, "bad_gateway", "no answer"));
    Ok(bad_gateway(&error, &context))
}

/// 502 with the error envelope: the backend was reached and failed, or could not be reached.
fn bad_gateway(error: &ServiceError, context: &RequestContext) -> HttpResponse {
    let request_id = (!context.request_id.is_empty()).then_some(context.request_id.as_str());
    let mut response = request_error_response(error, request_id);
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

fn check_access(access: RouteAccess, caller: Option<&Caller>) -> Result<(), ServiceError> {
    let missing = || {
        ServiceError::new(
            ErrorKind::Unauthenticated,
            "missing_token",
            "sign in first: send Authorization: Bearer <access token>",
        )
    };
    match (access, caller) {
        (RouteAccess::Public, _) => Ok(()),
        (_, None) => Err(missing()),
        (RouteAccess::SignedIn, Some(_)) => Ok(()),
        (RouteAccess::Admin, Some(caller)) if caller.has_role(Role::Admin) => Ok(()),
        (RouteAccess::Admin, Some(_)) => {
            Err(ServiceError::new(ErrorKind::Forbidden, "forbidden", "this route needs the admin role"))
        }
    }
}

enum Failure {
    /// The instance could not be reached: another may be tried.
    Refused(String),
    /// An answer to give the caller as it is.
    Other(ServiceError),
}

impl Backend {
    fn up_instances(&self) -> Vec<InstanceInfo> {
        let mut instances: Vec<InstanceInfo> = self
            .cluster
            .directory()
            .instances()
            .into_iter()
            .filter(|instance| instance.service == self.route.service && instance.status == InstanceStatus::Up)
            .collect();
        instances.sort_by(|left, right| left.id.cmp(&right.id));
        instances
    }

    async fn send(
        &self,
        instance: &InstanceInfo,
        request: &HttpRequest,
        context: &RequestContext,
        body: Bytes,
    ) -> Result<HttpResponse, Failure> {
        let path = request.path();
        let forwarded_path = match self.route.strip_prefix {
            true => match &path[self.route.prefix.len()..] {
                "" => "/",
                rest => rest,
            },
            false => path,
        };
        let query = request.query_string();
        let url = if query.is_empty() {
            format!("http://{}{forwarded_path}", instance.address)
        } else {
            format!("http://{}{forwarded_path}?{query}", instance.address)
        };
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
            .map_err(|_| Failure::Other(ServiceError::invalid("bad_method", "unsupported method")))?;
        let mut outgoing = self.http.request(method, &url).body(body);
        for (name, value) in request.headers() {
            if HOP_BY_HOP.contains(&name.as_str()) || name.as_str().starts_with("x-forwarded-") {
                continue;
            }
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        if let Some(host) = request.headers().get(actix_web::http::header::HOST) {
            outgoing = outgoing.header("x-forwarded-host", host.as_bytes());
        }
        if let Some(client) = &context.client_address {
            outgoing = outgoing.header("x-forwarded-for", client.as_str());
        }
        outgoing = outgoing.header("x-forwarded-proto", request.connection_info().scheme().to_string());
        if self.route.strip_prefix {
            outgoing = outgoing.header("x-forwarded-prefix", self.route.prefix.as_str());
        }
        if !context.request_id.is_empty() {
            outgoing = outgoing.header("x-request-id", context.request_id.as_str());
        }
        if let Some(trace) = &context.trace {
            outgoing = outgoing.header("traceparent", trace.to_string());
        }
        let budget = context
            .deadline
            .map_or(self.timeout, |deadline| deadline.saturating_duration_since(std::time::Instant::now()));
        let answer = tokio::time::timeout(budget, async {
            let response = outgoing.send().await.map_err(Upstream::Http)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_limited(response).await?;
            Ok::<_, Upstream>((status, headers, body))
        })
        .await;
        let (status, headers, body) = match answer {
            Err(_) => {
                let message = format!("{} did not answer within {budget:?}", self.route.service);
                return Err(Failure::Other(ServiceError::new(ErrorKind::Timeout, "upstream_timeout", message)));
            }
            Ok(Err(Upstream::Http(error))) if error.is_connect() => {
                tracing::warn!(route = %self.name, instance = %instance.id, error = %error, "HTTP backend unreachable");
                return Err(Failure::Refused(format!("{} at {} is unreachable", instance.id, instance.address)));
            }
            Ok(Err(failure)) => {
                let message = match failure {
                    Upstream::Http(error) => format!("{} failed: {error}", instance.id),
                    Upstream::TooLarge => format!("{} answered more than {MAX_ANSWER_BYTES} bytes", instance.id),
                };
                tracing::warn!(route = %self.name, instance = %instance.id, error = %message, "HTTP backend failed");
                return Err(Failure::Other(ServiceError::new(ErrorKind::Unavailable, "bad_gateway", message)));
            }
            Ok(Ok(answer)) => answer,
        };
        let mut response =
            HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
        for (name, value) in &headers {
            if HOP_BY_HOP.contains(&name.as_str()) || name.as_str() == "content-length" {
                continue;
            }
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
            {
                response.append_header((name, value));
            }
        }
        if request.method() == Method::HEAD {
            return Ok(response.finish());
        }
        Ok(response.body(body))
    }
}

/// Why a backend gave no usable answer.
enum Upstream {
    Http(reqwest::Error),
    TooLarge,
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, Upstream> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(Upstream::Http)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Upstream::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[Role]) -> Caller {
        Caller { user_id: "u".into(), roles: roles.to_vec(), token_id: "t".into() }
    }

    #[test]
    fn access_follows_the_route() {
        assert!(check_access(RouteAccess::Public, None).is_ok());
        assert_eq!(check_access(RouteAccess::SignedIn, None).unwrap_err().code, "missing_token");
        assert!(check_access(RouteAccess::SignedIn, Some(&caller(&[Role::Customer]))).is_ok());
        assert_eq!(check_access(RouteAccess::Admin, Some(&caller(&[Role::Customer]))).unwrap_err().code, "forbidden");
        assert!(check_access(RouteAccess::Admin, Some(&caller(&[Role::Admin]))).is_ok());
    }
}
