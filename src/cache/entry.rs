//! What the cache's values hold, and how they are read back. This is the cache's own format: the
//! domain's `Movie` knows nothing of it. Every versioned value is a JSON object whose first member
//! is `"v"`, so the compare-and-set script can read the version with a pattern match instead of
//! decoding JSON.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::db::Stamp;
use crate::movies::Movie;

/// A `movie:{slug}` value, as read. A film is shared: the copy decoded once (see `decoded`) is the
/// one every page showing it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum MovieEntry {
    Movie(Arc<Movie>),
    /// The slug has no film (never had, or was deleted at that version).
    Gone,
    /// Not in the cache.
    Missing,
    /// There, but not readable: a miss, whose write-back replaces exactly what was read (the bytes
    /// of a string that did not decode; `None` for a key of another type, which any write replaces).
    Unreadable(Option<Vec<u8>>),
}

/// A film as stored in `movie:{slug}`: its version first (as `"v"`, for the compare-and-set
/// script), then the film's fields by their names.
#[derive(Serialize)]
struct Stored<'a> {
    v: i64,
    #[serde(flatten)]
    movie: &'a Movie,
}

#[derive(Serialize, Deserialize)]
struct Gone {
    v: i64,
    gone: bool,
}

/// `movies:stamp`: the catalog's stamp in short names.
#[derive(Serialize, Deserialize)]
struct StoredStamp {
    v: i64,
    o: i64,
    n: i64,
    /// The lists' version (absent in stamps written before there were lists: then every list page
    /// is a miss until the next write of the stamp).
    #[serde(default)]
    l: i64,
}

pub fn encode_movie(movie: &Movie) -> String {
    serde_json::to_string(&Stored { v: movie.version, movie }).unwrap_or_default()
}

pub fn encode_gone(version: i64) -> String {
    serde_json::to_string(&Gone { v: version, gone: true }).unwrap_or_default()
}

pub fn decode_movie(bytes: Option<&[u8]>) -> MovieEntry {
    let Some(bytes) = bytes else {
        return MovieEntry::Missing;
    };
    // the film's fields by their names (serde passes `"v"` over), and its version where the
    // compare-and-set script reads it: decoding through `Stored`'s flatten would buffer every value
    // first (a tenth of a warm page's time from Redis, measured)
    if let Some(v) = leading_version(bytes)
        && let Ok(movie) = serde_json::from_slice::<Movie>(bytes)
    {
        return MovieEntry::Movie(Arc::new(Movie { version: v, ..movie }));
    }
    match serde_json::from_slice::<Gone>(bytes) {
        Ok(g) if g.gone => MovieEntry::Gone,
        _ => MovieEntry::Unreadable(Some(bytes.to_vec())),
    }
}

/// The version a value starts with (`{"v":N,`), read as the compare-and-set script reads it.
fn leading_version(bytes: &[u8]) -> Option<i64> {
    let rest = bytes.strip_prefix(br#"{"v":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(rest.get(..digits)?).ok()?.parse().ok()
}

pub fn encode_stamp(stamp: &Stamp) -> String {
    let stored = StoredStamp { v: stamp.version, o: stamp.order_version, n: stamp.movie_count, l: stamp.list_version };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// `None` for a missing or unreadable value.
pub fn decode_stamp(bytes: Option<&[u8]>) -> Option<Stamp> {
    let s: StoredStamp = serde_json::from_slice(bytes?).ok()?;
    Some(Stamp { version: s.v, order_version: s.o, list_version: s.l, movie_count: s.n })
}

/// A page of slugs as written (see `PageOf`): the version it was read at (`"v"`, first, for the
/// compare-and-set script), its slugs in order, and a count (`"n"`): the films in the whole list or
/// search, none for the listing (whose count is the stamp's), or for a film's related films how
/// many of its slugs are by the film's director (the rest are of its genre and decade).
#[derive(Serialize)]
struct StoredPage<'a> {
    v: i64,
    slugs: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<i64>,
}

/// A page of slugs as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CachedPage {
    /// The version the page was read at: older than the stamp's, it is stale.
    #[serde(rename = "v")]
    pub version: i64,
    pub slugs: Vec<String>,
    #[serde(rename = "n", default)]
    pub count: Option<i64>,
}

pub fn encode_page(slugs: &[&str], version: i64, count: Option<i64>) -> String {
    serde_json::to_string(&StoredPage { v: version, slugs, n: count }).unwrap_or_default()
}

/// `None` for a missing value; `Some(Err(()))` for one that does not decode.
pub fn decode_page(bytes: Option<&[u8]>) -> Option<Result<CachedPage, ()>> {
    Some(serde_json::from_slice(bytes?).map_err(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movies::Date;

    fn movie() -> Movie {
        Movie {
            version: 42,
            slug: "heat-1995".into(),
            genre: Some("Action".into()),
            running_time_min: Some(170),
            imdb_rating: Some(8.2),
            ..Movie::new("Heat".into(), Date::new(1995, 12, 15).unwrap_or_else(|| unreachable!()))
        }
    }

    #[test]
    fn versioned_values_start_with_their_version() {
        assert!(encode_movie(&movie()).starts_with(r#"{"v":42,"#));
        assert!(encode_gone(7).starts_with(r#"{"v":7,"#));
        let stamp = Stamp { version: 9, order_version: 3, list_version: 4, movie_count: 10 };
        assert!(encode_stamp(&stamp).starts_with(r#"{"v":9,"#));
        assert_eq!(decode_stamp(Some(encode_stamp(&stamp).as_bytes())), Some(stamp));
    }

    /// Every field, a text that needs escaping, a whole-number rating and an empty field: the bytes
    /// already in Redis must still decode, and what is written must match what older replicas write.
    fn full_movie() -> Movie {
        Movie {
            version: 7,
            slug: "king-kong-2005".into(),
            director: Some("Peter \"PJ\" Jackson".into()),
            mpaa_rating: Some("PG-13".into()),
            running_time_min: Some(187),
            imdb_rating: Some(8.0),
            imdb_votes: Some(132_720),
            rotten_tomatoes_rating: Some(83),
            us_gross: Some(218_080_025),
            worldwide_gross: Some(550_517_357),
            us_dvd_sales: None,
            production_budget: Some(207_000_000),
            distributor: Some("Universal".into()),
            source: Some("Remake".into()),
            creative_type: Some("Fantasy".into()),
            ..Movie::new("King Kong – é".into(), Date::new(2005, 12, 14).unwrap_or_else(|| unreachable!()))
        }
    }

    const FULL_MOVIE: &str = concat!(
        r#"{"v":7,"slug":"king-kong-2005","title":"King Kong – é","release_date":"2005-12-14","genre":null,"#,
        r#""director":"Peter \"PJ\" Jackson","mpaa_rating":"PG-13","running_time_min":187,"imdb_rating":8.0,"#,
        r#""imdb_votes":132720,"rotten_tomatoes_rating":83,"us_gross":218080025,"worldwide_gross":550517357,"#,
        r#""us_dvd_sales":null,"production_budget":207000000,"distributor":"Universal","source":"Remake","#,
        r#""creative_type":"Fantasy"}"#
    );

    #[test]
    fn the_stored_format_is_kept_byte_for_byte() {
        assert_eq!(encode_movie(&full_movie()), FULL_MOVIE);
        assert_eq!(decode_movie(Some(FULL_MOVIE.as_bytes())), MovieEntry::Movie(Arc::new(full_movie())));
    }

    #[test]
    fn movies_round_trip_and_garbage_is_a_corrupt_miss() {
        assert_eq!(decode_movie(Some(encode_movie(&movie()).as_bytes())), MovieEntry::Movie(Arc::new(movie())));
        assert_eq!(decode_movie(Some(encode_gone(3).as_bytes())), MovieEntry::Gone);
        assert_eq!(decode_movie(None), MovieEntry::Missing);
        for junk in [&b"{not json"[..], b"[1,2]", b"42", b"{\"v\":1}", b""] {
            assert_eq!(decode_movie(Some(junk)), MovieEntry::Unreadable(Some(junk.to_vec())));
        }
    }

    #[test]
    fn pages_carry_their_version_and_garbage_is_a_miss() {
        let page = encode_page(&["a", "b"], 7, None);
        assert!(page.starts_with(r#"{"v":7,"#), "{page}");
        let read = CachedPage { version: 7, slugs: vec!["a".into(), "b".into()], count: None };
        let listed = encode_page(&["a"], 3, Some(40));
        assert!(listed.starts_with(r#"{"v":3,"#), "{listed}");
        assert_eq!(decode_page(Some(listed.as_bytes())).and_then(Result::ok).and_then(|p| p.count), Some(40));
        assert_eq!(decode_page(Some(page.as_bytes())), Some(Ok(read)));
        assert_eq!(decode_page(Some(br#"["a","b"]"#)), Some(Err(())));
        assert_eq!(decode_page(Some(br#"{"a":1}"#)), Some(Err(())));
        assert_eq!(decode_page(Some(br#"{"v":1,"slugs":[1]}"#)), Some(Err(())));
        assert_eq!(decode_page(None), None);
    }
}
