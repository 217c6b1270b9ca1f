//! What operators poll: liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// 200 while the process runs.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 while the database answers (the cache being down only degrades), 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let db = tokio::time::timeout(Duration::from_secs(2), state.service.db().ping()).await;
    let db_ok = matches!(db, Ok(Ok(())));
    let cache = if !state.service.cache().is_enabled() {
        "off"
    } else if state.service.cache().ping().await.is_ok() {
        "up"
    } else {
        "down"
    };
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if !db_ok { "unavailable" } else if cache == "down" { "degraded" } else { "ready" },
        "database": if db_ok { "up" } else { "down" },
        "cache": cache,
    });
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let recorder = crate::telemetry::prometheus();
    state.service.stats().publish();
    metrics::gauge!("marquee_deferred_writes_tracked").set(state.service.deferred().pending() as f64);
    let text = recorder.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
