//! The in-memory page tier: rendered pages each server keeps in front of Redis, answered again with
//! no routing, no middleware and, while this server's lease runs, no round trip.
//!
//! It is the outermost layer (see `web::app`). A GET it has kept a page for — named by its path and query and the
//! headers a page depends on (`INPUTS`) — is answered from the kept bytes, as the full path would
//! answer it (the same headers, tags and bytes, gzipped when the compression layer would gzip, a
//! 304 when the request names the tag: see `caching`), as long
//! as Redis's token is the one the page was kept under: every write that reaches the cache sets a
//! new token after its keys (see `cache::token` and `cache::lease`), so a write is on every
//! server's pages as soon as its writer is answered.
//!
//! Handlers know nothing of it but `keepable`: they mark a page that came wholly from Redis. Only
//! a page read after its token was known is kept (a database read shared with an earlier request
//! may predate a write the token already names). Without a lease the token costs a shared GET, so
//! it is read only for requests a page handler answered before.

mod store;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tower::{Layer, Service};

use super::caching::{self, CachePolicy};
use super::envelope;
use crate::service::MovieService;
use crate::stats::Stats;
use store::{Page, Store};

/// The headers a page depends on besides its address (its `Vary`, and the host): a request is
/// named by them.
const INPUTS: [HeaderName; 4] =
    [header::HOST, header::REFERER, HeaderName::from_static("hx-target"), HeaderName::from_static("hx-current-url")];

/// A request's name longer than this is not kept.
const LONGEST: usize = 4096;

/// Pages shorter than this are not compressed by the compression layer: not worth keeping twice.
const SHORTEST: usize = 32;

/// On a page handler's response: the page's headers and bytes when it may be kept, and the
/// bytes gzipped when the handler gzipped them already.
#[derive(Clone)]
pub struct Keepable(Option<(axum::http::HeaderMap, Bytes, Option<Bytes>)>);

impl Keepable {
    /// Whether the page came wholly from Redis (and so may be kept).
    pub fn from_redis(&self) -> bool {
        self.0.is_some()
    }
}

/// Marks `response` as a page (`body` its bytes when it came wholly from Redis, and so may be kept;
/// `gzipped` them gzipped, when the handler gzipped them: not gzipped again to be kept).
pub fn keepable(response: &mut Response, body: Option<Bytes>, gzipped: Option<Bytes>) {
    let page = body.map(|body| (response.headers().clone(), body, gzipped));
    response.extensions_mut().insert(Keepable(page));
}

/// Builds the tier (`budget` bytes, 0: none) in front of a service.
#[derive(Clone)]
pub struct PageCacheLayer {
    store: Arc<Store>,
    service: MovieService,
    stats: Arc<Stats>,
}

impl PageCacheLayer {
    pub fn new(budget: usize, ttl: Duration, service: MovieService, stats: Arc<Stats>) -> Self {
        Self { store: Arc::new(Store::new(budget, ttl)), service, stats }
    }
}

impl<S> Layer<S> for PageCacheLayer {
    type Service = PageCache<S>;
    fn layer(&self, inner: S) -> PageCache<S> {
        PageCache { inner, tier: self.clone() }
    }
}

#[derive(Clone)]
pub struct PageCache<S> {
    inner: S,
    tier: PageCacheLayer,
}

impl<S> Service<Request> for PageCache<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let tier = self.tier.clone();
        let name = if tier.store.is_on() { name(&req) } else { None };
        let Some(name) = name else { return Box::pin(self.inner.call(req)) };
        if let Some(token) = tier.service.leased_token() {
            if let Some(answer) = tier.answer(token, &name, &req, start) {
                return Box::pin(std::future::ready(Ok(answer)));
            }
            return Box::pin(tier.render(Some(token), name, self.inner.call(req)));
        }
        if !tier.store.is_known(&name) {
            return Box::pin(tier.render(None, name, self.inner.call(req)));
        }
        // the inner service is always ready (a router): this clone answers after the token's read
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let token = tier.service.token().await;
            if let Some(answer) = token.and_then(|token| tier.answer(token, &name, &req, start)) {
                return Ok(answer);
            }
            tier.render(token, name, inner.call(req)).await
        })
    }
}

impl PageCacheLayer {
    /// The page kept for `name` under `token`, answered as the full path answers `req`.
    fn answer(&self, token: u64, name: &[u8], req: &Request, start: Instant) -> Option<Response> {
        let gzip = gzip_wanted(req.headers())?;
        let page = self.store.get(token, name)?;
        let body = if gzip { page.gzipped.clone() } else { page.body()? };
        tracing::trace!(token, path = %req.uri(), "kept page");
        self.stats.kept(true);
        let mut response = Response::new(Body::from(body));
        *response.headers_mut() = page.headers.clone();
        if gzip {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // the compression layer marks every page it could compress, compressed or not
        response.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
        // the tags computed when the page was kept; a 304 when the request names them
        let asked = caching::Asked::of(req);
        let mut response = caching::conclude(CachePolicy::Revalidate, Some(&page.etags), &asked, response);
        envelope::record(page.route.clone(), &response, start);
        super::finish(&mut response, req);
        Some(response)
    }

    /// The full path's answer; a page kept when it may be and `token` was known before it ran.
    async fn render(
        self,
        token: Option<u64>,
        name: Box<[u8]>,
        answer: impl Future<Output = Result<Response, Infallible>>,
    ) -> Result<Response, Infallible> {
        let mut response = answer.await?;
        let Some(Keepable(page)) = response.extensions_mut().remove::<Keepable>() else {
            return Ok(response);
        };
        self.stats.kept(false);
        self.store.learn(&name);
        let route = response.extensions().get::<envelope::Route>().map(|r| r.0.clone());
        let etags = response.extensions().get::<caching::Etags>().cloned();
        // a 304 in place of the page: the client had it, the page tier may keep it
        let answered = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
        if let (Some(token), Some((headers, body, gzipped)), Some(etags), Some(route)) = (token, page, etags, route)
            && answered
            && body.len() >= SHORTEST
        {
            self.store.put(token, name, Page::new(headers, &body, gzipped, etags, route));
        }
        Ok(response)
    }

    /// Whether pages are kept at all (`RENDERED_CACHE_KB` is not 0 and there is a cache).
    pub fn is_on(&self) -> bool {
        self.store.is_on()
    }

    /// Pages and bytes kept.
    pub fn size(&self) -> (usize, usize) {
        self.store.size()
    }

    /// The bytes it may keep (`RENDERED_CACHE_KB`; 0 without a cache).
    pub fn budget(&self) -> usize {
        self.store.budget()
    }
}

/// A GET without a body by its name: its path and query and the headers a page depends on.
fn name(req: &Request) -> Option<Box<[u8]>> {
    let headers = req.headers();
    if req.method() != Method::GET
        || headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return None;
    }
    let mut name = Vec::with_capacity(256);
    name.extend_from_slice(req.uri().path_and_query()?.as_str().as_bytes());
    for input in &INPUTS {
        name.push(0);
        match headers.get(input) {
            Some(value) => name.extend_from_slice(value.as_bytes()),
            None => name.push(1),
        }
    }
    (name.len() <= LONGEST).then(|| name.into_boxed_slice())
}

/// Whether the compression layer would gzip the answer to `req` (`Some(true)`) or send it as it is
/// (`Some(false)`): gzip when it is accepted with a weight above zero and no lower than identity's,
/// as the layer negotiates (codings it does not speak and malformed weights are passed over).
/// `None` for an `Accept-Encoding` that is not text: the full path decides.
pub(super) fn gzip_wanted(headers: &HeaderMap) -> Option<bool> {
    let (mut gzip, mut identity) = (0u16, 0u16);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        for ask in value.to_str().ok()?.split(',') {
            let mut parts = ask.splitn(2, ';');
            let coding = parts.next().unwrap_or_default().trim();
            let Some(weight) = parts.next().map_or(Some(1000), |q| weight(q.trim())) else { continue };
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = gzip.max(weight);
            } else if coding.eq_ignore_ascii_case("identity") {
                identity = identity.max(weight);
            }
        }
    }
    Some(gzip > 0 && gzip >= identity)
}

/// A `q=` weight in thousandths (`q=0.5` is 500); `None` when malformed (at most three decimals,
/// at most 1).
fn weight(q: &str) -> Option<u16> {
    let value = q.strip_prefix("q=").or_else(|| q.strip_prefix("Q="))?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let fraction = format!("{fraction:0<3}").parse::<u16>().ok()?;
    Some(whole + fraction).filter(|w| *w <= 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(values: &[&str]) -> Option<bool> {
        let mut req = Request::new(Body::empty());
        for value in values {
            req.headers_mut().append(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        gzip_wanted(req.headers())
    }

    #[test]
    fn gzip_is_chosen_as_the_compression_layer_chooses_it() {
        assert_eq!(asking(&[]), Some(false));
        assert_eq!(asking(&["gzip, deflate, br, zstd"]), Some(true));
        assert_eq!(asking(&["br", "x-gzip"]), Some(true));
        assert_eq!(asking(&["gzip;q=1"]), Some(true));
        assert_eq!(asking(&["gzip;q=0.5, identity;q=0.5"]), Some(true), "a tie goes to gzip");
        assert_eq!(asking(&["gzip;q=0.5, identity"]), Some(false));
        assert_eq!(asking(&["gzip;q=0"]), Some(false));
        assert_eq!(asking(&["identity;q=0"]), Some(false), "nothing acceptable: sent as it is");
        assert_eq!(asking(&["gzip;q=2"]), Some(false), "a malformed weight is passed over");
        assert_eq!(asking(&["gzip;q=0.1234"]), Some(false));
        assert_eq!(asking(&["*"]), Some(false), "the layer does not read *");
        assert_eq!(asking(&["deflate, br"]), Some(false));
    }

    #[test]
    fn weights_are_read_in_thousandths() {
        assert_eq!(weight("q=1"), Some(1000));
        assert_eq!(weight("q=1.000"), Some(1000));
        assert_eq!(weight("q=1.001"), None);
        assert_eq!(weight("Q=0.25"), Some(250));
        assert_eq!(weight("q=0."), Some(0));
        assert_eq!(weight("q=.5"), None);
        assert_eq!(weight("q=0.5x"), None);
    }
}
