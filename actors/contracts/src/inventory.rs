//! The inventory service's messages and public bodies (API.md section 4, Inventory; the
//! synchronous stock check of DESIGN.md section 7).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Request;
use crate::events::StockLine;
use crate::identity::Caller;
use crate::page::{Page, PageRequest};

/// The service name of the inventory service.
pub const SERVICE: &str = "inventory";

/// Stock of one SKU as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    /// The SKU.
    pub sku: String,
    /// Units that can be sold.
    pub available: u64,
    /// Units held by reservations.
    pub reserved: u64,
    /// Reorder at or below this many available units.
    pub reorder_level: u64,
    /// How many to reorder.
    pub reorder_quantity: u64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/inventory/availability` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// The SKU.
    pub sku: String,
    /// Units that can be sold (0 for an unknown SKU).
    pub available: u64,
    /// Whether at least one unit can be sold.
    pub in_stock: bool,
}

/// `PUT /api/v1/inventory/{sku}` body: each level 0 to 1,000,000,000,000.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetStockRequest {
    /// Units that can be sold (0 to 1,000,000,000,000).
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    #[serde(deserialize_with = "crate::whole_number::i64")]
    pub available: i64,
    /// Reorder level (0 to 1,000,000,000,000; default 0).
    #[serde(default, deserialize_with = "crate::whole_number::i64")]
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub reorder_level: i64,
    /// Reorder quantity (0 to 1,000,000,000,000; default 0).
    #[serde(default, deserialize_with = "crate::whole_number::i64")]
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub reorder_quantity: i64,
}

/// `POST /api/v1/inventory/{sku}/adjust` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustStockRequest {
    /// Units to add (positive) or remove (negative): non-zero, at most 1,000,000,000,000 either
    /// way. A schema cannot say "non-zero", so the document lists the additions only
    /// (1 to 1,000,000,000,000); removals (-1,000,000,000,000 to -1) are taken as well.
    #[schema(minimum = 1, maximum = 1000000000000_i64)]
    #[serde(deserialize_with = "crate::whole_number::i64")]
    pub delta: i64,
    /// Why (recorded with the change): 1 to 200 characters once trimmed, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
        example = "restock"
    )]
    pub reason: String,
}

/// The state of an order's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// Stock is held for the order.
    Reserved,
    /// The order was paid; the stock left.
    Committed,
    /// The order was cancelled or the reservation expired; the stock is back.
    Released,
}

/// An order's reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// The order.
    pub order_id: String,
    /// Its state.
    pub status: ReservationStatus,
    /// What is (or was) held.
    pub lines: Vec<StockLine>,
    /// When an unconfirmed reservation is released by inventory itself.
    pub expires_at: DateTime<Utc>,
}

/// A line that cannot be reserved, in the details of a 409 `out_of_stock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shortage {
    /// The SKU.
    pub sku: String,
    /// Units asked for.
    pub requested: u32,
    /// Units available.
    pub available: u64,
}

/// Availability of some SKUs (the synchronous stock check).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckAvailability {
    /// The SKUs, at most 100.
    pub skus: Vec<String>,
}

impl Request for CheckAvailability {
    type Reply = Vec<Availability>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "CheckAvailability";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("{} skus", self.skus.len())
    }
}

/// Reserve every line for an order, or nothing (409 `out_of_stock` with the short lines,
/// 422 `unknown_sku`). Repeating it for the same order answers the same reservation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReserveStock {
    /// The order.
    pub order_id: String,
    /// What to hold.
    pub lines: Vec<StockLine>,
}

impl Request for ReserveStock {
    type Reply = Reservation;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ReserveStock";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("order {} with {} lines", self.order_id, self.lines.len())
    }
}

/// The order was paid: the held stock leaves. Idempotent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitReservation {
    /// The order.
    pub order_id: String,
}

impl Request for CommitReservation {
    type Reply = Reservation;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "CommitReservation";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("order {}", self.order_id)
    }
}

/// The order is off: the held stock goes back. Idempotent; an order with no reservation
/// answers `None`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReservation {
    /// The order.
    pub order_id: String,
}

impl Request for ReleaseReservation {
    type Reply = Option<Reservation>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ReleaseReservation";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("order {}", self.order_id)
    }
}

/// Set a SKU's stock (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetStock {
    /// The admin.
    pub caller: Caller,
    /// The SKU.
    pub sku: String,
    /// The new values.
    pub request: SetStockRequest,
}

impl Request for SetStock {
    type Reply = StockView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "SetStock";
    const IDEMPOTENT: bool = true;
}

/// Add or remove units of a SKU (admin); never below zero (409 `insufficient_stock`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustStock {
    /// The admin.
    pub caller: Caller,
    /// The SKU.
    pub sku: String,
    /// The change.
    pub request: AdjustStockRequest,
}

impl Request for AdjustStock {
    type Reply = StockView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "AdjustStock";
    const IDEMPOTENT: bool = false;
}

/// One SKU's stock (404 `unknown_sku`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetStock {
    /// The SKU.
    pub sku: String,
}

impl Request for GetStock {
    type Reply = StockView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetStock";
    const IDEMPOTENT: bool = true;
}

/// A page of stock, optionally only SKUs at or below their reorder level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListStock {
    /// Only SKUs that need reordering (`Some(true)`), only those that don't (`Some(false)`).
    pub reorder_needed: Option<bool>,
    /// Which page.
    pub page: PageRequest,
}

impl Request for ListStock {
    type Reply = Page<StockView>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ListStock";
    const IDEMPOTENT: bool = true;
}

/// Release every reservation past its expiry (sent by inventory's own sweeper).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReleaseExpiredReservations {}

impl Request for ReleaseExpiredReservations {
    type Reply = u32;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ReleaseExpiredReservations";
    const IDEMPOTENT: bool = true;
}
