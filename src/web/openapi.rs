//! The JSON API's OpenAPI 3.1 document, served at `/api/openapi.json`. Its operations come from
//! the handlers (`api::routes`), their schemas from the types the handlers read and answer; this
//! module adds what belongs to the whole document: its title, the tag and the admin token's
//! security scheme.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, OpenApi};

/// The tag of the film operations.
pub const MOVIES: &str = "movies";
/// The security scheme of the writes: `Authorization: Bearer <ADMIN_TOKEN>` (the name the
/// writes' `security(("admin_token" = []))` give).
pub const ADMIN: &str = "admin_token";

/// What the document has before the routes add their operations.
pub fn base() -> OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "marquee",
            description = "The movie catalog's JSON API: the lists and the films of the site's pages, \
                and writes with the admin token. Errors are `{\"error\": …}`, with `\"field\"` on a 422.",
        ),
        tags((name = MOVIES, description = "The catalog's films")),
    )]
    struct Base;

    let mut doc = <Base as utoipa::OpenApi>::openapi();
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("The server's `ADMIN_TOKEN`; without one, writes are refused (403)"))
        .build();
    let mut components = doc.components.take().unwrap_or_else(|| ComponentsBuilder::new().build());
    components.add_security_scheme(ADMIN, SecurityScheme::Http(bearer));
    doc.components = Some(components);
    doc
}

/// The document as served, made once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    let doc = super::api::routes().into_openapi();
    Bytes::from(doc.to_pretty_json().unwrap_or_default())
});

/// `GET /api/openapi.json`.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = MOVIES,
    summary = "This document",
    responses(
        (status = 200, description = "The API's OpenAPI 3.1 document", content_type = "application/json",
            body = Object),
        (status = 503, description = "The server is too busy for now", body = super::error::ErrorBody),
    ),
)]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.clone())
}
