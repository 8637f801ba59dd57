//! Whole numbers as JSON Schema counts them: `3` and `3.0` alike (an `integer` of JSON Schema is
//! any number whose fractional part is zero), never `3.5`, `"3"` or `true`. For request fields
//! documented as `integer`: `#[serde(deserialize_with = "crate::whole_number::i64")]`.

use std::fmt;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

/// The largest magnitude a JSON number with a fraction part of zero carries exactly (2^53).
const LARGEST_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// An `i64` from a JSON integer, or from a number like `12.0` whose fraction is zero.
pub fn i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = i64;

    // "integer": the input-error wording (emporium_runtime::input_errors) says "a whole number".
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an integer")
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<i64, E> {
        if value.is_finite() && value.fract() == 0.0 && value.abs() <= LARGEST_EXACT_FLOAT {
            Ok(value as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "super::i64")]
        quantity: i64,
    }

    fn quantity(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Line>(json).map(|line| line.quantity).map_err(|error| error.to_string())
    }

    #[test]
    fn integers_and_integral_floats_are_whole_numbers() {
        assert_eq!(quantity(r#"{"quantity": 3}"#), Ok(3));
        assert_eq!(quantity(r#"{"quantity": -3}"#), Ok(-3));
        assert_eq!(quantity(r#"{"quantity": 4920526.0}"#), Ok(4_920_526));
        assert_eq!(quantity(r#"{"quantity": 1e3}"#), Ok(1000));
        assert_eq!(quantity(r#"{"quantity": -0.0}"#), Ok(0));
    }

    #[test]
    fn fractions_text_and_huge_numbers_are_not() {
        for json in [
            r#"{"quantity": 3.5}"#,
            r#"{"quantity": "3"}"#,
            r#"{"quantity": true}"#,
            r#"{"quantity": null}"#,
            r#"{"quantity": 1e300}"#,
            r#"{"quantity": 18446744073709551615}"#,
        ] {
            let error = quantity(json).unwrap_err();
            assert!(error.contains("expected an integer"), "{json}: {error}");
        }
    }
}
