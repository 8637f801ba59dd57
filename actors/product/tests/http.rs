//! The catalog's public routes on both stores, as the gateway mounts them (its extractor settings,
//! a caller put on the request as its middleware does): hostile query strings get a 400 or a
//! literal result, never a 500 and never a widened query; writes need an admin; money stays a
//! decimal string.

mod support;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpMessage, web};
use emporium_cluster::edge;
use emporium_contracts::identity::Caller;
use serde_json::{Value, json};

/// The caller the gateway would have verified, named by the test's `x-test-role` header.
fn caller_of(request: &ServiceRequest) -> Option<Caller> {
    match request.headers().get("x-test-role").and_then(|value| value.to_str().ok()) {
        Some("admin") => Some(support::admin()),
        Some("customer") => Some(support::customer()),
        _ => None,
    }
}

macro_rules! test_app {
    ($catalog:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($catalog.cluster.clone()))
                .app_data(edge::json_config(edge::DEFAULT_BODY_LIMIT))
                .app_data(edge::query_config())
                .app_data(edge::path_config())
                .wrap_fn(|request, service| {
                    if let Some(caller) = caller_of(&request) {
                        request.extensions_mut().insert(caller);
                    }
                    service.call(request)
                })
                .configure(emporium_product::routes),
        )
        .await
    };
}

/// Status and JSON body (`Value::Null` when empty).
async fn answer<B: MessageBody>(response: ServiceResponse<B>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = test::read_body(response).await;
    (status, if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

macro_rules! call {
    ($app:expr, $request:expr) => {
        answer(test::call_service(&$app, $request.to_request()).await).await
    };
}

/// Percent-encodes a query value completely (so the test sends exactly the hostile text).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A list query string, the status it gets, and the SKUs of a 200 (in order) or the error code.
type Case = (String, u16, Result<Vec<&'static str>, &'static str>);

fn body(sku: &str, name: &str, price: &str) -> Value {
    json!({"sku": sku, "name": name, "description": "", "price": price, "currency": "USD",
        "category": "kitchen", "attributes": {"color": "red"}})
}

on_both_stores!(hostile_query_strings_get_400_or_a_literal_result, |catalog| {
    let app = test_app!(catalog);
    for (sku, name, description, price) in [
        ("H-1", "Red Mug", "A red mug", "12.00"),
        ("H-2", "Blue Mug", "A blue mug", "15.00"),
        ("H-3", "Query Notes", "literal $where text, and .* too", "30.00"),
    ] {
        let mut request = support::product(sku, name, price, "kitchen");
        request.description = description.into();
        catalog.create(request).await;
    }
    let long_q = "x".repeat(2000);
    let cases: Vec<Case> = vec![
        (format!("q={}", encode("$where")), 200, Ok(vec!["H-3"])),
        (format!("q={}", encode("{\"$ne\":null}")), 200, Ok(vec![])),
        (format!("q={}", encode(".*")), 200, Ok(vec![])),
        (format!("q={}", encode("^.*$")), 200, Ok(vec![])),
        (format!("q={}", encode("red|blue")), 200, Ok(vec![])),
        ("q=%ZZ".to_string(), 200, Ok(vec![])),
        (format!("q={long_q}"), 400, Err("invalid_query")),
        (format!("category={}", encode("{\"$ne\":\"x\"}")), 200, Ok(vec![])),
        ("category[$ne]=x".to_string(), 400, Err("invalid_query")),
        (format!("{}=x", encode("category[$ne]")), 400, Err("invalid_query")),
        ("q[$regex]=.*".to_string(), 400, Err("invalid_query")),
        ("category=kitchen&category=books".to_string(), 400, Err("invalid_query")),
        ("where=1".to_string(), 400, Err("invalid_query")),
        (format!("{}=1", encode("$where")), 400, Err("invalid_query")),
        ("sort=$natural".to_string(), 400, Err("invalid_sort")),
        ("sort=price;drop".to_string(), 400, Err("invalid_sort")),
        (format!("sort={}", encode("price,asc; DROP TABLE products")), 400, Err("invalid_sort")),
        ("sort=_id,asc".to_string(), 400, Err("invalid_sort")),
        ("sort=price".to_string(), 400, Err("invalid_sort")),
        ("minPrice=1e309".to_string(), 400, Err("invalid_price")),
        ("minPrice=abc".to_string(), 400, Err("invalid_price")),
        ("maxPrice=-1".to_string(), 400, Err("invalid_price")),
        (format!("minPrice={}", encode("{\"$gt\":0}")), 400, Err("invalid_price")),
        ("minPrice=20&maxPrice=10".to_string(), 200, Ok(vec![])),
        ("minPrice=0000000001".to_string(), 400, Err("invalid_price")),
        ("maxPrice=5.".to_string(), 400, Err("invalid_price")),
        ("page=-1".to_string(), 400, Err("invalid_page")),
        ("size=100000".to_string(), 400, Err("invalid_page")),
        ("size=0".to_string(), 400, Err("invalid_page")),
        ("page=abc".to_string(), 400, Err("invalid_query")),
        ("page=99999999999999999999".to_string(), 400, Err("invalid_query")),
        (
            "category=&q=&minPrice=&maxPrice=&page=0&size=20&sort=price,asc".to_string(),
            200,
            Ok(vec!["H-1", "H-2", "H-3"]),
        ),
        ("category=kitchen&q=mug&minPrice=12&maxPrice=15&sort=price,desc".to_string(), 200, Ok(vec!["H-2", "H-1"])),
        ("q=RED&sort=name,asc".to_string(), 200, Ok(vec!["H-1"])),
    ];
    for (query, status, expected) in cases {
        let uri = format!("/api/v1/products?{query}");
        let (got_status, body) = call!(app, TestRequest::get().uri(&uri));
        assert_eq!(got_status, status, "{uri}: {body}");
        match expected {
            Ok(skus) => {
                let items = body["items"].as_array().unwrap();
                let got: Vec<&str> = items.iter().map(|item| item["sku"].as_str().unwrap()).collect();
                assert_eq!(got, skus, "{uri}");
                assert_eq!(body["totalElements"], json!(skus.len()), "{uri}: never widened");
            }
            Err(code) => assert_eq!(body["error"]["code"], json!(code), "{uri}: {body}"),
        }
    }
    assert_eq!(catalog.store.count().await.unwrap(), 3);
});

on_both_stores!(writes_need_an_admin_and_money_stays_a_decimal_string, |catalog| {
    let app = test_app!(catalog);
    let post = || TestRequest::post().uri("/api/v1/products");
    let (status, response) = call!(app, post().set_json(body("W-1", "Mug", "19.99")));
    assert_eq!((status, &response["error"]["code"]), (401, &json!("missing_token")));
    let (status, response) =
        call!(app, post().insert_header(("x-test-role", "customer")).set_json(body("W-1", "Mug", "19.99")));
    assert_eq!((status, &response["error"]["code"]), (403, &json!("forbidden")));

    let request = post().insert_header(("x-test-role", "admin")).set_json(body("W-1", "Mug", "19.99"));
    let response = test::call_service(&app, request.to_request()).await;
    let location = response.headers().get("location").unwrap().to_str().unwrap().to_string();
    let (status, created) = answer(response).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["price"], json!("19.99"), "a string, never a float");
    assert_eq!(created["attributes"], json!({"color": "red"}));
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/products/{id}"));
    for field in
        ["id", "sku", "name", "description", "price", "currency", "category", "attributes", "createdAt", "updatedAt"]
    {
        assert!(created.get(field).is_some(), "{field} in {created}");
    }

    let (status, response) =
        call!(app, post().insert_header(("x-test-role", "admin")).set_json(body("W-1", "Mug", "1.00")));
    assert_eq!((status, &response["error"]["code"]), (409, &json!("sku_taken")));
    let mut float_price = body("W-2", "Mug", "1.00");
    float_price["price"] = json!(19.99);
    let (status, response) = call!(app, post().insert_header(("x-test-role", "admin")).set_json(float_price));
    assert_eq!((status, &response["error"]["code"]), (400, &json!("invalid_body")));
    let mut unknown_field = body("W-2", "Mug", "1.00");
    unknown_field["$where"] = json!("1");
    let (status, response) = call!(app, post().insert_header(("x-test-role", "admin")).set_json(unknown_field));
    assert_eq!((status, &response["error"]["code"]), (400, &json!("invalid_body")));
    let mut operator_key = body("W-2", "Mug", "1.00");
    operator_key["attributes"] = json!({"$set": {"price": 0}});
    let (status, response) = call!(app, post().insert_header(("x-test-role", "admin")).set_json(operator_key));
    assert_eq!((status, &response["error"]["code"]), (400, &json!("invalid_attributes")));
    let malformed = post()
        .insert_header(("x-test-role", "admin"))
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"sku\": ");
    let (status, response) = call!(app, malformed);
    assert_eq!((status, &response["error"]["code"]), (400, &json!("malformed_json")));

    let (status, read) = call!(app, TestRequest::get().uri(&format!("/api/v1/products/{id}")));
    assert_eq!((status, &read), (200, &created));
    for bad_id in [encode("{\"$ne\":null}"), "not-an-id".to_string(), "000000000000000000000000".to_string()] {
        let (status, response) = call!(app, TestRequest::get().uri(&format!("/api/v1/products/{bad_id}")));
        assert_eq!((status, &response["error"]["code"]), (404, &json!("product_not_found")), "{bad_id}");
    }

    let put = TestRequest::put()
        .uri(&format!("/api/v1/products/{id}"))
        .insert_header(("x-test-role", "admin"))
        .set_json(body("W-1", "Big Mug", "0.10"));
    let (status, updated) = call!(app, put);
    assert_eq!((status, &updated["price"], &updated["name"]), (200, &json!("0.10"), &json!("Big Mug")));
    let delete = || TestRequest::delete().uri(&format!("/api/v1/products/{id}"));
    let (status, _) = call!(app, delete().insert_header(("x-test-role", "customer")));
    assert_eq!(status, 403);
    let (status, nothing) = call!(app, delete().insert_header(("x-test-role", "admin")));
    assert_eq!((status, nothing), (204, Value::Null));
    let (status, response) = call!(app, TestRequest::get().uri(&format!("/api/v1/products/{id}")));
    assert_eq!((status, &response["error"]["code"]), (404, &json!("product_not_found")));
});
