//! The catalog's public routes (API.md section 4): reads for anyone, writes for admins. Each
//! handler turns the request into a message to the product service, wherever it runs.
//!
//! The list's query string is read into typed fields only (`deny_unknown_fields`: an unknown or
//! bracketed parameter such as `category[$ne]` is 400 `invalid_query`); the sort comes from a
//! fixed list (400 `invalid_sort`); paging and prices are checked (400 `invalid_page`,
//! `invalid_price`). An empty value (`?category=&q=`) means no filter.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use emporium_cluster::Cluster;
use emporium_cluster::edge::{AdminCaller, ApiResult, RequestContext};
use emporium_cluster::routes_kit::{BearerSecurity, ListQuery, PageQuery, ask};
use emporium_contracts::ServiceError;
use emporium_contracts::page::Page;
use emporium_contracts::product::{
    CreateProduct, DeleteProduct, GetProduct, ListProducts, ProductFilter, ProductRequest, ProductView, UpdateProduct,
};
use serde::Deserialize;
use utoipa::OpenApi;

use crate::validation::parse_sort;

#[derive(OpenApi)]
#[openapi(
    paths(create_product, list_products, get_product, update_product, delete_product),
    components(schemas(ProductView, ProductRequest)),
    modifiers(&BearerSecurity)
)]
struct ProductApi;

/// The OpenAPI fragment of the catalog routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ProductApi::openapi()
}

/// Mounts the catalog routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/products", web::post().to(create_product))
        .route("/api/v1/products", web::get().to(list_products))
        .route("/api/v1/products/{id}", web::get().to(get_product))
        .route("/api/v1/products/{id}", web::put().to(update_product))
        .route("/api/v1/products/{id}", web::delete().to(delete_product));
}

/// Create a product (admin).
#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = ProductRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "The product", body = ProductView), (status = 400, description = "Invalid values"),
        (status = 401, description = "No or bad token"), (status = 403, description = "Not an admin"),
        (status = 409, description = "Another product has this SKU (sku_taken)")))]
async fn create_product(
    admin: AdminCaller,
    context: RequestContext,
    body: web::Json<ProductRequest>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = CreateProduct { caller: admin.0, request: body.into_inner() };
    let product = ask(&cluster, message, &context).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/products/{}", product.id)))
        .json(product))
}

/// Filter and order of the product list (its page: [`PageQuery`]).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Exact category (1 to 64 characters, not blank, without control characters); empty means
    /// any.
    #[param(
        max_length = 64,
        pattern = r"^([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*)?$"
    )]
    pub category: Option<String>,
    /// Words that must all appear, as whole words, in the name or description (case and
    /// accents ignored; anything but letters, digits and `_` separates words): at most 200
    /// characters, of which the first 10 different words are searched for.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Lowest price, a decimal (`9.99`: 1 to 9 digits or 1000000000, at most 2 decimals, no
    /// sign), in each product's own currency; empty means none. Above `maxPrice`, nothing
    /// matches.
    #[param(pattern = r"^([0-9]{1,9}(\.[0-9]{1,2})?|1000000000(\.0{1,2})?)?$", example = "9.99")]
    pub min_price: Option<String>,
    /// Highest price, in the same form as `minPrice`; empty means none.
    #[param(pattern = r"^([0-9]{1,9}(\.[0-9]{1,2})?|1000000000(\.0{1,2})?)?$", example = "100")]
    pub max_price: Option<String>,
    /// `price,asc`, `price,desc`, `name,asc`, `name,desc`, `createdAt,desc` (default) or
    /// `createdAt,asc`; empty means the default.
    #[param(pattern = "^(price,asc|price,desc|name,asc|name,desc|createdAt,desc|createdAt,asc)?$")]
    pub sort: Option<String>,
}

/// A page of products.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(PageQuery, ProductListQuery),
    responses((status = 200, description = "A page of products", body = Page<ProductView>),
        (status = 400, description = "Unknown parameter, bad sort, paging or price")))]
async fn list_products(
    context: RequestContext,
    query: ListQuery<ProductListQuery>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let ListQuery { page, filter: query } = query;
    let sort = match query.sort.as_deref().filter(|sort| !sort.is_empty()) {
        Some(sort) => Some(parse_sort(sort).map_err(ServiceError::from)?),
        None => None,
    };
    let filter = ProductFilter {
        category: query.category,
        text: query.q,
        min_price: query.min_price,
        max_price: query.max_price,
    };
    let page = ask(&cluster, ListProducts { filter, sort, page }, &context).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "The product's id")),
    responses((status = 200, description = "The product", body = ProductView), (status = 404, description = "No such product (product_not_found)")))]
async fn get_product(
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(ask(&cluster, GetProduct { id: id.into_inner() }, &context).await?))
}

/// Replace a product's values (admin).
#[utoipa::path(put, path = "/api/v1/products/{id}", tag = "products", request_body = ProductRequest,
    params(("id" = String, Path, description = "The product's id")), security(("bearer" = [])),
    responses((status = 200, description = "The product", body = ProductView), (status = 400, description = "Invalid values"),
        (status = 403, description = "Not an admin"), (status = 404, description = "No such product"),
        (status = 409, description = "Another product has this SKU (sku_taken)")))]
async fn update_product(
    admin: AdminCaller,
    context: RequestContext,
    id: web::Path<String>,
    body: web::Json<ProductRequest>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    let message = UpdateProduct { caller: admin.0, id: id.into_inner(), request: body.into_inner() };
    Ok(HttpResponse::Ok().json(ask(&cluster, message, &context).await?))
}

/// Delete a product (admin).
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "The product's id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such product")))]
async fn delete_product(
    admin: AdminCaller,
    context: RequestContext,
    id: web::Path<String>,
    cluster: web::Data<Cluster>,
) -> ApiResult<HttpResponse> {
    ask(&cluster, DeleteProduct { caller: admin.0, id: id.into_inner() }, &context).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_fragment_lists_every_route() {
        let document = openapi();
        let paths: Vec<&String> = document.paths.paths.keys().collect();
        assert_eq!(paths, vec!["/api/v1/products", "/api/v1/products/{id}"]);
        let list = &document.paths.paths["/api/v1/products"];
        assert!(list.get.is_some() && list.post.is_some());
        let one = &document.paths.paths["/api/v1/products/{id}"];
        assert!(one.get.is_some() && one.put.is_some() && one.delete.is_some());
        let json = serde_json::to_value(&document).unwrap();
        let parameters: Vec<&str> = json["paths"]["/api/v1/products"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|parameter| {
                assert_eq!(parameter["in"], "query", "{parameter}");
                parameter["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(parameters, ["page", "size", "category", "q", "minPrice", "maxPrice", "sort"]);
        assert_eq!(json["components"]["securitySchemes"]["bearer"]["bearerFormat"], "JWT");
    }
}
