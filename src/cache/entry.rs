//! What the cache's values hold, and how they are read back. Every versioned value is a JSON
//! object whose first member is `"v"`, so the compare-and-set script can read the version with a
//! pattern match instead of decoding JSON.

use serde::{Deserialize, Serialize};

use crate::db::Meta;
use crate::movies::Movie;

/// A `movie:{slug}` value, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum FilmEntry {
    Film(Box<Movie>),
    /// The slug has no film (never had, or was deleted at that version).
    Gone,
    /// Not in the cache, or not readable (which counts as not there, and is overwritten).
    Missing {
        corrupt: bool,
    },
}

#[derive(Serialize, Deserialize)]
struct Gone {
    v: i64,
    gone: bool,
}

#[derive(Serialize, Deserialize)]
struct MetaEntry {
    v: i64,
    o: i64,
    n: i64,
}

pub fn encode_film(movie: &Movie) -> String {
    serde_json::to_string(movie).unwrap_or_default()
}

pub fn encode_gone(version: i64) -> String {
    serde_json::to_string(&Gone { v: version, gone: true }).unwrap_or_default()
}

pub fn decode_film(bytes: Option<&[u8]>) -> FilmEntry {
    let Some(bytes) = bytes else {
        return FilmEntry::Missing { corrupt: false };
    };
    if let Ok(movie) = serde_json::from_slice::<Movie>(bytes) {
        return FilmEntry::Film(Box::new(movie));
    }
    match serde_json::from_slice::<Gone>(bytes) {
        Ok(g) if g.gone => FilmEntry::Gone,
        _ => FilmEntry::Missing { corrupt: true },
    }
}

pub fn encode_meta(meta: &Meta) -> String {
    serde_json::to_string(&MetaEntry { v: meta.version, o: meta.order_version, n: meta.film_count }).unwrap_or_default()
}

/// `None` for a missing or unreadable value.
pub fn decode_meta(bytes: Option<&[u8]>) -> Option<Meta> {
    let m: MetaEntry = serde_json::from_slice(bytes?).ok()?;
    Some(Meta { version: m.v, order_version: m.o, film_count: m.n })
}

pub fn encode_page(slugs: &[&str]) -> String {
    serde_json::to_string(slugs).unwrap_or_default()
}

/// `None` for a missing value; `Some(Err(()))` for one that is not a JSON array of strings.
pub fn decode_page(bytes: Option<&[u8]>) -> Option<Result<Vec<String>, ()>> {
    Some(serde_json::from_slice(bytes?).map_err(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movies::Date;

    fn film() -> Movie {
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
        assert!(encode_film(&film()).starts_with(r#"{"v":42,"#));
        assert!(encode_gone(7).starts_with(r#"{"v":7,"#));
        let meta = Meta { version: 9, order_version: 3, film_count: 10 };
        assert!(encode_meta(&meta).starts_with(r#"{"v":9,"#));
        assert_eq!(decode_meta(Some(encode_meta(&meta).as_bytes())), Some(meta));
    }

    #[test]
    fn films_round_trip_and_garbage_is_a_corrupt_miss() {
        assert_eq!(decode_film(Some(encode_film(&film()).as_bytes())), FilmEntry::Film(Box::new(film())));
        assert_eq!(decode_film(Some(encode_gone(3).as_bytes())), FilmEntry::Gone);
        assert_eq!(decode_film(None), FilmEntry::Missing { corrupt: false });
        for junk in [&b"{not json"[..], b"[1,2]", b"42", b"{\"v\":1}", b""] {
            assert_eq!(decode_film(Some(junk)), FilmEntry::Missing { corrupt: true });
        }
    }

    #[test]
    fn pages_must_be_arrays_of_strings() {
        assert_eq!(decode_page(Some(br#"["a","b"]"#)), Some(Ok(vec!["a".into(), "b".into()])));
        assert_eq!(decode_page(Some(br#"{"a":1}"#)), Some(Err(())));
        assert_eq!(decode_page(Some(b"[1]")), Some(Err(())));
        assert_eq!(decode_page(None), None);
    }
}
