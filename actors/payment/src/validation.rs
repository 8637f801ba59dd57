//! Input checks of the payment service's messages and events.

use crate::error::PaymentError;

/// Longest id the service stores (payment, order and user ids).
pub const MAX_ID_LEN: usize = 64;

/// Whether `id` is 1 to [`MAX_ID_LEN`] visible ASCII characters.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|byte| byte.is_ascii_graphic())
}

/// An id given by a caller: 400 with `code` unless [`is_plain_id`].
pub fn check_id(code: &'static str, what: &str, id: &str) -> Result<(), PaymentError> {
    if is_plain_id(id) {
        Ok(())
    } else {
        Err(PaymentError::Invalid { code, message: format!("{what} is 1 to {MAX_ID_LEN} visible characters") })
    }
}

/// `text` cut to at most `max` characters (for columns of bounded width).
pub fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain() {
        assert!(is_plain_id("3f2c0b1e-0000-4000-8000-000000000000"));
        for bad in ["", "a b", "é", &"x".repeat(65), "' OR '1'='1"] {
            assert!(!is_plain_id(bad), "{bad}");
        }
        assert_eq!(
            check_id("invalid_id", "a payment id", "").unwrap_err().to_string(),
            "a payment id is 1 to 64 visible characters"
        );
        assert_eq!(bounded("abcdef", 3), "abc");
    }
}
