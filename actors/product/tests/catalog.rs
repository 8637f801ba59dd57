//! The product service against both of its stores, MongoDB (`EMPORIUM_TEST_MONGODB_URL`, a
//! fresh database per test) and the embedded SQLite store (a temporary file), through its
//! message table as the gateway and the order service use it.

mod support;

use std::collections::BTreeMap;

use emporium_contracts::page::{Page, PageRequest};
use emporium_contracts::product::{
    CreateProduct, DeleteProduct, GetProduct, GetProducts, ListProducts, PriceSnapshot, ProductFilter, ProductSort,
    ProductView, UpdateProduct,
};
use support::{admin, customer, product};

fn skus(page: &Page<ProductView>) -> Vec<&str> {
    page.items.iter().map(|item| item.sku.as_str()).collect()
}

fn filter(category: Option<&str>, text: Option<&str>, min: Option<&str>, max: Option<&str>) -> ProductFilter {
    ProductFilter {
        category: category.map(str::to_string),
        text: text.map(str::to_string),
        min_price: min.map(str::to_string),
        max_price: max.map(str::to_string),
    }
}

async fn list(
    catalog: &support::Catalog,
    filter: ProductFilter,
    sort: Option<ProductSort>,
    page: u32,
    size: u32,
) -> Page<ProductView> {
    catalog
        .ask(ListProducts { filter, sort, page: PageRequest { page, size } })
        .await
        .unwrap_or_else(|error| panic!("list: {error}"))
}

/// Eight products over three categories; descriptions give the text search something to find.
async fn stock_the_shelves(catalog: &support::Catalog) {
    let lines = [
        ("MUG-1", "Stoneware Mug", "A red mug for coffee", "14.00", "kitchen"),
        ("MUG-2", "Travel Mug", "Keeps coffee hot; fits a cup holder", "24.50", "kitchen"),
        ("KETTLE-1", "Gooseneck Kettle", "Pour-over kettle, café style", "89.00", "kitchen"),
        ("TENT-1", "Trekking Tent", "Two person tent, red fly", "299.00", "outdoor"),
        ("LAMP-1", "Headlamp", "Red light mode, 400 lumens", "39.00", "outdoor"),
        ("BOTTLE-1", "bottle", "Insulated; lowercase name sorts after capitals", "29.90", "outdoor"),
        (
            "BOOK-1",
            "Actor Systems",
            "Supervision explained, $where and {\"$ne\": 1} are just words here",
            "45.00",
            "books",
        ),
        ("BOOK-2", "Zen of Rust", "Ownership without tears", "0.10", "books"),
    ];
    for (sku, name, description, price, category) in lines {
        let mut request = product(sku, name, price, category);
        request.description = description.into();
        catalog.create(request).await;
    }
}

on_both_stores!(create_read_update_delete, |catalog| {
    let mut request = product("CRUD-1", "Teapot", "32.00", "kitchen");
    request.description = "Cast iron, 0.8 l".into();
    request.attributes = BTreeMap::from([
        ("color".to_string(), serde_json::json!("black")),
        ("capacity_ml".to_string(), serde_json::json!(800)),
        ("ratio".to_string(), serde_json::json!(0.25)),
        ("dishwasher_safe".to_string(), serde_json::json!(false)),
    ]);
    let created = catalog.create(request.clone()).await;
    assert_eq!(created.id.len(), 24, "{}", created.id);
    assert_eq!((created.sku.as_str(), created.price.as_str(), created.currency.as_str()), ("CRUD-1", "32.00", "USD"));
    assert_eq!(created.attributes, request.attributes);
    assert_eq!(created.created_at, created.updated_at);
    let read = catalog.ask(GetProduct { id: created.id.clone() }).await.unwrap();
    assert_eq!(read, created, "a write answers exactly what a read returns");

    let mut change = request.clone();
    change.name = "Cast Iron Teapot".into();
    change.price = "29.5".into();
    change.attributes.remove("ratio");
    change.attributes.insert("color".into(), serde_json::json!("red"));
    let updated =
        catalog.ask(UpdateProduct { caller: admin(), id: created.id.clone(), request: change.clone() }).await.unwrap();
    assert_eq!(
        (updated.id.as_str(), updated.name.as_str(), updated.price.as_str()),
        (created.id.as_str(), "Cast Iron Teapot", "29.50")
    );
    assert_eq!(updated.attributes, change.attributes);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(catalog.ask(GetProduct { id: created.id.clone() }).await.unwrap(), updated);

    // The text index follows updates and deletions.
    let words = |text: &'static str| list(catalog, filter(None, Some(text), None, None), None, 0, 20);
    assert_eq!(skus(&words("iron teapot").await), vec!["CRUD-1"]);
    assert_eq!(words("0.8").await.total_elements, 1, "the description is still indexed");
    let mut reworded = change.clone();
    reworded.description = "Enamelled, 1 l".into();
    catalog.ask(UpdateProduct { caller: admin(), id: created.id.clone(), request: reworded }).await.unwrap();
    assert_eq!(words("cast").await.total_elements, 1);
    assert_eq!(words("0.8").await.total_elements, 0, "the old description is gone from the index");
    assert_eq!(words("enamelled").await.total_elements, 1);

    catalog.ask(DeleteProduct { caller: admin(), id: created.id.clone() }).await.unwrap();
    assert_eq!(words("teapot").await.total_elements, 0);
    for error in [
        catalog.ask(GetProduct { id: created.id.clone() }).await.unwrap_err(),
        catalog.ask(DeleteProduct { caller: admin(), id: created.id.clone() }).await.unwrap_err(),
        catalog
            .ask(UpdateProduct { caller: admin(), id: created.id.clone(), request: change.clone() })
            .await
            .unwrap_err(),
    ] {
        assert_eq!((error.http_status(), error.code.as_str()), (404, "product_not_found"));
    }
    // A malformed id is simply not found: never a 500, never a query on something else.
    for id in ["not-an-id", "", "{\"$ne\":null}", "zzzzzzzzzzzzzzzzzzzzzzzz", "' OR '1'='1"] {
        let error = catalog.ask(GetProduct { id: id.into() }).await.unwrap_err();
        assert_eq!((error.http_status(), error.code.as_str()), (404, "product_not_found"), "{id:?}");
        let error = catalog.ask(DeleteProduct { caller: admin(), id: id.into() }).await.unwrap_err();
        assert_eq!(error.code, "product_not_found", "{id:?}");
    }
});

on_both_stores!(a_duplicate_sku_is_sku_taken_from_the_unique_index, |catalog| {
    let first = catalog.create(product("DUP-1", "First", "1.00", "misc")).await;
    let error =
        catalog.ask(CreateProduct { caller: admin(), request: product("DUP-1", "Second", "2.00", "misc") }).await;
    let error = error.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (409, "sku_taken"));
    let other = catalog.create(product("DUP-2", "Other", "3.00", "misc")).await;
    let error = catalog
        .ask(UpdateProduct {
            caller: admin(),
            id: other.id.clone(),
            request: product("DUP-1", "Other", "3.00", "misc"),
        })
        .await
        .unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (409, "sku_taken"));
    // Ten concurrent creations of one new SKU: the unique index lets exactly one through.
    let attempts = (0..10).map(|index| {
        catalog.ask(CreateProduct {
            caller: admin(),
            request: product("RACE-1", &format!("Racer {index}"), "5.00", "misc"),
        })
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|result| result.is_ok()).count();
    let taken = results.iter().filter(|result| matches!(result, Err(error) if error.code == "sku_taken")).count();
    assert_eq!((created, taken), (1, 9), "{results:?}");
    assert_eq!(catalog.store.count().await.unwrap(), 3);
    assert_eq!(catalog.ask(GetProduct { id: first.id.clone() }).await.unwrap().name, "First");
});

on_both_stores!(money_round_trips_exactly, |catalog| {
    let prices = [
        ("M-1", "19.99", "USD", "19.99"),
        ("M-2", "0.10", "USD", "0.10"),
        ("M-3", "0.1", "EUR", "0.10"),
        ("M-4", "0.01", "GBP", "0.01"),
        ("M-5", "1500", "JPY", "1500"),
        ("M-6", "100", "CHF", "100.00"),
        ("M-7", "1000000000.00", "USD", "1000000000.00"),
        ("M-8", "0", "CAD", "0.00"),
        ("M-9", "999999999.99", "USD", "999999999.99"),
    ];
    for (sku, price, currency, shown) in prices {
        let mut request = product(sku, sku, price, "money");
        request.currency = currency.into();
        let created = catalog.create(request).await;
        assert_eq!(created.price, shown, "{sku}");
        assert_eq!(catalog.ask(GetProduct { id: created.id }).await.unwrap().price, shown, "{sku}");
    }
    let page = list(catalog, filter(Some("money"), None, None, None), Some(ProductSort::PriceAsc), 0, 100).await;
    let listed: Vec<(&str, &str)> = page.items.iter().map(|item| (item.sku.as_str(), item.price.as_str())).collect();
    assert_eq!(
        listed,
        vec![
            ("M-8", "0.00"),
            ("M-4", "0.01"),
            ("M-2", "0.10"),
            ("M-3", "0.10"),
            ("M-1", "19.99"),
            ("M-6", "100.00"),
            ("M-5", "1500"),
            ("M-9", "999999999.99"),
            ("M-7", "1000000000.00"),
        ],
        "amounts compare exactly, across currencies and scales"
    );
    // 0.1 + 0.2 style artefacts cannot appear: bounds are exact too.
    let exact =
        list(catalog, filter(Some("money"), None, Some("0.10"), Some("0.10")), Some(ProductSort::PriceAsc), 0, 100)
            .await;
    assert_eq!(skus(&exact), vec!["M-2", "M-3"]);
    let near_the_top =
        list(catalog, filter(Some("money"), None, Some("999999999.99"), None), Some(ProductSort::PriceAsc), 0, 100)
            .await;
    assert_eq!(skus(&near_the_top), vec!["M-9", "M-7"]);
    let snapshot = catalog.ask(GetProducts { skus: vec!["M-1".into(), "M-5".into()] }).await.unwrap();
    assert_eq!(
        snapshot.found,
        vec![
            PriceSnapshot { sku: "M-1".into(), name: "M-1".into(), price: "19.99".into(), currency: "USD".into() },
            PriceSnapshot { sku: "M-5".into(), name: "M-5".into(), price: "1500".into(), currency: "JPY".into() },
        ]
    );
});

on_both_stores!(list_filters_by_category_words_and_price, |catalog| {
    stock_the_shelves(catalog).await;
    let all = list(catalog, filter(None, None, None, None), Some(ProductSort::NameAsc), 0, 100).await;
    assert_eq!(all.total_elements, 8);
    let kitchen = list(catalog, filter(Some("kitchen"), None, None, None), Some(ProductSort::PriceAsc), 0, 20).await;
    assert_eq!(skus(&kitchen), vec!["MUG-1", "MUG-2", "KETTLE-1"]);
    assert_eq!(list(catalog, filter(Some("Kitchen"), None, None, None), None, 0, 20).await.total_elements, 0);

    // Words: whole words, all of them, in the name or the description, case ignored.
    let red = list(catalog, filter(None, Some("red"), None, None), Some(ProductSort::PriceAsc), 0, 20).await;
    assert_eq!(skus(&red), vec!["MUG-1", "LAMP-1", "TENT-1"]);
    let red_mug = list(catalog, filter(None, Some("RED mug"), None, None), None, 0, 20).await;
    assert_eq!(skus(&red_mug), vec!["MUG-1"]);
    let coffee = list(catalog, filter(None, Some("coffee"), None, None), Some(ProductSort::PriceDesc), 0, 20).await;
    assert_eq!(skus(&coffee), vec!["MUG-2", "MUG-1"]);
    let accents = list(catalog, filter(None, Some("cafe"), None, None), None, 0, 20).await;
    assert_eq!(skus(&accents), vec!["KETTLE-1"], "diacritics are ignored");
    let partial = list(catalog, filter(None, Some("mu"), None, None), None, 0, 20).await;
    assert_eq!(partial.total_elements, 0, "no prefix or substring matching: whole words");
    let no_stemming = list(catalog, filter(None, Some("mugs"), None, None), None, 0, 20).await;
    assert_eq!(no_stemming.total_elements, 0, "no stemming on either store");

    // Price range: inclusive, exact, combined with the rest.
    let range = list(catalog, filter(None, None, Some("24.50"), Some("45")), Some(ProductSort::PriceAsc), 0, 20).await;
    assert_eq!(skus(&range), vec!["MUG-2", "BOTTLE-1", "LAMP-1", "BOOK-1"]);
    let cheap = list(catalog, filter(None, None, None, Some("0.10")), None, 0, 20).await;
    assert_eq!(skus(&cheap), vec!["BOOK-2"]);
    let combined = list(
        catalog,
        filter(Some("outdoor"), Some("red"), Some("39"), Some("100")),
        Some(ProductSort::PriceAsc),
        0,
        20,
    )
    .await;
    assert_eq!(skus(&combined), vec!["LAMP-1"]);
    let reversed = list(catalog, filter(None, None, Some("50"), Some("10")), None, 0, 20).await;
    assert_eq!(reversed.total_elements, 0, "a range with no price in it matches nothing");
});

on_both_stores!(list_sorts_both_ways_and_pages, |catalog| {
    stock_the_shelves(catalog).await;
    let sorted = |sort| list(catalog, filter(None, None, None, None), Some(sort), 0, 100);
    let by_price = ["BOOK-2", "MUG-1", "MUG-2", "BOTTLE-1", "LAMP-1", "BOOK-1", "KETTLE-1", "TENT-1"];
    assert_eq!(skus(&sorted(ProductSort::PriceAsc).await), by_price);
    assert_eq!(skus(&sorted(ProductSort::PriceDesc).await), by_price.iter().rev().copied().collect::<Vec<_>>());
    // Names compare by their bytes on both stores: capitals first.
    let by_name = ["BOOK-1", "KETTLE-1", "LAMP-1", "MUG-1", "MUG-2", "TENT-1", "BOOK-2", "BOTTLE-1"];
    assert_eq!(skus(&sorted(ProductSort::NameAsc).await), by_name);
    assert_eq!(skus(&sorted(ProductSort::NameDesc).await), by_name.iter().rev().copied().collect::<Vec<_>>());
    let by_creation = ["MUG-1", "MUG-2", "KETTLE-1", "TENT-1", "LAMP-1", "BOTTLE-1", "BOOK-1", "BOOK-2"];
    assert_eq!(skus(&sorted(ProductSort::CreatedAtAsc).await), by_creation);
    let newest_first = by_creation.iter().rev().copied().collect::<Vec<_>>();
    assert_eq!(skus(&sorted(ProductSort::CreatedAtDesc).await), newest_first);
    let default_order = list(catalog, filter(None, None, None, None), None, 0, 100).await;
    assert_eq!(skus(&default_order), newest_first, "newest first when no sort is asked");

    // Pages of three: 3 + 3 + 2, no overlap, totals on every page.
    let mut seen = Vec::new();
    for page_number in 0..3 {
        let page = list(catalog, filter(None, None, None, None), Some(ProductSort::PriceAsc), page_number, 3).await;
        assert_eq!((page.page, page.size, page.total_elements, page.total_pages), (page_number, 3, 8, 3));
        assert_eq!(page.items.len(), if page_number == 2 { 2 } else { 3 });
        seen.extend(page.items.into_iter().map(|item| item.sku));
    }
    assert_eq!(seen, by_price);
    let beyond = list(catalog, filter(None, None, None, None), Some(ProductSort::PriceAsc), 7, 3).await;
    assert_eq!((beyond.items.len(), beyond.total_elements, beyond.total_pages), (0, 8, 3));
    let filtered = list(catalog, filter(Some("outdoor"), None, None, None), Some(ProductSort::NameAsc), 1, 2).await;
    assert_eq!((skus(&filtered), filtered.total_elements, filtered.total_pages), (vec!["BOTTLE-1"], 3, 2));
    let text_pages = list(catalog, filter(None, Some("red"), None, None), Some(ProductSort::PriceAsc), 1, 2).await;
    assert_eq!((skus(&text_pages), text_pages.total_elements, text_pages.total_pages), (vec!["TENT-1"], 3, 2));
});

on_both_stores!(get_products_answers_found_and_missing, |catalog| {
    stock_the_shelves(catalog).await;
    let asked = ["TENT-1", "NOPE-1", "MUG-1", "TENT-1", "{\"$ne\":null}", "mug-1"].map(String::from).to_vec();
    let answer = catalog.ask(GetProducts { skus: asked }).await.unwrap();
    assert_eq!(
        answer.found,
        vec![
            PriceSnapshot {
                sku: "TENT-1".into(),
                name: "Trekking Tent".into(),
                price: "299.00".into(),
                currency: "USD".into()
            },
            PriceSnapshot {
                sku: "MUG-1".into(),
                name: "Stoneware Mug".into(),
                price: "14.00".into(),
                currency: "USD".into()
            },
        ]
    );
    assert_eq!(answer.missing, vec!["NOPE-1", "{\"$ne\":null}", "mug-1"]);
    for skus in [Vec::new(), vec!["MUG-1".to_string(); 101]] {
        let error = catalog.ask(GetProducts { skus }).await.unwrap_err();
        assert_eq!((error.http_status(), error.code.as_str()), (400, "invalid_skus"));
    }
    let hundred: Vec<String> = (0..100).map(|index| format!("SKU-{index}")).collect();
    assert_eq!(catalog.ask(GetProducts { skus: hundred }).await.unwrap().missing.len(), 100);
});

on_both_stores!(hostile_filters_are_literal_or_refused_never_widened, |catalog| {
    stock_the_shelves(catalog).await;
    let total_of = |text: Option<&'static str>, category: Option<&'static str>| async move {
        list(catalog, filter(category, text, None, None), None, 0, 100).await.total_elements
    };
    // Operators and patterns in q are words or nothing; they never match everything.
    assert_eq!(skus(&list(catalog, filter(None, Some("$where"), None, None), None, 0, 100).await), vec!["BOOK-1"]);
    assert_eq!(total_of(Some("{\"$ne\":null}"), None).await, 0, "no product has the word null");
    assert_eq!(total_of(Some("{\"$ne\": 1}"), None).await, 1, "BOOK-1 has the words ne and 1");
    for pattern in [".*", "^.*$", "*", "\"", "-", "\\", "(", "[a-z]+", "' OR '1'='1'--"] {
        let hits = total_of(Some(pattern), None).await;
        assert!(hits <= 1, "{pattern:?} matched {hits} products");
    }
    assert_eq!(total_of(Some(".*"), None).await, 0);
    assert_eq!(total_of(Some("NOT red"), None).await, 0, "NOT is a word, not an operator");
    assert_eq!(total_of(Some("red OR zen"), None).await, 0, "OR is a word, not an operator");
    assert_eq!(total_of(Some("-red"), None).await, 3, "a leading minus is not a negation");
    for category in ["{\"$ne\":\"x\"}", ".*", "kitchen' OR '1'='1", "$where"] {
        assert_eq!(total_of(None, Some(category)).await, 0, "{category:?}");
    }
    for (min, max, code) in [
        (Some("1e309"), None, "invalid_price"),
        (Some("abc"), None, "invalid_price"),
        (None, Some("-1"), "invalid_price"),
        (Some("{\"$gt\":0}"), None, "invalid_price"),
        (Some("0.001"), None, "invalid_price"),
        (Some("NaN"), None, "invalid_price"),
    ] {
        let error = catalog
            .ask(ListProducts { filter: filter(None, None, min, max), sort: None, page: PageRequest::default() })
            .await
            .unwrap_err();
        assert_eq!((error.http_status(), error.code.as_str()), (400, code), "{min:?} {max:?}");
    }
    let error = catalog
        .ask(ListProducts {
            filter: filter(None, None, None, None),
            sort: None,
            page: PageRequest { page: 0, size: 100_000 },
        })
        .await
        .unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (400, "invalid_page"));
    let long = "a".repeat(201);
    let error = catalog
        .ask(ListProducts { filter: filter(None, Some(&long), None, None), sort: None, page: PageRequest::default() })
        .await
        .unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (400, "invalid_query"));
    assert_eq!(catalog.store.count().await.unwrap(), 8, "nothing was changed along the way");
});

on_both_stores!(writes_need_an_admin_and_valid_values, |catalog| {
    let error = catalog.ask(CreateProduct { caller: customer(), request: product("C-1", "Cup", "1.00", "misc") }).await;
    assert_eq!(error.unwrap_err().http_status(), 403);
    let created = catalog.create(product("C-1", "Cup", "1.00", "misc")).await;
    let error = catalog.ask(DeleteProduct { caller: customer(), id: created.id.clone() }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (403, "forbidden"));
    let mut bad = product("C-2", "Cup", "1.00", "misc");
    bad.attributes.insert("$where".into(), serde_json::json!("sleep(1000)"));
    let error = catalog.ask(CreateProduct { caller: admin(), request: bad }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (400, "invalid_attributes"));
    let mut bad = product("C-2", "Cup", "1.00", "misc");
    bad.attributes.insert("nested".into(), serde_json::json!({"$gt": ""}));
    let error = catalog.ask(CreateProduct { caller: admin(), request: bad }).await.unwrap_err();
    assert_eq!(error.code, "invalid_attributes");
    let error = catalog.ask(CreateProduct { caller: admin(), request: product("C-2", "Cup", "1.999", "misc") }).await;
    assert_eq!(error.unwrap_err().code, "invalid_price");
    let mut yen = product("C-2", "Cup", "1.5", "misc");
    yen.currency = "JPY".into();
    assert_eq!(catalog.ask(CreateProduct { caller: admin(), request: yen }).await.unwrap_err().code, "invalid_price");
    assert_eq!(catalog.store.count().await.unwrap(), 1);
});

on_both_stores!(the_demo_catalog_goes_into_an_empty_store_only, |catalog| {
    let mut lines = Vec::new();
    let stock = emporium_product::seed_demo_catalog(&catalog.store, |line| lines.push(line.to_string())).await.unwrap();
    assert_eq!(stock.len(), 20);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[3].starts_with("seeded 20/20 demo products"), "{lines:?}");
    let page = list(catalog, filter(None, None, None, None), None, 0, 100).await;
    assert_eq!(page.total_elements, 20);
    let found = catalog.ask(GetProducts { skus: stock.iter().map(|line| line.sku.clone()).collect() }).await.unwrap();
    assert_eq!((found.found.len(), found.missing.len()), (20, 0));
    let error = emporium_product::seed_demo_catalog(&catalog.store, |_| {}).await.unwrap_err();
    assert!(error.to_string().contains("already holds 20 product(s)"), "{error}");
    assert_eq!(catalog.store.count().await.unwrap(), 20);
    catalog.store.ping().await.unwrap();
});

/// A MongoDB URL that is set but unreachable stops the start with the reason (credentials
/// hidden); there is no fallback to the embedded store.
#[actix_rt::test]
async fn an_unreachable_mongodb_url_is_an_error_at_start() {
    let started = std::time::Instant::now();
    let url = "mongodb://shop:secret-password@127.0.0.1:1/shop".to_string();
    let error = match emporium_product::ProductStore::open(emporium_product::ProductStoreConfig::MongoDb { url }).await
    {
        Ok(_) => panic!("a closed port was taken for a MongoDB server"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("EMPORIUM_MONGODB_URL is set but MongoDB at mongodb://***@127.0.0.1:1/shop cannot be reached"),
        "{error}"
    );
    assert!(!error.contains("secret-password"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "gave up after {:?}", started.elapsed());
    let error = match emporium_product::ProductStore::open(emporium_product::ProductStoreConfig::MongoDb {
        url: "http://not-mongodb".into(),
    })
    .await
    {
        Ok(_) => panic!("an http URL was taken for MongoDB"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("is not a usable MongoDB URL"), "{error}");
}
