//! The pages over HTTP: the listing (full page and htmx fragment), the detail page, every kind of
//! bad address, escaping, security headers and static files. Rendering does not depend on the
//! database, so most tests run on SQLite; `both!` is used where the backend sees the input.

use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::helpers::{Backend, Setup, TestApp, card_slugs, spawn_app};
use crate::support::html::{Listing, heading_levels};

/// What every page in the site's layout has: the header with the site's name and the footer.
pub fn assert_in_layout(body: &str, what: &str) {
    assert!(body.starts_with("<!doctype html>"), "{what}: not a full document:\n{body}");
    assert!(body.contains(r#"<a class="site-name" href="/">marquee</a>"#), "{what}: no site header:\n{body}");
    assert!(body.contains(r#"<footer class="site-footer">"#), "{what}: no footer:\n{body}");
}

/// Headings go down one level at a time from a single `<h1>`, so that a screen reader's outline
/// of the page makes sense.
fn assert_headings_in_order(html: &str, what: &str) {
    let levels = heading_levels(html);
    assert_eq!(levels.iter().filter(|&&l| l == 1).count(), 1, "{what}: one h1 expected, got {levels:?}");
    assert_eq!(levels.first(), Some(&1), "{what}: the first heading is not the h1");
    for pair in levels.windows(2) {
        assert!(pair[1] <= pair[0] + 1, "{what}: heading levels skip: {levels:?}");
    }
}

/// An error page in the layout, with the given status and a message mentioning `needle`.
async fn assert_error_page(app: &TestApp, path: &str, status: StatusCode, needle: &str) {
    let response = app.get(path).await;
    assert_eq!(response.status(), status, "{path}");
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8", "{path}");
    let body = response.text().await.expect("body");
    assert_in_layout(&body, path);
    assert_headings_in_order(&body, path);
    assert!(body.contains(&format!("Error {}", status.as_u16())), "{path}: status not shown:\n{body}");
    assert!(body.to_lowercase().contains(needle), "{path}: message does not mention {needle:?}:\n{body}");
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get_all(name).iter().map(|v| v.to_str().unwrap_or("<binary>")).collect::<Vec<_>>().join(", ")
}

/// The number of films the listing says the catalog holds (every card's `aria-setsize`).
fn setsize(html: &str) -> u64 {
    Listing::parse(StatusCode::OK, html.to_owned()).setsize.expect("aria-setsize")
}

/// The `data-hx-get` of the trigger that loads the next page, if any.
fn next_trigger(html: &str) -> Option<String> {
    Listing::parse(StatusCode::OK, html.to_owned()).next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_is_the_whole_first_page() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), StatusCode::OK);
    // the same whole page for htmx: a cache need not tell the two apart
    assert!(!header(&response, "vary").to_lowercase().contains("hx-"));
    let home = response.text().await.expect("body");
    assert_eq!(app.get_fragment("/").await, (StatusCode::OK, home.clone()));
    assert_in_layout(&home, "/");
    assert_headings_in_order(&home, "/");
    assert!(home.contains(r#"role="feed""#), "the listing is an ARIA feed");
    let slugs = card_slugs(&home);
    assert_eq!(slugs.len(), 24);
    for slug in &slugs {
        assert!(home.contains(&format!(r#"<a href="/movies/{slug}">"#)), "card {slug} has no real link");
    }
    // the next page is a real link too, for people and crawlers without JavaScript
    assert!(home.contains(r#"<a class="more-link" href="/movies?page=2""#), "no link to page 2");
    assert_eq!(next_trigger(&home).as_deref(), Some("/movies?page=2"));

    let (status, page_one) = app.get_text("/movies?page=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card_slugs(&page_one), slugs, "/ and /movies?page=1 differ");
    let (status, plain) = app.get_text("/movies").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card_slugs(&plain), slugs, "/movies without a page is page 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htmx_gets_the_fragment_and_everyone_else_the_page() {
    let app = spawn_app(Backend::Sqlite).await;
    let full = app.get("/movies?page=2").await;
    assert!(header(&full, "vary").to_lowercase().contains("hx-target"), "a cache must not mix the two answers");
    let full = full.text().await.expect("body");
    assert_in_layout(&full, "page 2");

    let fragment = app.client.get(app.url("/movies?page=2")).header("HX-Request", "true").header("HX-Target", "feed");
    let fragment = fragment.send().await.expect("get");
    assert_eq!(fragment.status(), StatusCode::OK);
    assert!(header(&fragment, "vary").to_lowercase().contains("hx-target"));
    let fragment = fragment.text().await.expect("body");
    assert!(!fragment.contains("<html") && !fragment.contains("site-footer"), "fragment has the layout:\n{fragment}");
    assert_eq!(card_slugs(&fragment), card_slugs(&full), "fragment and full page 2 show different films");
    let positions = Listing::parse(StatusCode::OK, fragment.clone()).positions;
    assert_eq!(positions.first(), Some(&25), "page 2's first card is the feed's 25th article");
    assert!(positions.windows(2).all(|p| p[1] == p[0] + 1), "positions run on: {positions:?}");
    // the trigger for page 3 replaces the old one out of band
    assert!(fragment.contains(r#"<div id="more" class="more" data-hx-swap-oob="true">"#), "no oob #more:\n{fragment}");
    assert_eq!(next_trigger(&fragment).as_deref(), Some("/movies?page=3"));
    assert_ne!(card_slugs(&fragment), card_slugs(&app.get_text("/").await.1), "page 2 repeats page 1");

    // a history restore needs the whole document, although htmx sends HX-Request too (and no target)
    let restore = app
        .client
        .get(app.url("/movies?page=2"))
        .header("HX-Request", "true")
        .header("HX-History-Restore-Request", "true")
        .send()
        .await
        .expect("get");
    assert_eq!(restore.status(), StatusCode::OK);
    assert_in_layout(&restore.text().await.expect("body"), "history restore");
}

both!(following_the_triggers_reaches_every_movie_once, |backend| async move {
    let app = Setup::new(backend).page_size(500).spawn().await;
    let (_, first) = app.get_text("/").await;
    let total = setsize(&first);
    let mut seen = card_slugs(&first);
    let mut next = next_trigger(&first);
    let mut last = String::new();
    let mut pages = 1;
    while let Some(path) = next {
        let (status, fragment) = app.get_fragment(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        seen.extend(card_slugs(&fragment));
        next = next_trigger(&fragment);
        last = path;
        pages += 1;
        assert!(pages <= 100, "the triggers never stop");
    }
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a film is shown twice");
    assert_eq!(seen.len() as u64, total, "the feed does not reach every film the listing counts");
    assert_eq!(pages, total.div_ceil(500), "the last page is not where the count says");

    let (_, end) = app.get_fragment(&last).await;
    let end_message = Listing::parse(StatusCode::OK, end.clone()).end;
    let says_total = |m: &String| m.contains("every film") && m.replace(',', "").contains(&format!(" {total} "));
    assert!(end_message.as_ref().is_some_and(says_total), "no end message with the total:\n{end}");
    assert!(!end.contains("hx-get") && !end.contains("more-link"), "the last page still loads more");
    let past = format!("/movies?page={}", pages + 1);
    assert_error_page(&app, &past, StatusCode::NOT_FOUND, &format!("no page {}", pages + 1)).await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_page_numbers_get_a_400_page() {
    let app = spawn_app(Backend::Sqlite).await;
    for query in [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=1e3",
        "page=99999999999999999999",
        "page=1000001",
        "page=",
        "page",
        "page=%20",
        "page=1&page=2",
        "page=%ff",
    ] {
        assert_error_page(&app, &format!("/movies?{query}"), StatusCode::BAD_REQUEST, "page").await;
    }
    // the largest page number allowed is only past the end
    assert_error_page(&app, "/movies?page=1000000", StatusCode::NOT_FOUND, "no page 1000000").await;
}

both!(unknown_and_odd_slugs_get_a_4xx_page, |backend| async move {
    let app = spawn_app(backend).await;
    let long = "a".repeat(5000);
    let odd = [
        "no-such-film-1999",
        "a*b",
        "what%3F",
        "%5Bx%5D",
        "a:b",
        "a%00b",
        "..%2F..%2FCargo.toml",
        long.as_str(),
        "café-2001",
        "%E2%98%83",
        "%ff",
        "UPPER-2000",
        "a--b",
        "-",
    ];
    for slug in odd {
        let path = format!("/movies/{slug}");
        let response = app.get(&path).await;
        let status = response.status();
        assert!(status.is_client_error(), "{path:.60}: {status}");
        let body = response.text().await.expect("body");
        assert_in_layout(&body, &path);
    }
    assert_error_page(&app, "/movies/no-such-film-1999", StatusCode::NOT_FOUND, "no film").await;
    assert_error_page(&app, "/nowhere", StatusCode::NOT_FOUND, "nothing at this address").await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_page_shows_every_known_field_for_people() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, page) = app.get_text("/movies/the-land-girls-1998").await;
    assert_eq!(status, StatusCode::OK);
    assert_in_layout(&page, "detail");
    assert_headings_in_order(&page, "detail");
    assert!(page.contains("<h1>The Land Girls</h1>"));
    assert!(page.contains("<title>The Land Girls (1998) — marquee</title>"));
    assert!(page.contains(r#"<meta name="description" content="The Land Girls (1998)"#));
    assert!(page.contains(r#"<a href="/" data-back>← All films</a>"#), "no way back to the listing");
    for (label, value) in [
        ("Released", "12 June 1998"),
        ("Rated", "R"),
        ("IMDB rating", "6.1 / 10"),
        ("IMDB votes", "1,071"),
        ("Production budget", "$8,000,000"),
        ("US gross", "$146,083"),
        ("Worldwide gross", "$146,083"),
        ("Distributor", "Gramercy"),
    ] {
        assert!(page.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")), "{label} {value} missing:\n{page}");
    }
    // the dataset knows nothing of these for this film: they are left out, not shown empty
    for absent in ["null", "None", "NaN", "Director", "Genre", "Running time", "Rotten Tomatoes", "<dd></dd>"] {
        assert!(!page.contains(absent), "{absent:?} shown:\n{page}");
    }

    let detail = app.detail("inception-2010").await;
    assert_eq!(detail.status, StatusCode::OK);
    for (label, value) in [
        ("Released", "16 July 2010"),
        ("Genre", "Thriller/Suspense"),
        ("Director", "Christopher Nolan"),
        ("Running time", "2 h 27 min"),
        ("IMDB rating", "9.1 / 10"),
        ("Rotten Tomatoes", "87%"),
        ("Production budget", "$160,000,000"),
        ("Source", "Original Screenplay"),
        ("Creative type", "Science Fiction"),
    ] {
        assert_eq!(detail.fact(label), Some(value), "{label}: {:?}", detail.facts);
    }
    assert!(detail.html.contains("directed by Christopher Nolan"), "the description says little:\n{}", detail.html);

    let king_kong = app.detail("king-kong-2005").await;
    assert_eq!(king_kong.fact("US DVD sales"), Some("$140,752,353"), "{:?}", king_kong.facts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_title_is_shown_as_text() {
    let app = spawn_app(Backend::Sqlite).await;
    let title = "<script>alert(1)</script>";
    let created = app.add_movie(&json!({"title": title, "release_date": "2031-01-01"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let slug = created.json::<serde_json::Value>().await.expect("json")["slug"].as_str().expect("slug").to_owned();

    let (_, listing) = app.get_text("/").await;
    let (_, fragment) = app.get_fragment("/movies?page=1").await;
    let (status, detail) = app.get_text(&format!("/movies/{slug}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card_slugs(&listing).first(), Some(&slug), "a 2031 film comes first");
    assert_eq!(card_slugs(&fragment).first(), Some(&slug));
    for (what, html) in [("listing", &listing), ("fragment", &fragment), ("detail", &detail)] {
        assert!(!html.contains("<script>alert"), "{what} has the title as markup:\n{html}");
        let escaped = html.matches("&#60;script&#62;alert(1)&#60;/script&#62;").count()
            + html.matches("&lt;script&gt;alert(1)&lt;/script&gt;").count();
        assert!(escaped >= 1, "{what} does not show the title as text:\n{html}");
    }
    // the <title>, <h1> and both meta descriptions
    assert!(detail.matches("&#60;script&#62;alert(1)").count() >= 4, "{detail}");
}

// The detail page draws the budget against the grosses (bars scaled to the largest), the amounts
// in text beside them; a film without a budget has no chart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detail_page_draws_budget_and_gross() {
    let app = spawn_app(Backend::Sqlite).await;
    let movies = marquee::dataset::parse(marquee::dataset::MOVIES_JSON).unwrap().movies;
    let with = movies
        .iter()
        .find(|m| m.production_budget.is_some() && m.us_gross.is_some() && m.worldwide_gross.is_some_and(|w| w > 0))
        .unwrap();
    let (status, html) = app.get_text(&format!("/movies/{}", with.slug)).await;
    assert_eq!(status, StatusCode::OK);
    let doc = scraper::Html::parse_document(&html);
    let css = |s: &str| scraper::Selector::parse(s).unwrap();
    let widths: Vec<f64> =
        doc.select(&css("svg.money-chart rect")).map(|r| r.value().attr("width").unwrap().parse().unwrap()).collect();
    let amounts = [with.production_budget.unwrap(), with.us_gross.unwrap(), with.worldwide_gross.unwrap()];
    let max = *amounts.iter().max().unwrap() as f64;
    assert_eq!(widths.len(), 3, "budget, US gross, worldwide gross");
    for (w, a) in widths.iter().zip(amounts) {
        assert!((w - (a as f64 / max * 300.0).max(1.0)).abs() <= 1.0, "bar {w} for {a} of {max}");
    }
    let figures: Vec<String> = doc.select(&css(".money-figures li")).map(|li| li.text().collect()).collect();
    let money = marquee::movies::format::money;
    assert_eq!(
        figures,
        [
            format!("Budget: {}", money(amounts[0])),
            format!("US gross: {}", money(amounts[1])),
            format!("Worldwide gross: {}", money(amounts[2])),
        ]
    );
    assert_eq!(doc.select(&css("svg.money-chart")).next().unwrap().value().attr("aria-hidden"), Some("true"));
    let without = movies.iter().find(|m| m.production_budget.is_none()).unwrap();
    let (_, html) = app.get_text(&format!("/movies/{}", without.slug)).await;
    assert!(!html.contains("money-chart") && !html.contains("Budget and gross"), "{}", without.slug);
}

// "Back" on a film's page leads to the list or search the reader came from (this site's pages
// only, named canonically), or to every film.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_leads_where_the_reader_came_from() {
    let app = spawn_app(Backend::Sqlite).await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let back = |referer: Option<String>| {
        let app = &app;
        async move {
            let mut req = app.client.get(app.url("/movies/the-dark-knight-2008"));
            if let Some(r) = referer {
                req = req.header("Referer", r);
            }
            let html = req.send().await.unwrap().text().await.unwrap();
            let doc = scraper::Html::parse_document(&html);
            let link = doc.select(&scraper::Selector::parse("p.back a").unwrap()).next().unwrap();
            (link.value().attr("href").unwrap().to_owned(), link.text().collect::<String>())
        }
    };
    let from = |path: &str| Some(format!("http://{host}{path}"));
    assert_eq!(back(None).await, ("/".into(), "← All films".into()));
    assert_eq!(back(from("/")).await, ("/".into(), "← All films".into()));
    assert_eq!(back(from("/movies?page=4")).await, ("/movies?page=4".into(), "← All films".into()));
    let list = back(from("/movies?sort=votes&genre=drama&page=3#film-x")).await;
    assert_eq!(list, ("/movies?genre=drama&sort=votes&page=3".into(), "← Back to the list".into()));
    let search = back(from("/search?q=dark%20kn")).await;
    assert_eq!(search, ("/search?q=dark+kn".into(), "← Back to the results".into()));
    // another site, a page that is not a list, a list that is not valid: every film
    for other in [
        Some("http://elsewhere.test/movies?genre=drama".to_owned()),
        from("/movies/heat-1995"),
        from("/movies?genre=nope"),
        Some("not a url".to_owned()),
    ] {
        assert_eq!(back(other.clone()).await, ("/".into(), "← All films".into()), "{other:?}");
    }
}
