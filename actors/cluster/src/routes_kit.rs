//! What every service's public route handlers share: asking the service on behalf of a request
//! ([`ask`]), the query of list routes ([`ListQuery`], with API.md's `page` and `size`
//! parameters in [`PageQuery`]), who may see a resource ([`may_access`], [`visible_owner`]),
//! and the OpenAPI pieces every fragment uses ([`BearerSecurity`], [`ErrorBody`]).

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use emporium_contracts::identity::Caller;
use emporium_contracts::page::PageRequest;
use emporium_contracts::{Request, ServiceError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify};

pub use emporium_contracts::error::{ErrorBody, ErrorDetail};

use crate::edge::{ApiError, RequestContext, invalid_query};
use crate::service_ref::Cluster;

/// Asks `message`'s service, wherever it runs, on behalf of the request of `context` (its
/// deadline and trace travel with the ask). A failure is answered for that request, so a 500
/// names its request id.
pub async fn ask<M: Request>(cluster: &Cluster, message: M, context: &RequestContext) -> Result<M::Reply, ApiError> {
    cluster.ask(message, context.call_meta()).await.map_err(|error| ApiError::for_request(error, context))
}

/// The paging parameters of every list route (API.md: `?page=&size=`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page, from 0.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
}

impl PageQuery {
    /// The page asked for; 400 `invalid_page` when out of range.
    pub fn page_request(&self) -> Result<PageRequest, ServiceError> {
        PageRequest::new(self.page, self.size)
    }
}

/// The query string of a list route: the page ([`PageQuery`]'s `page` and `size`) and the
/// route's own filter `F`, which reads every other parameter. `F` should refuse unknown
/// parameters (`#[serde(deny_unknown_fields)]`): any parameter neither reads is 400
/// `invalid_query`, a bad value too, and a page out of range 400 `invalid_page`.
///
/// Document it with both parts: `params(PageQuery, MyFilter)`, each with
/// `#[into_params(parameter_in = Query)]`.
#[derive(Debug)]
pub struct ListQuery<F = NoFilter> {
    /// The page asked for.
    pub page: PageRequest,
    /// The route's filter.
    pub filter: F,
}

impl<F: DeserializeOwned> ListQuery<F> {
    /// Reads a query string (without the `?`).
    pub fn parse(query: &str) -> Result<ListQuery<F>, ServiceError> {
        let (paging, filter): (Vec<&str>, Vec<&str>) =
            query.split('&').filter(|pair| !pair.is_empty()).partition(|pair| is_paging_parameter(pair));
        let paging = web::Query::<PageQuery>::from_query(&paging.join("&")).map_err(|error| invalid_query(&error))?;
        let filter = web::Query::<F>::from_query(&filter.join("&")).map_err(|error| invalid_query(&error))?;
        Ok(ListQuery { page: paging.page_request()?, filter: filter.into_inner() })
    }
}

impl<F: DeserializeOwned> FromRequest for ListQuery<F> {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(ListQuery::parse(request.query_string()).map_err(ApiError::from))
    }
}

/// Whether a `name=value` pair of a query string is `page` or `size` (the name decoded).
fn is_paging_parameter(pair: &str) -> bool {
    let Ok(pairs) = web::Query::<Vec<(String, String)>>::from_query(pair) else { return false };
    pairs.iter().any(|(name, _)| name == "page" || name == "size")
}

/// The filter of a list that has none: any parameter besides `page` and `size` is refused.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoFilter {}

/// Whether `caller` may see or act on a resource that `owner_user_id` owns: its owner, or an
/// admin. A service answers someone else's resource as not found (404), never 403, so that an
/// id tells nothing about other users.
pub fn may_access(caller: &Caller, owner_user_id: &str) -> bool {
    caller.user_id == owner_user_id || caller.is_admin()
}

/// Whose resources a list shows `caller`: only their own (`Some(their id)`), or everyone's
/// (`None`) for an admin.
pub fn visible_owner(caller: &Caller) -> Option<&str> {
    (!caller.is_admin()).then_some(caller.user_id.as_str())
}

/// The name of the access token security scheme, for `security(("bearer" = []))`.
pub const BEARER_SCHEME: &str = "bearer";

/// Adds the `bearer` security scheme (an access token, a JWT, from `POST /api/v1/auth/login`)
/// to an OpenAPI document: `#[openapi(modifiers(&BearerSecurity))]`. Every service's fragment
/// and the gateway's document use it, so the merged document has one definition.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_string());
        scheme.description = Some("An access token from POST /api/v1/auth/login".to_string());
        components.add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
    }
}

/// Documents the answers the edge gives on any route, on every operation of a (merged) OpenAPI
/// document that does not document them itself, each with the error envelope ([`ErrorBody`]):
/// 400 for a route with parameters or a body (malformed JSON, wrong types, bad query or path),
/// 401 for a route with a token, 413 and 415 for a route with a body, and 500, 503 and 504
/// everywhere (a bug, a dependency away, the time budget spent).
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ComponentsBuilder, ContentBuilder, Ref, ResponseBuilder};

        let components = openapi.components.get_or_insert_with(|| ComponentsBuilder::new().build());
        for (name, schema) in [
            ("ErrorBody", <ErrorBody as utoipa::PartialSchema>::schema()),
            ("ErrorDetail", <ErrorDetail as utoipa::PartialSchema>::schema()),
        ] {
            components.schemas.entry(name.to_string()).or_insert(schema);
        }
        let error = |description: &str| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            ResponseBuilder::new().description(description).content("application/json", content).build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                let has_input = has_body
                    || path.contains('{')
                    || operation.parameters.as_ref().is_some_and(|list| !list.is_empty());
                let has_token = operation.security.as_ref().is_some_and(|list| !list.is_empty());
                let mut standard = Vec::new();
                if has_input {
                    standard.push(("400", "Invalid input (malformed_json, invalid_body, invalid_query, invalid_path, or the route's own codes)"));
                }
                if has_token {
                    standard.push(("401", "No token, or a bad or expired one (missing_token, invalid_token, token_expired, user_not_found)"));
                }
                if has_body {
                    standard.push(("413", "The body is larger than the limit (payload_too_large)"));
                    standard.push(("415", "The body is not application/json (unsupported_media_type)"));
                }
                standard.push(("500", "A bug (internal_error, with the request id)"));
                standard.push(("503", "A dependency is unavailable (*_unavailable, with Retry-After)"));
                standard.push(("504", "The request's time budget ran out (deadline_exceeded)"));
                for (status, description) in standard {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use emporium_contracts::identity::Role;
    use utoipa::OpenApi;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct StockFilter {
        reorder_needed: Option<bool>,
    }

    #[test]
    fn a_list_query_reads_the_page_and_the_filter_and_refuses_strangers() {
        let query = ListQuery::<StockFilter>::parse("reorderNeeded=true&page=2&size=5").unwrap();
        assert_eq!(query.page, PageRequest { page: 2, size: 5 });
        assert_eq!(query.filter, StockFilter { reorder_needed: Some(true) });
        let defaults = ListQuery::<StockFilter>::parse("").unwrap();
        assert_eq!((defaults.page, defaults.filter), (PageRequest::default(), StockFilter { reorder_needed: None }));
        assert_eq!(ListQuery::<StockFilter>::parse("p%61ge=1").unwrap().page.page, 1, "names are decoded");
        for (query, code) in [
            ("size=0", "invalid_page"),
            ("page=-1", "invalid_page"),
            ("page=x", "invalid_query"),
            ("page=1&page=2", "invalid_query"),
            ("where=1", "invalid_query"),
            ("reorderNeeded=maybe", "invalid_query"),
        ] {
            assert_eq!(ListQuery::<StockFilter>::parse(query).unwrap_err().code, code, "{query}");
        }
        assert_eq!(ListQuery::<NoFilter>::parse("size=3").unwrap().page.size, 3);
        assert_eq!(ListQuery::<NoFilter>::parse("q=x").unwrap_err().code, "invalid_query");
    }

    #[test]
    fn owners_and_admins_may_access_and_lists_are_scoped() {
        let ada = Caller { user_id: "ada".into(), roles: vec![Role::Customer], token_id: "t".into() };
        let admin = Caller { user_id: "root".into(), roles: vec![Role::Admin], token_id: "t".into() };
        assert!(may_access(&ada, "ada") && !may_access(&ada, "bob") && may_access(&admin, "bob"));
        assert_eq!((visible_owner(&ada), visible_owner(&admin)), (Some("ada"), None));
    }

    #[derive(OpenApi)]
    #[openapi(modifiers(&BearerSecurity))]
    struct SomeApi;

    #[test]
    fn the_bearer_scheme_is_an_http_jwt_scheme() {
        let document = serde_json::to_value(SomeApi::openapi()).unwrap();
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"],
            serde_json::json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An access token from POST /api/v1/auth/login"})
        );
    }
}
