//! Checks of an order request before anything is asked or stored.

use std::collections::BTreeSet;

use emporium_contracts::money::decimals_of;
use emporium_contracts::order::PlaceOrderRequest;

use crate::error::OrderError;

/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one SKU in one order.
pub const MAX_QUANTITY: i64 = 1_000;

fn invalid(code: &'static str, message: impl Into<String>) -> OrderError {
    OrderError::Invalid { code, message: message.into() }
}

/// A SKU is 1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn is_valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= 64
        && sku.chars().next().is_some_and(|first| first.is_ascii_alphanumeric())
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks `request`: 1 to 50 lines, valid SKUs each once, quantities 1 to 1,000, a supported
/// currency, the `card` method with a token.
pub fn check_request(request: &PlaceOrderRequest) -> Result<(), OrderError> {
    if request.items.is_empty() || request.items.len() > MAX_LINES {
        return Err(invalid("invalid_items", format!("an order has 1 to {MAX_LINES} items")));
    }
    let mut seen = BTreeSet::new();
    for item in &request.items {
        if !is_valid_sku(&item.sku) {
            return Err(invalid("invalid_sku", format!("{:?} is not a sku", item.sku)));
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(invalid(
                "invalid_quantity",
                format!("quantity of {} must be between 1 and {MAX_QUANTITY}", item.sku),
            ));
        }
        if !seen.insert(item.sku.as_str()) {
            return Err(OrderError::DuplicateSku(item.sku.clone()));
        }
    }
    if decimals_of(&request.currency).is_none() {
        return Err(invalid(
            "unsupported_currency",
            format!("currency {:?} is not supported (USD, EUR, GBP, CHF, CAD, JPY)", request.currency),
        ));
    }
    if request.payment.method != "card" {
        return Err(invalid("unsupported_payment_method", "the payment method must be \"card\""));
    }
    let token = &request.payment.token;
    if token.is_empty() || token.len() > 128 || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(invalid("invalid_payment_token", "the payment token is 1 to 128 visible characters"));
    }
    Ok(())
}

/// An `Idempotency-Key` is 1 to 128 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), OrderError> {
    if !key.is_empty() && key.len() <= 128 && key.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid("invalid_idempotency_key", "an Idempotency-Key is 1 to 128 visible characters"))
    }
}

/// The SHA-256 (hex) of a request's canonical JSON: what an idempotency key is bound to.
pub fn request_hash(request: &PlaceOrderRequest) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical);
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use emporium_contracts::ServiceError;
    use emporium_contracts::order::{OrderItemRequest, PaymentRequest};

    use super::*;

    fn request(items: Vec<(&str, i64)>) -> PlaceOrderRequest {
        PlaceOrderRequest {
            items: items.into_iter().map(|(sku, quantity)| OrderItemRequest { sku: sku.into(), quantity }).collect(),
            currency: "USD".into(),
            payment: PaymentRequest { method: "card".into(), token: "tok_visa".into() },
        }
    }

    fn code(request: &PlaceOrderRequest) -> &'static str {
        match check_request(request) {
            Err(OrderError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lines_are_refused_with_their_code() {
        check_request(&request(vec![("A-1", 2)])).unwrap();
        assert_eq!(code(&request(vec![])), "invalid_items");
        assert_eq!(code(&request(vec![("A", 0)])), "invalid_quantity");
        assert_eq!(code(&request(vec![("A", -3)])), "invalid_quantity");
        assert_eq!(code(&request(vec![("A", 1001)])), "invalid_quantity");
        let twice = ServiceError::from(check_request(&request(vec![("A", 1), ("A", 1)])).unwrap_err());
        assert_eq!((twice.http_status(), twice.code.as_str()), (422, "duplicate_sku"));
        assert_eq!(code(&request(vec![("'; DROP TABLE orders; --", 1)])), "invalid_sku");
        let mut euro = request(vec![("A", 1)]);
        euro.currency = "XYZ".into();
        assert_eq!(code(&euro), "unsupported_currency");
        let mut cash = request(vec![("A", 1)]);
        cash.payment.method = "cash".into();
        assert_eq!(code(&cash), "unsupported_payment_method");
    }

    #[test]
    fn the_hash_binds_the_whole_request() {
        let first = request(vec![("A", 1)]);
        let mut second = first.clone();
        assert_eq!(request_hash(&first), request_hash(&second));
        second.items[0].quantity = 2;
        assert_ne!(request_hash(&first), request_hash(&second));
        assert_eq!(request_hash(&first).len(), 64);
    }
}
