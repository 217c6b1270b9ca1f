//! What every request passes through, in one middleware (one future per request, not one per
//! concern): its id and trace span, the refusal of a body declared too large, its deferred cache
//! writes, the time limit, the panic catcher, the latency metric and the headers every answer
//! carries. In the order a request meets them:
//!
//! 1. the id: the client's `x-request-id`, or a per-process counter; echoed on the answer;
//! 2. the span `request` (id, method, path: no query string and no headers, so the admin token
//!    never reaches a log), around everything below;
//! 3. a body declared over `BODY_LIMIT` gets a 413 in our own words before anything reads it (a
//!    streamed one is refused by the API's own extractor when it reads it);
//! 4. the handler, with its own queue of deferred cache writes, spawned once the answer is built;
//! 5. over the time limit: the site's own 503 with `Retry-After`;
//! 6. a panic is a bug of ours: logged, and answered with a 500 page (or JSON under `/api/`);
//! 7. the latency metric by route and status, which so sees answers to panics and time-outs;
//! 8. the security headers, unless the handler set its own.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;
use tracing::Instrument;

use super::error::AppError;
use super::page_cache::Keepable;
use super::{AppState, BODY_LIMIT, error_for};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The headers every answer carries, unless its handler set its own.
const SECURITY: [(HeaderName, HeaderValue); 4] = [
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
];

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

/// Request ids: a per-process counter, cheap and unique enough to follow one request in the logs.
static REQUEST_IDS: AtomicU64 = AtomicU64::new(0);

fn next_id() -> HeaderValue {
    HeaderValue::from(REQUEST_IDS.fetch_add(1, Relaxed) + 1)
}

pub async fn envelope(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or("-"),
        method = %req.method(),
        path = %req.uri().path()
    );
    let mut response = measured(&state, req, next).instrument(span).await;
    finish(&mut response, id);
    response
}

/// The request's id: the client's, or the next of this process.
pub fn request_id(req: &Request) -> HeaderValue {
    req.headers().get(X_REQUEST_ID).cloned().unwrap_or_else(next_id)
}

/// The latency metric's label of the route that answered, carried on a page's response so that
/// the page tier records its own answers of that page under the same label.
#[derive(Clone)]
pub struct Route(pub metrics::SharedString);

/// Step 8, and the request id.
pub fn finish(response: &mut Response, id: HeaderValue) {
    let headers = response.headers_mut();
    for (name, value) in &SECURITY {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(X_REQUEST_ID, id);
}

/// Step 7: the answer, timed.
async fn measured(state: &AppState, req: Request, next: Next) -> Response {
    let route = route(&req);
    let start = Instant::now();
    let mut response = answer(state, req, next).await;
    record(route.clone(), &response, start);
    if response.extensions().get::<Keepable>().is_some() {
        response.extensions_mut().insert(Route(route));
    }
    response
}

pub fn record(route: metrics::SharedString, response: &Response, start: Instant) {
    let took = start.elapsed();
    let status: metrics::SharedString = match response.status().as_u16() {
        200 => "200".into(),
        304 => "304".into(),
        404 => "404".into(),
        code => code.to_string().into(),
    };
    metrics::histogram!("marquee_http_request_duration_seconds", "route" => route, "status" => status)
        .record(took.as_secs_f64());
    tracing::debug!(status = response.status().as_u16(), ms = took.as_secs_f64() * 1000.0, "answered");
}

/// Steps 3 to 6: the handler's answer, or ours when it cannot give one.
async fn answer(state: &AppState, req: Request, next: Next) -> Response {
    // the URI shares the request head's buffer: no allocation on the way in
    let uri = req.uri().clone();
    if declared_length(req.headers()).is_some_and(|n| n > BODY_LIMIT as u64) {
        return error_for(uri.path(), AppError::TooLarge(BODY_LIMIT));
    }
    let run = std::panic::AssertUnwindSafe(state.deferred.around(next.run(req))).catch_unwind();
    match tokio::time::timeout(state.config.request_timeout, run).await {
        Ok(Ok(response)) => response,
        Ok(Err(payload)) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            error_for(uri.path(), AppError::Internal(format!("a handler panicked: {what}")))
        }
        Err(_) => {
            let mut response = error_for(uri.path(), AppError::TimedOut);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The latency metric's route label.
fn route(req: &Request) -> metrics::SharedString {
    match req.extensions().get::<MatchedPath>() {
        Some(p) => match ROUTES.iter().find(|r| **r == p.as_str()) {
            Some(r) => (*r).into(),
            None => p.as_str().to_owned().into(),
        },
        None => "unmatched".into(),
    }
}
