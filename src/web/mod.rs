//! HTTP: the router and every middleware, put together in one place.

mod api;
/// `AppError` and how it is shown: a page in the site's layout, or JSON under `/api/`.
pub mod error;
mod ops;
mod pages;
mod query;
/// Rendered pages kept in memory, checked against Redis's epoch token.
pub mod rendered;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::FutureExt;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::deferred::Deferred;
use crate::service::MovieService;
use crate::stats::Stats;
use error::{ApiError, AppError, PageError};

/// The largest request body accepted (the write API's JSON).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler gets: one `Arc`, so that the clone each request makes of it (every layer
/// and extractor that takes the state makes one) is one counter, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of the state.
pub struct Shared {
    pub service: MovieService,
    /// Cache writes run after the response (the middleware below spawns them).
    pub deferred: Deferred,
    /// This instance's counters, for `/metrics`.
    pub stats: Arc<Stats>,
    /// Bad admin tokens per client address: a flood of them is refused with 429.
    pub bad_tokens: Arc<api::BadTokens>,
    pub config: Arc<Config>,
    /// Rendered pages kept in this server's memory (see `rendered`).
    pub rendered: Arc<rendered::Rendered>,
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The bad-token limiter: `per_minute` wrong tokens a minute per client address, in bursts as large.
pub fn bad_tokens(per_minute: u32) -> api::BadTokens {
    let n = std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
    api::BadTokens::dashmap(governor::Quota::per_minute(n))
}

pub fn router(state: AppState, static_dir: &std::path::Path) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    // A missing file gets the site's 404 page, and is not cached: only what was found is immutable
    // (the templates name app.css and app.js with a hash of their content, htmx with its version).
    let files = ServeDir::new(static_dir).not_found_service(pages::not_found.into_service());
    let statics = Router::new().nest_service("/static", files).layer(SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        |r: &Response| {
            let found = r.status().is_success() || r.status() == StatusCode::NOT_MODIFIED;
            found.then(|| HeaderValue::from_static("public, max-age=31536000, immutable"))
        },
    ));
    // Outermost first: the request id, then its trace span, the response headers every answer
    // carries, compression, the latency metric (which so sees answers to panics and time-outs),
    // the panic catcher, the time limit, the body limits and, innermost, the request's deferred
    // cache writes.
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(x_request_id.clone(), Counter::default()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
            // the path only: no query string and no headers, so the admin token never reaches a log
            tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(record_latency))
        .layer(middleware::from_fn(catch_panics))
        .layer(middleware::from_fn_with_state(state.config.request_timeout, time_limit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(refuse_declared_large_bodies))
        .layer(middleware::from_fn_with_state(state.clone(), deferred_writes));
    // Past MAX_IN_FLIGHT requests at once, a fast refusal instead of a queue for everyone. The
    // operators' endpoints added after it stay outside the bound: a busy server is not a dead one.
    let bound = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(usize::try_from(state.config.max_in_flight).unwrap_or(usize::MAX)));
    Router::new()
        .route("/", get(pages::home))
        .route("/movies", get(pages::movies))
        .route("/movies/{slug}", get(pages::movie))
        .route("/search", get(pages::search))
        .route("/api/movies", get(api::list).post(api::create))
        .route("/api/movies/{slug}", get(api::get).put(api::update).delete(api::delete))
        .layer(bound)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(pages::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .merge(statics)
        .layer(middleware)
        .with_state(state)
}

/// Request ids: a per-process counter, cheap and unique enough to follow one request in the logs.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Relaxed) + 1;
        Some(RequestId::new(HeaderValue::from(n)))
    }
}

/// Runs the request with its own queue of deferred cache writes, spawned once the response is built.
async fn deferred_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state.deferred.around(next.run(req)).await
}

/// The routes by name, for the latency metric's label without an allocation per request.
const ROUTES: [&str; 9] = [
    "/",
    "/movies",
    "/movies/{slug}",
    "/search",
    "/api/movies",
    "/api/movies/{slug}",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Request latency by route.
async fn record_latency(req: Request, next: Next) -> Response {
    let route: metrics::SharedString = match req.extensions().get::<MatchedPath>() {
        Some(p) => match ROUTES.iter().find(|r| **r == p.as_str()) {
            Some(r) => (*r).into(),
            None => p.as_str().to_owned().into(),
        },
        None => "unmatched".into(),
    };
    let start = Instant::now();
    let response = next.run(req).await;
    let status: metrics::SharedString = match response.status().as_u16() {
        200 => "200".into(),
        304 => "304".into(),
        404 => "404".into(),
        code => code.to_string().into(),
    };
    metrics::histogram!("marquee_http_request_duration_seconds", "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

/// A panic in a handler is a bug of ours: logged, and answered with a 500 in the site's own page
/// (or JSON under `/api/`) instead of a dropped connection.
async fn catch_panics(req: Request, next: Next) -> Response {
    // the URI shares the request head's buffer: no allocation on the way in
    let uri = req.uri().clone();
    match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            error_for(uri.path(), AppError::Internal(format!("a handler panicked: {what}")))
        }
    }
}

/// A request refused because MAX_IN_FLIGHT requests are already being served: the site's own 503
/// (page, or JSON under `/api/`), with `Retry-After`.
async fn overloaded(uri: axum::http::Uri, _: tower::BoxError) -> Response {
    let mut response = error_for(uri.path(), AppError::Overloaded);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A request over the time limit gets the site's own 503 (page, or JSON under `/api/`), with
/// `Retry-After`.
async fn time_limit(State(limit): State<std::time::Duration>, req: Request, next: Next) -> Response {
    // the URI shares the request head's buffer: no allocation on the way in
    let uri = req.uri().clone();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = error_for(uri.path(), AppError::TimedOut);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// A body declared over the limit gets a JSON (API) or page 413 in our own words, before anything
/// reads it, whatever the route. A streamed body over the limit is refused by the API's own
/// extractor (`api::JsonBody`) when it reads it.
async fn refuse_declared_large_bodies(req: Request, next: Next) -> Response {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return error_for(req.uri().path(), AppError::TooLarge(BODY_LIMIT));
    }
    next.run(req).await
}

async fn method_not_allowed(method: Method, req: Request) -> Response {
    let message = format!("{method} is not allowed on {}", req.uri().path());
    error_for(req.uri().path(), AppError::MethodNotAllowed(message))
}

fn error_for(path: &str, e: AppError) -> Response {
    if path.starts_with("/api/") { ApiError(e).into_response() } else { PageError(e).into_response() }
}
