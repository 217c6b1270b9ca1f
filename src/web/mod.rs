//! HTTP: the router and every middleware, put together in one place (`app`).

mod api;
/// `CachePolicy`: `Cache-Control`, `ETag` and `304 Not Modified`, applied in one place.
pub mod caching;
mod envelope;
/// `AppError` and how it is shown: a page in the site's layout, or JSON under `/api/`.
pub mod error;
mod gzip;
mod openapi;
mod ops;
/// The in-memory page tier, the outermost layer: rendered pages kept under Redis's token.
pub mod page_cache;
mod pages;
mod query;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::HandlerWithoutStateExt;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;
use tower_http::LatencyUnit;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestId, PropagateRequestIdLayer, RequestId, SetRequestId, SetRequestIdLayer,
};
use tower_http::services::ServeDir;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::Config;
use crate::deferred::Deferred;
use crate::service::MovieService;
use crate::stats::Stats;
use caching::CachePolicy;
use error::{ApiError, AppError, PageError};

/// The largest request body accepted (the write API's JSON).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The gzip level of every page sent compressed, by the compression layer and by the page tier
/// (which keeps pages gzipped at this level, so both send the same bytes under one tag). Level 1,
/// nginx's default `gzip_comp_level`: zlib-rs compresses a 19 KB listing page to 4.3 KB in a third
/// of level 2's time (3.6 KB), measured on this project's pages; a page not kept is compressed on
/// every request, and at level 2 compressing was a quarter of the CPU of a page rendered from
/// Redis. A reader gets 0.7 KB more; the Redis tier alone answered a seventh more pages (8,467
/// against 7,442 r/s in one run of the mix).
pub const GZIP_LEVEL: u32 = 1;

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
    /// Rendered pages kept in this server's memory (see `page_cache`).
    pub pages: page_cache::PageCacheLayer,
    /// The feeds' cards, rendered once per film version (see `views::Cards`).
    pub cards: views::Cards,
}

/// The bad-token limiter: `per_minute` wrong tokens a minute per client address, in bursts as large.
pub fn bad_tokens(per_minute: u32) -> api::BadTokens {
    let n = std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
    api::BadTokens::dashmap(governor::Quota::per_minute(n))
}

/// What the server serves: the router behind every middleware, outermost first:
///
/// 1. the page tier (`page_cache`): a page kept in memory is answered here, with nothing below run
///    (it adds what 2 and 3 would: `finish`);
/// 2. the request id (the client's `x-request-id`, or a per-process counter), echoed on the answer;
/// 3. the security headers, on every answer whose handler set none of its own;
/// 4. the router; then, around each route: the trace span `request` (id, method, path: no query
///    string and no headers, so the admin token never reaches a log), our own middleware
///    (`envelope`: a body declared too large, the deferred cache writes, the panic catcher, the
///    cache policy and validators of `caching`, the latency metric), the time limit (our 503 with `Retry-After`), compression, the body limit
///    the extractors read; around pages and the API only, the bound on requests in flight.
pub fn app(state: AppState, static_dir: &std::path::Path) -> App {
    let [frame, referrer, sniff, csp] =
        SECURITY.map(|(name, value)| SetResponseHeaderLayer::if_not_present(name, value));
    ServiceBuilder::new()
        .layer(state.pages.clone())
        .layer(SetRequestIdLayer::x_request_id(RequestIds))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(frame)
        .layer(referrer)
        .layer(sniff)
        .layer(csp)
        .service(router(state, static_dir))
}

/// What `app` builds.
pub type App =
    page_cache::PageCache<SetRequestId<PropagateRequestId<Secured<Secured<Secured<Secured<Router>>>>>, RequestIds>>;
type Secured<S> = SetResponseHeader<S, HeaderValue>;

/// What the layers behind the page tier add to every answer, added to the tier's own answers
/// (which they do not see): the request id and the security headers. The page tier stays in front
/// of them because they cost its answers a tenth of their rate (`benches/compare.sh --detail`).
fn finish(response: &mut Response, req: &Request) {
    let headers = response.headers_mut();
    for (name, value) in &SECURITY {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    let id = req.headers().get(X_REQUEST_ID).cloned().unwrap_or_else(next_request_id);
    headers.insert(X_REQUEST_ID, id);
}

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The headers every answer carries, unless its handler set its own.
const SECURITY: [(header::HeaderName, HeaderValue); 4] = [
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
];

/// Request ids: a per-process counter, cheap and unique enough to follow one request in the logs.
#[derive(Clone, Copy)]
pub struct RequestIds;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(0);

fn next_request_id() -> HeaderValue {
    HeaderValue::from(REQUEST_IDS.fetch_add(1, Relaxed) + 1)
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(next_request_id()))
    }
}

/// The span every request's logs are in: its id, method and path.
fn span(req: &Request) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
}

/// Every route and every middleware below the page tier (see `app`).
pub fn router(state: AppState, static_dir: &std::path::Path) -> Router {
    // A missing file gets the site's 404 page, and the default policy: only what was found is
    // immutable (the templates name app.css and app.js with a hash of their content, htmx with its
    // version).
    let files = ServeDir::new(static_dir).not_found_service(pages::not_found.into_service());
    let statics =
        Router::new().nest_service("/static", files).layer(middleware::map_response(|mut r: Response| async {
            if r.status().is_success() || r.status() == StatusCode::NOT_MODIFIED {
                r.extensions_mut().insert(CachePolicy::Immutable);
            }
            r
        }));
    // health and metrics say how things are now
    let ops = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(middleware::map_response(|mut r: Response| async {
            r.extensions_mut().insert(CachePolicy::NoStore);
            r
        }));
    // (see `app`)
    let trace = TraceLayer::new_for_http()
        .make_span_with(span)
        .on_request(())
        .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG).latency_unit(LatencyUnit::Micros))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(());
    let middleware = ServiceBuilder::new()
        .layer(trace)
        .layer(middleware::from_fn_with_state(state.clone(), envelope::envelope))
        .layer(HandleErrorLayer::new(timed_out))
        .layer(TimeoutLayer::new(state.config.request_timeout))
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(GZIP_LEVEL as i32)))
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    // Past MAX_IN_FLIGHT requests at once, a fast refusal instead of a queue for everyone. The
    // operators' endpoints added after it stay outside the bound: a busy server is not a dead one.
    let bound = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(usize::try_from(state.config.max_in_flight).unwrap_or(usize::MAX)));
    let (api, _) = api::routes().split_for_parts();
    Router::new()
        .route("/", get(pages::home))
        .route("/movies", get(pages::movies))
        .route("/movies/{slug}", get(pages::movie))
        .route("/search", get(pages::search))
        .merge(api)
        .layer(bound)
        .merge(ops)
        .fallback(pages::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .merge(statics)
        .layer(middleware)
        .with_state(state)
}

/// A request over the time limit: the site's own 503 (page, or JSON under `/api/`), with
/// `Retry-After`.
async fn timed_out(uri: axum::http::Uri, _: tower::BoxError) -> Response {
    let mut response = error_for(uri.path(), AppError::TimedOut);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A request refused because MAX_IN_FLIGHT requests are already being served: the site's own 503
/// (page, or JSON under `/api/`), with `Retry-After`.
async fn overloaded(uri: axum::http::Uri, _: tower::BoxError) -> Response {
    let mut response = error_for(uri.path(), AppError::Overloaded);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn method_not_allowed(method: Method, req: Request) -> Response {
    let message = format!("{method} is not allowed on {}", req.uri().path());
    error_for(req.uri().path(), AppError::MethodNotAllowed(message))
}

fn error_for(path: &str, e: AppError) -> Response {
    if path.starts_with("/api/") { ApiError(e).into_response() } else { PageError(e).into_response() }
}
