//! The lists other than the listing: filtered by genre, decade and MPAA rating, sorted by rating,
//! votes or gross. What a visitor and an API client see, checked against the dataset itself; their
//! keys in Redis, what a warm page costs, and how a write invalidates them.

use std::cmp::Ordering;
use std::sync::Arc;

use marquee::dataset;
use marquee::movies::Movie;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Setup, TestApp, redis_tier_app, spawn_app};
use crate::support::html::Listing;
use crate::{both, on_each_redis};

/// A list as the dataset gives it, computed here without the app: the films the filters keep,
/// highest value first, those without a value last, ties by slug.
fn expected(filter: impl Fn(&Movie) -> bool, value: impl Fn(&Movie) -> Option<f64>) -> Vec<String> {
    let mut films: Vec<Movie> =
        dataset::parse(dataset::MOVIES_JSON).unwrap().movies.into_iter().filter(|m| filter(m)).collect();
    films.sort_by(|a, b| match (value(a), value(b)) {
        (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal).then_with(|| a.slug.cmp(&b.slug)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.slug.cmp(&b.slug),
    });
    films.into_iter().map(|m| m.slug).collect()
}

fn year(m: &Movie) -> u16 {
    m.release_date.year()
}

/// Every card of a list, page after page, following the "Load more" links as htmx does.
async fn whole_list(app: &TestApp, first: &str) -> (Listing, Vec<String>) {
    let (status, html) = app.get_text(first).await;
    let page = Listing::parse(status, html);
    assert_eq!(page.status, StatusCode::OK, "{first}");
    let mut slugs = page.slugs.clone();
    let mut next = page.next.clone();
    while let Some(url) = next {
        let (status, html) = app.get_fragment(&url).await;
        let more = Listing::parse(status, html);
        assert_eq!(more.status, StatusCode::OK, "{url}");
        slugs.extend(more.slugs);
        next = more.next;
    }
    (page, slugs)
}

// Each list holds what the dataset says, in its order, on both databases (PostgreSQL puts NULLs
// first in a descending order unless told otherwise: films without the value must come last).
both!(lists_hold_the_films_the_dataset_says_in_order, |backend| async move {
    let app = spawn_app(backend).await;
    let comedy = |m: &Movie| m.genre.as_deref() == Some("Comedy");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "/movies?sort=rating&decade=1990&genre=comedy",
            expected(|m| comedy(m) && (1990..2000).contains(&year(m)), |m| m.imdb_rating),
        ),
        (
            "/movies?rating=pg-13&sort=votes",
            expected(|m| m.mpaa_rating.as_deref() == Some("PG-13"), |m| m.imdb_votes.map(|v| v as f64)),
        ),
        (
            "/movies?genre=western",
            expected(
                |m| m.genre.as_deref() == Some("Western"),
                |m| {
                    let d = m.release_date;
                    Some(f64::from(d.year()) * 10_000.0 + f64::from(d.month()) * 100.0 + f64::from(d.day()))
                },
            ),
        ),
        (
            "/movies?genre=thriller-suspense&sort=gross",
            expected(|m| m.genre.as_deref() == Some("Thriller/Suspense"), |m| m.worldwide_gross.map(|v| v as f64)),
        ),
        // two and three filters: on PostgreSQL a merge of the list's cells (migration 0011), each
        // sort's order across cells and films without the value last in each
        (
            "/movies?decade=2000&rating=pg-13&sort=votes",
            expected(
                |m| m.mpaa_rating.as_deref() == Some("PG-13") && (2000..2010).contains(&year(m)),
                |m| m.imdb_votes.map(|v| v as f64),
            ),
        ),
        (
            "/movies?genre=drama&rating=r",
            expected(
                |m| m.genre.as_deref() == Some("Drama") && m.mpaa_rating.as_deref() == Some("R"),
                |m| {
                    let d = m.release_date;
                    Some(f64::from(d.year()) * 10_000.0 + f64::from(d.month()) * 100.0 + f64::from(d.day()))
                },
            ),
        ),
        (
            "/movies?genre=comedy&decade=1990&rating=r&sort=gross",
            expected(
                |m| comedy(m) && (1990..2000).contains(&year(m)) && m.mpaa_rating.as_deref() == Some("R"),
                |m| m.worldwide_gross.map(|v| v as f64),
            ),
        ),
    ];
    for (url, want) in cases {
        assert!(want.len() > 24, "{url}: a list of several pages ({})", want.len());
        let (first, got) = whole_list(&app, url).await;
        assert_eq!(got, want, "{url}");
        assert_eq!(first.setsize, Some(want.len() as u64), "{url}: aria-setsize");
        assert!(first.html.contains(&format!("{} films in this list", want.len())), "{url}: the count");
    }
    // one list, whatever the order of the URL's parameters; its next page names it the one way
    let a = Listing::parse(StatusCode::OK, app.get_text("/movies?genre=comedy&sort=rating&decade=1990").await.1);
    assert_eq!(a.next.as_deref(), Some("/movies?genre=comedy&decade=1990&sort=rating&page=2"));
    // the heading says which list it is, and the form shows it chosen
    assert!(a.html.contains("<h1>Comedy films from the 1990s, best rated first</h1>"), "{}", a.html);
    assert!(a.html.contains(r#"<option value="comedy" selected>Comedy</option>"#));
    assert!(a.html.contains(r#"<option value="1990" selected>1990s</option>"#));
});

// A choice no film matches is a list like any other: 200, saying so, with a way back.
both!(a_list_with_no_films_says_so, |backend| async move {
    let app = spawn_app(backend).await;
    let none = expected(|m| m.genre.as_deref() == Some("Western") && (1910..1920).contains(&year(m)), |_| None);
    assert!(none.is_empty(), "the dataset has a western of the 1910s");
    let (status, html) = app.get_text("/movies?genre=western&decade=1910").await;
    assert_eq!(status, StatusCode::OK);
    let page = Listing::parse(status, html);
    assert!(page.slugs.is_empty());
    assert_eq!(page.end.as_deref(), Some("No film matches this choice. See every film"));
    assert!(page.html.contains(r#"<a href="/movies">See every film</a>"#));
    // past its first page there is nothing: 404, as for any list
    assert_eq!(app.get("/movies?genre=western&decade=1910&page=2").await.status(), StatusCode::NOT_FOUND);
});

// The controls: a plain GET form; with htmx a change asks for the list's section, which the
// server answers with the heading, the cards and the trigger, and the list's own URL to show.
both!(the_controls_swap_the_list_and_name_its_url, |backend| async move {
    let app = spawn_app(backend).await;
    let (_, home) = app.get_text("/").await;
    assert!(home.contains(r#"<form class="filters" action="/movies" method="get""#), "a plain form");
    assert!(home.contains(r##"data-hx-target="#listing""##));
    // what htmx sends when "Sort" changes: every control, the empty ones too
    let asked = "/movies?genre=&decade=&rating=r&sort=votes";
    let section = app
        .client
        .get(app.url(asked))
        .header("HX-Request", "true")
        .header("HX-Target", "listing")
        .send()
        .await
        .unwrap();
    assert_eq!(section.status(), StatusCode::OK);
    assert_eq!(section.headers()["hx-push-url"], "/movies?rating=r&sort=votes");
    assert_eq!(section.headers()["vary"], "HX-Target");
    let html = section.text().await.unwrap();
    assert!(!html.contains("<html") && !html.contains("<form"), "only the list's section");
    assert!(html.contains("<h1>Films rated R, most voted first</h1>"));
    let part = Listing::parse(StatusCode::OK, html);
    let want = expected(|m| m.mpaa_rating.as_deref() == Some("R"), |m| m.imdb_votes.map(|v| v as f64));
    assert_eq!(part.slugs, want[..24]);
    assert_eq!(part.next.as_deref(), Some("/movies?rating=r&sort=votes&page=2"));
    // the infinite scroll's fragment of the same list: the address follows the page reached
    let scrolled = app
        .client
        .get(app.url("/movies?sort=votes&rating=r&page=2"))
        .header("HX-Request", "true")
        .header("HX-Target", "feed")
        .send()
        .await
        .unwrap();
    assert_eq!(scrolled.headers()["hx-replace-url"], "/movies?rating=r&sort=votes&page=2");
    // and the whole page for a reload there, with the way up
    let (_, fragment) = app.get_fragment("/movies?rating=r&sort=votes&page=2").await;
    assert!(!fragment.contains("<h1>"));
    assert_eq!(Listing::parse(StatusCode::OK, fragment).slugs, want[24..48]);
    let (_, whole) = app.get_text("/movies?rating=r&sort=votes&page=2").await;
    assert!(whole.contains("<h1>Films rated R, most voted first</h1>") && whole.contains("<form"));
    assert!(whole.contains(r#"<a href="/movies?rating=r&#38;sort=votes">Back to the top of the list</a>"#));
    let (_, third) = app.get_text("/movies?rating=r&sort=votes&page=3").await;
    assert!(third.contains(r#"<a href="/movies?rating=r&#38;sort=votes&#38;page=2" rel="prev">Page 2</a>"#), "{third}");
});

// The JSON API reads the same lists: slugs, films, the next page.
both!(the_api_reads_the_same_lists, |backend| async move {
    let app = spawn_app(backend).await;
    let body: Value = app.get("/api/movies?sort=gross&genre=drama").await.json().await.unwrap();
    let want = expected(|m| m.genre.as_deref() == Some("Drama"), |m| m.worldwide_gross.map(|v| v as f64));
    assert_eq!(body["list"], "genre=drama&sort=gross");
    assert_eq!(body["total"], want.len());
    assert_eq!(body["slugs"], json!(want[..24]));
    assert_eq!(body["movies"][0]["slug"], want[0]);
    assert_eq!(body["next"], "/api/movies?genre=drama&sort=gross&page=2");
    let second: Value = app.get("/api/movies?genre=drama&sort=gross&page=2").await.json().await.unwrap();
    assert_eq!(second["slugs"], json!(want[24..48]));
    // the default list as well, newest first
    let listing: Value = app.get("/api/movies").await.json().await.unwrap();
    assert_eq!(listing["list"], "");
    assert_eq!(listing["slugs"], json!(app.listing(1).await.slugs));
});

/// The slugs Redis holds for a page key of this app, if any.
async fn cached_slugs(app: &TestApp, key: &str) -> Option<Vec<String>> {
    let raw: Option<String> = app.redis().await.get(app.key(key)).await.unwrap();
    raw.map(|r| {
        serde_json::from_str::<Value>(&r).unwrap()["slugs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    })
}

// A list's pages have keys of their own, one per distinct list, holding slugs; films are shared
// with every other list. A warm page is one GET and one MGET; a write that moves a film in a list
// costs one write for every list (the stamp's version), and the stale pages are swept after.
on_each_redis!(lists_have_keys_of_their_own_and_one_write_invalidates_them, |target| async move {
    let app = redis_tier_app(target).await;
    let first = app.listing(1).await.slugs;
    let list = Listing::parse(StatusCode::OK, app.get_text("/movies?sort=rating&genre=drama").await.1).slugs;
    app.get("/movies?genre=drama&sort=rating").await;
    app.settle().await;
    let key = "movies:list:genre=drama&sort=rating:page:1";
    assert_eq!(app.cached_keys("movies:list:*").await, vec![app.key(key)], "one key for the list");
    assert_eq!(cached_slugs(&app, key).await.as_ref(), Some(&list));
    assert_eq!(cached_slugs(&app, "movies:page:1").await.as_ref(), Some(&first), "the listing keeps its key");
    // warm: one GET of the page key, one MGET of its films and the stamp; no query
    let before = app.stats();
    assert_eq!(Listing::parse(StatusCode::OK, app.get_text("/movies?genre=drama&sort=rating").await.1).slugs, list);
    let after = app.stats();
    assert_eq!((after.redis_round_trips - before.redis_round_trips, after.db_queries - before.db_queries), (2, 0));

    // a change that moves no film in any list (a running time) leaves the list's pages alone
    assert_eq!(app.edit(&list[5], &json!({"running_time_min": 171})).await.status(), StatusCode::OK);
    app.settle().await;
    assert_eq!(cached_slugs(&app, key).await.as_ref(), Some(&list), "the page was not dropped");
    let before = app.stats();
    app.get("/movies?genre=drama&sort=rating").await;
    assert_eq!(app.stats().db_queries - before.db_queries, 0, "still warm");

    // a film whose rating changes moves at once, in every list it is in; the listing's pages,
    // whose order did not change, stay warm
    let last = list[23].clone();
    assert_eq!(app.edit(&last, &json!({"imdb_rating": 9.9})).await.status(), StatusCode::OK);
    let now = Listing::parse(StatusCode::OK, app.get_text("/movies?genre=drama&sort=rating").await.1).slugs;
    assert_eq!(now[0], last, "the film rated 9.9 heads the list as soon as the writer has its answer");
    app.settle().await;
    let before = app.stats();
    assert_eq!(app.listing(1).await.slugs, first);
    assert_eq!(app.stats().db_queries - before.db_queries, 0, "the listing stayed warm");
    // the stale page was swept (the one now cached is the new read's)
    assert_eq!(cached_slugs(&app, key).await.as_ref(), Some(&now));
});

// The race replay of the listing, on a filtered list: reads fetch the old rows, are held while a
// write moves a film within the list, then write back; the list visitors see is the database's.
// (Without a lease, so that removing the token keeps the pages kept in memory out at once.)
on_each_redis!(held_back_reads_never_leave_a_filtered_list_stale, |target| async move {
    let app = Setup::new(target).env("CACHE_LEASE_MS", "0").spawn().await;
    let url = "/movies?genre=drama&sort=votes";
    let key = "movies:list:genre=drama&sort=votes:page:1";
    let mut redis = app.redis().await;
    for round in 0..4 {
        let before_slugs = Listing::parse(StatusCode::OK, app.get_text(url).await.1).slugs;
        app.settle().await;
        // evicted, with the token (so the page kept in memory is not used either)
        let _: () = redis.unlink(&[app.key(key), app.key("movies:token")]).await.unwrap();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        app.hooks.hold_reads(Some(gate.clone()));
        let before = app.stats().db_queries;
        let (client, full) = (app.client.clone(), app.url(url));
        let held = tokio::spawn(async move { client.get(full).send().await.unwrap().status() });
        assert!(app.queries_reach(before + 1).await, "the read reached the database");
        // the write: the list's last film of the page gets the most votes of all
        let moved = before_slugs[23].clone();
        let put = app.edit(&moved, &json!({"imdb_votes": 5_000_000 + round})).await;
        assert_eq!(put.status(), StatusCode::OK);
        app.hooks.hold_reads(None);
        gate.add_permits(1000);
        assert_eq!(held.await.unwrap(), StatusCode::OK);
        app.settle().await;
        let seen = Listing::parse(StatusCode::OK, app.get_text(url).await.1).slugs;
        assert_eq!(seen[0], moved, "round {round}: the list a visitor sees after the write");
        let mut list = marquee::movies::MovieList::default();
        list.set("genre", "drama").unwrap();
        list.set("sort", "votes").unwrap();
        let (_, _, fresh) = app.database().list_page(&list, marquee::movies::PageNumber::FIRST, 24).await.unwrap();
        assert_eq!(seen, fresh.into_iter().map(|m| m.slug).collect::<Vec<_>>(), "round {round}");
    }
});

// A page past a list's end is answered from what Redis knows of the list's length, with no query:
// the listing's from the stamp (the catalog's count), another list's from its first page (which
// holds the list's size), when that was read at the stamp's version. Films added to the list make
// the same page number a page of films at once.
both!(pages_past_a_lists_end_are_known_from_the_cache, |backend| async move {
    let app = redis_tier_app(backend).await;
    let westerns = expected(|m| m.genre.as_deref() == Some("Western") && (1950..1960).contains(&year(m)), |_| None);
    let all = app.listing(1).await.setsize.unwrap();
    let list = "/movies?genre=western&decade=1950";
    assert_eq!(app.get(list).await.status(), StatusCode::OK);
    app.settle().await;
    let (list_end, listing_end) = (westerns.len() / 24 + 2, all / 24 + 2);
    let before = app.stats().db_queries;
    for path in [
        format!("{list}&page={list_end}"),
        format!("{list}&page={}", list_end + 1),
        format!("{list}&page=5000"),
        format!("/movies?page={listing_end}"),
        "/movies?page=99999".to_owned(),
    ] {
        assert_eq!(app.get(&path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(app.stats().db_queries, before, "no query for pages past the end");
    for n in 0..25 {
        let film = json!({"title": format!("Late Western {n}"), "release_date": "1955-06-01", "genre": "Western"});
        assert_eq!(app.add_movie(&film).await.status(), StatusCode::CREATED);
    }
    assert_eq!(app.get(&format!("{list}&page={list_end}")).await.status(), StatusCode::OK, "the list grew");
    assert_eq!(app.get(&format!("/movies?page={listing_end}")).await.status(), StatusCode::OK, "the listing grew");
    assert_eq!(app.get(&format!("{list}&page=5000")).await.status(), StatusCode::NOT_FOUND);
});
