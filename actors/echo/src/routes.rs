//! Public routes of the diagnostic echo service, for gateway tests and benchmarks:
//! `GET /api/v1/echo` (signed in), `GET /api/v1/echo/public`, `POST /api/v1/echo` (signed in,
//! JSON body) and `GET /api/v1/echo/admin` (admin).

use actix_web::{HttpResponse, web};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{AdminCaller, ApiResult, AuthenticatedCaller, RequestContext};
use emporium_cluster::routes_kit::{BearerSecurity, ask};
use emporium_contracts::ServiceError;
use emporium_contracts::echo::Echo;
use serde::Deserialize;
use utoipa::OpenApi;

/// Query and body of the echo routes.
#[derive(Debug, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EchoText {
    /// What to echo (at most 10,000 characters).
    pub text: String,
}

#[derive(OpenApi)]
#[openapi(paths(echo_signed_in, echo_public, echo_body, echo_admin), modifiers(&BearerSecurity))]
struct EchoApi;

/// The OpenAPI fragment of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    EchoApi::openapi()
}

/// Mounts the echo routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/echo", web::get().to(echo_signed_in))
        .route("/api/v1/echo", web::post().to(echo_body))
        .route("/api/v1/echo/public", web::get().to(echo_public))
        .route("/api/v1/echo/admin", web::get().to(echo_admin));
}

async fn ask_echo(cluster: &Cluster, context: &RequestContext, text: String) -> ApiResult<HttpResponse> {
    if text.chars().count() > 10_000 {
        return Err(ServiceError::invalid("text_too_long", "text is limited to 10,000 characters").into());
    }
    Ok(HttpResponse::Ok().json(ask(cluster, Echo { text }, context).await?))
}

/// Echo the text back (signed in).
#[utoipa::path(get, path = "/api/v1/echo", tag = "diagnostics", params(EchoText), security(("bearer" = [])),
    responses((status = 200, description = "The text and the node that answered"), (status = 401, description = "No or bad token")))]
async fn echo_signed_in(
    _caller: AuthenticatedCaller,
    context: RequestContext,
    query: web::Query<EchoText>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    ask_echo(&cluster, &context, query.into_inner().text).await
}

/// Echo the text back (public).
#[utoipa::path(get, path = "/api/v1/echo/public", tag = "diagnostics", params(EchoText),
    responses((status = 200, description = "The text and the node that answered")))]
async fn echo_public(
    context: RequestContext,
    query: web::Query<EchoText>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    ask_echo(&cluster, &context, query.into_inner().text).await
}

/// Echo the JSON body's text back (signed in).
#[utoipa::path(post, path = "/api/v1/echo", tag = "diagnostics", request_body = EchoText, security(("bearer" = [])),
    responses((status = 200, description = "The text and the node that answered"), (status = 400, description = "Malformed body")))]
async fn echo_body(
    _caller: AuthenticatedCaller,
    context: RequestContext,
    body: web::Json<EchoText>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    ask_echo(&cluster, &context, body.into_inner().text).await
}

/// An admin-only route.
#[utoipa::path(get, path = "/api/v1/echo/admin", tag = "diagnostics", security(("bearer" = [])),
    responses((status = 200, description = "The caller is an admin"), (status = 403, description = "Not an admin")))]
async fn echo_admin(admin: AdminCaller) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "userId": admin.0.user_id }))
}
