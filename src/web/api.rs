//! The JSON API: read the lists and one film; create, update and delete with the admin token.

use axum::Json;
use axum::body::Bytes;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, AppError, ErrorBody};
use super::openapi::MOVIES;
use super::query::ListingQuery;
use super::{AppState, caching};
use crate::movies::{Movie, MoviePatch, NewMovie, Slug};

/// The API's routes, each declared with its entry in the API's document (`#[utoipa::path]` on its
/// handler): the router and the document cannot list different routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(super::openapi::document))
}

/// A film as API clients read it: its version, then the film's fields by their names.
#[derive(Serialize, ToSchema)]
#[schema(as = Film, title = "Film")]
struct MovieView<'a> {
    /// The catalog version of the film's last write: it grows with every write.
    version: i64,
    #[serde(flatten)]
    #[schema(inline)]
    movie: &'a Movie,
}

impl<'a> From<&'a Movie> for MovieView<'a> {
    fn from(movie: &'a Movie) -> Self {
        Self { version: movie.version, movie }
    }
}

/// An update's answer: the film as it is now, and the fields that changed.
#[derive(Serialize, ToSchema)]
#[schema(as = Updated)]
struct UpdatedView<'a> {
    #[serde(flatten)]
    movie: MovieView<'a>,
    /// The fields whose value changed, in the film's order; empty when none did.
    #[schema(value_type = Vec<String>)]
    changed: &'a [&'static str],
}

/// A JSON request body, refused in the API's own words: not sent as JSON (415), not JSON (400),
/// over the size limit (413).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(AppError::NotJson.into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge(super::BODY_LIMIT),
            _ => AppError::BadRequest(format!("the body could not be read: {rejection}")),
        })?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| AppError::BadRequest(format!("the body is not valid JSON: {e}")).into())
    }
}

fn slug(text: &str) -> Result<Slug, ApiError> {
    Slug::parse(text).map_err(|_| ApiError(AppError::NotFound(format!("no film with slug {text:?}"))))
}

fn no_movie(slug: &Slug) -> ApiError {
    ApiError(AppError::NotFound(format!("no film with slug {:?}", slug.as_str())))
}

/// Wrong admin tokens counted per client address.
pub type BadTokens = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// The caller holds the admin token: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant
/// time. Extracted before the body, so a caller without it learns nothing of what it sent. A
/// client address that keeps sending wrong tokens is answered 429 with `Retry-After` for a while;
/// the right token is never held up.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(ApiError(AppError::WritesDisabled));
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Ok(Self);
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        match state.bad_tokens.check_key(&peer) {
            Ok(()) => Err(ApiError(AppError::Unauthorized)),
            Err(not_until) => {
                let wait =
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                Err(ApiError(AppError::TooManyTries(wait.as_secs().max(1))))
            }
        }
    }
}

/// A page of a list as API clients read it: the same lists as `/movies?…`.
#[derive(Serialize, ToSchema)]
#[schema(as = ListPage)]
struct ListView<'a> {
    /// The list's parameters, normalized (`genre=comedy&sort=rating`; empty for every film, newest first).
    list: String,
    page: u32,
    /// Films in the whole list.
    total: i64,
    /// The page's films' slugs, in the list's order.
    #[schema(value_type = Vec<String>)]
    slugs: Vec<&'a str>,
    movies: Vec<MovieView<'a>>,
    /// The next page's API URL; `null` on the last page.
    next: Option<String>,
}

/// `GET /api/movies?genre=…&decade=…&rating=…&sort=…&page=N`. Past the end of a list: 404.
#[utoipa::path(
    get, path = "/api/movies", tag = MOVIES,
    summary = "A page of a list of films",
    params(ListingQuery),
    responses(
        (status = 200, description = "The page", body = ListView),
        (status = 400, description = "A parameter given twice, or with a value not allowed", body = ErrorBody),
        (status = 404, description = "The list ends before this page", body = ErrorBody),
        (status = 503, description = "The catalog or the server is unavailable for now", body = ErrorBody),
    ),
)]
pub async fn list(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let query = ListingQuery::parse(uri.query())?;
    let Some(listing) = state.service.list_page(&query.list, query.page).await? else {
        let page = query.page;
        return Err(AppError::NotFound(format!("there is no page {page}: the list ends before it")).into());
    };
    let next = listing.page.next().filter(|_| listing.has_next).map(|n| format!("/api{}", listing.of.href(n.get())));
    let view = ListView {
        list: listing.of.key(),
        page: listing.page.get(),
        total: listing.total,
        slugs: listing.movies.iter().map(|m| m.slug.as_str()).collect(),
        movies: listing.movies.iter().map(|m| MovieView::from(&**m)).collect(),
        next,
    };
    read(&view)
}

/// `GET /api/movies/{slug}`.
#[utoipa::path(
    get, path = "/api/movies/{slug}", tag = MOVIES,
    summary = "One film",
    params(("slug" = inline(Slug), Path, description = "The film's slug")),
    responses(
        (status = 200, description = "The film", body = MovieView),
        (status = 404, description = "No film has this slug (or it is not a slug)", body = ErrorBody),
        (status = 503, description = "The catalog or the server is unavailable for now", body = ErrorBody),
    ),
)]
pub async fn get(State(state): State<AppState>, Path(text): Path<String>) -> Result<Response, ApiError> {
    let slug = slug(&text)?;
    let movie = state.service.movie(&slug).await?.ok_or_else(|| no_movie(&slug))?;
    read(&MovieView::from(&*movie))
}

/// A read's answer: the JSON, revalidated with its tags (see `caching`).
fn read(view: &impl Serialize) -> Result<Response, ApiError> {
    let body = Bytes::from(serde_json::to_vec(view).map_err(|e| AppError::Internal(format!("json: {e}")))?);
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response();
    caching::revalidated(&mut response, &body);
    Ok(response)
}

/// `POST /api/movies`.
#[utoipa::path(
    post, path = "/api/movies", tag = MOVIES,
    summary = "Add a film",
    security(("admin_token" = [])),
    request_body = NewMovie,
    responses(
        (status = 201, description = "The film as stored", body = MovieView,
            headers(("location" = String, description = "The film's API URL"))),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Writes are disabled: the server has no admin token", body = ErrorBody),
        (status = 409, description = "A film has this slug already", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "A field is missing or has a value not allowed", body = ErrorBody),
        (status = 429, description = "Too many wrong admin tokens from this address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The catalog or the server is unavailable for now", body = ErrorBody),
    ),
)]
pub async fn create(State(state): State<AppState>, _: Admin, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let movie = state.service.create(NewMovie::from_json(body)?).await?;
    let location = format!("/api/movies/{}", movie.slug);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(MovieView::from(&movie))).into_response())
}

/// `PUT /api/movies/{slug}`: a partial update.
#[utoipa::path(
    put, path = "/api/movies/{slug}", tag = MOVIES,
    summary = "Change some of a film's fields",
    security(("admin_token" = [])),
    params(("slug" = inline(Slug), Path, description = "The film's slug")),
    request_body = MoviePatch,
    responses(
        (status = 200, description = "The film as stored now, and the fields that changed", body = UpdatedView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Writes are disabled: the server has no admin token", body = ErrorBody),
        (status = 404, description = "No film has this slug (or it is not a slug)", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "A field has a value not allowed, or is not a field", body = ErrorBody),
        (status = 429, description = "Too many wrong admin tokens from this address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The catalog or the server is unavailable for now", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    _: Admin,
    Path(text): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let slug = slug(&text)?;
    let patch = MoviePatch::from_json(body)?;
    let updated = state.service.update(&slug, &patch).await?.ok_or_else(|| no_movie(&slug))?;
    Ok(Json(UpdatedView { movie: MovieView::from(&updated.movie), changed: &updated.changed }).into_response())
}

/// `DELETE /api/movies/{slug}`.
#[utoipa::path(
    delete, path = "/api/movies/{slug}", tag = MOVIES,
    summary = "Remove a film",
    security(("admin_token" = [])),
    params(("slug" = inline(Slug), Path, description = "The film's slug")),
    responses(
        (status = 204, description = "The film is gone"),
        (status = 401, description = "No admin token, or a wrong one", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Writes are disabled: the server has no admin token", body = ErrorBody),
        (status = 404, description = "No film has this slug (or it is not a slug)", body = ErrorBody),
        (status = 429, description = "Too many wrong admin tokens from this address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The catalog or the server is unavailable for now", body = ErrorBody),
    ),
)]
pub async fn delete(State(state): State<AppState>, _: Admin, Path(text): Path<String>) -> Result<Response, ApiError> {
    let slug = slug(&text)?;
    if state.service.delete(&slug).await? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(no_movie(&slug)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movies::Date;

    #[test]
    fn films_read_as_before() {
        let movie = Movie {
            version: 7,
            slug: "heat-1995".into(),
            director: Some("Michael \"M\" Mann".into()),
            imdb_rating: Some(8.0),
            us_gross: Some(67_436_818),
            ..Movie::new("Heat – é".into(), Date::new(1995, 12, 15).unwrap_or_else(|| unreachable!()))
        };
        let expected = concat!(
            r#"{"version":7,"slug":"heat-1995","title":"Heat – é","release_date":"1995-12-15","genre":null,"#,
            r#""director":"Michael \"M\" Mann","mpaa_rating":null,"running_time_min":null,"imdb_rating":8.0,"#,
            r#""imdb_votes":null,"rotten_tomatoes_rating":null,"us_gross":67436818,"worldwide_gross":null,"#,
            r#""us_dvd_sales":null,"production_budget":null,"distributor":null,"source":null,"creative_type":null"#,
        );
        let view = serde_json::to_string(&MovieView::from(&movie)).unwrap_or_default();
        assert_eq!(view, format!("{expected}}}"));
        let changed = ["director", "imdb_rating"];
        let updated = UpdatedView { movie: MovieView::from(&movie), changed: &changed };
        let updated = serde_json::to_string(&updated).unwrap_or_default();
        assert_eq!(updated, format!(r#"{expected},"changed":["director","imdb_rating"]}}"#));
    }
}
