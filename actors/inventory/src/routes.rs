//! The inventory's public routes (API.md section 4): reads for any signed-in user, writes for
//! admins. Each handler turns the request into a message to the inventory service, wherever it
//! runs.

use actix_web::{HttpRequest, HttpResponse, web};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{AdminCaller, ApiResult, AuthenticatedCaller, RequestContext};
use emporium_cluster::routes_kit::{BearerSecurity, ListQuery, PageQuery, ask};
use emporium_contracts::inventory::{
    AdjustStock, AdjustStockRequest, Availability, CheckAvailability, GetStock, ListStock, SetStock, SetStockRequest,
    StockView,
};
use emporium_contracts::page::Page;
use emporium_contracts::product::GetProducts;
use emporium_contracts::{ErrorKind, ServiceError};
use serde::Deserialize;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(set_stock, adjust_stock, get_stock, list_stock, availability),
    components(schemas(StockView, Availability, SetStockRequest, AdjustStockRequest)),
    modifiers(&BearerSecurity)
)]
struct InventoryApi;

/// The OpenAPI fragment of the inventory routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    InventoryApi::openapi()
}

/// Mounts the inventory routes (availability before `{sku}`, so it is not taken for a SKU).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/inventory/availability", web::get().to(availability))
        .route("/api/v1/inventory", web::get().to(list_stock))
        .route("/api/v1/inventory/{sku}", web::get().to(get_stock))
        .route("/api/v1/inventory/{sku}", web::put().to(set_stock))
        .route("/api/v1/inventory/{sku}/adjust", web::post().to(adjust_stock));
}

/// Set a SKU's stock (admin). Only for a SKU the catalog knows: stock of a product nobody can
/// order would be a typo nobody sees (422 `unknown_sku`; 503 while the catalog is away).
#[utoipa::path(put, path = "/api/v1/inventory/{sku}", tag = "inventory", request_body = SetStockRequest,
    params(("sku" = String, Path, description = "The SKU (1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or a digit)",
        min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")), security(("bearer" = [])),
    responses((status = 200, description = "The stock of the SKU", body = StockView), (status = 400, description = "Invalid values"),
        (status = 401, description = "No or bad token"), (status = 403, description = "Not an admin"),
        (status = 422, description = "No product has this SKU (unknown_sku)"),
        (status = 503, description = "The catalog or the inventory is unavailable")))]
async fn set_stock(
    admin: AdminCaller,
    context: RequestContext,
    sku: web::Path<String>,
    body: web::Json<SetStockRequest>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let sku = sku.into_inner();
    let known = ask(&cluster, GetProducts { skus: vec![sku.clone()] }, &context).await?;
    if !known.found.iter().any(|product| product.sku == sku) {
        let message = format!("no product has the SKU {sku:?}; create it in the catalog first");
        return Err(ServiceError::new(ErrorKind::Unprocessable, "unknown_sku", message).into());
    }
    let message = SetStock { caller: admin.0, sku, request: body.into_inner() };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

/// Add or remove units of a SKU with a reason (admin); never below zero.
#[utoipa::path(post, path = "/api/v1/inventory/{sku}/adjust", tag = "inventory", request_body = AdjustStockRequest,
    params(("sku" = String, Path, description = "The SKU (1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or a digit)",
        min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")), security(("bearer" = [])),
    responses((status = 200, description = "The stock of the SKU", body = StockView), (status = 404, description = "Unknown SKU"),
        (status = 409, description = "Would go below zero (insufficient_stock)"), (status = 403, description = "Not an admin")))]
async fn adjust_stock(
    admin: AdminCaller,
    context: RequestContext,
    sku: web::Path<String>,
    body: web::Json<AdjustStockRequest>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = AdjustStock { caller: admin.0, sku: sku.into_inner(), request: body.into_inner() };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

/// One SKU's stock.
#[utoipa::path(get, path = "/api/v1/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path, description = "The SKU (1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or a digit)",
        min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")), security(("bearer" = [])),
    responses((status = 200, description = "The stock of the SKU", body = StockView), (status = 404, description = "Unknown SKU")))]
async fn get_stock(
    _caller: AuthenticatedCaller,
    context: RequestContext,
    sku: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ask(&cluster, GetStock { sku: sku.into_inner() }, &context).await?))
}

/// Filter of the stock list (its page: [`PageQuery`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StockListQuery {
    /// Only SKUs at or below their reorder level (true) or above it (false).
    pub reorder_needed: Option<bool>,
}

/// A page of stock.
#[utoipa::path(get, path = "/api/v1/inventory", tag = "inventory", params(PageQuery, StockListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of stock levels", body = Page<StockView>), (status = 400, description = "Bad paging")))]
async fn list_stock(
    _caller: AuthenticatedCaller,
    context: RequestContext,
    query: ListQuery<StockListQuery>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = ListStock { reorder_needed: query.filter.reorder_needed, page: query.page };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

/// Availability of SKUs: `?sku=A&sku=B` (1 to 100).
#[utoipa::path(get, path = "/api/v1/inventory/availability", tag = "inventory",
    params(("sku" = Vec<String>, Query, description = "A SKU (1 to 64 letters, digits, `.`, `_`, `-`, starting with a \
        letter or a digit); repeat for several, 1 to 100", min_items = 1, max_items = 100, min_length = 1, max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")), security(("bearer" = [])),
    responses((status = 200, description = "Availability of each SKU asked for", body = [Availability]), (status = 400, description = "No or bad SKU")))]
async fn availability(
    _caller: AuthenticatedCaller,
    context: RequestContext,
    request: HttpRequest,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let skus = repeated_query_values(request.query_string(), "sku")?;
    if skus.is_empty() {
        return Err(ServiceError::invalid("invalid_query", "give at least one sku: ?sku=A&sku=B").into());
    }
    Ok(HttpResponse::Ok().json(ask(&cluster, CheckAvailability { skus }, &context).await?))
}

/// The values of `name` in a query string where it may repeat; any other parameter is refused.
fn repeated_query_values(query: &str, name: &str) -> Result<Vec<String>, ServiceError> {
    let mut values = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key)? != name {
            return Err(ServiceError::invalid("invalid_query", format!("unknown query parameter {key:?}")));
        }
        values.push(percent_decode(value)?);
    }
    Ok(values)
}

fn percent_decode(text: &str) -> Result<String, ServiceError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        ServiceError::invalid("invalid_query", "bad percent-encoding in the query string")
                    })?;
                decoded.push(hex);
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).map_err(|_| ServiceError::invalid("invalid_query", "the query string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_are_decoded_and_strangers_refused() {
        assert_eq!(repeated_query_values("sku=A&sku=b%2Dc&sku=d+e", "sku").unwrap(), vec!["A", "b-c", "d e"]);
        assert_eq!(repeated_query_values("sku=A&where=1", "sku").unwrap_err().code, "invalid_query");
        assert_eq!(repeated_query_values("sku=%zz", "sku").unwrap_err().code, "invalid_query");
        assert!(repeated_query_values("", "sku").unwrap().is_empty());
    }
}
