//! The cached movie service, counted: Redis commands and database queries per request on each
//! path, coalescing, the stale-set race, invalidation, negative caching, TTL jitter.

use std::sync::Arc;
use std::time::Duration;

use marquee::stats::Snapshot;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Setup, TestApp, redis_tier_app, spawn_app};
use crate::on_each_redis;

/// What one step cost: the difference of two snapshots.
fn cost(before: Snapshot, after: Snapshot) -> (u64, u64, u64) {
    (
        after.redis_commands - before.redis_commands,
        after.redis_round_trips - before.redis_round_trips,
        after.db_queries - before.db_queries,
    )
}

async fn page_slugs(app: &TestApp, n: u32) -> Vec<String> {
    let page = app.listing(n).await;
    assert_eq!(page.status, StatusCode::OK, "page {n}");
    page.slugs
}

/// Page `n` as Redis holds it: the order version it was read at, and its slugs.
async fn cached_page(app: &TestApp, n: u32) -> Option<(i64, Vec<String>)> {
    let raw: Option<String> = app.redis().await.get(app.key(&format!("movies:page:{n}"))).await.unwrap();
    raw.map(|r| {
        let page: serde_json::Value = serde_json::from_str(&r).unwrap();
        let slugs = page["slugs"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
        (page["v"].as_i64().unwrap(), slugs)
    })
}

/// The listing order version Redis's stamp says is current.
async fn cached_order_version(app: &TestApp) -> Option<i64> {
    let raw: Option<String> = app.redis().await.get(app.key("movies:stamp")).await.unwrap();
    raw.map(|r| serde_json::from_str::<serde_json::Value>(&r).unwrap()["o"].as_i64().unwrap())
}

on_each_redis!(cold_listing_is_one_query_and_one_pipeline, |target| async move {
    let app = redis_tier_app(target).await;
    let before = app.stats();
    let slugs = page_slugs(&app, 3).await;
    app.settle().await;
    let (commands, round_trips, queries) = cost(before, app.stats());
    assert_eq!(slugs.len(), 24);
    assert_eq!(queries, 1, "one database query for a cold page");
    // the MGET that missed (the stamp, the page and the list's first page: a page past the end
    // would be answered from them), the page's own GET (MGET reads a key of another type as
    // missing: only a GET tells a corrupt key from a missing one), then ONE exchange (one pipeline;
    // on a cluster, the same commands sent at once, one per key): the page, its 24 films, the meta
    // key, and the page's SADD + EXPIRE in the set the sweep walks
    assert_eq!(round_trips, 3);
    assert_eq!(commands, 1 + 1 + 24 + 2 + 2);
    // the page key holds only the slugs, in page order; every film has its own key with its TTL
    assert_eq!(cached_page(&app, 3).await.map(|(_, s)| s).as_ref(), Some(&slugs));
    let mut redis = app.redis().await;
    for slug in &slugs {
        let ttl: i64 = redis.ttl(app.key(&format!("movie:{slug}"))).await.unwrap();
        assert!((3240..=3960).contains(&ttl), "film TTL {ttl} not within 3600 ± 10%");
    }
    let page_ttl: i64 = redis.ttl(app.key("movies:page:3")).await.unwrap();
    assert!((270..=330).contains(&page_ttl), "page TTL {page_ttl}");
});

on_each_redis!(warm_listing_is_one_get_and_one_mget_and_no_query, |target| async move {
    let app = redis_tier_app(target).await;
    let cold = page_slugs(&app, 2).await;
    app.settle().await;
    let before = app.stats();
    let warm = page_slugs(&app, 2).await;
    let (commands, round_trips, queries) = cost(before, app.stats());
    assert_eq!(warm, cold);
    assert_eq!((commands, round_trips, queries), (2, 2, 0));
    // the htmx fragment is served from the same keys
    let before = app.stats();
    let fragment = app.scroll_to(2).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert_eq!(fragment.slugs, cold);
    assert_eq!(cost(before, app.stats()), (2, 2, 0));
});

// In front of Redis, each server keeps the pages it rendered (the default): while its lease runs
// (see `cache::lease`), a warm page is answered from memory with NO round trip and no query; a
// write changes the token and waits for the lease, so the next request reads Redis again
// (and shows the write), then is answered from memory again.
on_each_redis!(a_kept_page_costs_no_round_trip_until_a_write, |target| async move {
    let app = spawn_app(target).await;
    let slugs = page_slugs(&app, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.stats().lease_held {
        assert!(std::time::Instant::now() < deadline, "the server holds a lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kept_pages_then_a_write(&app, &slugs, 0, "Kept No More").await;
    // what the tier holds is on /metrics: the listing and the film page kept again after the write
    let (_, metrics) = app.get_text("/metrics").await;
    let gauge = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in /metrics"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_default()
    };
    assert!(gauge("marquee_cache_kept_pages ") >= 1.0, "{metrics}");
    assert!(gauge("marquee_cache_kept_bytes ") > 1000.0, "a page and its gzipped copy");
});

// Without a lease (`CACHE_LEASE_MS=0`) a kept page is checked against the token on every
// request: ONE GET, of the token, and no query.
on_each_redis!(a_kept_page_is_one_get_without_a_lease, |target| async move {
    let app = Setup::new(target).env("CACHE_LEASE_MS", "0").spawn().await;
    let slugs = page_slugs(&app, 1).await;
    kept_pages_then_a_write(&app, &slugs, 1, "Kept No Longer").await;
    assert!(!app.stats().lease_held);
});

/// Warm pages kept, each costing `per_page` GETs; then a rename is on the next page at once.
async fn kept_pages_then_a_write(app: &TestApp, slugs: &[String], per_page: u64, title: &str) {
    let film = format!("/movies/{}", slugs[2]);
    app.get(&film).await;
    app.settle().await;
    // read from Redis once more, now under a token, and kept
    page_slugs(app, 1).await;
    assert_eq!(app.get(&film).await.status(), StatusCode::OK);
    let before = app.stats();
    assert_eq!(page_slugs(app, 1).await, slugs);
    assert_eq!(cost(before, app.stats()), (per_page, per_page, 0), "a kept listing page");
    let before = app.stats();
    assert_eq!(app.detail(&slugs[2]).await.heading, app.detail(&slugs[2]).await.heading);
    assert_eq!(cost(before, app.stats()), (2 * per_page, 2 * per_page, 0), "a kept film page, twice");
    assert_eq!(before.kept_hits + 2, app.stats().kept_hits);

    assert_eq!(app.retitle(&slugs[2], title).await.status(), StatusCode::OK);
    let before = app.stats();
    let listing = app.listing(1).await;
    assert_eq!(listing.titles[2], title, "the write is on the page at once");
    let read = per_page + 2;
    assert_eq!(cost(before, app.stats()), (read, read, 0), "then the page and its films from Redis");
    assert_eq!(app.detail(&slugs[2]).await.heading.as_deref(), Some(title));
    let before = app.stats();
    assert_eq!(app.listing(1).await.titles, listing.titles);
    assert_eq!(cost(before, app.stats()), (per_page, per_page, 0), "kept again");
}

on_each_redis!(warm_detail_is_one_get, |target| async move {
    let app = redis_tier_app(target).await;
    assert_eq!(app.get("/movies/the-land-girls-1998").await.status(), StatusCode::OK);
    app.settle().await;
    let before = app.stats();
    let detail = app.detail("the-land-girls-1998").await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.heading.as_deref(), Some("The Land Girls"));
    // one exchange: the film, the meta key and its related slugs in one MGET (this film has no
    // related films; `related::a_warm_film_page_is_two_round_trips_and_follows_writes` has some)
    assert_eq!(cost(before, app.stats()), (1, 1, 0));
});

// A page past a list's end is a 404 like any; asked again, its answer comes from Redis (the empty
// page, with the list's count), not from a database query: a list's in one MGET of the stamp, the
// page and the list's first page; a search's page in its GET and the stamp's.
on_each_redis!(a_page_past_the_end_is_read_once, |target| async move {
    let app = redis_tier_app(target).await;
    for (path, round_trips) in
        [("/movies?page=999", 1), ("/movies?genre=drama&sort=votes&page=999", 1), ("/search?q=heat&page=99", 2)]
    {
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        app.settle().await;
        let before = app.stats();
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(cost(before, app.stats()), (round_trips, round_trips, 0), "{path}: from Redis");
    }
});

on_each_redis!(partial_miss_is_one_query_and_the_page_stays_whole, |target| async move {
    let app = redis_tier_app(target).await;
    let full = page_slugs(&app, 4).await;
    app.settle().await;
    let mut redis = app.redis().await;
    let dropped: Vec<String> = full.iter().step_by(3).map(|s| app.key(&format!("movie:{s}"))).collect();
    assert_eq!(dropped.len(), 8);
    let _: () = redis.unlink(&dropped).await.unwrap();
    let before = app.stats();
    assert_eq!(page_slugs(&app, 4).await, full, "complete and in order");
    app.settle().await;
    let (_, _, queries) = cost(before, app.stats());
    assert_eq!(queries, 1, "one query for all eight missing films");
    let back: usize = redis.exists(&dropped).await.unwrap();
    assert_eq!(back, 8, "the missing films were written back");
    // warm again: no query
    let before = app.stats();
    page_slugs(&app, 4).await;
    assert_eq!(cost(before, app.stats()).2, 0);
});

on_each_redis!(a_movie_gone_from_the_database_is_left_out_of_a_cached_page, |target| async move {
    let app = spawn_app(target).await;
    let full = page_slugs(&app, 1).await;
    app.settle().await;
    // another server deleted the film and its key expired; this page key still lists it
    let victim = marquee::movies::Slug::parse(&full[5]).unwrap();
    app.database().delete(&victim).await.unwrap().unwrap();
    let _: () = app.redis().await.unlink(app.key(&format!("movie:{victim}"))).await.unwrap();
    let shown = page_slugs(&app, 1).await;
    let expected: Vec<String> = full.iter().filter(|s| s.as_str() != victim.as_str()).cloned().collect();
    assert_eq!(shown, expected);
});

on_each_redis!(two_hundred_cold_requests_share_one_query, |target| async move {
    let app = Arc::new(spawn_app(target).await);
    // the page read is held until every request has had time to arrive and miss
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let before = app.stats();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { app.get("/movies?page=5").await.status() }));
    }
    assert!(app.queries_reach(before.db_queries + 1).await, "the first read reached the database");
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.hooks.hold_reads(None);
    gate.add_permits(1000);
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    app.settle().await;
    let after = app.stats();
    assert_eq!(after.db_queries - before.db_queries, 1, "200 cold requests, one page query: {before:?} {after:?}");
    assert!(after.coalesced_waits - before.coalesced_waits >= 100, "the others waited on it: {after:?}");
});

on_each_redis!(unknown_slugs_are_remembered_as_not_found, |target| async move {
    let app = spawn_app(target).await;
    let before = app.stats();
    for _ in 0..50 {
        assert_eq!(app.get("/movies/no-such-film-1999").await.status(), StatusCode::NOT_FOUND);
        app.settle().await;
    }
    assert_eq!(app.stats().db_queries - before.db_queries, 1, "one query per distinct unknown slug");
    let ttl: i64 = app.redis().await.ttl(app.key("movie:no-such-film-1999")).await.unwrap();
    assert!((1..=33).contains(&ttl), "negative entries live briefly, got {ttl}");
    // a slug that breaks the rules reaches neither Redis nor the database
    let before = app.stats();
    for bad in ["/movies/Bad_Slug", "/movies/a*", "/movies/%E2%98%83", "/movies/a--b"] {
        assert_eq!(app.get(bad).await.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    assert_eq!(cost(before, app.stats()), (0, 0, 0));
    // creating the film ends the negative entry at once
    let created = app.add_movie(&json!({"title": "No Such Film", "release_date": "1999-03-01"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(app.get("/movies/no-such-film-1999").await.status(), StatusCode::OK);
});

on_each_redis!(ttls_are_jittered, |target| async move {
    let app = spawn_app(target).await;
    let slugs = page_slugs(&app, 1).await;
    app.settle().await;
    let mut redis = app.redis().await;
    let mut ttls = Vec::new();
    for slug in &slugs {
        let ttl: i64 = redis.ttl(app.key(&format!("movie:{slug}"))).await.unwrap();
        ttls.push(ttl);
    }
    ttls.sort_unstable();
    ttls.dedup();
    assert!(ttls.len() > 5, "24 keys written together should not share one TTL: {ttls:?}");
});

on_each_redis!(an_order_change_sweeps_every_page_key_and_nothing_else, |target| async move {
    let app = spawn_app(target).await;
    for n in 1..=6 {
        page_slugs(&app, n).await;
    }
    app.settle().await;
    assert_eq!(app.cached_keys("movies:page:*").await.len(), 6);
    let mut redis = app.redis().await;
    let decoy = format!("other{}:movies:page:1", app.prefix);
    let _: () = redis.set_ex(&decoy, "[]", 60).await.unwrap();
    let movie_keys = app.cached_keys("movie:*").await.len();

    let slug = page_slugs(&app, 3).await[0].clone();
    let put = app.redate(&slug, "2030-01-01").await;
    assert_eq!(put.status(), StatusCode::OK);
    // the writer's answer came after ONE write that makes every cached page stale; the sweep that
    // gives their memory back runs after it
    assert_eq!(page_slugs(&app, 1).await[0], slug, "read your writes: the moved film opens the listing");
    app.settle().await;
    for n in 2..=6 {
        assert!(cached_page(&app, n).await.is_none(), "page {n} survives the sweep");
    }
    // page 1 was just read again: if its write-back landed after the sweep, it is the new order
    if let Some((_, page)) = cached_page(&app, 1).await {
        assert_eq!(page[0], slug);
    }
    assert_eq!(app.cached_keys("movie:*").await.len(), movie_keys, "film keys stay");
    let decoy_left: bool = redis.exists(&decoy).await.unwrap();
    assert!(decoy_left, "another prefix's keys are not touched");
    let _: () = redis.unlink(&decoy).await.unwrap();
    // read your writes: the moved film now opens the listing
    assert_eq!(page_slugs(&app, 1).await[0], slug);
});

on_each_redis!(a_title_change_touches_only_its_movie_key, |target| async move {
    let app = redis_tier_app(target).await;
    let slugs = page_slugs(&app, 1).await;
    app.settle().await;
    let slug = &slugs[2];
    let put = app.retitle(slug, "A Changed Title").await;
    assert_eq!(put.status(), StatusCode::OK);
    assert!(cached_page(&app, 1).await.is_some(), "the page key is not dropped");
    let before = app.stats();
    let listing = app.listing(1).await;
    assert!(listing.html.contains("A Changed Title"), "the listing shows the write at once");
    assert_eq!(cost(before, app.stats()), (2, 2, 0), "still served warm");
    assert_eq!(app.detail(slug).await.heading.as_deref(), Some("A Changed Title"));
});

on_each_redis!(deletes_and_creates_are_read_at_once, |target| async move {
    let app = spawn_app(target).await;
    let slugs = page_slugs(&app, 1).await;
    app.get(&format!("/movies/{}", slugs[0])).await;
    app.settle().await;
    let gone = app.remove(&slugs[0]).await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/movies/{}", slugs[0])).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(page_slugs(&app, 1).await[0], slugs[1]);
    let created = app.add_movie(&json!({"title": "Tomorrow's Film", "release_date": "2032-02-02"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(page_slugs(&app, 1).await[0], "tomorrow-s-film-2032");
});

// Replays the race a deferred write invites: reads fetch the old row, are held while a write
// completes, then write back. After the deferred tasks settle, Redis must equal the database.
// (Without a lease, so that removing the token keeps the pages kept in memory out at once.)
on_each_redis!(held_back_reads_never_overwrite_a_newer_write, |target| async move {
    let app = Setup::new(target).env("CACHE_LEASE_MS", "0").spawn().await;
    let mut redis = app.redis().await;
    for round in 0..6 {
        let slug = page_slugs(&app, 1).await[round].clone();
        app.settle().await;
        // cold: the film and the first page must be read from the database (evicted, with the
        // token: the pages kept in memory are not used either)
        let evicted = [app.key(&format!("movie:{slug}")), app.key("movies:page:1"), app.key("movies:token")];
        let _: () = redis.unlink(&evicted).await.unwrap();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        app.hooks.hold_reads(Some(gate.clone()));
        let before = app.stats().db_queries;
        let (detail_app, list_app) = (app.client.clone(), app.client.clone());
        let detail_url = app.url(&format!("/movies/{slug}"));
        let list_url = app.url("/movies?page=1");
        let detail = tokio::spawn(async move { detail_app.get(detail_url).send().await.unwrap().status() });
        let list = tokio::spawn(async move { list_app.get(list_url).send().await.unwrap().status() });
        // both reads have fetched the old rows and are waiting at the gate
        assert!(app.queries_reach(before + 2).await, "the reads reached the database");
        // the write: a new title, and every other round a new date that moves the film
        let mut change = json!({"title": format!("Rewritten {round}")});
        if round % 2 == 1 {
            change["release_date"] = json!(format!("19{:02}-01-01", 10 + round));
        }
        let put = app.edit(&slug, &change).await;
        assert_eq!(put.status(), StatusCode::OK);
        // release the old reads and let their deferred writes run
        app.hooks.hold_reads(None);
        gate.add_permits(1000);
        assert_eq!(detail.await.unwrap(), StatusCode::OK);
        assert_eq!(list.await.unwrap(), StatusCode::OK);
        app.settle().await;

        let db_movie = app
            .database()
            .movies(&[marquee::movies::Slug::parse(&slug).unwrap().as_str()])
            .await
            .map(|(stamp, mut found)| (stamp, found.pop()))
            .unwrap()
            .1
            .unwrap();
        let cached: Option<String> = redis.get(app.key(&format!("movie:{slug}"))).await.unwrap();
        if let Some(cached) = cached {
            let cached: serde_json::Value = serde_json::from_str(&cached).unwrap();
            assert_eq!(cached["title"], db_movie.title, "round {round}: film key");
            assert_eq!(cached["v"], db_movie.version, "round {round}: film version");
        }
        let (_, fresh) = app.database().page(marquee::movies::PageNumber::FIRST, 24).await.unwrap();
        let fresh: Vec<String> = fresh.into_iter().map(|f| f.slug).collect();
        if let Some((order_version, page)) = cached_page(&app, 1).await
            && page != fresh
        {
            // an old read's page may land after the order change, but it carries its old order
            // version, so no reader takes it
            let current = cached_order_version(&app).await.expect("the writer cached the stamp");
            assert!(order_version < current, "round {round}: a page in an old order passes for current");
        }
        assert_eq!(page_slugs(&app, 1).await, fresh, "round {round}: the listing a visitor sees");
        // and what visitors see now
        let (_, html) = app.get_text(&format!("/movies/{slug}")).await;
        assert!(html.contains(&format!("Rewritten {round}")), "round {round}: detail page");
    }
    assert!(app.stats().stale_writes_refused > 0, "the older writes were refused");
});

// Clients that hang up while their page is being read must not strand the read: it finishes on
// its own, gives its database connection back, and its result still reaches the cache.
on_each_redis!(reads_outlive_the_clients_that_hung_up, |target| async move {
    let app = crate::helpers::Setup::new(target).env("DB_MAX_CONNECTIONS", "2").spawn().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let before = app.stats().db_queries;
    let mut hung_up = Vec::new();
    for n in 2..=9 {
        let (client, url) = (impatient.clone(), app.url(&format!("/movies?page={n}")));
        hung_up.push(tokio::spawn(async move { client.get(url).send().await.is_err() }));
    }
    for t in hung_up {
        assert!(t.await.unwrap(), "the client gave up");
    }
    assert!(app.stats().db_queries >= before + 8, "the reads had started");
    app.hooks.hold_reads(None);
    gate.add_permits(1000);
    // more stranded reads than pool connections would leave this waiting for the pool, then a 503
    let started = std::time::Instant::now();
    assert_eq!(app.get("/movies?page=12").await.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    // nobody took their write-backs: they are written anyway, shortly after
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.settle().await;
    for n in 2..=9 {
        assert!(cached_page(&app, n).await.is_some(), "page {n} reached the cache");
    }
    assert_eq!(app.stats().deferred_pending, 0);
});

// A page key read at an older order version than the stamp's is a miss (another server moved a
// film and its sweep has not reached this key yet): the visitor gets the current order, from one
// query, and the page is written back at the current version. A page at the stamp's version is
// trusted as it is.
on_each_redis!(a_page_older_than_the_stamp_is_a_miss, |target| async move {
    let app = redis_tier_app(target).await;
    let fresh = page_slugs(&app, 2).await;
    app.settle().await;
    let (version, _) = cached_page(&app, 2).await.expect("page 2 cached");
    assert_eq!(Some(version), cached_order_version(&app).await);
    let reversed: Vec<&str> = fresh.iter().rev().map(String::as_str).collect();
    let mut redis = app.redis().await;
    let key = app.key("movies:page:2");
    let _: () = redis.set_ex(&key, json!({ "v": version - 1, "slugs": reversed }).to_string(), 60).await.unwrap();
    let before = app.stats();
    assert_eq!(page_slugs(&app, 2).await, fresh, "the stale page is not shown");
    app.settle().await;
    assert_eq!(cost(before, app.stats()).2, 1, "one query for the page");
    assert_eq!(cached_page(&app, 2).await, Some((version, fresh.clone())), "written back at the current version");
    // at the stamp's version the page is what the cache says
    let _: () = redis.set_ex(&key, json!({ "v": version, "slugs": reversed }).to_string(), 60).await.unwrap();
    let before = app.stats();
    assert_eq!(page_slugs(&app, 2).await, reversed.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(cost(before, app.stats()), (2, 2, 0));
});

on_each_redis!(a_page_written_during_a_sweep_never_lives_outside_the_set, |target| async move {
    let app = spawn_app(target).await;
    for n in 1..=4 {
        page_slugs(&app, n).await;
    }
    app.settle().await;
    assert_eq!(app.cached_keys("movies:page:*").await.len(), 4);

    // the sweep an order change starts is held in the middle of its batch (on a cluster between
    // its SREM and its UNLINK, where nothing holds the two together but their order)
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_sweeps(Some(gate.clone()));
    let slug = page_slugs(&app, 2).await[0].clone();
    assert_eq!(app.redate(&slug, "2031-01-01").await.status(), StatusCode::OK);
    for _ in 0..300 {
        if app.hooks.sweeps_held() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.hooks.sweeps_held(), 1, "the sweep reached the hold");

    // a reader writes page 1 back meanwhile (the stamp makes the old one a miss)
    assert_eq!(page_slugs(&app, 1).await[0], slug);
    let mut redis = app.redis().await;
    let mut written = false;
    for _ in 0..300 {
        if cached_page(&app, 1).await.is_some_and(|(_, slugs)| slugs[0] == slug) {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(written, "the page was written back during the sweep");

    gate.add_permits(1_000);
    app.hooks.hold_sweeps(None);
    app.settle().await;
    // every page key alive is in the set the next sweep walks
    for key in app.cached_keys("movies:page:*").await {
        let listed: bool = redis.sismember(app.key("movies:pages"), &key).await.unwrap();
        assert!(listed, "{key} lives outside the set of page keys");
    }
    // and the next sweep leaves none
    let other = page_slugs(&app, 3).await[0].clone();
    assert_eq!(app.redate(&other, "2032-01-01").await.status(), StatusCode::OK);
    app.settle().await;
    for n in 1..=4 {
        if let Some((_, slugs)) = cached_page(&app, n).await {
            assert_eq!(n, 1, "page {n} outlived the sweep");
            assert_eq!(slugs[0], other, "page 1, if written back after the sweep, is the new order");
        }
    }
});

/// One request as a client sends it, and what came back (the headers but the request id and date).
async fn exchange(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let mut kept: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    kept.sort();
    (status, kept, response.bytes().await.expect("body").to_vec())
}

// A page kept in memory is answered by the page tier from its request alone (no routing, no
// middleware) with exactly the answer the full path gave: the same status, headers and bytes,
// for every page and every way htmx asks for one; a client that accepts gzip gets it gzipped as
// the compression layer would have, however it asks; and a write is on the page at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_answers_a_kept_page_as_the_full_path_does() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.stats().lease_held {
        assert!(std::time::Instant::now() < deadline, "the server holds a lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slugs = page_slugs(&app, 2).await;
    let from_list = app.url("/movies?genre=drama&page=1");
    let film = format!("/movies/{}", slugs[0]);
    let asks: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/", vec![]),
        ("/movies?page=2", vec![]),
        ("/movies?page=2", vec![("HX-Request", "true"), ("HX-Target", "feed")]),
        ("/movies?page=2", vec![("HX-Request", "true"), ("HX-Target", "listing")]),
        ("/movies?genre=drama&sort=votes", vec![]),
        ("/search?q=godf", vec![]),
        ("/search?q=godf", vec![("HX-Request", "true"), ("HX-Target", "main"), ("HX-Current-URL", "http://x/search")]),
        (&film, vec![]),
        (&film, vec![("Referer", &from_list)]),
    ];
    for (path, headers) in &asks {
        // from the database, then from Redis (kept), then from the front
        exchange(&app, path, headers).await;
        app.settle().await;
        let full = exchange(&app, path, headers).await;
        let before = app.stats();
        let front = exchange(&app, path, headers).await;
        assert_eq!(app.stats().kept_hits - before.kept_hits, 1, "{path} {headers:?}: from memory");
        assert_eq!(full.0, StatusCode::OK, "{path} {headers:?}");
        assert_eq!((front.0, &front.1), (full.0, &full.1), "{path} {headers:?}: the front's answer is the full path's");
        assert!(front.2 == full.2, "{path} {headers:?}: the same bytes ({} and {})", front.2.len(), full.2.len());
    }
    // gzip: a browser's ask and a weighted one are answered from the page's gzipped copy, as the
    // full path (the compression layer) answered them: the same page and headers but the framing
    let gunzip = |bytes: &[u8]| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text).expect("gzip");
        text
    };
    let framing = |headers: &[(String, String)]| -> Vec<(String, String)> {
        headers.iter().filter(|(n, _)| n != "content-length" && n != "transfer-encoding").cloned().collect()
    };
    for ask in ["gzip;q=1", "gzip, deflate, br, zstd"] {
        let asking = [("Accept-Encoding", ask)];
        // a page the tier has not kept yet: the full path's answer
        let path = if ask.contains(';') { "/movies?page=3" } else { "/movies?page=4" };
        exchange(&app, path, &asking).await;
        app.settle().await;
        let full = exchange(&app, path, &asking).await;
        let before = app.stats();
        let kept = exchange(&app, path, &asking).await;
        assert_eq!(app.stats().kept_hits - before.kept_hits, 1, "{ask}: from memory");
        assert_eq!(full.0, StatusCode::OK);
        assert!(full.1.contains(&("content-encoding".into(), "gzip".into())), "{:?}", full.1);
        assert_eq!((kept.0, framing(&kept.1)), (full.0, framing(&full.1)), "{ask}: the same headers but the framing");
        assert_eq!(gunzip(&kept.2), gunzip(&full.2), "{ask}: the same page");
        assert!(gunzip(&kept.2).contains("<title>"));
    }
    // a write is on the page at once
    assert_eq!(app.retitle(&slugs[0], "Fronted No More").await.status(), StatusCode::OK);
    assert_eq!(app.listing(2).await.titles[0], "Fronted No More");
    assert_eq!(app.detail(&slugs[0]).await.heading.as_deref(), Some("Fronted No More"));
}

/// A film page read from the database while `write` runs, its read held at the database until
/// `write` has been answered and `then` has run: what its write-back leaves in Redis.
async fn read_held_across(app: &TestApp, slug: &str, write: impl Future<Output = ()>, then: impl Future<Output = ()>) {
    let mut redis = app.redis().await;
    app.settle().await;
    let _: () = redis.unlink(&[app.key(&format!("movie:{slug}"))]).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let before = app.stats().db_queries;
    let (client, url) = (app.client.clone(), app.url(&format!("/movies/{slug}")));
    let read = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    assert!(app.queries_reach(before + 1).await, "the read reached the database");
    write.await;
    then.await;
    app.hooks.hold_reads(None);
    gate.add_permits(1000);
    let _ = read.await.unwrap();
    app.settle().await;
}

// A read of a film that began before its delete, whose write-back reaches Redis only after the
// delete's "gone" marker expired (its bytes held on a stalled path): the film stays gone.
on_each_redis!(a_write_back_held_past_a_deletes_marker_never_brings_the_film_back, |target| async move {
    let app = Setup::new(target).env("CACHE_LEASE_MS", "0").env("NEGATIVE_TTL_SECS", "2").spawn().await;
    let slug = page_slugs(&app, 1).await[2].clone();
    let delete = async { assert_eq!(app.remove(&slug).await.status(), StatusCode::NO_CONTENT) };
    // the marker has expired
    let expire = tokio::time::sleep(Duration::from_millis(2500));
    read_held_across(&app, &slug, delete, expire).await;
    let cached: Option<String> = app.redis().await.get(app.key(&format!("movie:{slug}"))).await.unwrap();
    assert!(cached.as_deref().is_none_or(|c| !c.contains("\"title\"")), "the deleted film came back: {cached:?}");
    assert_eq!(app.get(&format!("/movies/{slug}")).await.status(), StatusCode::NOT_FOUND);
});

// The same with an update whose newer copy Redis evicted before the older read's write-back
// landed: on one Redis the stamp says the read is older than the catalog, and it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_older_than_an_evicted_newer_copy_is_refused() {
    let app = Setup::new(crate::helpers::Backend::Sqlite).env("CACHE_LEASE_MS", "0").spawn().await;
    let slug = page_slugs(&app, 1).await[3].clone();
    let evict = async {
        let _: () = app.redis().await.unlink(&[app.key(&format!("movie:{slug}"))]).await.unwrap();
    };
    older_read_never_lands(&app, &slug, "Evicted Newer", evict).await;
}

/// A retitle to `title` and then `then` while an older read of the film is held (see
/// `read_held_across`): Redis never holds the older copy after, and the film's page shows `title`.
async fn older_read_never_lands(app: &TestApp, slug: &str, title: &str, then: impl Future<Output = ()>) {
    let update = async { assert_eq!(app.retitle(slug, title).await.status(), StatusCode::OK) };
    read_held_across(app, slug, update, then).await;
    let cached: Option<String> = app.redis().await.get(app.key(&format!("movie:{slug}"))).await.unwrap();
    assert!(cached.as_deref().is_none_or(|c| c.contains(title)), "the older copy landed: {cached:?}");
    assert_eq!(app.detail(slug).await.heading.as_deref(), Some(title));
}

// The same when Redis lost everything after the update was answered (a FLUSHALL, a restart with
// nothing persisted: every key of the site gone, the stamp with them), before the older read's
// write-back landed: nothing in Redis says the read is old, and it must not land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_older_than_a_write_redis_then_lost_is_refused() {
    let app = Setup::new(crate::helpers::Backend::Sqlite).env("CACHE_LEASE_MS", "0").spawn().await;
    let slug = page_slugs(&app, 1).await[3].clone();
    let flush = async {
        let mut conn = crate::helpers::redis_conn(crate::helpers::REDIS).await;
        let keys = crate::redis_server::keys_with_prefix(&mut conn, &app.key("")).await;
        assert!(keys.iter().any(|k| k.ends_with("stamp")), "the stamp is among the keys lost: {keys:?}");
        let _: () = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await.unwrap();
    };
    older_read_never_lands(&app, &slug, "Flushed Newer", flush).await;
}

// A request that reaches this server after another server's write was answered does not share a
// database read this server began before that write (this server's own writes forget such reads;
// another's cannot).
on_each_redis!(a_read_begun_before_another_servers_write_is_not_shared_with_later_requests, |target| async move {
    let app = spawn_app(target).await;
    let other = app.another_server().await;
    let slug = page_slugs(&app, 1).await[4].clone();
    let key = app.key(&format!("movie:{slug}"));
    let mut redis = app.redis().await;
    app.settle().await;
    let _: () = redis.unlink(std::slice::from_ref(&key)).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let before = app.stats().db_queries;
    let (client, url) = (app.client.clone(), app.url(&format!("/movies/{slug}")));
    let first = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    assert!(app.queries_reach(before + 1).await, "the first read reached the database");

    let patch = marquee::movies::MoviePatch::from_json(json!({"title": "Changed Elsewhere"})).unwrap();
    let changed = other.update(&marquee::movies::Slug::parse(&slug).unwrap(), &patch).await.unwrap();
    assert!(changed.is_some(), "the other server's write was answered");
    // its new copy gone from Redis (evicted), so the next request here misses too
    let _: () = redis.unlink(&[key]).await.unwrap();
    let (client, url) = (app.client.clone(), app.url(&format!("/movies/{slug}")));
    let later = tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.hooks.hold_reads(None);
    gate.add_permits(1000);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    let later = crate::support::html::Detail::parse(StatusCode::OK, later.await.unwrap());
    assert_eq!(later.heading.as_deref(), Some("Changed Elsewhere"), "a request after the write saw it");
});
