//! Reads: a page's slugs (GET), a page's films with the catalog stamp (ONE MGET), one film (GET).
//! Whatever is missing, expired or unreadable comes back as a miss.

use redis::Cmd;

use super::client::{Connection, is_wrong_type};
use super::entry::{CachedPage, CachedRelated};
use super::{Cache, CacheError, MovieEntry, entry};
use crate::db::Stamp;
use crate::movies::MovieList;
use crate::stats::KeyKind;

impl Cache {
    /// GET of one page key. `Ok(None)` on a miss; a value that does not decode (or a key of another
    /// type) is a miss too. Whether the page is still current is for the caller to tell, from the
    /// stamp the films' MGET brings.
    pub async fn page(&self, list: &MovieList, n: u32) -> Result<Option<CachedPage>, CacheError> {
        self.page_at(self.inner.keys.list_page(list, n)).await
    }

    /// GET of page `n` of the search `query` (its key): as `page`.
    pub async fn search_page(&self, query: &str, n: u32) -> Result<Option<CachedPage>, CacheError> {
        self.page_at(self.inner.keys.search_page(query, n)).await
    }

    async fn page_at(&self, key: String) -> Result<Option<CachedPage>, CacheError> {
        let get = |mut c: Connection| async move { Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await };
        let decoded = match self.inner.client.call(1, get).await {
            Ok(raw) => entry::decode_page(raw.as_deref()),
            Err(CacheError::Redis(e)) if is_wrong_type(&e) => Some(Err(())),
            Err(e) => return Err(e),
        };
        if matches!(decoded, Some(Err(()))) {
            self.inner.stats.corrupt_entries(1);
        }
        let stats = &self.inner.stats;
        if matches!(decoded, Some(Ok(_))) {
            stats.hits(KeyKind::Page, 1)
        } else {
            stats.misses(KeyKind::Page, 1)
        }
        Ok(decoded.and_then(Result::ok))
    }

    /// The films of a page, with the catalog stamp they are shown under: ONE MGET of the meta key
    /// and the films' keys.
    pub async fn page_movies(&self, slugs: &[String]) -> Result<(Option<Stamp>, Vec<MovieEntry>), CacheError> {
        let keys = &self.inner.keys;
        let names: Vec<String> = std::iter::once(keys.meta()).chain(slugs.iter().map(|s| keys.movie(s))).collect();
        let mget =
            |mut c: Connection| async move { Cmd::mget(names).query_async::<Vec<Option<Vec<u8>>>>(&mut c).await };
        let mut raw = self.inner.client.call(1, mget).await?.into_iter();
        let stamp = raw.next().flatten().and_then(|m| entry::decode_stamp(Some(&m)));
        let movies: Vec<MovieEntry> = raw.map(|r| entry::decode_movie(r.as_deref())).collect();
        self.tally(&movies);
        Ok((stamp, movies))
    }

    /// A film's page in one MGET: the stamp, the film, and its related films' slugs.
    pub async fn detail(&self, slug: &str) -> Result<(Option<Stamp>, MovieEntry, Option<CachedRelated>), CacheError> {
        let keys = &self.inner.keys;
        let names = [keys.meta(), keys.movie(slug), keys.related(slug)];
        let mget =
            |mut c: Connection| async move { Cmd::mget(&names).query_async::<Vec<Option<Vec<u8>>>>(&mut c).await };
        let mut raw = self.inner.client.call(1, mget).await?.into_iter();
        let stamp = raw.next().flatten().and_then(|m| entry::decode_stamp(Some(&m)));
        let movie = entry::decode_movie(raw.next().flatten().as_deref());
        let related = entry::decode_related(raw.next().flatten().as_deref());
        self.tally(std::slice::from_ref(&movie));
        let kind = KeyKind::Related;
        if related.is_some() {
            self.inner.stats.hits(kind, 1)
        } else {
            self.inner.stats.misses(kind, 1)
        }
        Ok((stamp, movie, related))
    }

    /// Stores a film's related films, with the page TTL. A plain SET: a copy read before a newer
    /// write carries an older version, which readers take for a miss.
    pub async fn put_related(&self, slug: &str, related: &CachedRelated) -> Result<(), CacheError> {
        let key = self.inner.keys.related(slug);
        let value = entry::encode_related(related);
        let ttl = super::batch::jitter(self.inner.config.page_ttl);
        let set = |mut c: Connection| async move { Cmd::set_ex(key, value, ttl).query_async::<()>(&mut c).await };
        self.inner.client.call(1, set).await
    }

    /// GET of one film key (a key of another type reads as a corrupt entry, to be overwritten).
    pub async fn movie(&self, slug: &str) -> Result<MovieEntry, CacheError> {
        let key = self.inner.keys.movie(slug);
        let get = |mut c: Connection| async move { Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await };
        let entry = match self.inner.client.call(1, get).await {
            Ok(raw) => entry::decode_movie(raw.as_deref()),
            Err(CacheError::Redis(e)) if is_wrong_type(&e) => MovieEntry::Unreadable(None),
            Err(e) => return Err(e),
        };
        self.tally(std::slice::from_ref(&entry));
        Ok(entry)
    }

    fn tally(&self, movies: &[MovieEntry]) {
        let corrupt = movies.iter().filter(|f| matches!(f, MovieEntry::Unreadable(_))).count() as u64;
        let misses = corrupt + movies.iter().filter(|f| matches!(f, MovieEntry::Missing)).count() as u64;
        self.inner.stats.corrupt_entries(corrupt);
        self.inner.stats.hits(KeyKind::Movie, movies.len() as u64 - misses);
        self.inner.stats.misses(KeyKind::Movie, misses);
    }
}
