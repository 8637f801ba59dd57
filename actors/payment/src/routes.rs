//! The payment service's public routes (API.md section 4, Payments): reads for any signed-in
//! user, each turned into a message to the payment service, wherever it runs. A customer sees
//! only their own payments, an admin all.

use actix_web::{HttpResponse, web};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{ApiResult, AuthenticatedCaller, RequestContext};
use emporium_cluster::routes_kit::{BearerSecurity, ListQuery, PageQuery, ask};
use emporium_contracts::page::Page;
use emporium_contracts::payment::{GetPayment, ListPayments, PaymentStatus, PaymentView};
use serde::Deserialize;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(list_payments, get_payment),
    components(schemas(PaymentView, PaymentStatus)),
    modifiers(&BearerSecurity)
)]
struct PaymentApi;

/// The OpenAPI fragment of the payment routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    PaymentApi::openapi()
}

/// Mounts the payment routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/payments", web::get().to(list_payments))
        .route("/api/v1/payments/{id}", web::get().to(get_payment));
}

/// Filter of the payment list (its page: [`PageQuery`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentListQuery {
    /// Only the payment of this order (an order id: 1 to 64 visible ASCII characters).
    #[param(min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$")]
    pub order_id: Option<String>,
}

/// A page of payments, newest first: the caller's own (all for an admin).
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PageQuery, PaymentListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of payments", body = Page<PaymentView>), (status = 400, description = "Bad paging or order id"),
        (status = 401, description = "No or bad token")))]
async fn list_payments(
    caller: AuthenticatedCaller,
    context: RequestContext,
    query: ListQuery<PaymentListQuery>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = ListPayments { caller: caller.0, order_id: query.filter.order_id, page: query.page };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

/// One payment; 404 `payment_not_found` for someone else's (unless admin).
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "The payment's id (1 to 64 visible ASCII characters)", min_length = 1,
        max_length = 64, pattern = "^[!-~]{1,64}$")), security(("bearer" = [])),
    responses((status = 200, description = "The payment", body = PaymentView), (status = 404, description = "No such payment of the caller (payment_not_found)"),
        (status = 401, description = "No or bad token")))]
async fn get_payment(
    caller: AuthenticatedCaller,
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = GetPayment { caller: caller.0, id: id.into_inner() };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_fragment_documents_both_routes() {
        let document = serde_json::to_value(openapi()).unwrap();
        assert!(document["paths"]["/api/v1/payments"]["get"].is_object());
        assert!(document["paths"]["/api/v1/payments/{id}"]["get"].is_object());
        assert!(document["components"]["schemas"]["PaymentView"].is_object());
    }
}
