//! The demo catalog (`emporium seed`): twenty products in four categories, priced in USD, loaded
//! into an empty store only, with the stock the node gives the inventory service for them.

use std::collections::BTreeMap;

use emporium_contracts::product::ProductRequest;

use crate::store::ProductStore;
use crate::validation::check_product;

/// Products written per batch (one progress line each).
pub const SEED_BATCH: usize = 5;

/// The stock a demo SKU should start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoStock {
    /// The SKU.
    pub sku: String,
    /// Units available.
    pub available: i64,
    /// Reorder when available falls to this level.
    pub reorder_level: i64,
    /// Units to reorder.
    pub reorder_quantity: i64,
}

/// `(sku, name, description, price, category, attributes, available)` of the demo products.
type DemoLine = (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str, i64);

const DEMO: [DemoLine; 20] = [
    (
        "BOOK-RUST-01",
        "The Rust Programming Language",
        "The official book on Rust, second edition.",
        "39.95",
        "books",
        r#"{"author": "Klabnik, Nichols", "pages": 560, "hardcover": false}"#,
        120,
    ),
    (
        "BOOK-ACTOR-02",
        "Designing Actor Systems",
        "Supervision trees, location transparency and back-pressure in practice.",
        "45.00",
        "books",
        r#"{"author": "Emporium Press", "pages": 340, "hardcover": true}"#,
        40,
    ),
    (
        "BOOK-DATA-03",
        "Designing Data-Intensive Applications",
        "Reliable, scalable and maintainable systems.",
        "49.99",
        "books",
        r#"{"author": "Kleppmann", "pages": 616, "hardcover": false}"#,
        75,
    ),
    (
        "BOOK-COOK-04",
        "Salt, Fat, Acid, Heat",
        "Mastering the elements of good cooking.",
        "35.00",
        "books",
        r#"{"author": "Nosrat", "pages": 480, "hardcover": true}"#,
        30,
    ),
    (
        "BOOK-TRAIL-05",
        "Trail Guide to the Alps",
        "Forty day hikes with maps and elevation profiles.",
        "24.50",
        "books",
        r#"{"author": "Berger", "pages": 212, "hardcover": false}"#,
        3,
    ),
    (
        "COF-ESP-01",
        "Espresso Roast Beans 1 kg",
        "Dark roast, notes of cocoa and caramel.",
        "21.90",
        "coffee",
        r#"{"roast": "dark", "weight_g": 1000, "organic": true}"#,
        200,
    ),
    (
        "COF-FIL-02",
        "Filter Roast Beans 250 g",
        "Light roast from Ethiopia, floral and bright.",
        "12.50",
        "coffee",
        r#"{"roast": "light", "weight_g": 250, "organic": true}"#,
        150,
    ),
    (
        "COF-GRN-03",
        "Burr Coffee Grinder",
        "Conical steel burrs, 40 grind settings.",
        "129.00",
        "coffee",
        r#"{"settings": 40, "electric": true}"#,
        25,
    ),
    (
        "COF-KET-04",
        "Gooseneck Kettle",
        "Temperature control to the degree, 0.9 l.",
        "89.00",
        "coffee",
        r#"{"capacity_ml": 900, "electric": true}"#,
        35,
    ),
    (
        "COF-MUG-05",
        "Stoneware Mug",
        "Hand-glazed, 350 ml, dishwasher safe.",
        "14.00",
        "coffee",
        r#"{"capacity_ml": 350, "color": "slate"}"#,
        300,
    ),
    (
        "OUT-TENT-01",
        "Two-Person Trekking Tent",
        "Freestanding, 1.6 kg, three seasons.",
        "299.00",
        "outdoor",
        r#"{"weight_g": 1600, "seasons": 3, "color": "green"}"#,
        12,
    ),
    (
        "OUT-BAG-02",
        "Down Sleeping Bag",
        "Comfort to -5 C, packs to the size of a loaf.",
        "249.99",
        "outdoor",
        r#"{"comfort_c": -5, "fill": "down"}"#,
        18,
    ),
    (
        "OUT-PACK-03",
        "Daypack 28 l",
        "Ventilated back, rain cover included.",
        "79.95",
        "outdoor",
        r#"{"volume_l": 28, "color": "blue"}"#,
        60,
    ),
    (
        "OUT-LAMP-04",
        "Rechargeable Headlamp",
        "400 lumens, red light mode, USB-C.",
        "39.00",
        "outdoor",
        r#"{"lumens": 400, "waterproof": true}"#,
        90,
    ),
    (
        "OUT-BOTL-05",
        "Insulated Bottle 750 ml",
        "Keeps drinks cold for 24 hours.",
        "29.90",
        "outdoor",
        r#"{"capacity_ml": 750, "color": "red"}"#,
        140,
    ),
    (
        "ELEC-KB-01",
        "Mechanical Keyboard",
        "Tenkeyless, hot-swappable switches, USB-C.",
        "119.00",
        "electronics",
        r#"{"layout": "TKL", "wireless": false}"#,
        45,
    ),
    (
        "ELEC-MOUSE-02",
        "Wireless Mouse",
        "Silent clicks, 70 days on a charge.",
        "49.00",
        "electronics",
        r#"{"wireless": true, "dpi": 4000}"#,
        80,
    ),
    (
        "ELEC-HUB-03",
        "USB-C Hub 7-in-1",
        "HDMI 4K, two USB-A, SD card, 100 W pass-through.",
        "59.99",
        "electronics",
        r#"{"ports": 7, "power_w": 100}"#,
        4,
    ),
    (
        "ELEC-HEAD-04",
        "Noise-Cancelling Headphones",
        "Over-ear, 30 hours of battery.",
        "299.00",
        "electronics",
        r#"{"wireless": true, "battery_h": 30}"#,
        22,
    ),
    (
        "ELEC-CABLE-05",
        "Braided USB-C Cable 2 m",
        "240 W, USB 2.0 data.",
        "12.90",
        "electronics",
        r#"{"length_m": 2, "power_w": 240}"#,
        500,
    ),
];

/// The demo products as create requests, with their suggested stock.
pub fn demo_catalog() -> Vec<(ProductRequest, DemoStock)> {
    DEMO.iter()
        .map(|(sku, name, description, price, category, attributes, available)| {
            let attributes: BTreeMap<String, serde_json::Value> = serde_json::from_str(attributes).unwrap_or_default();
            let request = ProductRequest {
                sku: sku.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                price: price.to_string(),
                currency: "USD".to_string(),
                category: category.to_string(),
                attributes,
            };
            let stock =
                DemoStock { sku: sku.to_string(), available: *available, reorder_level: 5, reorder_quantity: 50 };
            (request, stock)
        })
        .collect()
}

/// Loads the demo catalog into `store`, which must be empty (else an error, nothing written),
/// calling `progress` with one line per batch of [`SEED_BATCH`]. Answers the stock the node
/// should set for each demo SKU.
pub async fn seed_demo_catalog(store: &ProductStore, mut progress: impl FnMut(&str)) -> anyhow::Result<Vec<DemoStock>> {
    let existing = store.count().await?;
    if existing > 0 {
        anyhow::bail!(
            "the {} product store already holds {existing} product(s); the demo catalog only goes into an empty store",
            store.kind()
        );
    }
    let catalog = demo_catalog();
    let mut drafts = Vec::with_capacity(catalog.len());
    for (request, _) in &catalog {
        drafts.push(check_product(request.clone())?);
    }
    let mut written = 0;
    for batch in drafts.chunks(SEED_BATCH) {
        store.insert_many(batch).await?;
        written += batch.len();
        let skus: Vec<&str> = batch.iter().map(|draft| draft.sku.as_str()).collect();
        progress(&format!("seeded {written}/{} demo products ({})", drafts.len(), skus.join(", ")));
    }
    Ok(catalog.into_iter().map(|(_, stock)| stock).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_demo_catalog_is_valid_and_varied() {
        let catalog = demo_catalog();
        assert_eq!(catalog.len(), 20);
        let categories: BTreeSet<&str> = catalog.iter().map(|(request, _)| request.category.as_str()).collect();
        assert_eq!(categories.len(), 4);
        let skus: BTreeSet<&str> = catalog.iter().map(|(request, _)| request.sku.as_str()).collect();
        assert_eq!(skus.len(), 20);
        for (request, stock) in &catalog {
            assert!(!request.attributes.is_empty(), "{}", request.sku);
            check_product(request.clone()).unwrap();
            assert_eq!(stock.sku, request.sku);
        }
    }
}
