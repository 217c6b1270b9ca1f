//! The pages people see: the lists (full page or htmx fragments) and the detail page.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{AppError, PageError};
use super::query::ListingQuery;
use super::query::SearchParams;
use super::views::{
    Controls, DetailPage, Feed, FeedFragment, ListingPage, ListingSection, Related, SearchPage, SearchSection,
};
use super::{caching, gzip, page_cache};
use crate::movies::{MovieList, PageNumber, Slug};

/// What a listing request is answered with. The one place this choice is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// The whole document: a plain request, or htmx restoring history (which needs all of it).
    Page,
    /// Heading, feed and trigger: the list's controls asked for another list (`HX-Target:
    /// listing`), or the search field for results (`HX-Target: main`).
    Section,
    /// Only the next page's cards and trigger: the infinite scroll.
    Feed,
}

/// Decided by `HX-Target` alone, the element htmx puts the answer in: every htmx request of the
/// site's pages names one, a history restore names none (and needs the whole document). So a cache
/// tells the answers apart by one header (`Vary: HX-Target`).
fn view(headers: &HeaderMap) -> View {
    match headers.get("hx-target").map(HeaderValue::as_bytes) {
        Some(b"listing" | b"main") => View::Section,
        Some(b"feed") => View::Feed,
        _ => View::Page,
    }
}

/// `/`: always the whole first page, whatever the request's headers.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let (mut html, cached) = listing(&state, &MovieList::default(), PageNumber::FIRST, View::Page).await?;
    html.vary = None;
    Ok(html.page(cached, &headers))
}

/// `/movies?genre=…&decade=…&rating=…&sort=…&page=N`: the whole page, or for htmx the part it asked for.
pub async fn movies(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: ListingQuery,
) -> Result<Response, PageError> {
    let (html, cached) = listing(&state, &query.list, query.page, view(&headers)).await?;
    Ok(html.page(cached, &headers))
}

/// A list's page as `view` asks for it, and whether it came wholly from Redis.
async fn listing(state: &AppState, list: &MovieList, page: PageNumber, view: View) -> Result<(Html, bool), PageError> {
    let Some(listing) = state.service.list_page(list, page).await? else {
        return Err(AppError::NotFound(format!("There is no page {page}: the list ends before it.")).into());
    };
    let cached = listing.cached;
    let feed = Feed::new(listing, view == View::Feed, &state.cards);
    // the list's own URL, not the form's (which names empty filters)
    let url = list.href(page.get());
    let html = answer(
        view,
        feed,
        &url,
        "hx-push-url",
        |feed| render(&ListingPage { feed, controls: Controls::new(list) }),
        |feed| render(&ListingSection { feed }),
    )?;
    Ok((html, cached))
}

/// A rendered page: its bytes, and the headers that go with them.
struct Html {
    body: Bytes,
    /// The htmx history header of a list's fragment (`HX-Push-Url`, `HX-Replace-Url`).
    history: Option<(HeaderName, HeaderValue)>,
    /// The request headers the answer depends on besides its address (`Vary`); the compression
    /// layer adds `Accept-Encoding`.
    vary: Option<&'static str>,
}

/// What a list's answer depends on: what htmx asks for (`view`).
const LIST_INPUTS: &str = "HX-Target";

/// What a search's answer depends on: what htmx asks for, and the page it is on (the history
/// header).
const SEARCH_INPUTS: &str = "HX-Target, HX-Current-URL";

/// What a film's page depends on: the list it was opened from (its way back).
const DETAIL_INPUTS: &str = "Referer";

impl Html {
    /// The page's answer to a request with `asked` headers, revalidated with its tags (see
    /// `caching`) and marked for the page tier (see `page_cache`): it may be kept when it came
    /// wholly from Redis (`cached`). Gzipped here when the client takes gzip (see `gzip`): the
    /// compression layer then leaves it as it is, and marks the other answers as it would.
    fn page(self, cached: bool, asked: &HeaderMap) -> Response {
        let body = cached.then(|| self.body.clone());
        let mut response = (StatusCode::OK, Body::from(self.body.clone())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        if let Some((name, value)) = self.history {
            headers.insert(name, value);
        }
        if let Some(vary) = self.vary {
            headers.insert(header::VARY, HeaderValue::from_static(vary));
        }
        caching::revalidated(&mut response, &self.body);
        let gzipped = (page_cache::gzip_wanted(asked) == Some(true)).then(|| gzip::gzip(&self.body));
        page_cache::keepable(&mut response, body, gzipped.clone());
        if let Some(gzipped) = gzipped {
            *response.body_mut() = Body::from(gzipped);
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            // as the compression layer marks every page it could compress
            headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }
}

/// A template's bytes; a template that fails is a bug of ours (500, logged).
fn render(t: &impl Template) -> Result<Html, AppError> {
    t.render()
        .map(|body| Html { body: Bytes::from(body), history: None, vary: None })
        .map_err(|e| AppError::Internal(format!("template: {e}")))
}

/// The answer to a request for a feed (a list or a search) at `url`, its canonical address: the
/// whole page, the section (with `section_history` naming `url` for htmx to show), or the next
/// cards, which replace the address too, so that a reload or a shared link opens at the page the
/// reader reached.
fn answer(
    view: View,
    feed: Feed,
    url: &str,
    section_history: &'static str,
    page: impl FnOnce(Feed) -> Result<Html, AppError>,
    section: impl FnOnce(Feed) -> Result<Html, AppError>,
) -> Result<Html, AppError> {
    let (mut html, history) = match view {
        View::Page => (page(feed)?, None),
        View::Section => (section(feed)?, Some(section_history)),
        View::Feed => (render(&FeedFragment { feed })?, Some("hx-replace-url")),
    };
    if let (Some(name), Ok(value)) = (history, HeaderValue::from_str(url)) {
        html.history = Some((HeaderName::from_static(name), value));
    }
    html.vary = Some(LIST_INPUTS);
    Ok(html)
}

/// `/search?q=…&page=N`: the results as a page, for the search field's htmx the results alone, for
/// the infinite scroll the next cards. Past the last page: 404.
pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: SearchParams,
) -> Result<Response, PageError> {
    let SearchParams { query, page } = params;
    let view = view(&headers);
    // typing on the search page refines the entry in the history; from another page, it is a new
    // one (Back returns there)
    let on_search = headers
        .get("hx-current-url")
        .and_then(|v| v.to_str().ok())
        .and_then(address)
        .is_some_and(|(_, target)| target.starts_with("/search"));
    let Some(found) = state.service.search(&query, page).await? else {
        return Err(AppError::NotFound(format!("There is no page {page}: the results end before it.")).into());
    };
    let cached = found.cached;
    let url = query.href(page.get());
    let feed = Feed::found(found, view == View::Feed, &state.cards);
    let history = if on_search { "hx-replace-url" } else { "hx-push-url" };
    let text = query.text;
    let mut html = answer(
        view,
        feed,
        &url,
        history,
        |feed| render(&SearchPage { feed, query: text.clone() }),
        |feed| render(&SearchSection { feed, query: text.clone() }),
    )?;
    html.vary = Some(SEARCH_INPUTS);
    Ok(html.page(cached, &headers))
}

/// `/movies/{slug}`. A segment that is not even UTF-8 (`%ff`) is no film either: the 404 page,
/// not axum's plain-text rejection.
pub async fn movie(
    State(state): State<AppState>,
    headers: HeaderMap,
    slug: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let not_found = || AppError::NotFound("There is no film at this address.".into());
    let Ok(Path(slug)) = slug else { return Err(not_found().into()) };
    let slug = Slug::parse(&slug).map_err(|_| not_found())?;
    let back = came_from(&headers);
    let detail = state.service.detail(&slug).await?.ok_or_else(not_found)?;
    let cached = detail.cached;
    let mut page = DetailPage::new(&detail.movie);
    page.related = Related::sections(detail);
    if let Some((href, label)) = back {
        (page.back_href, page.back_label) = (href, label);
    }
    let mut html = render(&page)?;
    html.vary = Some(DETAIL_INPUTS);
    Ok(html.page(cached, &headers))
}

/// An absolute http(s) URL as its authority and its path with the query, without the fragment.
fn address(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let (authority, target) = rest.split_at(rest.find('/')?);
    Some((authority, target.split('#').next().unwrap_or_default()))
}

/// The list or search a reader opened a film from, as the `Referer` says (this site's own pages
/// only): its canonical URL, and what the way back is called. `None` for anything else, which
/// leads back to every film.
fn came_from(headers: &HeaderMap) -> Option<(String, &'static str)> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let (authority, target) = address(headers.get(header::REFERER)?.to_str().ok()?)?;
    if authority != host {
        return None;
    }
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    match path {
        "/" => Some(("/".to_owned(), "← All films")),
        "/movies" => {
            let asked = ListingQuery::parse(query).ok()?;
            let label = if asked.list.is_default() { "← All films" } else { "← Back to the list" };
            Some((asked.list.href(asked.page.get()), label))
        }
        "/search" => {
            let asked = SearchParams::parse(query).ok()?;
            Some((asked.query.href(asked.page.get()), "← Back to the results"))
        }
        _ => None,
    }
}

/// Anything else: a page, or JSON under `/api/` (API clients read JSON errors).
pub async fn not_found(uri: Uri) -> Response {
    super::error_for(uri.path(), AppError::NotFound("There is nothing at this address.".into()))
}
