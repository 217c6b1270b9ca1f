//! The pages people see: the listing (full page or htmx fragment) and the detail page.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{AppError, PageError};
use super::query::ListingQuery;
use super::views::{DetailPage, Feed, ListingFragment, ListingPage};
use crate::movies::{PageNumber, Slug};

/// Whether to answer with the fragment: an htmx request, but not a history restore (which needs
/// the whole page). The one place this choice is made.
fn wants_fragment(headers: &HeaderMap) -> bool {
    let is = |name: &str| headers.get(name).is_some_and(|v| v.as_bytes() == b"true");
    is("hx-request") && !is("hx-history-restore-request")
}

/// `/`: always the whole first page.
pub async fn home(State(state): State<AppState>) -> Result<Response, PageError> {
    listing(&state, PageNumber::FIRST, false).await
}

/// `/movies?page=N`: the whole page, or only its cards and the next trigger for htmx.
pub async fn movies(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: ListingQuery,
) -> Result<Response, PageError> {
    listing(&state, query.page, wants_fragment(&headers)).await
}

async fn listing(state: &AppState, page: PageNumber, fragment: bool) -> Result<Response, PageError> {
    let Some(listing) = state.service.page(page).await? else {
        return Err(AppError::NotFound(format!("There is no page {page}: the listing ends before it.")).into());
    };
    let feed = Feed::new(listing, fragment);
    let mut response =
        if fragment { ListingFragment { feed }.into_response() } else { ListingPage { feed }.into_response() };
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("HX-Request"));
    Ok(response)
}

/// `/movies/{slug}`. A segment that is not even UTF-8 (`%ff`) is no film either: the 404 page,
/// not axum's plain-text rejection.
pub async fn movie(
    State(state): State<AppState>,
    slug: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let not_found = || AppError::NotFound("There is no film at this address.".into());
    let Ok(Path(slug)) = slug else { return Err(not_found().into()) };
    let slug = Slug::parse(&slug).map_err(|_| not_found())?;
    let movie = state.service.movie(&slug).await?.ok_or_else(not_found)?;
    Ok(DetailPage::new(&movie).into_response())
}

/// Anything else: a page, or JSON under `/api/` (API clients read JSON errors).
pub async fn not_found(uri: Uri) -> Response {
    super::error_for(uri.path(), AppError::NotFound("There is nothing at this address.".into()))
}
