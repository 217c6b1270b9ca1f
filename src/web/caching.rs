//! How long an answer may be reused, and how a client asks whether it still may. One policy per
//! kind of answer (`CachePolicy`), chosen where the answer is made (a page or an API read by its
//! handler, static files and the operators' endpoints by their routes, anything else by its
//! method and status), and applied in one place, `conclude`: `Cache-Control`, and for a page or an
//! API read its strong `ETag`, answered with `304 Not Modified` and no body when the request's
//! `If-None-Match` names it. `envelope` calls it for every answer of the router; the page tier
//! calls it for the pages it answers from memory, with the tags computed when the page was kept.

use std::hash::Hasher;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

/// Who may keep an answer, and for how long. Written as `Cache-Control` by `conclude`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// `no-cache`: any cache may store the answer but must ask us before each use, with its `ETag`.
    /// Pages, htmx fragments and API reads: a write is on every server's pages from the moment its
    /// writer is answered, so a page used without asking could be older than the last
    /// acknowledged write. Asking costs a `304` from memory. Also what a client error gets (a 404
    /// page, a 400 naming a bad parameter): the address may hold a film tomorrow.
    Revalidate,
    /// `no-store`: server errors and time-outs (a passing state a stored copy would outlive), the
    /// operators' endpoints (health and metrics say how things are now), answers to writes.
    NoStore,
    /// `public, max-age=31536000, immutable`: static files, whose names change with their content
    /// (the templates name `app.css` and `app.js` with a hash of it, htmx with its version).
    Immutable,
}

impl CachePolicy {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Revalidate => "no-cache",
            Self::NoStore => "no-store",
            Self::Immutable => "public, max-age=31536000, immutable",
        })
    }

    /// The policy of an answer nothing chose one for.
    fn by_default(reads: bool, status: StatusCode) -> Self {
        if reads && !status.is_server_error() { Self::Revalidate } else { Self::NoStore }
    }
}

/// A representation's strong validators: one for its bytes as they are, one for them gzipped
/// (a different representation: `-gzip` after the same hash), so that a client holding either gets
/// a 304 only for the bytes it holds, from the page tier or the full path alike.
#[derive(Debug, Clone)]
pub struct Etags {
    identity: HeaderValue,
    gzip: HeaderValue,
}

impl Etags {
    /// The tags of `body` and the headers that describe it (a list's fragment answered with
    /// `HX-Push-Url` and the same bytes answered with `HX-Replace-Url` are two representations: a
    /// cache updates what it stored from a 304 by its tag).
    ///
    /// The hash is std's SipHash with its fixed keys: every server of one build names the same bytes
    /// alike, and no dependency is needed. 64 bits are enough: a stale page is mistaken for the
    /// current one only if both hash alike (a chance of 2^-64 per pair). std may change the hasher
    /// in another release: a new build then costs a client holding a tag one full answer.
    pub fn of(body: &[u8], headers: &HeaderMap) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_usize(body.len());
        hasher.write(body);
        for (name, value) in headers {
            hasher.write_usize(name.as_str().len());
            hasher.write(name.as_str().as_bytes());
            hasher.write_usize(value.len());
            hasher.write(value.as_bytes());
        }
        let hash = hasher.finish();
        let tag = |suffix: &str| HeaderValue::from_str(&format!("\"{hash:016x}{suffix}\""));
        match (tag(""), tag("-gzip")) {
            (Ok(identity), Ok(gzip)) => Self { identity, gzip },
            // hex digits and a quote are always a header value
            _ => unreachable!("an entity tag is visible ASCII"),
        }
    }
}

impl Etags {
    /// The bytes they hold.
    pub fn size(&self) -> usize {
        self.identity.len() + self.gzip.len()
    }
}

/// Marks a read's whole answer, `body` its bytes, as revalidated (`CachePolicy::Revalidate`) with its
/// tags.
pub fn revalidated(response: &mut Response, body: &[u8]) {
    let etags = Etags::of(body, response.headers());
    response.extensions_mut().insert(etags);
    response.extensions_mut().insert(CachePolicy::Revalidate);
}

/// What a request asks of its answer's validators, taken before the request is handed on.
pub struct Asked {
    /// A GET or a HEAD: only they are answered 304, and only they get tags.
    reads: bool,
    if_none_match: Vec<HeaderValue>,
}

impl Asked {
    pub fn of(req: &Request) -> Self {
        let reads = matches!(*req.method(), Method::GET | Method::HEAD);
        let if_none_match =
            if reads { req.headers().get_all(header::IF_NONE_MATCH).iter().cloned().collect() } else { Vec::new() };
        Self { reads, if_none_match }
    }
}

/// The router's answer as sent: its handler's or its route's policy (or the default), applied.
pub fn apply(asked: &Asked, response: Response) -> Response {
    let policy = response.extensions().get::<CachePolicy>().copied();
    let policy = policy.unwrap_or_else(|| CachePolicy::by_default(asked.reads, response.status()));
    let etags = response.extensions().get::<Etags>().cloned();
    conclude(policy, etags.as_ref(), asked, response)
}

/// `Cache-Control` by `policy`; for a revalidated 200 to a read, its `ETag` (the gzipped one when
/// it is sent gzipped), or in its place a 304 when the request's `If-None-Match` names it.
pub fn conclude(policy: CachePolicy, etags: Option<&Etags>, asked: &Asked, mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, policy.header());
    let Some(etags) = etags.filter(|_| asked.reads && policy == CachePolicy::Revalidate) else {
        return response;
    };
    if response.status() != StatusCode::OK {
        return response;
    }
    let etag = match response.headers().get(header::CONTENT_ENCODING).map(HeaderValue::as_bytes) {
        None => etags.identity.clone(),
        Some(b"gzip") => etags.gzip.clone(),
        // no other coding is sent
        Some(_) => return response,
    };
    if asked.if_none_match.iter().any(|field| names(field.as_bytes(), etag.as_bytes())) {
        return not_modified(response, etag);
    }
    response.headers_mut().insert(header::ETAG, etag);
    response
}

/// The 304 in place of `full`: no body; the `ETag`, `Cache-Control` and `Vary` a 200 would carry
/// (RFC 9110 15.4.5), so that a cache updates what it stored; `full`'s extensions (the page tier
/// keeps a page it learns this way).
fn not_modified(full: Response, etag: HeaderValue) -> Response {
    let (parts, _) = full.into_parts();
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    for name in [header::CACHE_CONTROL, header::VARY] {
        for value in parts.headers.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    *response.extensions_mut() = parts.extensions;
    response
}

/// Whether the `If-None-Match` field `field` names `etag` (RFC 9110 13.1.2): `*`, or a listed
/// entity tag whose opaque part is `etag`'s (the weak comparison: `W/` is ignored). A malformed
/// field names nothing: the full answer is never wrong.
fn names(field: &[u8], etag: &[u8]) -> bool {
    let mut rest = field;
    let mut found = false;
    loop {
        rest = rest.trim_ascii_start();
        match rest {
            [] => return found,
            [b',', more @ ..] => {
                rest = more;
                continue;
            }
            [b'*', more @ ..] => {
                found = true;
                rest = more;
            }
            _ => {
                let tag = rest.strip_prefix(b"W/").unwrap_or(rest);
                let Some(body) = tag.strip_prefix(b"\"") else { return false };
                let Some(end) = body.iter().position(|&b| b == b'"') else { return false };
                if !body[..end].iter().all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
                    return false;
                }
                found |= &tag[..end + 2] == etag;
                rest = &body[end + 1..];
            }
        }
        // an element ends at a comma or the end of the field
        rest = rest.trim_ascii_start();
        match rest {
            [] | [b',', ..] => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &[u8] = b"\"0123456789abcdef\"";

    #[test]
    fn if_none_match_is_read_as_rfc_9110_writes_it() {
        assert!(names(b"\"0123456789abcdef\"", TAG));
        assert!(names(b"W/\"0123456789abcdef\"", TAG), "the weak comparison");
        assert!(names(b"\"x\", \"0123456789abcdef\"", TAG), "a list");
        assert!(names(b" \"x\" ,, \"0123456789abcdef\" ,", TAG), "empty elements and spaces");
        assert!(names(b"*", TAG));
        assert!(names(b"\"a,b\", \"0123456789abcdef\"", TAG), "a comma inside a tag");
        assert!(!names(b"\"0123456789abcdef-gzip\"", TAG), "another representation");
        assert!(!names(b"\"x\"", TAG));
        assert!(!names(b"", TAG));
        assert!(!names(b"0123456789abcdef", TAG), "unquoted: malformed");
        assert!(!names(b"\"0123456789abcdef\" junk", TAG), "malformed");
        assert!(!names(b"\"0123456789abcdef\", \"open", TAG), "a malformed field names nothing");
        assert!(!names(b"\"0123456789abcdef\", w/\"x\"", TAG), "W/ is upper case");
        assert!(!names(b"\"x y\", \"0123456789abcdef\"", TAG), "a space is not in a tag");
    }

    fn answer(encoding: Option<&'static str>) -> Response {
        let mut response = Response::new(Body::from("the page"));
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("HX-Request"));
        if let Some(coding) = encoding {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        response
    }

    fn asking(method: Method, if_none_match: &[&str]) -> Asked {
        let mut req = Request::new(Body::empty());
        *req.method_mut() = method;
        for value in if_none_match {
            req.headers_mut().append(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        }
        Asked::of(&req)
    }

    #[test]
    fn a_matching_read_gets_a_304_with_the_200s_validators_and_no_body() {
        let etags = Etags::of(b"the page", &HeaderMap::new());
        let full = conclude(CachePolicy::Revalidate, Some(&etags), &asking(Method::GET, &[]), answer(None));
        assert_eq!(full.status(), StatusCode::OK);
        let etag = full.headers()[header::ETAG].to_str().unwrap().to_owned();
        let gzipped = conclude(CachePolicy::Revalidate, Some(&etags), &asking(Method::GET, &[]), answer(Some("gzip")));
        assert_eq!(gzipped.headers()[header::ETAG].to_str().unwrap(), format!("\"{}-gzip\"", etag.trim_matches('"')));
        for method in [Method::GET, Method::HEAD] {
            let again = conclude(CachePolicy::Revalidate, Some(&etags), &asking(method, &[&etag]), answer(None));
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
            assert_eq!(again.headers()[header::ETAG], etag);
            assert_eq!(again.headers()[header::CACHE_CONTROL], "no-cache");
            assert_eq!(again.headers()[header::VARY], "HX-Request");
            assert!(!again.headers().contains_key(header::CONTENT_ENCODING));
        }
        // the identity tag does not name the gzipped bytes, nor a write's answer
        let other =
            conclude(CachePolicy::Revalidate, Some(&etags), &asking(Method::GET, &[&etag]), answer(Some("gzip")));
        assert_eq!(other.status(), StatusCode::OK);
        let write = conclude(CachePolicy::Revalidate, Some(&etags), &asking(Method::PUT, &[&etag]), answer(None));
        assert_eq!(write.status(), StatusCode::OK);
        assert!(!write.headers().contains_key(header::ETAG));
    }

    #[test]
    fn answers_nothing_chose_a_policy_for_get_one_by_method_and_status() {
        let policy = |method, status: u16| {
            let mut response = answer(None);
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            apply(&asking(method, &["*"]), response).headers()[header::CACHE_CONTROL].clone()
        };
        assert_eq!(policy(Method::GET, 404), "no-cache");
        assert_eq!(policy(Method::GET, 400), "no-cache");
        assert_eq!(policy(Method::GET, 503), "no-store");
        assert_eq!(policy(Method::GET, 500), "no-store");
        assert_eq!(policy(Method::PUT, 200), "no-store");
        assert_eq!(policy(Method::POST, 201), "no-store");
        assert_eq!(policy(Method::DELETE, 204), "no-store");
    }

    #[test]
    fn tags_name_the_bytes_and_the_headers_that_describe_them() {
        let mut push = HeaderMap::new();
        push.insert("hx-push-url", HeaderValue::from_static("/movies?page=2"));
        let mut replace = HeaderMap::new();
        replace.insert("hx-replace-url", HeaderValue::from_static("/movies?page=2"));
        let tag = |body: &[u8], headers: &HeaderMap| Etags::of(body, headers).identity;
        assert_eq!(tag(b"a", &push), tag(b"a", &push));
        assert_ne!(tag(b"a", &push), tag(b"b", &push));
        assert_ne!(tag(b"a", &push), tag(b"a", &replace));
        assert_ne!(Etags::of(b"a", &push).identity, Etags::of(b"a", &push).gzip);
    }
}
