//! The application's errors. Client errors carry a message that says what was wrong; database
//! failures are logged with their cause and shown as a plain "unavailable" answer. Pages get an
//! HTML page in the site's layout, the API gets JSON.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::views::ErrorPage;
use crate::movies::FieldError;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this needs a valid admin token (Authorization: Bearer …)")]
    Unauthorized,
    #[error("writes are disabled: the server has no ADMIN_TOKEN")]
    WritesDisabled,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(FieldError),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("send the body as Content-Type: application/json")]
    NotJson,
    #[error("the catalog is unavailable right now; please try again shortly")]
    Unavailable(#[source] ServiceError),
    #[error("this took too long to answer; please try again shortly")]
    TimedOut,
    #[error("the site is very busy right now; please try again in a moment")]
    Overloaded,
    /// A heavy read shed (see `db::HeavyBudget`): too many searches or narrowed lists at once for
    /// their own share of the database. A 503 with `Retry-After` for this page alone: its answer
    /// is not there yet, and a retry a second later finds it (the first read that got through is
    /// cached for every reader); the other pages keep being served from the main pool meanwhile.
    #[error("many searches and narrowed lists are being read right now; please try this one again in a moment")]
    Busy,
    #[error("too many wrong admin tokens from this address; try again in {0} s")]
    TooManyTries(u64),
    /// A bug of ours: logged with its cause, shown without it.
    #[error("something went wrong on our side; it has been logged")]
    Internal(String),
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::SlugTaken(_) | ServiceError::NoFreeSlug(_) => Self::Conflict(e.to_string()),
            ServiceError::Db(ref db) if matches!(**db, crate::db::DbError::Shed) => Self::Busy,
            ServiceError::Db(ref db) if db.is_unavailable() => Self::Unavailable(e),
            ServiceError::Db(_) | ServiceError::Panicked => Self::Internal(error_chain(&e)),
        }
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::WritesDisabled => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) | Self::TimedOut | Self::Overloaded | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TooManyTries(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn log(&self) {
        match self {
            Self::Unavailable(cause) => {
                tracing::error!(error = %error_chain(cause), "request failed: database unavailable")
            }
            Self::Internal(cause) => tracing::error!(error = %cause, "request failed: internal error"),
            Self::TimedOut => tracing::warn!("request timed out"),
            Self::Busy => tracing::warn!("request refused: its heavy read was shed"),
            _ => {}
        }
    }

    /// `Retry-After` on the answers that have one.
    fn retry_after(&self, response: &mut Response) {
        let secs = match self {
            Self::TooManyTries(secs) => *secs,
            Self::Busy => 1,
            _ => return,
        };
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }

    fn heading(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::Invalid(_) => "That request doesn't look right",
            Self::NotFound(_) => "Not found",
            Self::Unauthorized | Self::WritesDisabled | Self::TooManyTries(_) => "Not allowed",
            Self::Conflict(_) => "Already exists",
            Self::MethodNotAllowed(_) => "Method not allowed",
            Self::TooLarge(_) => "Too large",
            Self::NotJson => "Not JSON",
            Self::Unavailable(_) | Self::TimedOut | Self::Overloaded | Self::Busy => "The catalog is resting",
            Self::Internal(_) => "Something went wrong",
        }
    }
}

/// An error shown as a page in the site's layout.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        e.log();
        let status = e.status();
        let page = ErrorPage { status: status.as_u16(), heading: e.heading().to_owned(), message: e.to_string() };
        let mut response = (status, page).into_response();
        e.retry_after(&mut response);
        response
    }
}

/// What the API answers on an error.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong, in words for people.
    error: String,
    /// On a 422: the field at fault (`title`, `imdb_rating`; `body` for the body as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// An error answered as JSON: `{"error": "...", "field": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        e.log();
        let field = match &e {
            AppError::Invalid(f) => Some(f.field.clone()),
            _ => None,
        };
        let body = ErrorBody { error: e.to_string(), field };
        let mut response = (e.status(), Json(body)).into_response();
        if matches!(e, AppError::Unauthorized) {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        e.retry_after(&mut response);
        response
    }
}

/// An error and its sources, outermost first: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
