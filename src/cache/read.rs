//! Reads: a page of slugs (GET), the films it names with the catalog stamp (ONE MGET), a film's
//! page (ONE MGET), one film (GET). Whatever is missing, expired or unreadable comes back as a miss;
//! while Redis is not trusted (see `trust`), nothing is read. Trust is asked again once the answer
//! is in: a call that began trusted may have waited for a connection made again meanwhile (another
//! call lost the old one), to a Redis that restarted from an older snapshot.

use redis::Cmd;

use super::client::{Connection, is_wrong_type};
use super::entry::CachedPage;
use super::keys::PageOf;
use super::{Cache, CacheError, MovieEntry, entry};
use crate::db::Stamp;
use crate::stats::KeyKind;

/// What `Cache::list_page` read: the stamp, the page (`None`: nothing read for it), the list's first page.
pub type ListRead = (Option<Stamp>, Option<Option<CachedPage>>, Option<CachedPage>);

impl Cache {
    /// GET of a page of slugs. `Ok(None)` on a miss; a value that does not decode (or a key of
    /// another type) is a miss too. Whether the page is still current is for the caller to tell,
    /// from the stamp.
    pub async fn page(&self, of: &PageOf) -> Result<Option<CachedPage>, CacheError> {
        self.trusted()?;
        let key = self.inner.keys.page_of(of);
        let get = |mut c: Connection| async move { Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await };
        let raw = match self.inner.client.call(1, get).await {
            Ok(raw) => raw,
            Err(CacheError::Redis(e)) if is_wrong_type(&e) => Some(Vec::new()),
            Err(e) => return Err(e),
        };
        self.trusted()?;
        Ok(self.decoded_page(of, raw.as_deref()))
    }

    /// A page's value decoded, and counted as a hit or a miss of its kind.
    fn decoded_page(&self, of: &PageOf, raw: Option<&[u8]>) -> Option<CachedPage> {
        let decoded = entry::decode_page(raw);
        if matches!(decoded, Some(Err(()))) {
            self.inner.stats.corrupt_entries(1);
        }
        let kind = if matches!(of, PageOf::Related(_)) { KeyKind::Related } else { KeyKind::Page };
        let page = decoded.and_then(Result::ok);
        if page.is_some() {
            self.inner.stats.hits(kind, 1)
        } else {
            self.inner.stats.misses(kind, 1)
        }
        page
    }

    /// The films `slugs` name, in ONE MGET, after the catalog stamp when `with_stamp`; no round
    /// trip when that asks for nothing.
    pub async fn films(
        &self,
        slugs: &[String],
        with_stamp: bool,
    ) -> Result<(Option<Stamp>, Vec<MovieEntry>), CacheError> {
        if slugs.is_empty() && !with_stamp {
            return Ok((None, Vec::new()));
        }
        self.trusted()?;
        let keys = &self.inner.keys;
        let stamp = with_stamp.then(|| keys.stamp());
        let names: Vec<String> = stamp.into_iter().chain(slugs.iter().map(|s| keys.movie(s))).collect();
        let mget =
            |mut c: Connection| async move { Cmd::mget(names).query_async::<Vec<Option<Vec<u8>>>>(&mut c).await };
        let mut raw = self.inner.client.call(1, mget).await?.into_iter();
        self.trusted()?;
        let stamp = if with_stamp { raw.next().flatten().and_then(|m| entry::decode_stamp(Some(&m))) } else { None };
        let movies: Vec<MovieEntry> =
            raw.zip(slugs).map(|(r, slug)| self.inner.decoded.entry(slug, r.as_deref())).collect();
        self.tally(&movies);
        Ok((stamp, movies))
    }

    /// A list's page past its first, in ONE MGET with the stamp and the list's first page, which
    /// holds the list's size: what tells a page past the end without the database. The first page
    /// is not counted as a hit or a miss (it was not asked for). The page is `None` when MGET read
    /// nothing: MGET reads a key of another type as missing, and only the page's own GET (`page`)
    /// tells the two apart (a key of another type is a corrupt entry, counted and overwritten).
    pub async fn list_page(&self, of: &PageOf, first: &PageOf) -> Result<ListRead, CacheError> {
        self.trusted()?;
        let keys = &self.inner.keys;
        let names = [keys.stamp(), keys.page_of(of), keys.page_of(first)];
        let mget =
            |mut c: Connection| async move { Cmd::mget(&names).query_async::<Vec<Option<Vec<u8>>>>(&mut c).await };
        let mut raw = self.inner.client.call(1, mget).await?.into_iter();
        self.trusted()?;
        let stamp = raw.next().flatten().and_then(|m| entry::decode_stamp(Some(&m)));
        let page = raw.next().flatten().map(|bytes| self.decoded_page(of, Some(&bytes)));
        let first = entry::decode_page(raw.next().flatten().as_deref()).and_then(Result::ok);
        Ok((stamp, page, first))
    }

    /// A film's page in one MGET: the stamp, the film, and the page of its related films' slugs.
    pub async fn detail(&self, slug: &str) -> Result<(Option<Stamp>, MovieEntry, Option<CachedPage>), CacheError> {
        self.trusted()?;
        let keys = &self.inner.keys;
        let related = PageOf::Related(slug.to_owned());
        let names = [keys.stamp(), keys.movie(slug), keys.page_of(&related)];
        let mget =
            |mut c: Connection| async move { Cmd::mget(&names).query_async::<Vec<Option<Vec<u8>>>>(&mut c).await };
        let mut raw = self.inner.client.call(1, mget).await?.into_iter();
        self.trusted()?;
        let stamp = raw.next().flatten().and_then(|m| entry::decode_stamp(Some(&m)));
        let movie = self.inner.decoded.entry(slug, raw.next().flatten().as_deref());
        let page = self.decoded_page(&related, raw.next().flatten().as_deref());
        self.tally(std::slice::from_ref(&movie));
        Ok((stamp, movie, page))
    }

    /// GET of one film key (a key of another type reads as a corrupt entry, to be overwritten).
    pub async fn movie(&self, slug: &str) -> Result<MovieEntry, CacheError> {
        self.trusted()?;
        let key = self.inner.keys.movie(slug);
        let get = |mut c: Connection| async move { Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await };
        let entry = match self.inner.client.call(1, get).await {
            Ok(raw) => entry::decode_movie(raw.as_deref()),
            Err(CacheError::Redis(e)) if is_wrong_type(&e) => MovieEntry::Unreadable(None),
            Err(e) => return Err(e),
        };
        self.trusted()?;
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
