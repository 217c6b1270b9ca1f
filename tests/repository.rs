//! The repository on both databases: listing order, page boundaries (shallow and deep), batch
//! fetches, writes and what they report, the import.

use marquee::dataset;
use marquee::db::Db;
use marquee::movies::{Date, Movie, MovieList, MoviePatch, NewMovie, PageNumber, Slug, Sort};
use serde_json::json;

use crate::both;
use crate::helpers::TestDb;

async fn loaded(backend: crate::helpers::Backend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let (db, _) = test_db.connect().await;
    let data = dataset::parse(dataset::MOVIES_JSON).unwrap();
    db.import(data.movies).await.unwrap();
    (test_db, db)
}

fn page(n: u32) -> PageNumber {
    PageNumber::new(n).unwrap()
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

/// The whole catalog in listing order, computed here from the dataset.
fn expected_order() -> Vec<String> {
    let mut movies = dataset::parse(dataset::MOVIES_JSON).unwrap().movies;
    movies.sort_by(|a, b| b.release_date.cmp(&a.release_date).then_with(|| a.slug.cmp(&b.slug)));
    movies.into_iter().map(|f| f.slug).collect()
}

both!(import_keeps_every_usable_row_and_is_idempotent, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let (db, _) = test_db.connect().await;
    let data = dataset::parse(dataset::MOVIES_JSON).unwrap();
    let usable = data.movies.len() as u64;
    assert_eq!(usable + data.rejected.len() as u64, 3201);
    let first = db.import(data.movies.clone()).await.unwrap();
    assert_eq!((first.imported, first.updated), (usable, 0));
    assert_eq!(db.count().await.unwrap(), usable as i64);
    let again = db.import(data.movies.clone()).await.unwrap();
    assert_eq!((again.imported, again.updated, again.unchanged), (0, 0, usable));
    // a changed row is updated, not duplicated
    let mut changed = data.movies.clone();
    changed[0].genre = Some("Changed".into());
    let third = db.import(changed).await.unwrap();
    assert_eq!((third.imported, third.updated), (0, 1));
    assert_eq!(db.count().await.unwrap(), usable as i64);
});

both!(imported_quirks_are_repaired, |backend| async move {
    let (_t, db) = loaded(backend).await;
    let get = |s: &'static str| {
        let db = db.clone();
        async move {
            db.movies(&[slug(s).as_str()])
                .await
                .map(|(stamp, mut found)| (stamp, found.pop()))
                .unwrap()
                .1
                .unwrap_or_else(|| panic!("{s} is missing"))
        }
    };
    // numeric titles become text
    assert_eq!(get("300-2007").await.title, "300");
    assert_eq!(get("1776-1972").await.title, "1776");
    // remakes get distinct slugs
    assert_eq!(get("king-kong-1976").await.title, "King Kong");
    assert_eq!(get("king-kong-2005").await.title, "King Kong");
    // mis-decoded accents repaired; the slug transliterated
    assert_eq!(get("asterix-aux-jeux-olympiques-2008").await.title, "Astérix aux Jeux Olympiques");
    assert_eq!(get("leon-1994").await.title, "Léon");
    // real characters kept
    assert_eq!(get("alien3-1992").await.title, "Alien³");
    // text dates become ISO dates; two-digit years wrongly put in the future moved back
    assert_eq!(get("the-land-girls-1998").await.release_date, Date::new(1998, 6, 12).unwrap());
    assert_eq!(get("gone-with-the-wind-1939").await.release_date.year(), 1939);
});

both!(listing_pages_follow_release_date_then_slug, |backend| async move {
    let (_t, db) = loaded(backend).await;
    let expected = expected_order();
    let size = 24u32;
    let mut seen = Vec::new();
    let last = u32::try_from(expected.len().div_ceil(size as usize)).unwrap();
    for n in [1, 2, 3, last - 1, last] {
        let (meta, movies) = db.page(page(n), size).await.unwrap();
        assert_eq!(meta.movie_count, expected.len() as i64);
        let from = (n as usize - 1) * size as usize;
        let want = &expected[from..(from + size as usize).min(expected.len())];
        let got: Vec<String> = movies.iter().map(|f| f.slug.clone()).collect();
        assert_eq!(got, want, "page {n}");
        seen.extend(got);
    }
    // the last page is partial, the one after it empty
    assert_eq!(db.page(page(last), size).await.unwrap().1.len(), expected.len() % size as usize);
    assert!(db.page(page(last + 1), size).await.unwrap().1.is_empty());
    assert!(db.page(page(1_000_000), size).await.unwrap().1.is_empty());
});

both!(deep_pages_through_anchors_match_the_full_order, |backend| async move {
    let (_t, db) = loaded(backend).await;
    let expected = expected_order();
    // a small page size puts most pages past the first anchor step
    let size = 7u32;
    let pages = u32::try_from(expected.len().div_ceil(size as usize)).unwrap();
    let mut all = Vec::new();
    for n in 1..=pages {
        let (_, movies) = db.page(page(n), size).await.unwrap();
        all.extend(movies.into_iter().map(|f| f.slug));
    }
    assert_eq!(all, expected);
    // a write that changes the order is seen by deep pages at once (stale anchors are rebuilt)
    let moved = expected[10].clone();
    let patch = MoviePatch::from_json(json!({"release_date": "1901-01-01"})).unwrap();
    db.update(&slug(&moved), &patch).await.unwrap().unwrap();
    let (_, last) = db.page(page(pages), size).await.unwrap();
    assert_eq!(last.last().map(|f| f.slug.as_str()), Some(moved.as_str()));
    let (_, deep) = db.page(page(100), size).await.unwrap();
    let from = 99 * size as usize + 1; // one film moved from before this page to the end
    assert_eq!(deep.iter().map(|f| f.slug.clone()).collect::<Vec<_>>(), expected[from..from + size as usize]);
});

both!(a_deep_page_read_while_the_order_keeps_moving_rebuilds_its_anchors_once, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let hooks = marquee::hooks::Hooks::default();
    let (db, stats) = test_db.connect_with(&hooks).await;
    db.import(dataset::parse(dataset::MOVIES_JSON).unwrap().movies).await.unwrap();
    let expected = expected_order();
    let size = 7u32;
    db.page(page(300), size).await.unwrap(); // anchors built
    // every page query is now followed by an order change, as under a flood of writes
    hooks.reorder_on_reads(true);
    let before = stats.snapshot().db_queries;
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), db.page(page(300), size)).await;
    hooks.reorder_on_reads(false);
    let (_, movies) = read.expect("the deep page is answered instead of rebuilding without end").unwrap();
    let from = 299 * size as usize;
    assert_eq!(movies.iter().map(|f| f.slug.clone()).collect::<Vec<_>>(), expected[from..from + size as usize]);
    // the anchored read, one rebuild (its scan), the anchored read again, then the plain offset query
    let queries = stats.snapshot().db_queries - before;
    assert!(queries <= 4, "{queries} queries: the anchors are rebuilt at most once");
});

both!(batch_fetch_keeps_the_asked_order_and_skips_missing, |backend| async move {
    let (_t, db) = loaded(backend).await;
    let (meta, movies) =
        db.movies(&["king-kong-2005", "no-such-film-1999", "300-2007", "king-kong-1976"]).await.unwrap();
    let got: Vec<&str> = movies.iter().map(|f| f.slug.as_str()).collect();
    assert_eq!(got, ["king-kong-2005", "300-2007", "king-kong-1976"]);
    assert!(meta.version > 0);
    assert!(db.movies(&[]).await.unwrap().1.is_empty());
});

fn new_movie(title: &str, date: &str) -> NewMovie {
    NewMovie::from_json(json!({"title": title, "release_date": date, "genre": "Drama"})).unwrap()
}

both!(create_update_delete_report_what_changed, |backend| async move {
    let (_t, db) = loaded(backend).await;
    let before = db.stamp().await.unwrap();
    let (created, meta) = db.create(new_movie("King Kong", "2031-05-01")).await.unwrap();
    assert_eq!(created.slug, "king-kong-2031");
    assert!(created.version > before.version);
    assert_eq!(meta.movie_count, before.movie_count + 1);
    // the same title and year again gets the next free slug
    let (again, _) = db.create(new_movie("King Kong", "2031-06-01")).await.unwrap();
    assert_eq!(again.slug, "king-kong-2031-2");
    // an explicit slug that is taken is refused, nothing written
    let mut taken = new_movie("Other", "2000-01-01");
    taken.slug = Some(slug("king-kong-2031"));
    assert!(matches!(db.create(taken).await, Err(marquee::db::DbError::SlugTaken(_))));
    assert_eq!(db.count().await.unwrap(), before.movie_count + 2);

    let patch = MoviePatch::from_json(json!({"genre": "Adventure", "title": "King Kong"})).unwrap();
    let updated = db.update(&slug("king-kong-2031"), &patch).await.unwrap().unwrap();
    assert_eq!(updated.changed, ["genre"]);
    assert!(updated.movie.version > created.version);
    let stored: Movie = db
        .movies(&[slug("king-kong-2031").as_str()])
        .await
        .map(|(stamp, mut found)| (stamp, found.pop()))
        .unwrap()
        .1
        .unwrap();
    assert_eq!(stored.genre.as_deref(), Some("Adventure"));
    assert_eq!(stored, updated.movie);
    // a patch that changes nothing writes nothing
    let same = db.update(&slug("king-kong-2031"), &patch).await.unwrap().unwrap();
    assert!(same.changed.is_empty());
    assert_eq!(
        db.movies(&[slug("king-kong-2031").as_str()])
            .await
            .map(|(stamp, mut found)| (stamp, found.pop()))
            .unwrap()
            .1
            .unwrap()
            .version,
        updated.movie.version
    );
    assert!(db.update(&slug("no-such-film-1999"), &patch).await.unwrap().is_none());

    let gone = db.delete(&slug("king-kong-2031")).await.unwrap().unwrap();
    assert!(gone.version > updated.movie.version);
    assert!(
        db.movies(&[slug("king-kong-2031").as_str()])
            .await
            .map(|(stamp, mut found)| (stamp, found.pop()))
            .unwrap()
            .1
            .is_none()
    );
    assert!(db.delete(&slug("king-kong-2031")).await.unwrap().is_none());
    assert_eq!(db.count().await.unwrap(), before.movie_count + 1);
    // versions only grow, across a delete and a re-creation
    let (recreated, _) = db.create(new_movie("King Kong", "2031-05-01")).await.unwrap();
    assert!(recreated.version > gone.version);
});

both!(migrations_run_twice_harmlessly, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let (db, _) = test_db.connect().await;
    db.migrate().await.unwrap();
    let (db2, _) = test_db.connect().await;
    db2.migrate().await.unwrap();
    assert_eq!(db2.count().await.unwrap(), 0);
});

// A database that held films before there was search: the migration adds their search titles
// empty; the next start fills them, and the index finds them.
both!(films_stored_before_search_are_found_after_the_next_start, |backend| async move {
    use sqlx::Connection;
    let (test_db, db) = loaded(backend).await;
    let mut conn = sqlx::AnyConnection::connect(&test_db.url).await.unwrap();
    sqlx::query("update movies set search_title = ''").execute(&mut conn).await.unwrap();
    let query = marquee::movies::SearchQuery::parse("godfather").unwrap();
    assert_eq!(db.search(&query, page(1), 24).await.unwrap().1, 0, "nothing indexed");
    let (db, _) = test_db.connect().await;
    let (_, total, found) = db.search(&query, page(1), 24).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(found[0].slug, "the-godfather-1972");
    let titled: i64 =
        sqlx::query_scalar("select count(*) from movies where search_title <> ''").fetch_one(&mut conn).await.unwrap();
    assert_eq!(titled, db.count().await.unwrap(), "every film has its search title");
});

/// Every row of the cache log not applied yet, oldest first: (slug, version, order changed).
async fn logged(db: &TestDb) -> Vec<(Option<String>, i64, bool)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let rows = sqlx::query("select slug, version, order_changed from cache_log where applied_at is null order by id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter().map(|r| (r.get("slug"), r.get("version"), r.get::<i64, _>("order_changed") != 0)).collect()
}

both!(writes_log_what_the_cache_must_learn_in_their_own_transaction, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let (db, _) = test_db.connect().await;
    // the first load into an empty catalog is not logged (as `serve` does it)
    db.set_cache_log(false);
    db.import(dataset::parse(dataset::MOVIES_JSON).unwrap().movies).await.unwrap();
    db.set_cache_log(true);
    assert_eq!(logged(&test_db).await, []);
    let kong = || Some("king-kong-2031".to_owned());

    let (created, _) = db.create(new_movie("King Kong", "2031-05-01")).await.unwrap();
    assert_eq!(logged(&test_db).await, [(kong(), created.version, true)]);
    let backlog = db.backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.overdue), (1, 0), "the writer's own, within its grace");
    assert!(backlog.oldest.is_some_and(|age| age < std::time::Duration::from_secs(60)), "{backlog:?}");
    assert!(db.claim(10).await.unwrap().entries.is_empty(), "no relay claims it within the writer's grace");
    // a writer that could not tell the cache hands its rows to the relays at once
    db.hand_over(created.version).await.unwrap();
    assert_eq!(db.backlog().await.unwrap().overdue, 1);
    assert!(db.logged(created.version).await.unwrap());
    let claim = db.claim(10).await.unwrap();
    assert_eq!(claim.entries.len(), 1);
    claim.release().await.unwrap();
    // the writer told the cache: its rows are done
    db.applied(created.version).await.unwrap();
    assert_eq!(logged(&test_db).await, []);
    assert!(!db.logged(created.version).await.unwrap());
    let taken = Some(created.version);
    assert_eq!(
        db.backlog().await.unwrap(),
        marquee::db::Backlog { pending: 0, overdue: 0, oldest: None, applied: taken }
    );
    // kept, to be applied again if Redis loses it
    assert_eq!(db.reopen().await.unwrap(), 1);
    assert_eq!(logged(&test_db).await, [(kong(), created.version, true)]);
    assert_eq!(db.backlog().await.unwrap().overdue, 1, "at once");
    db.applied(created.version).await.unwrap();

    // a write that fails writes no row either (one transaction)
    let mut taken = new_movie("Other", "2000-01-01");
    taken.slug = Some(slug("king-kong-2031"));
    assert!(db.create(taken).await.is_err());
    assert_eq!(logged(&test_db).await, []);
    // an update says whether a list may have changed (a date, a genre, a rating, a director…; a
    // running time moves a film in no list); one that changes nothing logs nothing
    let runtime = MoviePatch::from_json(json!({"running_time_min": 101})).unwrap();
    let v0 = db.update(&slug("king-kong-2031"), &runtime).await.unwrap().unwrap().stamp.version;
    let genre = MoviePatch::from_json(json!({"genre": "Adventure"})).unwrap();
    let v1 = db.update(&slug("king-kong-2031"), &genre).await.unwrap().unwrap().stamp.version;
    assert!(db.update(&slug("king-kong-2031"), &genre).await.unwrap().unwrap().changed.is_empty());
    let date = MoviePatch::from_json(json!({"release_date": "2031-06-01"})).unwrap();
    let v2 = db.update(&slug("king-kong-2031"), &date).await.unwrap().unwrap().stamp.version;
    let v3 = db.delete(&slug("king-kong-2031")).await.unwrap().unwrap().version;
    let rows = [(kong(), v0, false), (kong(), v1, true), (kong(), v2, true), (kong(), v3, true)];
    assert_eq!(logged(&test_db).await, rows);

    // an import logs each film it changed, once, at its one version
    let mut movies = dataset::parse(dataset::MOVIES_JSON).unwrap().movies;
    movies[7].running_time_min = Some(99);
    let changed = movies[7].slug.clone();
    assert_eq!(db.import(movies).await.unwrap().updated, 1);
    let rows = logged(&test_db).await;
    assert_eq!(rows.len(), 5);
    assert_eq!((rows[4].0.as_deref(), rows[4].2), (Some(changed.as_str()), false));

    // rows past the longest TTL are pruned, applied (the first) or not; younger ones stay
    assert_eq!(db.prune(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(db.prune(std::time::Duration::from_millis(5)).await.unwrap(), 6);
    assert_eq!(db.backlog().await.unwrap().pending, 0);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_of_several_servers_never_claim_the_same_rows() {
    let test_db = TestDb::new(crate::helpers::Backend::Postgres).await;
    let (db, _) = test_db.connect().await;
    let (other, _) = test_db.connect().await;
    for year in 2031..2034 {
        let (_, stamp) = db.create(new_movie("King Kong", &format!("{year}-05-01"))).await.unwrap();
        db.hand_over(stamp.version).await.unwrap();
    }
    // one relay holds two rows while it applies them; another, meanwhile, gets only the third
    let first = db.claim(2).await.unwrap();
    let second = other.claim(10).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(second.entries.len(), 1);
    assert!(first.entries.iter().all(|e| e.id != second.entries[0].id));
    // the second failed to apply: its row is free again; the first's are done and gone
    second.release().await.unwrap();
    first.done().await.unwrap();
    let left = other.claim(10).await.unwrap();
    assert_eq!(left.entries.len(), 1);
    assert_eq!(left.entries[0].slug.as_deref(), Some("king-kong-2033"));
    left.done().await.unwrap();
    assert_eq!(db.backlog().await.unwrap().pending, 0);
}

/// Every field, each at a value that tests its type: a whole-number rating, zero and large money,
/// text that needs quoting in SQL.
fn full_movie(title: &str) -> NewMovie {
    NewMovie::from_json(json!({
        "title": title, "release_date": "1999-02-28", "genre": "Drama", "director": "Jean-Pierre Jeunet",
        "mpaa_rating": "R", "running_time_min": 1, "imdb_rating": 8.0, "imdb_votes": 0,
        "rotten_tomatoes_rating": 100, "us_gross": 0, "worldwide_gross": 999_999_999_999i64,
        "us_dvd_sales": 12, "production_budget": 1_000_000_000_000i64, "distributor": "O'Brien & Co",
        "source": "Original Screenplay", "creative_type": "Contemporary Fiction",
    }))
    .unwrap()
}

both!(every_field_round_trips_through_every_write, |backend| async move {
    let test_db = TestDb::new(backend).await;
    let (db, _) = test_db.connect().await;
    let read = |slug: &'static str| {
        let db = db.clone();
        async move {
            db.movies(&[Slug::parse(slug).unwrap().as_str()])
                .await
                .map(|(stamp, mut found)| (stamp, found.pop()))
                .unwrap()
                .1
                .unwrap()
        }
    };
    // created with every field, and with none but the two required
    let (full, _) = db.create(full_movie("Amélie")).await.unwrap();
    assert_eq!(read("amelie-1999").await, full);
    let (bare, _) = db.create(new_movie("Bare", "2001-01-01")).await.unwrap();
    let bare_read = read("bare-2001").await;
    assert_eq!(bare_read, bare);
    assert_eq!((bare_read.imdb_rating, bare_read.running_time_min, bare_read.director), (None, None, None));

    // updated: a number to null, null to a number, a date
    let patch = MoviePatch::from_json(json!({"imdb_rating": null, "us_dvd_sales": null, "release_date": "1999-03-01"}));
    let updated = db.update(&slug("amelie-1999"), &patch.unwrap()).await.unwrap().unwrap();
    assert_eq!(updated.changed, ["release_date", "imdb_rating", "us_dvd_sales"]);
    assert_eq!(read("amelie-1999").await, updated.movie);
    let patch = MoviePatch::from_json(json!({"imdb_rating": 6.5, "imdb_votes": 3}));
    let updated = db.update(&slug("bare-2001"), &patch.unwrap()).await.unwrap().unwrap();
    assert_eq!(read("bare-2001").await, updated.movie);

    // imported: new films are inserted as they are; reading them back and importing them again
    // finds nothing to change
    let mut imported = full_movie("Delicatessen").movie;
    imported.slug = "delicatessen-1999".into();
    let empty = Movie { slug: "empty-1999".into(), ..Movie::new("Empty".into(), Date::new(1999, 1, 1).unwrap()) };
    let summary = db.import(vec![imported.clone(), empty.clone()]).await.unwrap();
    assert_eq!(summary.imported, 2);
    let (_, both) = db.movies(&["delicatessen-1999", "empty-1999"]).await.unwrap();
    let without_version = |m: &Movie| Movie { version: 0, ..m.clone() };
    assert_eq!(both.iter().map(without_version).collect::<Vec<_>>(), [imported.clone(), empty.clone()]);
    let again = db.import(vec![imported.clone(), empty.clone()]).await.unwrap();
    assert_eq!((again.imported, again.updated, again.unchanged), (0, 0, 2));

    // a field no list reads changes no list; one a list reads does
    let lists = db.stamp().await.unwrap().list_version;
    let resourced = Movie { source: Some("Remake".into()), us_dvd_sales: None, ..imported.clone() };
    assert_eq!(db.import(vec![resourced.clone()]).await.unwrap().updated, 1);
    assert_eq!(db.stamp().await.unwrap().list_version, lists, "source and DVD sales are in no list");
    let redirected = Movie { director: Some("Marc Caro".into()), ..resourced };
    assert_eq!(db.import(vec![redirected.clone()]).await.unwrap().updated, 1);
    assert!(db.stamp().await.unwrap().list_version > lists, "the director's other films are a list");
    assert_eq!(without_version(&read("delicatessen-1999").await), redirected);
});

/// Every list in its sort's order, computed here from films the test holds: highest first, films
/// without the value last, ties by slug.
fn in_list_order(films: &[Movie], list: &MovieList) -> Vec<String> {
    use std::cmp::Ordering;
    let keep = |m: &&Movie| {
        let year = m.release_date.year();
        list.genre().is_none_or(|(_, name)| m.genre.as_deref() == Some(name))
            && list.decade().is_none_or(|d| (d..d + 10).contains(&year))
            && list.rating().is_none_or(|(_, rating)| m.mpaa_rating.as_deref() == Some(rating))
    };
    let value = |m: &Movie| match list.sort {
        Sort::Newest => m.release_date.to_string().replace('-', "").parse::<f64>().ok(),
        Sort::Rating => m.imdb_rating,
        Sort::Votes => m.imdb_votes.map(|v| v as f64),
        Sort::Gross => m.worldwide_gross.map(|v| v as f64),
    };
    let mut kept: Vec<&Movie> = films.iter().filter(keep).collect();
    kept.sort_by(|a, b| match (value(a), value(b)) {
        (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal).then_with(|| a.slug.cmp(&b.slug)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.slug.cmp(&b.slug),
    });
    kept.into_iter().map(|m| m.slug.clone()).collect()
}

fn list_of(pairs: &[(&str, &str)]) -> MovieList {
    let mut list = MovieList::default();
    for (k, v) in pairs {
        list.set(k, v).unwrap();
    }
    list
}

/// Unfiltered sorts and lists of one filter (deep pages through the bucket counts) and lists of
/// several filters (through the filter-led indexes, on PostgreSQL the cells' indexes, and the
/// cell counts): every page, and the size each reports.
fn lists() -> Vec<MovieList> {
    let mut out = Vec::new();
    for sort in ["newest", "rating", "votes", "gross"] {
        for filters in [
            &[][..],
            &[("genre", "drama")],
            &[("decade", "1990")],
            &[("rating", "r")],
            &[("genre", "comedy"), ("decade", "2000"), ("rating", "pg-13")],
            &[("decade", "2000"), ("rating", "r")],
            &[("genre", "drama"), ("decade", "1990")],
        ] {
            let mut pairs = filters.to_vec();
            pairs.push(("sort", sort));
            out.push(list_of(&pairs));
        }
    }
    out
}

async fn every_list_matches(db: &Db, films: &[Movie], size: u32) {
    for list in lists() {
        let expected = in_list_order(films, &list);
        let pages = u32::try_from(expected.len().div_ceil(size as usize)).unwrap().max(1);
        let mut all = Vec::new();
        for n in 1..=pages + 1 {
            let (_, total, movies) = db.list_page(&list, page(n), size).await.unwrap();
            assert_eq!(total, expected.len() as i64, "{} page {n}: the list's size", list.key());
            all.extend(movies.into_iter().map(|f| f.slug));
        }
        assert_eq!(all, expected, "{}", list.key());
    }
}

both!(every_list_pages_deep_in_its_order_and_counts_stay_right_after_writes, |backend| async move {
    let (_t, db) = loaded(backend).await;
    let mut films = dataset::parse(dataset::MOVIES_JSON).unwrap().movies;
    // a page size that puts most pages past the first step, where deep pages seek; and one so
    // large that the first page of a list reaches far into each of its cells (PostgreSQL)
    every_list_matches(&db, &films, 37).await;
    every_list_matches(&db, &films, 1000).await;
    // writes that move films within and between lists, add one and remove one
    // (and into and out of the lists of two filters: the 2000s rated R, the dramas of the 1990s)
    let drama_of_the_90s = films
        .iter()
        .find(|f| f.genre.as_deref() == Some("Drama") && (1990..2000).contains(&f.release_date.year()))
        .map(|f| f.slug.clone())
        .unwrap();
    let edits = [
        (films[5].slug.clone(), json!({"release_date": "1995-06-30", "genre": "Comedy", "mpaa_rating": "R"})),
        (films[6].slug.clone(), json!({"imdb_rating": null, "imdb_votes": 123_456, "worldwide_gross": 99})),
        (films[7].slug.clone(), json!({"imdb_rating": 9.9, "imdb_votes": null, "worldwide_gross": null})),
        (
            films[9].slug.clone(),
            json!({"release_date": "2004-04-04", "mpaa_rating": "R", "imdb_rating": 1.5, "imdb_votes": 1, "worldwide_gross": 1}),
        ),
        (drama_of_the_90s, json!({"genre": "Western"})),
    ];
    for (s, patch) in edits {
        let updated = db.update(&slug(&s), &MoviePatch::from_json(patch).unwrap()).await.unwrap().unwrap();
        if let Some(f) = films.iter_mut().find(|f| f.slug == s) {
            *f = Movie { version: f.version, ..updated.movie };
        }
    }
    let gone = films.remove(8);
    db.delete(&slug(&gone.slug)).await.unwrap().unwrap();
    let new = NewMovie::from_json(json!({"title": "Cold Start", "release_date": "2003-03-03", "genre": "Comedy",
        "mpaa_rating": "PG-13", "imdb_rating": 7.1, "imdb_votes": 4242, "worldwide_gross": 1_000_000}))
    .unwrap();
    films.push(db.create(new).await.unwrap().0);
    every_list_matches(&db, &films, 37).await;
    every_list_matches(&db, &films, 1000).await;
});
