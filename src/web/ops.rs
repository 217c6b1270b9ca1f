//! What operators poll: liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::service::CacheHealth;

/// 200 while the process runs.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// A backlog older than this makes the site "degraded": the relay applies rows past 2 s, once a
/// second, so only a cache that refuses writes leaves them this long.
const LOG_BEHIND: std::time::Duration = std::time::Duration::from_secs(10);

/// 200 while the database answers (the cache being down only degrades), 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let health = state.service.health().await;
    let db_ok = health.database;
    let cache = match health.cache {
        CacheHealth::Off => "off",
        CacheHealth::Up => "up",
        CacheHealth::Down => "down",
    };
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    // writes the cache has not learnt for longer than a relay pass or two: pages may be stale
    let behind = health.log.and_then(|l| l.oldest).is_some_and(|age| age > LOG_BEHIND);
    let log = health
        .log
        .map(|l| json!({ "pending": l.pending, "oldest_seconds": l.oldest.map_or(0.0, |d| d.as_secs_f64()) }));
    let body = json!({
        "status": if !db_ok { "unavailable" } else if cache == "down" || behind { "degraded" } else { "ready" },
        "database": if db_ok { "up" } else { "down" },
        "cache": cache,
        "cache_log": log,
    });
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let recorder = crate::telemetry::prometheus();
    state.stats.publish();
    metrics::gauge!("marquee_deferred_writes_tracked").set(state.deferred.pending() as f64);
    metrics::gauge!("marquee_cache_trusted").set(if state.service.trusts_cache() { 1.0 } else { 0.0 });
    // what the page tier holds, against RENDERED_CACHE_KB
    let (pages, bytes) = state.pages.size();
    metrics::gauge!("marquee_cache_kept_pages").set(pages as f64);
    metrics::gauge!("marquee_cache_kept_bytes").set(bytes as f64);
    metrics::gauge!("marquee_cache_kept_budget_bytes").set(state.pages.budget() as f64);
    let text = recorder.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
