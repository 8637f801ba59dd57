//! The auth service's public HTTP routes, mounted by the gateway, and their OpenAPI document.
//!
//! Each handler turns the request into a message and asks the auth service through the
//! cluster (`cluster.service("auth")`), so the gateway works whether auth runs in its node or
//! another. The gateway has verified the access token (it puts the `Caller` on the request),
//! installed `edge::json_config` and set the request context.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{AdminCaller, ApiError, ApiResult, AuthenticatedCaller, RequestContext};
use emporium_cluster::routes_kit::{BearerSecurity, ErrorBody, ErrorDetail, ask};
use emporium_contracts::auth::{
    ClientInfo, DeleteUser, GetCurrentUser, GetJwks, Jwk, Jwks, LogIn, LogOut, LoginRequest, LogoutRequest,
    RefreshRequest, RefreshTokens, RegisterRequest, RegisterUser, RotateSigningKey, SigningKeyRotated, TokenPair,
    UserView,
};
use emporium_contracts::{ErrorKind, ServiceError};
use utoipa::OpenApi;

/// Mounts the auth routes: `POST /api/v1/auth/{register,login,refresh,logout}`,
/// `GET /api/v1/auth/me`, `GET /.well-known/jwks.json`, and for admins
/// `DELETE /api/v1/auth/users/{id}` and `POST /api/v1/auth/keys/rotate`. A known path asked
/// with another method answers 405 `method_not_allowed` as JSON.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str, allow: &'static str| {
        web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
    };
    cfg.service(resource("/api/v1/auth/register", "POST").route(web::post().to(register)))
        .service(resource("/api/v1/auth/login", "POST").route(web::post().to(login)))
        .service(resource("/api/v1/auth/refresh", "POST").route(web::post().to(refresh)))
        .service(resource("/api/v1/auth/logout", "POST").route(web::post().to(logout)))
        .service(resource("/api/v1/auth/me", "GET").route(web::get().to(me)))
        .service(resource("/api/v1/auth/users/{id}", "DELETE").route(web::delete().to(delete_user)))
        .service(resource("/api/v1/auth/keys/rotate", "POST").route(web::post().to(rotate_keys)))
        .service(resource("/.well-known/jwks.json", "GET").route(web::get().to(jwks)));
}

/// The OpenAPI fragment of the auth routes (with the `bearer` security scheme), generated from
/// the handlers; the gateway merges every service's fragment.
pub fn openapi() -> utoipa::openapi::OpenApi {
    AuthApi::openapi()
}

#[derive(OpenApi)]
#[openapi(
    paths(register, login, refresh, logout, me, jwks, delete_user, rotate_keys),
    components(schemas(
        RegisterRequest,
        LoginRequest,
        RefreshRequest,
        LogoutRequest,
        UserView,
        TokenPair,
        Jwk,
        Jwks,
        SigningKeyRotated,
        ErrorBody,
        ErrorDetail
    )),
    modifiers(&BearerSecurity),
    tags((name = "auth", description = "Accounts, sign-in, tokens and signing keys"))
)]
struct AuthApi;

fn client_of(context: &RequestContext) -> ClientInfo {
    ClientInfo { address: context.client_address.clone() }
}

/// Token answers must not be cached (RFC 6749 section 5.1).
fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

/// Create an account (role `customer`).
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    operation_id = "auth_register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account", body = UserView),
        (status = 400, description = "`invalid_username`, `invalid_email`, `invalid_full_name`, `weak_password`, \
            `malformed_json`, `invalid_body`", body = ErrorBody),
        (status = 409, description = "`username_taken` or `email_taken` (whatever the case)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 503, description = "`auth_store_unavailable`, `auth_unavailable`", body = ErrorBody),
    )
)]
async fn register(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let message = RegisterUser { request: body.into_inner(), client: client_of(&context) };
    let user = ask(&cluster, message, &context).await?;
    Ok(HttpResponse::Created().json(user))
}

/// Sign in with `email` (or `username`) and password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "auth_login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "An access token and a refresh token", body = TokenPair),
        (status = 400, description = "`invalid_login` (neither email nor username), `malformed_json`, `invalid_body`",
            body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, for an unknown account and a wrong password alike",
            body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failures for this account or address",
            body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds until a new attempt may succeed"))),
    )
)]
async fn login(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let message = LogIn { request: body.into_inner(), client: client_of(&context) };
    let pair = ask(&cluster, message, &context).await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(pair))
}

/// Exchange a refresh token for a new pair; the presented token stops working, and presenting
/// it again revokes every token of its sign-in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "auth_refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and refresh token", body = TokenPair),
        (status = 401, description = "`invalid_refresh_token`: unknown, expired, revoked or already used",
            body = ErrorBody),
    )
)]
async fn refresh(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let message = RefreshTokens { refresh_token: body.into_inner().refresh_token, client: client_of(&context) };
    let pair = ask(&cluster, message, &context).await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(pair))
}

/// Sign out: revokes the refresh token issued with this access token (or the one given in the
/// body, when it is the caller's). The access token itself expires on its own.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "auth_logout",
    tag = "auth",
    request_body(
        content = ref("#/components/schemas/LogoutRequest"),
        description = "Optional (no body, or a JSON object): the refresh token to revoke"
    ),
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "`malformed_json`, `invalid_body`", body = ErrorBody),
        (status = 401, description = "`missing_token` or an invalid access token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn logout(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    caller: AuthenticatedCaller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let request = read_optional_body::<LogoutRequest>(&body)?;
    let message = LogOut { caller: caller.0, refresh_token: request.refresh_token };
    ask(&cluster, message, &context).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in account.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    operation_id = "auth_me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller's account", body = UserView),
        (status = 401, description = "`missing_token`, an invalid access token, or `user_not_found` (deleted)",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn me(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    caller: AuthenticatedCaller,
) -> ApiResult<HttpResponse> {
    let user = ask(&cluster, GetCurrentUser { caller: caller.0 }, &context).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// The public keys that verify access tokens (RFC 7517; Ed25519 keys as `OKP`, RFC 8037).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "auth_jwks",
    tag = "auth",
    responses((status = 200, description = "Every key that may verify a token still valid", body = Jwks))
)]
async fn jwks(cluster: web::Data<Cluster>, context: RequestContext) -> ApiResult<HttpResponse> {
    let jwks = ask(&cluster, GetJwks::default(), &context).await?;
    let cache = CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(60)]);
    Ok(HttpResponse::Ok().insert_header(cache).json(jwks))
}

/// Delete an account (admin): its refresh tokens are revoked, and its access tokens stop
/// working at the gateway.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/users/{id}",
    operation_id = "auth_delete_user",
    tag = "auth",
    params(("id" = String, Path, description = "The account's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`missing_token` or an invalid access token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only admin account cannot be deleted", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delete_user(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    caller: AdminCaller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let message = DeleteUser { caller: caller.0, user_id: id.into_inner() };
    ask(&cluster, message, &context).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Start signing with a new key (admin); the previous key keeps verifying until the tokens it
/// signed have expired.
#[utoipa::path(
    post,
    path = "/api/v1/auth/keys/rotate",
    operation_id = "auth_rotate_keys",
    tag = "auth",
    responses(
        (status = 200, description = "The new key id and every key id still verifying", body = SigningKeyRotated),
        (status = 401, description = "`missing_token` or an invalid access token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 429, description = "`rotation_too_soon`: at most one rotation per `auth.key_rotation_min_interval_secs` (Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn rotate_keys(
    cluster: web::Data<Cluster>,
    context: RequestContext,
    caller: AdminCaller,
) -> ApiResult<HttpResponse> {
    let rotated = ask(&cluster, RotateSigningKey { caller: caller.0 }, &context).await?;
    Ok(HttpResponse::Ok().json(rotated))
}

async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let error =
        ServiceError::new(ErrorKind::InvalidInput, "method_not_allowed", format!("this path takes {allow} only"));
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, allow)).json(error.to_public_body())
}

/// An optional JSON body: empty means the default; anything else must be valid JSON of `T`.
fn read_optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !emporium_cluster::input_errors::is_json_object(body)
        && serde_json::from_slice::<serde_json::Value>(body).is_ok()
    {
        return Err(ApiError::from(ServiceError::invalid("invalid_body", "the body must be a JSON object")));
    }
    serde_json::from_slice(body).map_err(|error| {
        let (code, message) = emporium_cluster::input_errors::describe_json_error(&error);
        ApiError::from(ServiceError::invalid(code, message))
    })
}
