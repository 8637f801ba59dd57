//! Input checks shared by the inventory's messages and routes.

use std::collections::BTreeSet;

use emporium_contracts::events::StockLine;

use crate::error::InventoryError;

/// Most lines in one reservation.
pub const MAX_LINES: usize = 100;
/// Most units of one SKU in one reservation.
pub const MAX_QUANTITY: u32 = 10_000;
/// Most units of stock a SKU may have.
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// A SKU is 1 to 64 characters: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_sku(sku: &str) -> Result<(), InventoryError> {
    let valid = !sku.is_empty()
        && sku.len() <= 64
        && sku.chars().next().is_some_and(|first| first.is_ascii_alphanumeric())
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(InventoryError::Invalid {
            code: "invalid_sku",
            message: "a sku is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit".to_string(),
        })
    }
}

/// An order id is 1 to 64 visible ASCII characters.
pub fn check_order_id(order_id: &str) -> Result<(), InventoryError> {
    if !order_id.is_empty() && order_id.len() <= 64 && order_id.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(InventoryError::Invalid {
            code: "invalid_order_id",
            message: "an order id is 1 to 64 visible characters".into(),
        })
    }
}

/// Lines of a reservation: 1 to [`MAX_LINES`], valid SKUs, each once, quantities 1 to
/// [`MAX_QUANTITY`]. Answers them sorted by SKU (the order rows are locked in).
pub fn check_lines(lines: &[StockLine]) -> Result<Vec<StockLine>, InventoryError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(InventoryError::Invalid { code: "invalid_lines", message: format!("1 to {MAX_LINES} lines") });
    }
    let mut seen = BTreeSet::new();
    for line in lines {
        check_sku(&line.sku)?;
        if line.quantity == 0 || line.quantity > MAX_QUANTITY {
            return Err(InventoryError::Invalid {
                code: "invalid_quantity",
                message: format!("quantity of {} must be between 1 and {MAX_QUANTITY}", line.sku),
            });
        }
        if !seen.insert(line.sku.as_str()) {
            return Err(InventoryError::Invalid {
                code: "duplicate_sku",
                message: format!("{} appears twice; put it on one line", line.sku),
            });
        }
    }
    let mut sorted = lines.to_vec();
    sorted.sort_by(|left, right| left.sku.cmp(&right.sku));
    Ok(sorted)
}

/// A stock level: 0 to [`MAX_STOCK`].
pub fn check_level(name: &'static str, value: i64) -> Result<(), InventoryError> {
    if (0..=MAX_STOCK).contains(&value) {
        Ok(())
    } else {
        Err(InventoryError::Invalid {
            code: "invalid_stock",
            message: format!("{name} must be between 0 and {MAX_STOCK}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> StockLine {
        StockLine { sku: sku.into(), quantity }
    }

    #[test]
    fn skus_are_plain_identifiers() {
        for good in ["A", "sku-1", "SKU_2.b", "9lives"] {
            check_sku(good).unwrap();
        }
        for bad in ["", "-a", "a b", "a/b", "'; DROP TABLE inventory_stock; --", "{\"$ne\":1}", &"x".repeat(65)] {
            assert!(check_sku(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_checked_and_sorted() {
        let sorted = check_lines(&[line("b", 1), line("a", 2)]).unwrap();
        assert_eq!(sorted[0].sku, "a");
        let code = |lines: &[StockLine]| match check_lines(lines).unwrap_err() {
            InventoryError::Invalid { code, .. } => code,
            other => panic!("{other}"),
        };
        assert_eq!(code(&[]), "invalid_lines");
        assert_eq!(code(&[line("a", 0)]), "invalid_quantity");
        assert_eq!(code(&[line("a", MAX_QUANTITY + 1)]), "invalid_quantity");
        assert_eq!(code(&[line("a", 1), line("a", 2)]), "duplicate_sku");
    }

    #[test]
    fn levels_are_bounded() {
        check_level("available", 0).unwrap();
        assert!(check_level("available", -1).is_err());
        assert!(check_level("available", MAX_STOCK + 1).is_err());
    }
}
