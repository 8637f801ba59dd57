//! The order service's public routes (API.md section 4, Orders); signed in; a customer sees
//! only their own orders (404 for others'), an admin sees all.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{ApiResult, AuthenticatedCaller, RequestContext};
use emporium_contracts::order::{
    CancelOrder, GetOrder, ListOrders, OrderItemRequest, OrderItemView, OrderStatus, OrderView, PaymentRequest,
    PlaceOrder, PlaceOrderRequest, SERVICE,
};
use emporium_contracts::page::{Page, PageRequest};
use emporium_contracts::{Request, ServiceError};
use serde::Deserialize;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(place_order, get_order, list_orders, cancel_order),
    components(schemas(OrderView, OrderItemView, OrderStatus, PlaceOrderRequest, OrderItemRequest, PaymentRequest))
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

async fn ask<M: Request>(cluster: &Cluster, context: &RequestContext, message: M) -> Result<M::Reply, ServiceError> {
    cluster.service(SERVICE).ask_with(message, context.call_meta()).await.map_err(|error| {
        if error.is_transient() && error.code.starts_with("order") {
            ServiceError::unavailable("order_unavailable", error.message)
        } else {
            error
        }
    })
}

/// Place an order. The same `Idempotency-Key` with the same body answers the same order;
/// with another body, 422.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 128 characters")),
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
        ask(&cluster, &context, PlaceOrder { caller: caller.0, idempotency_key, request: body.into_inner() }).await?;
    let mut response = HttpResponse::build(StatusCode::CREATED);
    response.insert_header(("location", format!("/api/v1/orders/{}", placed.order.id)));
    if placed.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.json(placed.order))
}

/// One order.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = OrderView), (status = 404, description = "Not found or not yours")))]
async fn get_order(
    caller: AuthenticatedCaller,
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ask(&cluster, &context, GetOrder { caller: caller.0, id: id.into_inner() }).await?))
}

/// Cancel an order that is not confirmed yet; its stock goes back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 404, description = "Not found or not yours"),
        (status = 409, description = "Already confirmed")))]
async fn cancel_order(
    caller: AuthenticatedCaller,
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ask(&cluster, &context, CancelOrder { caller: caller.0, id: id.into_inner() }).await?))
}

/// Query of the order list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `PENDING_PAYMENT`, `CONFIRMED` or `CANCELLED`.
    pub status: Option<String>,
    /// Placed at or after: RFC 3339 or `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Placed before: RFC 3339 or `YYYY-MM-DD`.
    pub to: Option<String>,
    /// Page, from 0.
    pub page: Option<i64>,
    /// Page size, 1 to 100.
    pub size: Option<i64>,
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
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<OrderView>), (status = 400, description = "Bad filter or paging")))]
async fn list_orders(
    caller: AuthenticatedCaller,
    context: RequestContext,
    query: web::Query<ListQuery>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let query = query.into_inner();
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            ServiceError::invalid("invalid_query", "status is PENDING_PAYMENT, CONFIRMED or CANCELLED")
        })?),
    };
    let from = query.from.as_deref().map(|text| parse_instant("from", text)).transpose()?;
    let to = query.to.as_deref().map(|text| parse_instant("to", text)).transpose()?;
    let page = PageRequest::new(query.page, query.size)?;
    let message = ListOrders { caller: caller.0, status, from, to, page };
    Ok(HttpResponse::Ok().json(ask(&cluster, &context, message).await?))
}
