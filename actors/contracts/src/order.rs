//! The order service's messages and public bodies (API.md section 4, Orders).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Request;
use crate::identity::Caller;
use crate::page::{Page, PageRequest};

/// The service name of the order service.
pub const SERVICE: &str = "order";

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Stock is reserved; waiting for the payment.
    PendingPayment,
    /// Paid; the stock left.
    Confirmed,
    /// Cancelled (payment failed or the customer cancelled); the stock went back.
    Cancelled,
}

impl OrderStatus {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "PENDING_PAYMENT",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "PENDING_PAYMENT" => Some(OrderStatus::PendingPayment),
            "CONFIRMED" => Some(OrderStatus::Confirmed),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// One line of an order request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItemRequest {
    /// The SKU (1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or a digit).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "MUG-01")]
    pub sku: String,
    /// How many (1 to 1,000).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "crate::whole_number::i64")]
    pub quantity: i64,
}

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    /// `card`.
    #[schema(schema_with = payment_method_schema)]
    pub method: String,
    /// The card token from the payment provider (`tok_visa` with the simulated processor): 1 to
    /// 128 visible ASCII characters.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = "tok_visa")]
    pub token: String,
}

/// `POST /api/v1/orders` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// The lines: 1 to 50, each SKU on one line only (a SKU on two lines is 422
    /// `duplicate_sku`; a schema can only say that the lines differ, not that their SKUs do).
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderItemRequest>,
    /// ISO 4217 code; every product must be priced in it.
    #[schema(schema_with = order_currency_schema)]
    pub currency: String,
    /// How to pay.
    pub payment: PaymentRequest,
}

/// The OpenAPI schema of [`PlaceOrderRequest::currency`]: every currency Emporium prices in.
fn order_currency_schema() -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["USD", "EUR", "GBP", "CHF", "CAD", "JPY"]))
        .description(Some("ISO 4217 code; every product must be priced in it."))
        .examples([serde_json::json!("USD")])
}

/// The OpenAPI schema of [`PaymentRequest::method`]: the only method taken.
fn payment_method_schema() -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["card"]))
        .description(Some("`card`."))
}

/// One line of an order, with the price it was taken at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemView {
    /// The SKU.
    pub sku: String,
    /// The product's name when ordered.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, a decimal string.
    pub unit_price: String,
    /// `unit_price * quantity`, a decimal string.
    pub line_total: String,
}

/// An order as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order's id.
    pub id: String,
    /// Who placed it.
    pub user_id: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// The lines.
    pub items: Vec<OrderItemView>,
    /// Sum of the lines, a decimal string.
    pub total: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// Placed.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The answer to [`PlaceOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacedOrder {
    /// The order.
    pub order: OrderView,
    /// True when this is the answer to an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// Place an order: price snapshot from the catalog, stock reserved, order and
/// `order.created` committed together.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrder {
    /// Who orders.
    pub caller: Caller,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// What they order.
    pub request: PlaceOrderRequest,
}

impl Request for PlaceOrder {
    type Reply = PlacedOrder;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "PlaceOrder";
    const IDEMPOTENT: bool = false;
    fn summary(&self) -> String {
        format!("{} items, key {}", self.request.items.len(), self.idempotency_key.is_some())
    }
}

/// One order (404 `order_not_found` for someone else's, unless admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOrder {
    /// Who asks.
    pub caller: Caller,
    /// The order's id.
    pub id: String,
}

impl Request for GetOrder {
    type Reply = OrderView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetOrder";
    const IDEMPOTENT: bool = true;
}

/// A page of orders: the caller's own, or everyone's for an admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOrders {
    /// Who asks.
    pub caller: Caller,
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Placed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Placed before.
    pub to: Option<DateTime<Utc>>,
    /// Which page.
    pub page: PageRequest,
}

impl Request for ListOrders {
    type Reply = Page<OrderView>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ListOrders";
    const IDEMPOTENT: bool = true;
}

/// Cancel an order that is not confirmed yet; its stock goes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelOrder {
    /// Who asks.
    pub caller: Caller,
    /// The order's id.
    pub id: String,
}

impl Request for CancelOrder {
    type Reply = OrderView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "CancelOrder";
    const IDEMPOTENT: bool = true;
}
