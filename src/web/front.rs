//! The front: what every connection's requests go to first. A page this server answered before
//! from its kept pages (see `rendered`) is answered again from the request alone, with no
//! routing, no extractor and no middleware run: its path and query and the headers a page
//! depends on name it, and the lease says the token it was kept under is still the current one.
//! The answer is the one the full path gives (the same bytes and headers, the request id and the
//! security headers, the latency metric). Anything else goes through the router, and a page its
//! handler answered from or kept is then kept by request too.
//!
//! Only what cannot differ is answered here: a GET of a page, with no body, from a client that
//! asks for no compression or for gzip plainly (a browser), from the page's gzipped copy, made
//! once. Without a lease (Redis slow or down, `CACHE_LEASE_MS=0`) everything goes through the
//! router.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, Method, header};
use axum::response::Response;
use tower::Service;

use super::AppState;
use super::envelope;
use super::rendered::KeptPage;

/// The headers a page depends on besides its address (see `pages`): a request is named by them.
const INPUTS: [HeaderName; 6] = [
    header::HOST,
    header::REFERER,
    HeaderName::from_static("hx-request"),
    HeaderName::from_static("hx-target"),
    HeaderName::from_static("hx-history-restore-request"),
    HeaderName::from_static("hx-current-url"),
];

/// A request's name longer than this is not kept by request.
const LONGEST: usize = 4096;

#[derive(Clone)]
pub struct Front {
    router: Router,
    state: AppState,
}

impl Front {
    pub fn new(router: Router, state: AppState) -> Self {
        Self { router, state }
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // as the router: always ready
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let named = if self.state.rendered.is_on() { name(&req) } else { None };
        if let Some((key, _)) = &named
            && let Some(gzip) = plain(&req)
            && let Some(epoch) = self.state.service.leased_epoch()
            && let Some((html, route)) = self.state.rendered.by_request(epoch, key)
        {
            let response = envelope::kept_answer(html, gzip, route, envelope::request_id(&req), start);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let state = self.state.clone();
        let answer = self.router.call(req);
        Box::pin(async move {
            let response = answer.await?;
            if let Some((key, route)) = named
                && let Some(page) = response.extensions().get::<KeptPage>()
            {
                state.rendered.put_request(key, route, page);
            }
            Ok(response)
        })
    }
}

/// A page's request by name (its path and query, and the headers it depends on), with the name
/// of its route; `None` for anything but a GET of a page.
fn name(req: &Request) -> Option<(Box<[u8]>, &'static str)> {
    if req.method() != Method::GET {
        return None;
    }
    let route = match req.uri().path() {
        "/" => "/",
        "/movies" => "/movies",
        "/search" => "/search",
        path => {
            path.strip_prefix("/movies/").filter(|s| !s.is_empty() && !s.contains('/')).map(|_| "/movies/{slug}")?
        }
    };
    let mut key = Vec::with_capacity(256);
    key.extend_from_slice(req.uri().path_and_query()?.as_str().as_bytes());
    for input in &INPUTS {
        key.push(0);
        match req.headers().get(input) {
            Some(value) => key.extend_from_slice(value.as_bytes()),
            None => key.push(1),
        }
    }
    (key.len() <= LONGEST).then(|| (key.into_boxed_slice(), route))
}

/// A request whose answer is the page's bytes, as they are (`Some(false)`) or gzipped
/// (`Some(true)`): no body to refuse, and no compression asked for, or gzip in the plain form
/// browsers ask for it (`gzip, deflate, br, zstd`: no weights, no `identity`), which the
/// compression layer would answer with gzip too. `None`: the full path decides.
fn plain(req: &Request) -> Option<bool> {
    let headers = req.headers();
    if headers.contains_key(header::CONTENT_LENGTH) || headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let mut asked = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if asked.peek().is_none() {
        return Some(false);
    }
    let mut gzip = false;
    for value in asked {
        let value = value.to_str().ok()?;
        if value.contains(';') {
            return None;
        }
        for coding in value.split(',').map(str::trim) {
            if coding.eq_ignore_ascii_case("identity") || coding == "*" {
                return None;
            }
            gzip |= coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip");
        }
    }
    // codings the layer does not speak (br, zstd, deflate here) are passed over: identity, as it
    Some(gzip)
}
