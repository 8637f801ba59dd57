//! The notification service's public route (API.md section 4, Notifications): the signed-in
//! user's own notifications, as a message to the notification service, wherever it runs.

use actix_web::{HttpResponse, web};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{ApiResult, AuthenticatedCaller, RequestContext};
use emporium_cluster::routes_kit::{BearerSecurity, ListQuery, PageQuery, ask};
use emporium_contracts::notification::{
    ListNotifications, NotificationChannel, NotificationKind, NotificationStatus, NotificationView,
};
use emporium_contracts::page::Page;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(list_notifications),
    components(schemas(NotificationView, NotificationKind, NotificationChannel, NotificationStatus)),
    modifiers(&BearerSecurity)
)]
struct NotificationApi;

/// The OpenAPI fragment of the notification routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    NotificationApi::openapi()
}

/// Mounts the notification routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/api/v1/notifications", web::get().to(list_notifications));
}

/// A page of the caller's own notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of the caller's notifications", body = Page<NotificationView>), (status = 400, description = "Bad paging"),
        (status = 401, description = "No or bad token")))]
async fn list_notifications(
    caller: AuthenticatedCaller,
    context: RequestContext,
    query: ListQuery,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = ListNotifications { caller: caller.0, page: query.page };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_fragment_documents_the_route() {
        let document = serde_json::to_value(openapi()).unwrap();
        assert!(document["paths"]["/api/v1/notifications"]["get"].is_object());
        assert!(document["components"]["schemas"]["NotificationView"].is_object());
    }
}
