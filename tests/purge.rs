//! `marquee cache purge` and `marquee cache stats`, run as an operator runs them beside a server:
//! after a change by hand in the database (which neither the cache nor the cache log heard of),
//! the server goes on answering the old page from memory and Redis until the purge, and shows the
//! change from the moment the command exits.

use std::process::Output;
use std::time::Duration;

use redis::AsyncCommands;
use reqwest::StatusCode;

use crate::both;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server holding its lease (so that its kept pages cost no round trip).
async fn leased_app(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.stats().lease_held {
        assert!(std::time::Instant::now() < deadline, "the server holds a lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app
}

/// Opens `path` until the server answers it from memory: from the database, then from Redis
/// (and kept), then from the page tier.
async fn keep(app: &TestApp, path: &str) {
    for _ in 0..3 {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
        app.settle().await;
    }
    let before = app.stats().kept_hits;
    assert_eq!(app.get(path).await.status(), StatusCode::OK);
    assert_eq!(app.stats().kept_hits, before + 1, "{path} is answered from memory");
}

/// The title a film's key holds in Redis, if the key is there.
async fn cached_title(app: &TestApp, slug: &str) -> Option<String> {
    let raw: Option<String> = app.redis().await.get(app.key(&format!("movie:{slug}"))).await.unwrap();
    raw.map(|r| serde_json::from_str::<serde_json::Value>(&r).unwrap()["title"].as_str().unwrap().to_owned())
}

/// The lease fields of the token's hash.
async fn leases(app: &TestApp) -> Vec<String> {
    let hash: Vec<(String, String)> = app.redis().await.hgetall(app.key("movies:token")).await.unwrap();
    let mut leases: Vec<String> =
        hash.into_iter().filter_map(|(f, _)| f.strip_prefix("lease:").map(str::to_owned)).collect();
    leases.sort();
    leases
}

both!(a_film_purged_by_hand_is_on_every_page_when_the_command_exits, |backend| async move {
    let app = leased_app(backend).await;
    let listing = app.listing(1).await;
    let (slug, old) = (listing.slugs[2].clone(), listing.titles[2].clone());
    let film = format!("/movies/{slug}");
    keep(&app, "/movies?page=1").await;
    keep(&app, &film).await;

    app.retitle_by_hand(&slug, "Renamed By Hand").await;
    // nothing told the cache: both tiers go on answering the old title
    let before = app.stats().kept_hits;
    assert_eq!(app.listing(1).await.titles[2], old);
    assert_eq!(app.detail(&slug).await.heading.as_deref(), Some(old.as_str()));
    assert_eq!(app.stats().kept_hits, before + 2, "from memory");
    assert_eq!(cached_title(&app, &slug).await.as_deref(), Some(old.as_str()), "and Redis holds it");

    let out = app.run_marquee(&["cache", "purge", "--film", &slug]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("removed 2 of 2 keys: movie:{slug}, movies:related:{slug}")), "{text}");
    assert!(text.contains("swept 1 page keys listed in movies:pages"), "{text}");
    assert!(text.contains("leases: 1 held one, 1 renewed with the new token, 0 ran out"), "{text}");
    assert!(!text.contains("note:"), "the film is in the database: {text}");

    assert_eq!(cached_title(&app, &slug).await, None, "the film's key is gone");
    assert!(app.cached_keys("movies:page:*").await.is_empty(), "the page keys are swept");
    // the film's page first: a listing read from the database would write the film's key again
    assert_eq!(app.detail(&slug).await.heading.as_deref(), Some("Renamed By Hand"));
    assert_eq!(app.listing(1).await.titles[2], "Renamed By Hand");
    // the command left no lease of its own for the next writer to wait for
    assert_eq!(leases(&app).await, vec![app.service.lease_id().to_owned()]);
});

both!(a_purge_of_everything_reaches_every_film_and_the_stamp, |backend| async move {
    let app = leased_app(backend).await;
    let (one, two) = (app.listing(1).await, app.listing(2).await);
    for path in ["/movies?page=1", "/movies?page=2", &format!("/movies/{}", one.slugs[0])] {
        keep(&app, path).await;
    }
    app.retitle_by_hand(&one.slugs[0], "First By Hand").await;
    app.retitle_by_hand(&two.slugs[5], "Second By Hand").await;
    assert_eq!(app.listing(1).await.titles[0], one.titles[0]);
    assert_eq!(app.listing(2).await.titles[5], two.titles[5]);
    assert_eq!(app.detail(&one.slugs[0]).await.heading, Some(one.titles[0].clone()));

    let out = app.run_marquee(&["cache", "purge", "--all"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let films = app.database().count().await.unwrap();
    assert!(
        text.contains(&format!("keys: the films' and their related films' ({films} films in the database)")),
        "{text}"
    );
    assert!(text.contains("swept 2 page keys listed in movies:pages"), "{text}");
    assert!(text.contains("removed the stamp: movies:stamp"), "{text}");
    assert!(text.contains("leases: 1 held one, 1 renewed with the new token, 0 ran out"), "{text}");

    assert!(app.cached_keys("movie:*").await.is_empty(), "every film's key is gone");
    assert!(app.cached_keys("movies:related:*").await.is_empty());
    assert!(app.cached_keys("movies:page:*").await.is_empty());
    assert!(app.cached_keys("movies:stamp").await.is_empty());
    assert_eq!(app.detail(&one.slugs[0]).await.heading.as_deref(), Some("First By Hand"));
    assert_eq!(app.detail(&two.slugs[5]).await.heading.as_deref(), Some("Second By Hand"));
    assert_eq!(app.listing(1).await.titles[0], "First By Hand");
    assert_eq!(app.listing(2).await.titles[5], "Second By Hand");
});

both!(stats_show_the_stamp_beside_the_database_and_the_leases, |backend| async move {
    let app = leased_app(backend).await;
    keep(&app, "/movies?page=1").await;
    let out = app.run_marquee(&["cache", "stats"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let s = app.database().stamp().await.unwrap();
    let stamp = format!("v={} order={} lists={} films={}", s.version, s.order_version, s.list_version, s.movie_count);
    assert!(text.contains("redis: answers"), "{text}");
    assert!(text.contains(&format!("stamp: redis {stamp}; database {stamp} (the same)")), "{text}");
    assert!(text.contains("; leases of 1000 ms"), "{text}");
    let lease = format!("lease {}: ", app.service.lease_id());
    let line = text.lines().find(|l| l.starts_with(&lease)).unwrap_or_else(|| panic!("the server's lease: {text}"));
    assert!(line.ends_with("ms left, knows the current token"), "{line}");
    assert!(text.contains("page keys: 1 in movies:pages, 0 in movies:lists"), "{text}");
    assert!(text.contains("memory: used_memory_human="), "{text}");
    assert!(text.contains("maxmemory_policy="), "{text}");
    assert!(text.contains("cache log: 0 rows pending"), "{text}");
});

// A slug that is not one stops at the command line: exit 2, and Redis is as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_slug_is_refused_and_nothing_is_touched() {
    let app = leased_app(Backend::Sqlite).await;
    let slug = app.listing(1).await.slugs[0].clone();
    keep(&app, &format!("/movies/{slug}")).await;
    let token =
        || async { app.redis().await.hget::<_, _, Option<String>>(app.key("movies:token"), "token").await.unwrap() };
    let before = token().await;
    let asks: [&[&str]; 4] = [&["--film", "Not A Slug"], &["--film", ""], &[], &["--film", &slug, "--all"]];
    for args in asks {
        let out = app.run_marquee(&[&["cache", "purge"][..], args].concat()).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    let out = app.run_marquee(&["cache", "purge", "--film", "Not A Slug"]).await;
    assert!(stderr(&out).contains("a slug uses only a-z, 0-9 and single hyphens"), "{}", stderr(&out));
    assert_eq!(token().await, before, "no new token");
    assert!(cached_title(&app, &slug).await.is_some(), "no key removed");
    assert!(!app.cached_keys("movies:page:*").await.is_empty(), "no page swept");
}

// The whole purge reads the films in batches from the slug index: every film once, in order.
both!(every_slug_comes_once_in_batches, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let (db, _) = test_db.connect().await;
    db.import(marquee::dataset::parse(marquee::dataset::MOVIES_JSON).unwrap().movies).await.unwrap();
    let (mut all, mut after) = (Vec::new(), String::new());
    loop {
        let batch = db.slugs_after(&after, 1000).await.unwrap();
        let Some(last) = batch.last().cloned() else { break };
        assert!(batch.len() <= 1000);
        all.extend(batch);
        after = last;
    }
    assert_eq!(all.len() as i64, db.count().await.unwrap());
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "no slug twice");
});
