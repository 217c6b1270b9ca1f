//! Bad input and hostile clients: every odd request gets a 4xx with a message that says what was
//! wrong, the server keeps serving, and nothing in the catalog changes. Requests are sent byte for
//! byte over TCP where an HTTP client would tidy them up (dot segments, raw brackets, NUL bytes).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, REDIS, Setup, TOKEN, TestApp, card_slugs, redis_conn, unique};
use crate::redis_server::free_port;

/// An answer read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    /// Header lines, names lower-cased: `name: value`.
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Sends `head` (the request line and headers, without the blank line) and `body` over a fresh
/// connection, then reads the answer until the server closes the connection.
async fn send(addr: &str, head: &str, body: &[u8]) -> Result<Raw, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    if !body.is_empty() && !head.to_ascii_lowercase().contains("content-length") {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await.map_err(|e| e.to_string())?;
    // the body may be refused before it is read: write it alongside reading the answer
    let (mut reader, mut writer) = stream.into_split();
    let body = body.to_vec();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut bytes)).await;
    drop(writing.await);
    match read {
        Err(_) => return Err("no answer within 20 s".into()),
        Ok(Err(e)) if bytes.is_empty() => return Err(e.to_string()),
        _ => {}
    }
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Result<Raw, String> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no complete answer: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("{status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(Raw { status, headers, body })
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// What must not change: the film count, the catalog version (any write raises it) and a sample
/// film, all read straight from the database.
async fn catalog_state(app: &TestApp, sample: &str) -> (i64, i64, marquee::movies::Movie) {
    let db = app.database();
    let stamp = db.stamp().await.expect("stamp");
    let slug = marquee::movies::Slug::parse(sample).expect("sample slug");
    let (_, movie) =
        db.movies(&[slug.as_str()]).await.map(|(stamp, mut found)| (stamp, found.pop())).expect("sample film");
    (stamp.movie_count, stamp.version, movie.expect("the sample film exists"))
}

struct Case {
    name: String,
    /// Request line and any headers, without Host (added) and the blank line.
    head: String,
    body: Vec<u8>,
    status: u16,
    /// A part of the body every answer must carry: the message that says what was wrong.
    says: &'static str,
}

fn case(name: impl Into<String>, head: impl Into<String>, status: u16, says: &'static str) -> Case {
    Case { name: name.into(), head: head.into(), body: Vec::new(), status, says }
}

fn with_body(mut c: Case, body: impl Into<Vec<u8>>) -> Case {
    c.body = body.into();
    c
}

const JSON: &str = "Content-Type: application/json";
const BAD_PAGE: &str = "page must be a whole number from 1 to 1000000";
const NO_FILM_PAGE: &str = "There is no film at this address.";
const NOTHING_HERE: &str = "There is nothing at this address.";
const NO_FILM_API: &str = "no film with slug";
const NEEDS_TOKEN: &str = "this needs a valid admin token";
const TOO_LARGE: &str = "the request body is larger than 65536 bytes";

fn cases(sample: &str) -> Vec<Case> {
    let auth = format!("Authorization: Bearer {TOKEN}");
    let mut cases = Vec::new();

    // the listing's page parameter, whole page and htmx fragment
    for (q, says) in [
        ("page=0", BAD_PAGE),
        ("page=-1", BAD_PAGE),
        ("page=abc", BAD_PAGE),
        ("page=1.5", BAD_PAGE),
        ("page=1e3", BAD_PAGE),
        ("page=99999999999999999999", BAD_PAGE),
        ("page=1000001", BAD_PAGE),
        ("page=", BAD_PAGE),
        ("page", BAD_PAGE),
        ("page=%20", BAD_PAGE),
        ("page=%2B1", BAD_PAGE),
        ("page=1&page=2", "page is given more than once"),
        ("page=1&page=1", "page is given more than once"),
        ("page=*", BAD_PAGE),
        ("page=1*", BAD_PAGE),
        ("page=%2A", BAD_PAGE),
        ("page=%5B1%5D", BAD_PAGE),
        ("page=1%00", BAD_PAGE),
        ("page=%ff", BAD_PAGE),
    ] {
        cases.push(case(format!("listing ?{q}"), format!("GET /movies?{q} HTTP/1.1"), 400, says));
        cases.push(case(
            format!("fragment ?{q}"),
            format!("GET /movies?{q} HTTP/1.1\r\nHX-Request: true\r\nHX-Target: feed"),
            400,
            says,
        ));
    }
    cases.push(case("a page past the end", "GET /movies?page=1000000 HTTP/1.1", 404, "There is no page 1000000"));

    // the list's filters and sort: a value not allowed says which parameter and what is; the
    // same on the page, the htmx section and the JSON API
    const GENRES: &str = "genre must be one of: action, adventure, black-comedy, comedy";
    const DECADE: &str = "decade must be the first year of a decade from 1910 to 2010 (like 1990)";
    for (q, says) in [
        ("genre=Comedy", GENRES),
        ("genre=comedy%00", GENRES),
        ("genre=*", GENRES),
        ("genre=comedy&genre=drama", "genre is given more than once"),
        ("genre=comedy&genre=", "genre is given more than once"),
        ("decade=1995", DECADE),
        ("decade=199", DECADE),
        ("decade=2020", DECADE),
        ("decade=%2B1990", DECADE),
        ("rating=PG-13", "rating must be one of: g, pg, pg-13, r, nc-17, not-rated, open"),
        ("sort=title", "sort must be one of: newest, rating, votes, gross"),
        ("sort=rating&sort=votes", "sort is given more than once"),
        ("sort=rating&page=0", BAD_PAGE),
    ] {
        cases.push(case(format!("list ?{q}"), format!("GET /movies?{q} HTTP/1.1"), 400, says));
        let htmx = "HX-Request: true\r\nHX-Target: listing";
        cases.push(case(format!("list section ?{q}"), format!("GET /movies?{q} HTTP/1.1\r\n{htmx}"), 400, says));
        cases.push(case(format!("API list ?{q}"), format!("GET /api/movies?{q} HTTP/1.1"), 400, says));
    }
    cases.push(case(
        "an API page past the end",
        "GET /api/movies?page=1000000 HTTP/1.1",
        404,
        "there is no page 1000000",
    ));

    // slugs that are not slugs, on the detail page and every method of the API
    let long = "a".repeat(5000);
    for slug in [
        "a*b",
        "*",
        "a%3Fb",
        "%5Bab%5D",
        "a%5D",
        "a:b",
        "a%00b",
        "%00",
        "..%2f..%2fCargo.toml",
        "%2e%2e",
        long.as_str(),
        "%C3%A9t%C3%A9-2000",
        "Heat-1995",
        "heat--1995",
        "-heat",
        "heat%20-1995",
    ] {
        cases.push(case(
            format!("detail /movies/{slug:.40}"),
            format!("GET /movies/{slug} HTTP/1.1"),
            404,
            NO_FILM_PAGE,
        ));
        cases.push(case(format!("api GET {slug:.40}"), format!("GET /api/movies/{slug} HTTP/1.1"), 404, NO_FILM_API));
        cases.push(with_body(
            case(
                format!("api PUT {slug:.40}"),
                format!("PUT /api/movies/{slug} HTTP/1.1\r\n{auth}\r\n{JSON}"),
                404,
                NO_FILM_API,
            ),
            r#"{"title":"Changed"}"#,
        ));
        cases.push(case(
            format!("api DELETE {slug:.40}"),
            format!("DELETE /api/movies/{slug} HTTP/1.1\r\n{auth}"),
            404,
            NO_FILM_API,
        ));
    }
    // bytes a URL should not hold unencoded, sent raw: the HTTP parser refuses some (a bare 400),
    // the rest reach the routes
    for path in ["/movies/a b", "/movies/a\u{7f}b", "/movies/<b>"] {
        cases.push(case(format!("raw {path:?}"), format!("GET {path} HTTP/1.1"), 400, ""));
    }
    for path in ["/movies/[ab]", "/movies/\u{e9}t\u{e9}-2000", "/movies/a\"b"] {
        cases.push(case(format!("raw {path:?}"), format!("GET {path} HTTP/1.1"), 404, NO_FILM_PAGE));
    }
    cases.push(case("raw page=\u{e9}", "GET /movies?page=\u{e9} HTTP/1.1", 400, BAD_PAGE));
    // paths no route has, under the API: a JSON 404
    for path in ["/api", "/api/", "/api/nope", "/api/movies/heat-1995/extra", "/api/movies/"] {
        cases.push(case(format!("api path {path}"), format!("GET {path} HTTP/1.1"), 404, NOTHING_HERE));
    }
    // dot segments that no client would send as such: never a route, never a file
    for path in [
        "/movies/../Cargo.toml",
        "/movies/./",
        "/api/movies/../../Cargo.toml",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%2FCargo.toml",
        "/static/%2e%2e%2fCargo.toml",
        "/static/%252e%252e/Cargo.toml",
        "/static/..%5cCargo.toml",
        "/static/vendor/../../Cargo.toml",
        "/static/vendor/%2e%2e/%2e%2e/Cargo.toml",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/....//Cargo.toml",
        "/static/.%2e/Cargo.toml",
    ] {
        cases.push(case(format!("traversal {path}"), format!("GET {path} HTTP/1.1"), 404, NOTHING_HERE));
    }

    // the write API's bodies
    let put = |name: &str, body: &str| {
        with_body(case(name, format!("PUT /api/movies/{sample} HTTP/1.1\r\n{auth}\r\n{JSON}"), 0, ""), body)
    };
    let post = |name: &str, body: &str| {
        with_body(case(name, format!("POST /api/movies HTTP/1.1\r\n{auth}\r\n{JSON}"), 0, ""), body)
    };
    let expect = |mut c: Case, status: u16, says: &'static str| {
        c.status = status;
        c.says = says;
        c
    };
    for (name, body) in
        [("PUT not JSON", "{title: 'x'}"), ("PUT truncated JSON", r#"{"title": "x""#), ("PUT empty body", "")]
    {
        cases.push(expect(put(name, body), 400, "the body is not valid JSON"));
    }
    cases.push(expect(post("POST not JSON", "title=x&release_date=2000-01-01"), 400, "the body is not valid JSON"));
    cases.push(with_body(
        case(
            "PUT text/plain",
            format!("PUT /api/movies/{sample} HTTP/1.1\r\n{auth}\r\nContent-Type: text/plain"),
            415,
            "send the body as Content-Type: application/json",
        ),
        r#"{"title":"x"}"#,
    ));
    cases.push(with_body(
        case(
            "POST without a content type",
            format!("POST /api/movies HTTP/1.1\r\n{auth}"),
            415,
            "send the body as Content-Type: application/json",
        ),
        r#"{"title":"x","release_date":"2000-01-01"}"#,
    ));
    for (name, body, says) in [
        ("PUT a title that is a number", r#"{"title": 5}"#, "title: expected a string"),
        ("PUT a title that is null", r#"{"title": null}"#, "title: expected a string"),
        ("PUT an empty title", r#"{"title": "   "}"#, "title: cannot be empty"),
        ("PUT a rating that is text", r#"{"imdb_rating": "8"}"#, "imdb_rating: expected a number or null"),
        ("PUT a rating out of range", r#"{"imdb_rating": 11}"#, "imdb_rating: expected a number from 0 to 10"),
        ("PUT votes as a fraction", r#"{"imdb_votes": 1.5}"#, "imdb_votes: expected a whole number"),
        (
            "PUT a date that is no date",
            r#"{"release_date": "1995-13-45"}"#,
            "release_date: expected a date as YYYY-MM-DD",
        ),
        ("PUT a date as a number", r#"{"release_date": 19951215}"#, "release_date: expected a date as YYYY-MM-DD"),
        ("PUT an array", r#"[{"title": "x"}]"#, "body: expected a JSON object"),
        ("PUT null", "null", "body: expected a JSON object"),
        ("PUT a string", r#""title""#, "body: expected a JSON object"),
        ("PUT an unknown field", r#"{"colour": "red"}"#, "colour: unknown field"),
        ("PUT a new slug", r#"{"slug": "other-2000"}"#, "slug: a film's slug cannot be changed"),
        (
            "PUT a title of 301 characters",
            &format!(r#"{{"title": "{}"}}"#, "x".repeat(301)),
            "title: is longer than 300 characters",
        ),
        ("PUT a control character", r#"{"title": "a\u0007b"}"#, "title: cannot contain control characters"),
        ("PUT a good field then a bad one", r#"{"genre": "Drama", "imdb_rating": -1}"#, "imdb_rating"),
    ] {
        cases.push(expect(put(name, body), 422, says));
    }
    for (name, body, says) in [
        ("POST without a title", r#"{"release_date": "2000-01-01"}"#, "title: is required"),
        ("POST without a date", r#"{"title": "No Date"}"#, "release_date: is required"),
        ("POST a bad slug", r#"{"title": "x", "release_date": "2000-01-01", "slug": "a*b"}"#, "slug: a slug uses only"),
        (
            "POST a slug of 5,000 characters",
            &format!(r#"{{"title": "x", "release_date": "2000-01-01", "slug": "{long}"}}"#),
            "slug: a slug is at most 100 characters",
        ),
        (
            "POST an existing slug",
            &format!(r#"{{"title": "x", "release_date": "2000-01-01", "slug": "{sample}"}}"#),
            "already exists",
        ),
    ] {
        let status = if says == "already exists" { 409 } else { 422 };
        cases.push(expect(post(name, body), status, says));
    }
    let title_100k = format!(r#"{{"title": "{}", "release_date": "2000-01-01"}}"#, "x".repeat(100 * 1024));
    cases.push(expect(post("POST a title of 100 KB", &title_100k), 413, TOO_LARGE));
    cases.push(expect(put("PUT a title of 100 KB", &title_100k), 413, TOO_LARGE));
    let ten_mb = format!(r#"{{"title": "{}"}}"#, "x".repeat(10 * 1024 * 1024));
    cases.push(expect(put("PUT a body of 10 MB", &ten_mb), 413, TOO_LARGE));
    cases.push(with_body(
        case(
            "PUT a body of 10 MB without a token",
            format!("PUT /api/movies/{sample} HTTP/1.1\r\n{JSON}"),
            413,
            TOO_LARGE,
        ),
        ten_mb.clone(),
    ));

    // tokens
    let good_body = r#"{"title": "Taken Over"}"#;
    for (name, header) in [
        ("no token", String::new()),
        ("a wrong token", "\r\nAuthorization: Bearer wrong-token".to_owned()),
        ("the token with a suffix", format!("\r\nAuthorization: Bearer {TOKEN}x")),
        ("a prefix of the token", format!("\r\nAuthorization: Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        ("an empty bearer", "\r\nAuthorization: Bearer ".to_owned()),
        ("the token without Bearer", format!("\r\nAuthorization: {TOKEN}")),
        ("the token as Basic", format!("\r\nAuthorization: Basic {TOKEN}")),
        ("the token in another header", format!("\r\nX-Admin-Token: {TOKEN}")),
    ] {
        cases.push(with_body(
            case(
                format!("PUT with {name}"),
                format!("PUT /api/movies/{sample} HTTP/1.1{header}\r\n{JSON}"),
                401,
                NEEDS_TOKEN,
            ),
            good_body,
        ));
        cases.push(with_body(
            case(format!("POST with {name}"), format!("POST /api/movies HTTP/1.1{header}\r\n{JSON}"), 401, NEEDS_TOKEN),
            r#"{"title": "Intruder", "release_date": "2000-01-01"}"#,
        ));
        cases.push(case(
            format!("DELETE with {name}"),
            format!("DELETE /api/movies/{sample} HTTP/1.1{header}"),
            401,
            NEEDS_TOKEN,
        ));
    }
    cases.push(with_body(
        case(
            "PUT with the token in the query",
            format!("PUT /api/movies/{sample}?token={TOKEN} HTTP/1.1\r\n{JSON}"),
            401,
            NEEDS_TOKEN,
        ),
        good_body,
    ));

    // methods no route has
    for (method, path) in [
        ("POST", "/".to_owned()),
        ("PUT", "/".to_owned()),
        ("DELETE", "/movies".to_owned()),
        ("POST", "/movies".to_owned()),
        ("PUT", format!("/movies/{sample}")),
        ("POST", format!("/movies/{sample}")),
        ("DELETE", format!("/movies/{sample}")),
        ("PUT", "/api/movies".to_owned()),
        ("DELETE", "/api/movies".to_owned()),
        ("PATCH", format!("/api/movies/{sample}")),
        ("POST", format!("/api/movies/{sample}")),
        ("POST", "/healthz".to_owned()),
        ("DELETE", "/readyz".to_owned()),
        ("PUT", "/metrics".to_owned()),
        ("BREW", "/".to_owned()),
        ("TRACE", format!("/movies/{sample}")),
    ] {
        let says = "is not allowed on";
        let mut c = case(format!("{method} {path}"), format!("{method} {path} HTTP/1.1\r\n{auth}"), 405, says);
        if method == "PATCH" || method == "POST" && path.starts_with("/api/") {
            c.head.push_str(&format!("\r\n{JSON}"));
            c.body = good_body.into();
        }
        cases.push(c);
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    // each wrong token here must get its own 401; the flood limit has a test of its own
    let app = Setup::new(Backend::Sqlite).env("BAD_TOKENS_PER_MINUTE", "1000").spawn().await;
    let (_, html) = app.get_text("/movies?page=2").await;
    let sample = card_slugs(&html)[0].clone();
    let before = catalog_state(&app, &sample).await;
    let (_, sample_page) = app.get_text(&format!("/movies/{sample}")).await;
    let addr = addr(&app);
    let mut failures = Vec::new();
    let cases = cases(&sample);
    for c in &cases {
        let answer = match send(&addr, &c.head, &c.body).await {
            Ok(answer) => answer,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", c.name));
                continue;
            }
        };
        let is_api = c.head.split(' ').nth(1).is_some_and(|p| p.starts_with("/api/"));
        let content_type = answer.header("content-type").unwrap_or_default().to_owned();
        if answer.status != c.status {
            failures
                .push(format!("{}: status {} instead of {}: {:.300}", c.name, answer.status, c.status, answer.body));
        } else if !answer.body.contains(c.says) {
            failures.push(format!("{}: the answer does not say {:?}: {:.300}", c.name, c.says, answer.body));
        } else if !c.says.is_empty() {
            // every refusal is ours, in the client's language: JSON for the API, a page otherwise
            let want = if is_api { "application/json" } else { "text/html" };
            if !content_type.starts_with(want) {
                failures.push(format!("{}: content type {content_type:?} instead of {want}", c.name));
            }
        }
        if c.status == 405 && answer.header("allow").is_none() {
            failures.push(format!("{}: a 405 without an Allow header", c.name));
        }
        if answer.body.contains("[package]") || answer.body.contains("root:x:0") {
            failures.push(format!("{}: served a file from outside static/", c.name));
        }
        if c.status == 401 && answer.header("www-authenticate") != Some("Bearer") {
            failures.push(format!("{}: a 401 without WWW-Authenticate: Bearer", c.name));
        }
        // the server is still serving
        if app.get("/healthz").await.status() != StatusCode::OK {
            failures.push(format!("{}: /healthz failed afterwards", c.name));
        }
    }
    app.settle().await;
    let after = catalog_state(&app, &sample).await;
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(after, before, "the catalog changed");
    let (status, sample_now) = app.get_text(&format!("/movies/{sample}")).await;
    assert_eq!((status, sample_now), (StatusCode::OK, sample_page), "the sample film's page changed");
    // and the cache holds only keys of the documented forms (no `*`, `?`, `[`, no odd page)
    for key in app.cached_keys("*").await {
        let rest = key.strip_prefix(&app.prefix).unwrap_or_default();
        let ok = rest == "movies:stamp"
            || rest == "movies:pages"
            || rest
                .strip_prefix("movies:page:")
                .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| (1..=1_000_000).contains(&n)))
            || rest.strip_prefix("movie:").is_some_and(|s| marquee::movies::Slug::parse(s).is_ok())
            || rest.strip_prefix("movies:related:").is_some_and(|s| marquee::movies::Slug::parse(s).is_ok())
            || rest == "movies:lists"
            || rest == "movies:token"
            || rest.strip_prefix("movies:search:").and_then(|r| r.rsplit_once(":page:")).is_some_and(|(q, n)| {
                // a search's key names its folded words, joined by +
                q.split('+').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
                    && n.parse::<u32>().is_ok_and(|n| (1..=1_000_000).contains(&n))
            })
            || rest.strip_prefix("movies:list:").and_then(|r| r.rsplit_once(":page:")).is_some_and(|(list, n)| {
                // a list's key names its parameters as the list itself names them, nothing else
                let mut parsed = marquee::movies::MovieList::default();
                let canonical =
                    list.split('&').all(|pair| pair.split_once('=').is_some_and(|(k, v)| parsed.set(k, v).is_ok()))
                        && parsed.key() == list;
                canonical && n.parse::<u32>().is_ok_and(|n| (1..=1_000_000).contains(&n))
            });
        assert!(ok, "an unexpected key in the cache: {key:?}");
    }
}

/// HTML in a title is accepted and stored as text: the API gives it back as sent, the pages show
/// it escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_fields_is_stored_as_text() {
    let app = Setup::new(Backend::Sqlite).spawn().await;
    let title = r#"<script>alert("t")</script> & <b onmouseover=x>Bold</b>"#;
    let body =
        serde_json::json!({"title": title, "release_date": "2099-01-01", "director": "<img src=x onerror=alert(1)>"});
    let r = app.add_movie(&body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: serde_json::Value = r.json().await.unwrap();
    let slug = created["slug"].as_str().expect("a slug").to_owned();
    assert!(marquee::movies::Slug::parse(&slug).is_ok(), "{slug}");
    let api: serde_json::Value = app.get(&format!("/api/movies/{slug}")).await.json().await.unwrap();
    assert_eq!(api["title"], title);
    assert_eq!(api["director"], "<img src=x onerror=alert(1)>");
    for path in [format!("/movies/{slug}"), "/".to_owned()] {
        let (status, html) = app.get_text(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("<script>alert"), "{path}: raw script");
        assert!(!html.contains("<b onmouseover"), "{path}: raw markup");
        assert!(!html.contains("<img src=x"), "{path}: raw markup");
        assert!(html.contains("&#60;script&#62;alert("), "{path}: the title is shown, escaped");
    }
}

/// A decoy key of another prefix, and one of this prefix that no page write made, survive
/// writes that sweep the listing's page keys, even when the prefix itself holds glob characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_characters_never_reach_a_key_pattern() {
    let tag = unique("glob");
    // as a SCAN MATCH pattern, `{tag}*[x]?:movies:page:*` would match the decoys below
    let prefix = format!("{tag}*[x]?:");
    let app = Setup::new(Backend::Sqlite).env("CACHE_PREFIX", &prefix).spawn().await;
    let mut conn = redis_conn(REDIS).await;
    let decoys = [
        "otherprefix:movies:page:1".to_owned(),
        format!("{tag}-other]x!:movies:page:1"),
        format!("{tag}ZZx?:movies:page:2"),
        format!("{prefix}movies:page:decoy"),
        format!("{prefix}movies:page:*"),
    ];
    for d in &decoys {
        let () = redis::cmd("SET").arg(d).arg("decoy").arg("EX").arg(120).query_async(&mut conn).await.unwrap();
    }
    let (_, html) = app.get_text("/").await;
    let slug = card_slugs(&html)[2].clone();
    for n in 2..=4 {
        assert_eq!(app.get(&format!("/movies?page={n}")).await.status(), StatusCode::OK);
    }
    app.settle().await;
    let page_key = format!("{prefix}movies:page:1");
    let exists: i64 = redis::cmd("EXISTS").arg(&page_key).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 1, "the app caches its pages under its glob-laden prefix");
    // glob characters in requests are refused before any key is built
    for path in ["/movies?page=*", "/movies/*", "/movies/%2A", "/api/movies/*", "/movies?page=%5B1-9%5D"] {
        assert!(app.get(path).await.status().is_client_error(), "{path}");
    }
    let r = app.redate("*", "2100-01-01").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // an update that moves a film sweeps this app's page keys (after its answer), and only those
    let r = app.redate(&slug, "2100-01-01").await;
    assert_eq!(r.status(), StatusCode::OK);
    app.settle().await;
    let exists: i64 = redis::cmd("EXISTS").arg(&page_key).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0, "the update swept this app's page keys");
    for d in &decoys {
        let value: Option<String> = redis::cmd("GET").arg(d).query_async(&mut conn).await.unwrap();
        assert_eq!(value.as_deref(), Some("decoy"), "{d} was touched");
    }
    let (_, html) = app.get_text("/").await;
    assert_eq!(card_slugs(&html).first(), Some(&slug), "the moved film leads the listing");
    let _: i64 = redis::cmd("DEL").arg(&decoys).query_async(&mut conn).await.unwrap();
    // TestApp cleans up under the prefix it made up, not this one: remove this app's keys here
    let own = crate::redis_server::keys_with_prefix(&mut conn, &prefix).await;
    assert!(own.iter().all(|k| k.starts_with(&prefix)), "{own:?}");
    let _: i64 = redis::cmd("UNLINK").arg(&own).query_async(&mut conn).await.unwrap();
}

const CSP: [&str; 5] =
    ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'self'"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_html_response_carries_the_csp() {
    let app = Setup::new(Backend::Sqlite).spawn().await;
    let (_, html) = app.get_text("/").await;
    let slug = card_slugs(&html)[0].clone();
    let big = "x".repeat(70 * 1024);
    let requests: Vec<(&str, String, Option<&str>, u16)> = vec![
        ("GET", "/".into(), None, 200),
        ("GET", "/movies?page=2".into(), None, 200),
        ("GET", "/movies?page=2".into(), Some("HX-Request"), 200),
        ("GET", format!("/movies/{slug}"), None, 200),
        ("GET", "/nowhere".into(), None, 404),
        ("GET", "/movies/no-such-film-1900".into(), None, 404),
        ("GET", "/movies?page=9999".into(), None, 404),
        ("GET", "/movies?page=0".into(), None, 400),
        ("GET", "/movies?page=0".into(), Some("HX-Request"), 400),
        ("POST", "/".into(), None, 405),
        ("POST", "/movies".into(), Some("big"), 413),
    ];
    for (method, path, extra, status) in requests {
        let mut req = app.client.request(method.parse().unwrap(), app.url(&path));
        match extra {
            Some("HX-Request") => req = req.header("HX-Request", "true").header("HX-Target", "feed"),
            Some("big") => req = req.body(big.clone()),
            _ => {}
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path} {extra:?}");
        let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/html"), "{method} {path}: {content_type}");
        let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        for directive in CSP {
            assert!(csp.contains(directive), "{method} {path} {extra:?}: CSP {csp:?} lacks {directive:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(r.headers().get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
        let body = r.text().await.unwrap();
        assert!(!body.contains("<script>") && !body.contains(" onclick="), "{path}: inline script in the page");
    }
}

/// Bodies up to 64 KiB are read; larger ones are refused with 413, declared or streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_limited_to_64_kib() {
    let app = Setup::new(Backend::Sqlite).spawn().await;
    let (_, html) = app.get_text("/").await;
    let slug = card_slugs(&html)[0].clone();
    let addr = addr(&app);
    let put = format!("PUT /api/movies/{slug} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n{JSON}");
    let padded = |len: usize| {
        let mut body = br#"{"genre": "Padded"}"#.to_vec();
        body.resize(len, b' ');
        body
    };
    let r = send(&addr, &put, &padded(64 * 1024)).await.unwrap();
    assert_eq!(r.status, 200, "exactly 64 KiB is accepted: {}", r.body);
    let r = send(&addr, &put, &padded(64 * 1024 + 1)).await.unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains(TOO_LARGE), "{}", r.body);
    // no Content-Length: the limit applies as the body streams in
    let mut chunked = Vec::new();
    for _ in 0..100 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 1024, " ".repeat(1024)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!("{put}\r\nTransfer-Encoding: chunked");
    let r = send(&addr, &head, &chunked).await.unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains(TOO_LARGE), "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// A request head of 100 KB (one header, a long URL, or 2,000 small headers) is refused with 431
/// or its connection closed, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_request_heads_are_refused() {
    let app = Setup::new(Backend::Sqlite).spawn().await;
    let addr = addr(&app);
    for head in [
        format!("GET / HTTP/1.1\r\nX-Padding: {}", "x".repeat(100 * 1024)),
        format!("GET /movies?page=1&utm={} HTTP/1.1", "x".repeat(100 * 1024)),
        (0..2000).map(|i| format!("X-H{i}: {i}")).fold("GET / HTTP/1.1".to_owned(), |h, l| h + "\r\n" + &l),
    ] {
        match send(&addr, &head, b"").await {
            Ok(r) => {
                eprintln!("a {} byte head: {}", head.len(), r.status);
                assert_eq!(r.status, 431, "a {} byte head", head.len());
            }
            Err(e) => eprintln!("a {} byte head: connection closed ({e})", head.len()),
        }
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    }
}

/// Clients that open a connection, send half a request line and stall hold nothing the others
/// need, and are cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_do_not_hold_the_server() {
    let app = Setup::new(Backend::Sqlite).spawn().await;
    let addr = addr(&app);
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /movies?pa").await.unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    for path in ["/healthz", "/", "/movies?page=2"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path} with 64 stalled clients");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
    // the stalled connections are closed by the server
    let mut first = stalled.remove(0);
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(35), first.read(&mut buf)).await;
    let after = started.elapsed();
    match closed {
        Ok(Ok(n)) => {
            eprintln!("stalled client cut off after {after:?} ({n} bytes: {:?})", String::from_utf8_lossy(&buf[..n]))
        }
        Ok(Err(e)) => eprintln!("stalled client cut off after {after:?} ({e})"),
        Err(_) => panic!("a client that sent half a request line was still connected after {after:?}"),
    }
    // on a new connection: the client's kept one has been idle as long as the server lets one be,
    // and may be closed by it just as it is reused
    assert_eq!(reqwest::get(app.url("/healthz")).await.expect("request").status(), StatusCode::OK);
}

/// The admin token never reaches the logs, at debug level in JSON, whatever the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_never_reaches_the_logs() {
    let token = format!("secret-{}", unique("tok"));
    let wrong = format!("wrong-{}", unique("tok"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db_path = std::env::temp_dir().join(format!("{}.db", unique("marquee_logs_")));
    let log_path = std::env::temp_dir().join(format!("{}.log", unique("marquee_logs_")));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_marquee"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}", db_path.display()))
        .env("REDIS_URL", REDIS)
        .env("CACHE_PREFIX", format!("{}:", unique("logs")))
        .env("ADMIN_TOKEN", &token)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "the binary did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, html) = {
        let r = client.get(format!("{base}/")).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    let slug = card_slugs(&html)[0].clone();
    let auth = |t: &str| format!("Bearer {t}");
    let steps = [
        ("PUT", format!("/api/movies/{slug}"), auth(&token), r#"{"genre": "Logged"}"#),
        ("POST", "/api/movies".into(), auth(&token), r#"{"title": "Log Test", "release_date": "2001-01-01"}"#),
        ("DELETE", "/api/movies/log-test-2001".into(), auth(&token), ""),
        ("PUT", format!("/api/movies/{slug}"), auth(&wrong), r#"{"genre": "Nope"}"#),
        ("PUT", format!("/api/movies/{slug}?token={token}"), auth(&wrong), r#"{"genre": "Nope"}"#),
        ("PUT", format!("/api/movies/{slug}"), token.clone(), r#"{"genre": "Nope"}"#),
        ("PUT", format!("/api/movies/{slug}"), auth(&token), r#"{"genre": 5}"#),
    ];
    let mut statuses = Vec::new();
    for (method, path, authorization, body) in &steps {
        let r = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("Authorization", authorization)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 201, 204, 401, 401, 401, 422]);
    crate::redis_server::signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert!(status.success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let _ = std::fs::remove_file(&log_path);
    // the log is there, and detailed: the requests' spans and debug lines
    let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.len() > 20, "expected a detailed JSON log, got:\n{log}");
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "no debug lines:\n{log}");
    assert!(log.contains(&format!("/api/movies/{slug}")), "the requests are not in the log:\n{log}");
    assert!(!log.contains(&token), "the admin token is in the log");
    assert!(!log.contains(&wrong), "a presented (wrong) token is in the log");
}
