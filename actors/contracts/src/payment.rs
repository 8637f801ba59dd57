//! The payment service's messages and public bodies (API.md section 4, Payments).
//!
//! Payments are made by the payment service itself when it consumes `order.created` (see
//! [`crate::events`]); these messages only read them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Request;
use crate::identity::Caller;
use crate::page::{Page, PageRequest};

/// The service name of the payment service.
pub const SERVICE: &str = "payment";

/// Test token of the simulated card processor: the charge succeeds.
pub const TOKEN_VISA: &str = "tok_visa";
/// Test token of the simulated card processor: the charge fails with [`CARD_DECLINED`].
pub const TOKEN_CHARGE_DECLINED: &str = "tok_chargeDeclined";
/// Test token of the simulated card processor: the charge fails with [`INSUFFICIENT_FUNDS`].
pub const TOKEN_INSUFFICIENT_FUNDS: &str = "tok_insufficientFunds";

/// The only payment method the simulated card processor takes.
pub const METHOD_CARD: &str = "card";

/// Failure reason: the card issuer declined the charge.
pub const CARD_DECLINED: &str = "card_declined";
/// Failure reason: not enough funds on the card.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
/// Failure reason: the token names no card the provider knows.
pub const INVALID_TOKEN: &str = "invalid_token";
/// Failure reason: the payment method is not one the provider takes (only `card`).
pub const UNSUPPORTED_METHOD: &str = "unsupported_method";
/// Failure reason: the order's currency is not one Emporium prices in.
pub const UNSUPPORTED_CURRENCY: &str = "unsupported_currency";
/// Failure reason: the order's total is not a valid amount of its currency.
pub const INVALID_AMOUNT: &str = "invalid_amount";

/// How a payment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// The charge went through.
    Succeeded,
    /// The charge was refused; `failureReason` says why.
    Failed,
}

/// A payment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// The payment's id.
    pub id: String,
    /// The order it is for (one payment per order).
    pub order_id: String,
    /// What was (or was to be) charged, a decimal string.
    #[schema(example = "19.99")]
    pub amount: String,
    /// ISO 4217 currency code.
    #[schema(example = "USD")]
    pub currency: String,
    /// The payment method (`card`).
    pub method: String,
    /// `SUCCEEDED` or `FAILED`.
    pub status: PaymentStatus,
    /// Why it failed (`card_declined`, `insufficient_funds`, `invalid_token`, ...).
    pub failure_reason: Option<String>,
    /// The payment provider's reference of the charge (`sim_ch_...`).
    pub provider_ref: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// One payment (404 `payment_not_found`, also for someone else's payment unless the caller is
/// an admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPayment {
    /// Who asks.
    pub caller: Caller,
    /// The payment's id.
    pub id: String,
}

impl Request for GetPayment {
    type Reply = PaymentView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetPayment";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("payment {}", self.id)
    }
}

/// A page of payments, newest first: the caller's own, or everyone's for an admin; optionally
/// only those of one order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPayments {
    /// Who asks.
    pub caller: Caller,
    /// Only the payment of this order.
    pub order_id: Option<String>,
    /// Which page.
    pub page: PageRequest,
}

impl Request for ListPayments {
    type Reply = Page<PaymentView>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ListPayments";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!(
            "page {} size {}{}",
            self.page.page,
            self.page.size,
            if self.order_id.is_some() { " of one order" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_reads_as_the_api_says() {
        let view = PaymentView {
            id: "p1".into(),
            order_id: "o1".into(),
            amount: "19.98".into(),
            currency: "USD".into(),
            method: "card".into(),
            status: PaymentStatus::Failed,
            failure_reason: Some(CARD_DECLINED.into()),
            provider_ref: None,
            created_at: DateTime::from_timestamp_millis(0).unwrap_or_default(),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["orderId"], "o1");
        assert_eq!(json["status"], "FAILED");
        assert_eq!(json["failureReason"], "card_declined");
        assert_eq!(json["amount"], "19.98", "money is a decimal string");
        assert!(json["providerRef"].is_null());
        let back: PaymentView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }
}
