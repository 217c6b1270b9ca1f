//! Films decoded once per copy. A warm page reads the same film copies from Redis request after
//! request, and decoding their JSON was a sixth of the CPU of a page rendered from Redis (a profile
//! of the benchmark's mix with `RENDERED_CACHE_KB=0`). A decoded film is reused only for the very
//! bytes it was decoded from (compared whole), so it is the film Redis holds, by construction: a new
//! version, an older copy brought back by a restart, anything written since, is other bytes, and is
//! decoded again. The film is shared, not copied: copying its strings for every card of every page
//! (and freeing them after) was a tenth of the same profile once decoding was gone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::MovieEntry;
use super::entry::decode_movie;
use crate::movies::Movie;

/// Films remembered at most (about 1 KB each: the copy's bytes and the decoded film); past it, all
/// are forgotten and the films read next are remembered again. 4,096 holds the embedded catalog
/// whole; in a larger one, the popular films come back first.
const FILMS: usize = 4096;

/// A film as remembered: the copy's bytes, and the film they decode to.
type Remembered = (Box<[u8]>, Arc<Movie>);

/// The films remembered, by slug.
#[derive(Default)]
pub struct Decoded {
    films: RwLock<HashMap<Box<str>, Remembered>>,
}

impl Decoded {
    /// `raw`, the copy of `slug`'s key, as `decode_movie` reads it.
    pub fn entry(&self, slug: &str, raw: Option<&[u8]>) -> MovieEntry {
        let Some(bytes) = raw else { return MovieEntry::Missing };
        if let Ok(films) = self.films.read()
            && let Some((seen, movie)) = films.get(slug)
            && **seen == *bytes
        {
            return MovieEntry::Movie(movie.clone());
        }
        let entry = decode_movie(Some(bytes));
        if let MovieEntry::Movie(movie) = &entry
            && movie.slug == slug
            && let Ok(mut films) = self.films.write()
        {
            if films.len() >= FILMS && !films.contains_key(slug) {
                films.clear();
            }
            films.insert(slug.into(), (bytes.into(), movie.clone()));
        }
        entry
    }

    /// Films remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.films.read().map_or(0, |films| films.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::encode_movie;
    use crate::movies::Date;

    fn film(title: &str, version: i64) -> Movie {
        Movie {
            version,
            slug: "heat-1995".into(),
            ..Movie::new(title.into(), Date::new(1995, 12, 15).unwrap_or_else(|| unreachable!()))
        }
    }

    #[test]
    fn a_film_is_what_its_bytes_say_whatever_was_read_before() {
        let decoded = Decoded::default();
        let (v1, v2) = (encode_movie(&film("Heat", 1)), encode_movie(&film("Heat (director's cut)", 2)));
        let first = decoded.entry("heat-1995", Some(v1.as_bytes()));
        assert_eq!(first, MovieEntry::Movie(Arc::new(film("Heat", 1))));
        // read again: the same film, from memory, shared
        let again = decoded.entry("heat-1995", Some(v1.as_bytes()));
        let (MovieEntry::Movie(a), MovieEntry::Movie(b)) = (&first, &again) else { unreachable!() };
        assert!(Arc::ptr_eq(a, b), "the film decoded before");
        assert_eq!(decoded.len(), 1);
        // a new copy is decoded, and an older one brought back after it too
        let newer = MovieEntry::Movie(Arc::new(film("Heat (director's cut)", 2)));
        assert_eq!(decoded.entry("heat-1995", Some(v2.as_bytes())), newer);
        assert_eq!(decoded.entry("heat-1995", Some(v1.as_bytes())), MovieEntry::Movie(Arc::new(film("Heat", 1))));
        assert_eq!(decoded.entry("heat-1995", None), MovieEntry::Missing);
        assert_eq!(decoded.entry("heat-1995", Some(b"{junk")), MovieEntry::Unreadable(Some(b"{junk".to_vec())));
    }

    #[test]
    fn a_copy_under_another_films_key_is_not_remembered_for_it() {
        let decoded = Decoded::default();
        let copy = encode_movie(&film("Heat", 1));
        assert!(matches!(decoded.entry("ronin-1998", Some(copy.as_bytes())), MovieEntry::Movie(_)));
        assert_eq!(decoded.len(), 0);
    }

    #[test]
    fn at_most_so_many_films_are_remembered() {
        let decoded = Decoded::default();
        for n in 0..FILMS + 10 {
            let slug = format!("film-{n}");
            let copy = encode_movie(&Movie { slug: slug.clone(), ..film("Heat", 1) });
            assert!(matches!(decoded.entry(&slug, Some(copy.as_bytes())), MovieEntry::Movie(_)));
            assert!(decoded.len() <= FILMS);
        }
    }
}
