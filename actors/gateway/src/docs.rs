//! `GET /docs`: the interactive API documentation (Swagger UI over `/openapi.json`). Every file
//! is compiled into the binary (`actors/gateway/assets/`), so the page works with no internet.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

const PAGE: &str = include_str!("../assets/docs.html");
const INIT_SCRIPT: &str = include_str!("../assets/docs.js");
const SWAGGER_UI_SCRIPT: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_STYLE: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

/// Mounts `/docs` and its assets.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/docs", web::get().to(|| async { asset("text/html; charset=utf-8", PAGE.as_bytes(), "no-cache") }))
        .route(
            "/docs/docs.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", INIT_SCRIPT.as_bytes(), "no-cache") }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", SWAGGER_UI_SCRIPT, LONG_CACHE) }),
        )
        .route(
            "/docs/swagger-ui.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", SWAGGER_UI_STYLE, LONG_CACHE) }),
        );
}

/// The vendored files change only with the binary.
const LONG_CACHE: &str = "public, max-age=86400";

fn asset(content_type: &'static str, body: &'static [u8], cache: &'static str) -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, content_type)).insert_header((CACHE_CONTROL, cache)).body(body)
}

#[cfg(test)]
mod tests {
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use actix_web::{App, http::StatusCode};

    #[actix_rt::test]
    async fn the_docs_page_and_its_assets_are_served_from_the_binary() {
        let app = init_service(App::new().configure(super::configure)).await;
        for (path, content_type, must_contain) in [
            ("/docs", "text/html", "swagger-ui-bundle.js"),
            ("/docs/docs.js", "text/javascript", "/openapi.json"),
            ("/docs/swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"),
            ("/docs/swagger-ui.css", "text/css", ".swagger-ui"),
        ] {
            let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let header = response.headers().get("content-type").unwrap().to_str().unwrap().to_string();
            assert!(header.starts_with(content_type), "{path}: {header}");
            let body = read_body(response).await;
            assert!(String::from_utf8_lossy(&body).contains(must_contain), "{path}");
            if !path.contains("swagger-ui") {
                assert!(!String::from_utf8_lossy(&body).contains("https://"), "{path} loads nothing from the internet");
            }
        }
    }
}
