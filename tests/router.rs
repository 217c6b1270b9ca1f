//! What the router alone decides, sent with `tower::ServiceExt::oneshot` (no socket): the headers
//! every answer carries and the static files. Paths go in exactly as written, dots and all.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::pages::assert_in_layout;

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("a request")
}

fn header(response: &Response, name: &str) -> String {
    response.headers().get_all(name).iter().map(|v| v.to_str().unwrap_or("<binary>")).collect::<Vec<_>>().join(", ")
}

async fn body(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("the body");
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn send(app: &TestApp, request: Request<Body>) -> (Response, String) {
    let response = app.oneshot(request).await;
    let (parts, body_stream) = response.into_parts();
    let text = body(Response::from_parts(parts.clone(), body_stream)).await;
    (Response::from_parts(parts, Body::empty()), text)
}

/// Every HTML answer (page, fragment, error) carries the security headers, and no page needs
/// anything the CSP forbids (inline scripts, inline styles, inline handlers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_answers_carry_the_security_headers_and_obey_the_csp() {
    let app = spawn_app(Backend::Sqlite).await;
    let htmx = Request::get("/movies?page=2").header("HX-Request", "true").header("HX-Target", "feed");
    let htmx = htmx.body(Body::empty()).expect("a request");
    let requests =
        [get("/"), htmx, get("/movies/the-land-girls-1998"), get("/movies/nope-1999"), get("/movies?page=abc")];
    for request in requests {
        let url = request.uri().to_string();
        let (response, body) = send(&app, request).await;
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{url}: CSP {csp:?}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{url}: CSP {csp:?}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{url}");
        assert!(!header(&response, "referrer-policy").is_empty(), "{url}");
        let doc = scraper::Html::parse_document(&body);
        let scripts = scraper::Selector::parse("script").expect("selector");
        for script in doc.select(&scripts) {
            let src = script.value().attr("src").unwrap_or_default();
            assert!(src.starts_with("/static/") && script.inner_html().trim().is_empty(), "{url}: script {src:?}");
        }
        assert!(!body.contains(" style=") && !body.contains("<style"), "{url}: inline style");
        assert!(!body.contains(" onclick=") && !body.contains(" onload=") && !body.contains("hx-on"), "{url}");
    }
}

/// Every answer carries a request id to find it by in the logs: a new one each time, or the one
/// the client (a proxy in front) sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ids = Vec::new();
    for path in ["/", "/movies/nope-1999", "/static/nope.css", "/api/movies?page=0", "/healthz"] {
        let (response, _) = send(&app, get(path)).await;
        let id = header(&response, "x-request-id");
        assert!(!id.is_empty() && !ids.contains(&id), "{path}: {id:?} after {ids:?}");
        ids.push(id);
    }
    let given = Request::get("/movies").header("x-request-id", "edge-7f3a").body(Body::empty()).expect("a request");
    let (response, _) = send(&app, given).await;
    assert_eq!(header(&response, "x-request-id"), "edge-7f3a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_immutable_and_confined_to_their_folder() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, home) = send(&app, get("/")).await;
    let doc = scraper::Html::parse_document(&home);
    let linked = scraper::Selector::parse("link[href], script[src]").expect("selector");
    let assets: Vec<String> = doc
        .select(&linked)
        .filter_map(|e| e.value().attr("href").or_else(|| e.value().attr("src")))
        .filter(|url| url.starts_with("/static/"))
        .map(str::to_owned)
        .collect();
    assert!(assets.len() >= 4, "the page links its stylesheet, scripts and icon: {assets:?}");
    for asset in &assets {
        let (response, _) = send(&app, get(asset)).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let cache = header(&response, "cache-control");
        assert!(cache.contains("immutable") && cache.contains("max-age=31536000"), "{asset}: {cache:?}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{asset}");
    }
    for path in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E/%2E%2E/main/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%5cCargo.toml",
        "/static/vendor/../../Cargo.toml",
    ] {
        let (response, body) = send(&app, get(path)).await;
        let status = response.status();
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST, "{path}: {status}");
        assert!(!body.contains("[package]"), "{path}: served a file outside /static:\n{body}");
    }
    // a missing file gets the site's 404 page, and is not cached for a year
    let (missing, body) = send(&app, get("/static/nope.css")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(!header(&missing, "cache-control").contains("immutable"));
    assert_in_layout(&body, "static 404");
}

/// Under `/api/` a wrong address or method is answered in JSON; elsewhere with a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clients_get_json_errors_and_people_get_pages() {
    let app = spawn_app(Backend::Sqlite).await;
    for (request, status) in [
        (get("/api/nowhere"), StatusCode::NOT_FOUND),
        (Request::patch("/api/movies").body(Body::empty()).expect("a request"), StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let url = request.uri().to_string();
        let (response, body) = send(&app, request).await;
        assert_eq!(response.status(), status, "{url}");
        assert!(header(&response, "content-type").starts_with("application/json"), "{url}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{url}: {answer}");
    }
    for (request, status) in [
        (get("/nowhere"), StatusCode::NOT_FOUND),
        (Request::post("/").body(Body::empty()).expect("a request"), StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let url = request.uri().to_string();
        let (response, body) = send(&app, request).await;
        assert_eq!(response.status(), status, "{url}");
        assert!(header(&response, "content-type").starts_with("text/html"), "{url}");
        assert_in_layout(&body, &url);
    }
}
