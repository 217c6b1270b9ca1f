//! The JSON API: read one film; create, update and delete with the admin token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::{ApiError, AppError};
use crate::movies::{Movie, MoviePatch, NewMovie, Slug};

fn slug(text: &str) -> Result<Slug, ApiError> {
    Slug::parse(text).map_err(|_| ApiError(AppError::NotFound(format!("no film with slug {text:?}"))))
}

fn no_film(slug: &Slug) -> ApiError {
    ApiError(AppError::NotFound(format!("no film with slug {:?}", slug.as_str())))
}

/// Checks `Authorization: Bearer <ADMIN_TOKEN>`, comparing in constant time.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.config.admin_token.as_deref() else {
        return Err(ApiError(AppError::WritesDisabled));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) { Ok(()) } else { Err(ApiError(AppError::Unauthorized)) }
}

/// The body as JSON, refused with a clear message when it is not JSON.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError(AppError::BadRequest("send the body as Content-Type: application/json".into())));
    }
    serde_json::from_slice(body).map_err(|e| ApiError(AppError::BadRequest(format!("the body is not valid JSON: {e}"))))
}

fn movie_json(m: &Movie) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    if let Some(obj) = v.as_object_mut()
        && let Some(version) = obj.remove("v")
    {
        obj.insert("version".into(), version);
    }
    v
}

pub async fn get(State(state): State<AppState>, Path(text): Path<String>) -> Result<Response, ApiError> {
    let slug = slug(&text)?;
    let movie = state.service.movie(&slug).await?.ok_or_else(|| no_film(&slug))?;
    Ok(Json(movie_json(&movie)).into_response())
}

pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let new = NewMovie::from_json(&json_body(&headers, &body)?)?;
    let movie = state.service.create(new).await?;
    let location = format!("/api/movies/{}", movie.slug);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(movie_json(&movie))).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    Path(text): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let slug = slug(&text)?;
    let patch = MoviePatch::from_json(&json_body(&headers, &body)?)?;
    let updated = state.service.update(&slug, &patch).await?.ok_or_else(|| no_film(&slug))?;
    let mut out = movie_json(&updated.movie);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("changed".into(), updated.changed.into());
    }
    Ok(Json(out).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Path(text): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let slug = slug(&text)?;
    if state.service.delete(&slug).await? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(no_film(&slug)) }
}
