//! Money as a decimal string on the wire (`"19.99"`), integer minor units inside: never a
//! float anywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// Currencies Emporium prices in, with their number of decimals.
pub const CURRENCIES: [(&str, u32); 6] = [("USD", 2), ("EUR", 2), ("GBP", 2), ("CHF", 2), ("CAD", 2), ("JPY", 0)];

/// Largest amount accepted, in minor units (a billion of the major unit).
const MAX_MINOR_UNITS: i64 = 1_000_000_000 * 100;

/// The number of decimals of `currency`, when Emporium knows it.
pub fn decimals_of(currency: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(code, _)| *code == currency).map(|(_, decimals)| *decimals)
}

/// An amount of one currency, in its minor units (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money {
    /// Minor units (cents for USD).
    pub minor_units: i64,
    /// Decimals of the currency.
    pub decimals: u32,
}

impl Money {
    /// Parses a non-negative decimal string such as `"19.99"` in `currency`: digits, at most
    /// the currency's decimals, no sign, no exponent. 400 `invalid_price` or
    /// `unsupported_currency` otherwise.
    pub fn parse(amount: &str, currency: &str) -> Result<Money, ServiceError> {
        let decimals = decimals_of(currency).ok_or_else(|| {
            ServiceError::invalid(
                "unsupported_currency",
                format!("currency {currency:?} is not supported (USD, EUR, GBP, CHF, CAD, JPY)"),
            )
        })?;
        let invalid = || {
            ServiceError::invalid(
                "invalid_price",
                format!("{amount:?} is not an amount of {currency} (digits with at most {decimals} decimals)"),
            )
        };
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        if whole.is_empty()
            || whole.len() > 12
            || fraction.len() > decimals as usize
            || (amount.contains('.') && fraction.is_empty())
            || !whole.bytes().all(|byte| byte.is_ascii_digit())
            || !fraction.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(invalid());
        }
        let whole: i64 = whole.parse().map_err(|_| invalid())?;
        let fraction_value: i64 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| invalid())? };
        let scale = 10_i64.pow(decimals);
        let padded_fraction = fraction_value * 10_i64.pow(decimals - fraction.len() as u32);
        let minor_units =
            whole.checked_mul(scale).and_then(|units| units.checked_add(padded_fraction)).ok_or_else(invalid)?;
        if minor_units > MAX_MINOR_UNITS {
            return Err(invalid());
        }
        Ok(Money { minor_units, decimals })
    }

    /// `minor_units` of a currency with `decimals`.
    pub fn from_minor_units(minor_units: i64, decimals: u32) -> Money {
        Money { minor_units, decimals }
    }

    /// This amount times `quantity`, when the product is still an amount [`Money::parse`]
    /// accepts (at most a billion of the major unit): an order total is paid in full, so a
    /// total the payment service could not read back is refused here.
    pub fn times(self, quantity: u32) -> Option<Money> {
        self.minor_units
            .checked_mul(quantity as i64)
            .filter(|units| *units <= MAX_MINOR_UNITS)
            .map(|minor_units| Money { minor_units, ..self })
    }

    /// The sum, when it is still an amount [`Money::parse`] accepts.
    pub fn plus(self, other: Money) -> Option<Money> {
        self.minor_units
            .checked_add(other.minor_units)
            .filter(|units| *units <= MAX_MINOR_UNITS)
            .map(|minor_units| Money { minor_units, ..self })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.decimals == 0 {
            return write!(formatter, "{}", self.minor_units);
        }
        let scale = 10_i64.pow(self.decimals);
        let sign = if self.minor_units < 0 { "-" } else { "" };
        let units = self.minor_units.unsigned_abs();
        write!(
            formatter,
            "{sign}{}.{:0width$}",
            units / scale as u64,
            units % scale as u64,
            width = self.decimals as usize
        )
    }
}

/// A decimal string on the wire (`"19.99"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "19.99")]
pub struct DecimalString(pub String);

#[cfg(test)]
mod tests {
    #[test]
    fn sums_and_products_stay_within_what_parse_accepts() {
        let big = Money::parse("999999999.99", "USD").unwrap();
        assert_eq!(big.times(1), Some(big));
        assert_eq!(big.times(2), None);
        assert_eq!(
            big.plus(Money::parse("0.01", "USD").unwrap()).map(|sum| sum.to_string()),
            Some("1000000000.00".to_string())
        );
        assert_eq!(big.plus(Money::parse("0.02", "USD").unwrap()), None);
        let limit = Money::parse("1000000000.00", "USD").unwrap();
        assert_eq!(Money::parse(&limit.to_string(), "USD"), Ok(limit), "every sum reads back");
    }

    use super::*;

    #[test]
    fn parses_and_prints_without_loss() {
        for (text, currency, units, printed) in [
            ("19.99", "USD", 1999, "19.99"),
            ("19.9", "USD", 1990, "19.90"),
            ("19", "EUR", 1900, "19.00"),
            ("0.01", "USD", 1, "0.01"),
            ("1500", "JPY", 1500, "1500"),
            ("0.10", "USD", 10, "0.10"),
        ] {
            let money = Money::parse(text, currency).unwrap();
            assert_eq!(money.minor_units, units, "{text}");
            assert_eq!(money.to_string(), printed);
        }
        let total = Money::parse("0.10", "USD").unwrap().times(3).unwrap().plus(Money::parse("0.20", "USD").unwrap());
        assert_eq!(total.unwrap().to_string(), "0.50", "0.1 * 3 + 0.2 is exactly 0.50");
    }

    #[test]
    fn refuses_what_is_not_a_plain_amount() {
        for bad in ["", "-1", "1.999", "1e3", "1.", ".5", "NaN", "1,5", " 1", "12345678901234", "1.0.0"] {
            assert_eq!(Money::parse(bad, "USD").unwrap_err().code, "invalid_price", "{bad}");
        }
        assert_eq!(Money::parse("1.5", "JPY").unwrap_err().code, "invalid_price");
        assert_eq!(Money::parse("1", "XXX").unwrap_err().code, "unsupported_currency");
    }
}
