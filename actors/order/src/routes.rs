//! The order service's public routes (API.md section 4, Orders); signed in; a customer sees
//! only their own orders (404 for others'), an admin sees all.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{ApiError, ApiResult, AuthenticatedCaller, RequestContext};
use emporium_cluster::routes_kit::{self, BearerSecurity, ListQuery, PageQuery};
use emporium_contracts::order::{
    CancelOrder, GetOrder, ListOrders, OrderItemRequest, OrderItemView, OrderStatus, OrderView, PaymentRequest,
    PlaceOrder, PlaceOrderRequest,
};
use emporium_contracts::page::Page;
use emporium_contracts::{Request, ServiceError};
use serde::Deserialize;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(place_order, get_order, list_orders, cancel_order),
    components(schemas(OrderView, OrderItemView, OrderStatus, PlaceOrderRequest, OrderItemRequest, PaymentRequest)),
    modifiers(&BearerSecurity)
)]
struct OrderApi;

/// The OpenAPI fragment of the order routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OrderApi::openapi()
}

/// Mounts the order routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/orders", web::post().to(place_order))
        .route("/api/v1/orders", web::get().to(list_orders))
        .route("/api/v1/orders/{id}", web::get().to(get_order))
        .route("/api/v1/orders/{id}/cancel", web::post().to(cancel_order));
}

/// Asks the order service ([`routes_kit::ask`]); when the order service itself is unavailable
/// (no instance, its store), the client sees 503 `order_unavailable`, whichever part failed.
async fn ask<M: Request>(cluster: &Cluster, message: M, context: &RequestContext) -> Result<M::Reply, ApiError> {
    routes_kit::ask(cluster, message, context).await.map_err(|mut refusal| {
        if refusal.error.is_transient() && refusal.error.code.starts_with("order") {
            refusal.error = ServiceError::unavailable("order_unavailable", refusal.error.message.clone());
        }
        refusal
    })
}

/// Place an order. The same `Idempotency-Key` with the same body answers the same order;
/// with another body, 422.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 128 visible ASCII characters",
        nullable = false, min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = OrderView, description = "Placed (also the answer to a repeated request)"),
        (status = 400, description = "Bad items, quantities or currency"),
        (status = 409, description = "out_of_stock, with the failing lines"),
        (status = 422, description = "unknown_sku, currency_mismatch or idempotency_key_reused"),
        (status = 503, description = "inventory_unavailable or catalog_unavailable, with Retry-After"),
    ))]
async fn place_order(
    caller: AuthenticatedCaller,
    context: RequestContext,
    request: HttpRequest,
    body: web::Json<PlaceOrderRequest>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let idempotency_key = match request.headers().get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ServiceError::invalid("invalid_idempotency_key", "the Idempotency-Key must be visible ASCII")
                })?
                .to_string(),
        ),
        None => None,
    };
    let placed =
        ask(&cluster, PlaceOrder { caller: caller.0, idempotency_key, request: body.into_inner() }, &context).await?;
    let mut response = HttpResponse::build(StatusCode::CREATED);
    response.insert_header(("location", format!("/api/v1/orders/{}", placed.order.id)));
    if placed.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.json(placed.order))
}

/// One order.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The order", body = OrderView), (status = 404, description = "Not found or not yours")))]
async fn get_order(
    caller: AuthenticatedCaller,
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ask(&cluster, GetOrder { caller: caller.0, id: id.into_inner() }, &context).await?))
}

/// Cancel an order that is not confirmed yet; its stock goes back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The order", body = OrderView), (status = 404, description = "Not found or not yours"),
        (status = 409, description = "Already confirmed")))]
async fn cancel_order(
    caller: AuthenticatedCaller,
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ask(&cluster, CancelOrder { caller: caller.0, id: id.into_inner() }, &context).await?))
}

/// Filter of the order list (its page: [`PageQuery`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// `PENDING_PAYMENT`, `CONFIRMED` or `CANCELLED`.
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    /// Placed at or after: RFC 3339 (documented) or `YYYY-MM-DD` (also taken).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Placed before: RFC 3339 (documented) or `YYYY-MM-DD` (also taken).
    #[param(format = DateTime)]
    pub to: Option<String>,
}

fn parse_instant(name: &str, text: &str) -> Result<DateTime<Utc>, ServiceError> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
        .ok_or_else(|| ServiceError::invalid("invalid_query", format!("{name} must be RFC 3339 or YYYY-MM-DD")))
}

/// A page of orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(PageQuery, OrderListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of orders", body = Page<OrderView>), (status = 400, description = "Bad filter or paging")))]
async fn list_orders(
    caller: AuthenticatedCaller,
    context: RequestContext,
    query: ListQuery<OrderListQuery>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let ListQuery { page, filter: query } = query;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            ServiceError::invalid("invalid_query", "status is PENDING_PAYMENT, CONFIRMED or CANCELLED")
        })?),
    };
    let from = query.from.as_deref().map(|text| parse_instant("from", text)).transpose()?;
    let to = query.to.as_deref().map(|text| parse_instant("to", text)).transpose()?;
    let message = ListOrders { caller: caller.0, status, from, to, page };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}
