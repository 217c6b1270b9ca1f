//! The films next to a film on its page: more by its director, more of its genre from its decade;
//! what they hold (against the dataset), what a warm page costs, and how a write moves them.

use std::cmp::Ordering;

use marquee::dataset;
use marquee::movies::Movie;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, redis_tier_app, spawn_app};
use crate::{both, on_each_redis};

/// The related sections of a film's page: (heading, slugs).
async fn related(app: &TestApp, slug: &str) -> Vec<(String, Vec<String>)> {
    let (status, html) = app.get_text(&format!("/movies/{slug}")).await;
    assert_eq!(status, StatusCode::OK, "{slug}");
    let doc = scraper::Html::parse_document(&html);
    let css = |s: &str| scraper::Selector::parse(s).unwrap();
    doc.select(&css("section.related"))
        .map(|s| {
            let heading = s.select(&css("h2")).next().unwrap().text().collect::<String>();
            let slugs =
                s.select(&css("[data-slug]")).map(|c| c.value().attr("data-slug").unwrap().to_owned()).collect();
            (heading, slugs)
        })
        .collect()
}

fn dataset() -> Vec<Movie> {
    dataset::parse(dataset::MOVIES_JSON).unwrap().movies
}

/// What the dataset says: more by the director (newest first), more of the genre from the decade
/// (most voted first), six of each, ties by slug.
fn expected(slug: &str) -> (Vec<String>, Vec<String>) {
    let all = dataset();
    let film = all.iter().find(|m| m.slug == slug).unwrap();
    let decade = film.release_date.year() / 10;
    let mut by_director: Vec<&Movie> =
        all.iter().filter(|m| m.slug != slug && m.director.is_some() && m.director == film.director).collect();
    by_director.sort_by(|a, b| b.release_date.cmp(&a.release_date).then_with(|| a.slug.cmp(&b.slug)));
    let mut by_genre: Vec<&Movie> = all
        .iter()
        .filter(|m| {
            m.slug != slug && m.genre.is_some() && m.genre == film.genre && m.release_date.year() / 10 == decade
        })
        .collect();
    by_genre.sort_by(|a, b| {
        match (a.imdb_votes, b.imdb_votes) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then_with(|| a.slug.cmp(&b.slug))
    });
    let six = |v: Vec<&Movie>| v.into_iter().take(6).map(|m| m.slug.clone()).collect();
    (six(by_director), six(by_genre))
}

both!(a_film_page_shows_the_films_next_to_it, |backend| async move {
    let app = spawn_app(backend).await;
    let (director, genre) = expected("jurassic-park-1993");
    assert_eq!(director.len(), 6, "Spielberg made more than six other films");
    assert_eq!(
        related(&app, "jurassic-park-1993").await,
        [("More from Steven Spielberg".to_owned(), director), ("More Action from the 1990s".to_owned(), genre),]
    );
    // a film with neither director nor genre has no related section
    let lone = dataset().into_iter().find(|m| m.director.is_none() && m.genre.is_none()).unwrap();
    assert!(related(&app, &lone.slug).await.is_empty(), "{}", lone.slug);
    // a director with one film: only the genre's section
    let all = dataset();
    let single = all
        .iter()
        .find(|m| {
            m.genre.is_some()
                && m.director
                    .as_ref()
                    .is_some_and(|d| all.iter().filter(|o| o.director.as_ref() == Some(d)).count() == 1)
        })
        .unwrap();
    let sections = related(&app, &single.slug).await;
    assert!(sections.iter().all(|(h, _)| !h.starts_with("More from")), "{sections:?}");
});

/// What one step cost: (Redis round trips, database queries).
fn cost(before: marquee::stats::Snapshot, after: marquee::stats::Snapshot) -> (u64, u64) {
    (after.redis_round_trips - before.redis_round_trips, after.db_queries - before.db_queries)
}

/// The related-films key's (hits, misses) and the page keys' (hits, misses) of one step: a film's
/// page reads no page key, and its related slugs are counted as their own kind.
fn related_cost(before: marquee::stats::Snapshot, after: marquee::stats::Snapshot) -> ((u64, u64), (u64, u64)) {
    (
        (after.related_hits - before.related_hits, after.related_misses - before.related_misses),
        (after.page_hits - before.page_hits, after.page_misses - before.page_misses),
    )
}

// Warm, a film's page with its related films is two round trips (the film, its stamp and related
// slugs; then the related films) and no query; a write that gives another film this director
// puts it in the section at once.
on_each_redis!(a_warm_film_page_is_two_round_trips_and_follows_writes, |target| async move {
    let app = redis_tier_app(target).await;
    let before = app.stats();
    let first = related(&app, "jurassic-park-1993").await;
    assert_eq!(related_cost(before, app.stats()), ((0, 1), (0, 0)), "cold: the related slugs are missed");
    app.settle().await;
    let before = app.stats();
    assert_eq!(related(&app, "jurassic-park-1993").await, first);
    let after = app.stats();
    assert_eq!(cost(before, after), (2, 0), "warm: two round trips, no query");
    assert_eq!(related_cost(before, after), ((1, 0), (0, 0)), "warm: the related slugs are hit");

    // another film gets Spielberg as director, and the newest date of all his: first at once
    let other = dataset().into_iter().find(|m| m.director.as_deref() == Some("Christopher Nolan")).unwrap();
    let put = app.edit(&other.slug, &json!({"director": "Steven Spielberg", "release_date": "2030-01-01"})).await;
    assert_eq!(put.status(), StatusCode::OK);
    let now = related(&app, "jurassic-park-1993").await;
    assert_eq!(now[0].1[0], other.slug, "the write is on the page as soon as the writer has its answer");
    assert_eq!(now[0].1[1..], first[0].1[..5]);
    app.settle().await;
    let before = app.stats();
    assert_eq!(related(&app, "jurassic-park-1993").await, now);
    assert_eq!(cost(before, app.stats()), (2, 0), "warm again");
});
