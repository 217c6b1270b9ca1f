//! The one middleware of ours, for what needs the site's own answers or its own state; the rest is
//! tower-http's (see `web::app`). In the order a request meets them:
//!
//! 1. a body declared over `BODY_LIMIT` gets a 413 in our own words before anything reads it (a
//!    streamed one is refused by the API's own extractor when it reads it);
//! 2. the handler, with its own queue of deferred cache writes, spawned once the answer is built;
//! 3. a panic is a bug of ours: logged, and answered with a 500 page (or JSON under `/api/`);
//! 4. the answer's cache policy and validators (`caching`): `Cache-Control`, the `ETag` (after
//!    compression, which decides which of a page's tags it is), a 304 for a matching
//!    `If-None-Match`; so every answer gets one, those to panics and time-outs too;
//! 5. the latency metric by route and status, which so sees answers to panics, time-outs and 304s.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;

use super::caching;
use super::error::AppError;
use super::page_cache::Keepable;
use super::{AppState, BODY_LIMIT, error_for};

/// The routes' labels, made once each (the router's routes are few), so that labelling a request
/// allocates nothing.
static LABELS: LazyLock<RwLock<HashMap<Box<str>, metrics::SharedString>>> = LazyLock::new(RwLock::default);

pub async fn envelope(State(state): State<AppState>, req: Request, next: Next) -> Response {
    measured(&state, req, next).await
}

/// The latency metric's label of the route that answered, carried on a page's response so that
/// the page tier records its own answers of that page under the same label.
#[derive(Clone)]
pub struct Route(pub metrics::SharedString);

/// Steps 4 and 5: the answer, concluded and timed.
async fn measured(state: &AppState, req: Request, next: Next) -> Response {
    let route = route(&req);
    let asked = caching::Asked::of(&req);
    let start = Instant::now();
    let mut response = caching::apply(&asked, answer(state, req, next).await);
    record(route.clone(), &response, start);
    if let Some(page) = response.extensions().get::<Keepable>() {
        state.stats.page_rendered(page.from_redis());
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

/// Steps 1 to 3: the handler's answer, or ours when it cannot give one.
async fn answer(state: &AppState, req: Request, next: Next) -> Response {
    // the URI shares the request head's buffer: no allocation on the way in
    let uri = req.uri().clone();
    if declared_length(req.headers()).is_some_and(|n| n > BODY_LIMIT as u64) {
        return error_for(uri.path(), AppError::TooLarge(BODY_LIMIT));
    }
    let run = std::panic::AssertUnwindSafe(state.deferred.around(next.run(req))).catch_unwind();
    match run.await {
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

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The latency metric's route label: the route's pattern.
fn route(req: &Request) -> metrics::SharedString {
    let Some(path) = req.extensions().get::<MatchedPath>() else { return "unmatched".into() };
    if let Some(label) = LABELS.read().ok().and_then(|labels| labels.get(path.as_str()).cloned()) {
        return label;
    }
    // shared: a clone is a count, not a copy
    let label = metrics::SharedString::from_shared(std::sync::Arc::from(path.as_str()));
    if let Ok(mut labels) = LABELS.write() {
        labels.insert(path.as_str().into(), label.clone());
    }
    label
}
