//! The product service's messages and public bodies (API.md section 4, Products).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Request;
use crate::identity::Caller;
use crate::page::{Page, PageRequest};

/// The service name of the product service.
pub const SERVICE: &str = "product";

/// A product as the API shows it. `price` is a decimal string, never a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    /// The product's id.
    pub id: String,
    /// Stock keeping unit, unique.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Price, a decimal string (`"19.99"`).
    pub price: String,
    /// ISO 4217 code (`USD`).
    pub currency: String,
    /// Category.
    pub category: String,
    /// Free attributes (strings, numbers, booleans).
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last updated.
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/products` and `PUT /api/v1/products/{id}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductRequest {
    /// Stock keeping unit (1 to 64 letters, digits, `.`, `_`, `-`).
    pub sku: String,
    /// Name (1 to 200 characters).
    pub name: String,
    /// Description (at most 5,000 characters).
    #[serde(default)]
    pub description: String,
    /// Price, a decimal string.
    pub price: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Category (1 to 64 characters).
    pub category: String,
    /// Free attributes.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// Sort orders of the product list (a fixed list: anything else is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProductSort {
    /// Price, lowest first.
    PriceAsc,
    /// Price, highest first.
    PriceDesc,
    /// Name, A to Z.
    NameAsc,
    /// Name, Z to A.
    NameDesc,
    /// Newest first.
    CreatedAtDesc,
    /// Oldest first.
    CreatedAtAsc,
}

/// The product list's filters: typed values only (no operator or field name comes from the
/// client); the product service checks them and answers 400 for a bad one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductFilter {
    /// Exact category.
    pub category: Option<String>,
    /// Words to find in the name or description.
    pub text: Option<String>,
    /// Lowest price, a decimal string (`"10"`, `"9.99"`), compared exactly with each product's
    /// price in its own currency (no exchange rates).
    pub min_price: Option<String>,
    /// Highest price, a decimal string, compared the same way.
    pub max_price: Option<String>,
}

/// Create a product (admin); 409 `sku_taken`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateProduct {
    /// The admin.
    pub caller: Caller,
    /// The product.
    pub request: ProductRequest,
}

impl Request for CreateProduct {
    type Reply = ProductView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "CreateProduct";
    const IDEMPOTENT: bool = false;
}

/// Replace a product (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProduct {
    /// The admin.
    pub caller: Caller,
    /// The product's id.
    pub id: String,
    /// The new values.
    pub request: ProductRequest,
}

impl Request for UpdateProduct {
    type Reply = ProductView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "UpdateProduct";
    const IDEMPOTENT: bool = true;
}

/// Delete a product (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteProduct {
    /// The admin.
    pub caller: Caller,
    /// The product's id.
    pub id: String,
}

impl Request for DeleteProduct {
    type Reply = ();
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "DeleteProduct";
    const IDEMPOTENT: bool = true;
}

/// One product by id (404 `product_not_found`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetProduct {
    /// The product's id.
    pub id: String,
}

impl Request for GetProduct {
    type Reply = ProductView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetProduct";
    const IDEMPOTENT: bool = true;
}

/// A page of products.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListProducts {
    /// Filters.
    pub filter: ProductFilter,
    /// Order.
    pub sort: Option<ProductSort>,
    /// Which page.
    pub page: PageRequest,
}

impl Request for ListProducts {
    type Reply = Page<ProductView>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ListProducts";
    const IDEMPOTENT: bool = true;
}

/// Name, price and currency of a product, as an order records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceSnapshot {
    /// The SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Price, a decimal string.
    pub price: String,
    /// ISO 4217 code.
    pub currency: String,
}

/// The answer to [`GetProducts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductsBySku {
    /// The SKUs found.
    pub found: Vec<PriceSnapshot>,
    /// The SKUs not found.
    pub missing: Vec<String>,
}

/// Current name and price of some SKUs (the order service's price snapshot), at most 100.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetProducts {
    /// The SKUs.
    pub skus: Vec<String>,
}

impl Request for GetProducts {
    type Reply = ProductsBySku;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetProducts";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("{} skus", self.skus.len())
    }
}
