//! Search by title over HTTP: what it finds (checked against the dataset, folded independently
//! here), in which order, kept in step with every write and import, and what hostile queries get.

use std::cmp::Ordering;

use marquee::dataset;
use marquee::movies::{Movie, NewMovie, PageNumber, SearchQuery};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, redis_tier_app, spawn_app};
use crate::support::html::Listing;
use crate::{both, on_each_redis};

/// The words of a title or query as a person reads them: lower case, accents off, split at anything
/// that is not a letter or digit. Written here without the app's code.
fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .chars()
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'À' | 'Á' | 'Â' | 'Ä' => 'a',
            'è' | 'é' | 'ê' | 'ë' | 'É' | 'È' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'Ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ü' => 'u',
            'ç' | 'Ç' => 'c',
            'ñ' => 'n',
            c => c,
        })
        .collect();
    folded
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a search should find in the dataset: every word of the query starts a word of the title;
/// the exact title first, then the most voted, then by slug.
fn expected(query: &str) -> Vec<String> {
    expected_in(dataset::parse(dataset::MOVIES_JSON).unwrap().movies, query)
}

/// What a search should find among `films`, in its order.
fn expected_in(films: Vec<Movie>, query: &str) -> Vec<String> {
    let q = words(query);
    let mut found: Vec<Movie> = films
        .into_iter()
        .filter(|m| {
            let t = words(&m.title);
            q.iter().all(|w| t.iter().any(|tw| tw.starts_with(w.as_str())))
        })
        .collect();
    let exact = |m: &Movie| words(&m.title) == q;
    found.sort_by(|a, b| {
        exact(b)
            .cmp(&exact(a))
            .then_with(|| match (a.imdb_votes, b.imdb_votes) {
                (Some(x), Some(y)) => y.cmp(&x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| a.slug.cmp(&b.slug))
    });
    found.into_iter().map(|m| m.slug).collect()
}

/// Every result of a search, page after page as the infinite scroll loads them.
async fn results(app: &TestApp, query: &str) -> Vec<String> {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let (status, html) = app.get_text(&format!("/search?q={q}")).await;
    assert_eq!(status, StatusCode::OK, "{query}");
    let first = Listing::parse(status, html);
    let mut slugs = first.slugs;
    let mut next = first.next;
    while let Some(url) = next {
        let (status, html) = app.get_fragment(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let more = Listing::parse(status, html);
        slugs.extend(more.slugs);
        next = more.next;
    }
    slugs
}

both!(search_finds_titles_by_the_start_of_their_words, |backend| async move {
    let app = spawn_app(backend).await;
    // accents and case do not matter; a word's start is enough
    assert_eq!(results(&app, "amelie").await, ["le-fabuleux-destin-d-amelie-poulain-2001"]);
    assert_eq!(results(&app, "AMÉLIE").await, ["le-fabuleux-destin-d-amelie-poulain-2001"]);
    let godfather = results(&app, "godf").await;
    assert_eq!(godfather[0], "the-godfather-1972", "the most voted first");
    assert!(godfather.contains(&"the-godfather-part-ii-1974".to_owned()));
    // as the dataset says, exact titles first, on several pages too
    for query in ["godf", "batman", "pirates", "the dark", "star", "man", "love story", "2", "l'amour", "Astérix"] {
        let want = expected(query);
        assert_eq!(results(&app, query).await, want, "{query:?}");
    }
    assert!(expected("man").len() > 48, "a search of several pages");
    // "Pirates" (3,275 votes) before Pirates of the Caribbean (232,719)
    let pirates = results(&app, "pirates").await;
    assert_eq!(
        pirates[0], "pirates-1986",
        "the exact title before more voted films whose titles only contain the word"
    );
    assert!(pirates[1].starts_with("pirates-of-the-caribbean"), "{pirates:?}");
    // nothing found: said so, with a way back; the page past the end is a 404
    let (status, html) = app.get_text("/search?q=zzzzqqq").await;
    assert_eq!(status, StatusCode::OK);
    let none = Listing::parse(status, html);
    assert!(none.slugs.is_empty());
    assert_eq!(none.end.as_deref(), Some("No film title has words starting with “zzzzqqq”. See every film"));
    assert_eq!(app.get("/search?q=zzzzqqq&page=2").await.status(), StatusCode::NOT_FOUND);
    // no query yet: the page asks for one
    let (status, html) = app.get_text("/search").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Type a title to look for."));
});

// A deep page of a one-word search (past the first 256 films) starts at the bucket of votes its
// first film is in, and walks the films by votes from there (or, for a rarer word, sorts what the
// index of words finds). Read page after page, in pages small enough that most are deep, every
// search gives the dataset's films in its order, with films titled exactly the word (which come
// first, and which the buckets count among the others) and films without votes (which come last).
both!(deep_search_pages_follow_the_dataset, |backend| async move {
    let app = spawn_app(backend).await;
    let db = app.database();
    let mut films = dataset::parse(dataset::MOVIES_JSON).unwrap().movies;
    for (title, votes) in [("The", json!(10_000)), ("The", json!(null)), ("A", json!(250)), ("Of", json!(7))] {
        let new = NewMovie::from_json(json!({"title": title, "release_date": "2001-02-03", "imdb_votes": votes}));
        films.push(db.create(new.unwrap()).await.unwrap().0);
    }
    // `a` by 100: a rare word for its page size (the index of words); the others walk the votes
    for (query, size) in [("the", 5u32), ("the", 24), ("t", 11), ("of", 7), ("a", 100)] {
        let want = expected_in(films.clone(), query);
        assert!(want.len() > 300, "{query}: deep pages");
        let search = SearchQuery::parse(query).unwrap();
        let mut got = Vec::new();
        for n in 1..=u32::try_from(want.len()).unwrap().div_ceil(size) + 1 {
            let (_, total, movies) = db.search(&search, PageNumber::new(n).unwrap(), size).await.unwrap();
            assert_eq!(total, want.len() as i64, "{query} by {size}, page {n}: the size");
            got.extend(movies.into_iter().map(|m| m.slug));
        }
        assert_eq!(got, want, "{query} by {size}");
    }
});

both!(search_follows_every_write_and_import, |backend| async move {
    let app = spawn_app(backend).await;
    let created = app.add_movie(&json!({"title": "Zyzzyva Nights", "release_date": "2001-02-03"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(results(&app, "zyzz").await, ["zyzzyva-nights-2001"]);
    assert_eq!(app.retitle("zyzzyva-nights-2001", "Quokka Mornings").await.status(), StatusCode::OK);
    assert!(results(&app, "zyzz").await.is_empty(), "the old title is gone from the index");
    assert_eq!(results(&app, "quokka morn").await, ["zyzzyva-nights-2001"]);
    assert_eq!(app.remove("zyzzyva-nights-2001").await.status(), StatusCode::NO_CONTENT);
    assert!(results(&app, "quokka").await.is_empty(), "a deleted film is not found");
    assert!(results(&app, "quokka morn").await.is_empty(), "nor by several words");
    // an import that renames a film
    let mut movies = dataset::parse(dataset::MOVIES_JSON).unwrap().movies;
    let renamed = movies[11].slug.clone();
    movies[11].title = "Wombat Evenings".into();
    assert_eq!(app.database().import(movies).await.unwrap().updated, 1);
    assert_eq!(results(&app, "wombat even").await, std::slice::from_ref(&renamed));
    assert_eq!(results(&app, "wombat").await, [renamed]);
    // several words are matched in an index of their own (migration 0012 of each database): a
    // change of votes reorders them, as it does one word's
    let dark = expected("the dark");
    let last = dark.last().unwrap().clone();
    assert_ne!(dark[0], last);
    assert_eq!(app.edit(&last, &json!({"imdb_votes": 99_000_000})).await.status(), StatusCode::OK);
    assert_eq!(results(&app, "the dark").await[0], last, "the most voted now");
});

// A search's pages are cached like a list's (slugs; the films through their own keys): asked
// again, one GET of the page key and one MGET of its films, no query. Any write may change what a
// search finds, so after one the next answer reads the database again, and shows the write.
on_each_redis!(a_search_is_cached_until_the_next_write, |target| async move {
    let app = redis_tier_app(target).await;
    let first = results(&app, "godf").await;
    assert!(first.iter().any(|s| s.starts_with("the-godfather")), "{first:?}");
    app.settle().await;
    assert_eq!(app.cached_keys("movies:search:*").await, vec![app.key("movies:search:godf:page:1")]);
    let cost = |before: marquee::stats::Snapshot, after: marquee::stats::Snapshot| {
        (after.redis_round_trips - before.redis_round_trips, after.db_queries - before.db_queries)
    };
    let before = app.stats();
    assert_eq!(results(&app, "godf").await, first);
    assert_eq!(cost(before, app.stats()), (2, 0), "from the cache");
    assert_eq!(app.retitle("the-land-girls-1998", "Godfrey Rides Again").await.status(), StatusCode::OK);
    let before = app.stats();
    let now = results(&app, "godf").await;
    assert!(now.contains(&"the-land-girls-1998".to_owned()), "the renamed film is found at once: {now:?}");
    assert_eq!(now.len(), first.len() + 1);
    assert_eq!(cost(before, app.stats()).1, 1, "one query: the cached page was older than the write");
    app.settle().await;
    let before = app.stats();
    assert_eq!(results(&app, "godf").await, now);
    assert_eq!(cost(before, app.stats()), (2, 0), "cached again");
});

// Whatever is typed, a clean answer: what is not a letter or digit separates words, and the
// index never sees its own syntax.
both!(hostile_queries_get_a_clean_answer, |backend| async move {
    let app = spawn_app(backend).await;
    for q in [
        "%22",
        "*",
        "NEAR",
        "-",
        "%00",
        "NEAR(a%20b)",
        "a%20OR",
        "%27",
        "%5C",
        ":*",
        "%26",
        "|",
        "!",
        "(",
        ")",
        "%22godf%22*",
        "godf*",
        "-godf",
        "title:godf",
        "^godf",
        "godf%00father",
        "%E2%80%AE",
        "%F0%9F%8E%AC",
        "%20%20%20",
        "a%20b%20c%20d%20e%20f%20g%20h%20i%20j%20k",
    ] {
        let r = app.get(&format!("/search?q={q}")).await;
        assert_eq!(r.status(), StatusCode::OK, "q={q}");
        let fragment = app.get_fragment(&format!("/search?q={q}")).await;
        assert_eq!(fragment.0, StatusCode::OK, "q={q} (htmx)");
    }
    // the syntax is only a separator: the query means its words
    assert_eq!(results(&app, "\"godf\"*").await, results(&app, "godf").await);
    assert_eq!(results(&app, "godf\0father").await, expected("godf father"));
    let long = "a".repeat(5000);
    let (status, html) = app.get_text(&format!("/search?q={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("q must be at most 200 characters"));
});

// The search field's htmx request gets the results alone and the address to show; the scroll's
// request gets the next cards.
both!(the_search_field_swaps_the_results_in, |backend| async move {
    let app = spawn_app(backend).await;
    let (_, home) = app.get_text("/").await;
    assert!(home.contains(r#"<form class="site-search" action="/search" method="get" role="search">"#));
    let ask = |current: &'static str| {
        app.client
            .get(app.url("/search?q=Star"))
            .header("HX-Request", "true")
            .header("HX-Target", "main")
            .header("HX-Current-URL", current)
            .send()
    };
    let from_home = ask("http://example.test/").await.unwrap();
    assert_eq!(from_home.headers()["hx-push-url"], "/search?q=Star");
    let refined = ask("http://example.test/search?q=St").await.unwrap();
    assert_eq!(refined.headers()["hx-replace-url"], "/search?q=Star", "typing on refines the same history entry");
    let html = refined.text().await.unwrap();
    assert!(!html.contains("<header") && html.contains("<h1>Films matching “Star”</h1>"));
    let part = Listing::parse(StatusCode::OK, html);
    let want = expected("Star");
    assert_eq!(part.slugs, want[..24]);
    assert_eq!(part.next.as_deref(), Some("/search?q=Star&page=2"));
    let (_, fragment) = app.get_fragment("/search?q=Star&page=2").await;
    assert_eq!(Listing::parse(StatusCode::OK, fragment).slugs, want[24..want.len().min(48)]);
    // the whole page shows what was typed in the field
    let (_, page) = app.get_text("/search?q=%3Cb%3EStar").await;
    assert!(page.contains(r#"value="&#60;b&#62;Star""#), "escaped, in the field");
});
