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
///
/// `price` must be an amount of `currency` (digits, at most as many decimals as the currency
/// has, at most a billion). The service also takes `JPY` (whole amounts only, up to
/// 100000000000); a schema cannot tie the decimals of `price` to `currency`, so the document
/// lists only the currencies with 2 decimals, for which every documented price is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductRequest {
    /// Stock keeping unit (1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or a
    /// digit).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "MUG-01")]
    pub sku: String,
    /// Name (1 to 200 characters, not blank, without control characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        example = "Coffee mug"
    )]
    pub name: String,
    /// Description (at most 5,000 characters).
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    /// Price, a decimal string: up to 12 digits (at most 1000000000), then at most 2 decimals
    /// (`19.99`); no sign, no exponent.
    #[schema(pattern = r"^(0{0,3}[0-9]{1,9}(\.[0-9]{1,2})?|0{0,2}1000000000(\.0{1,2})?)$", example = "19.99")]
    pub price: String,
    /// ISO 4217 code: `USD`, `EUR`, `GBP`, `CHF` or `CAD` (and `JPY` with a whole amount, see
    /// above).
    #[schema(schema_with = product_currency_schema)]
    pub currency: String,
    /// Category (1 to 64 characters, not blank, without control characters).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        example = "kitchen"
    )]
    pub category: String,
    /// Free attributes: at most 50; keys of 1 to 64 letters, digits, `_`, `-`; values strings
    /// (at most 1,000 characters), numbers or booleans.
    #[serde(default)]
    #[schema(schema_with = attributes_schema)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// The OpenAPI schema of [`ProductRequest::currency`]: the currencies with 2 decimals.
fn product_currency_schema() -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["USD", "EUR", "GBP", "CHF", "CAD"]))
        .description(Some(
            "ISO 4217 code: `USD`, `EUR`, `GBP`, `CHF` or `CAD` (`JPY` is also taken, with a whole `price`).",
        ))
        .examples([serde_json::json!("USD")])
}

/// The OpenAPI schema of [`ProductRequest::attributes`], as `check_attributes` of the product
/// service reads them.
fn attributes_schema() -> utoipa::openapi::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some("^[A-Za-z0-9_-]{1,64}$"));
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Number, Type::Boolean]))
        .max_length(Some(1000))
        .maximum(Some(utoipa::Number::Int(i64::MAX as isize)));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(key))
        .additional_properties(Some(value))
        .max_properties(Some(50))
        .description(Some(
            "Free attributes: at most 50; keys of 1 to 64 letters, digits, `_`, `-`; values strings (at most 1,000 \
             characters), numbers (integers at most 9223372036854775807) or booleans.",
        ))
        .examples([serde_json::json!({"color": "red", "capacityMl": 350, "dishwasherSafe": true})])
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
