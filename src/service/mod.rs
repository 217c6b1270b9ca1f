//! The cached movie service: the one way pages and films are read and written. It composes the
//! cache and the repository; nothing else talks to either on a request's behalf.
//!
//! Reads: a warm listing is one GET (the page's slugs) and one MGET (the catalog stamp and the
//! films); a warm detail is one GET. Whatever is missing is read from the database in ONE query,
//! shared by concurrent requests, and written back by a deferred task after the response has been
//! built (`read_through`). Writes: the database first, then the film's key and the stamp are
//! refreshed before the answer; a page older than the stamp's order version is a miss, so an order
//! change costs the writer that one write, and the stale page keys are swept after the answer.

pub mod purge;
mod read_through;
mod relay;
mod search;

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, CacheError, CachedPage, CachedRelated, MovieEntry, WriteBatch};
use crate::db::{Backlog, Db, DbError, LIST_FIELDS, Stamp, Updated};
use crate::deferred::Deferred;
use crate::movies::{Movie, MovieList, MoviePatch, NewMovie, PageNumber, SearchQuery, Slug};
use crate::stats::{Outcome, Stats};
use read_through::{Loaded, Lookup, Read, ReadThrough};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("a film with slug {0:?} already exists")]
    SlugTaken(String),
    #[error("{0}")]
    NoFreeSlug(String),
    #[error("the database failed: {0}")]
    Db(Arc<DbError>),
    /// A shared database read panicked: a bug of ours, answered as a 500 to every request that
    /// waited for it (the read is not reused).
    #[error("a shared database read panicked")]
    Panicked,
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::SlugTaken(slug) => Self::SlugTaken(slug),
            e @ DbError::NoSlug { .. } => Self::NoFreeSlug(e.to_string()),
            other => Self::Db(Arc::new(other)),
        }
    }
}

impl From<crate::flights::Panicked> for ServiceError {
    fn from(_: crate::flights::Panicked) -> Self {
        Self::Panicked
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// One page of a list as shown.
#[derive(Debug, Clone)]
pub struct Listing {
    pub list: MovieList,
    pub page: PageNumber,
    pub movies: Vec<Movie>,
    /// Films in the whole list.
    pub total: i64,
    pub has_next: bool,
    /// Films per page.
    pub size: u32,
    /// Everything on it came from Redis in this request (no database read, shared or not).
    pub cached: bool,
}

impl Listing {
    /// How many films come before this page's first.
    pub fn offset(&self) -> u64 {
        self.page.offset(self.size)
    }
}

/// One page of search results.
#[derive(Debug, Clone)]
pub struct Found {
    pub query: SearchQuery,
    pub page: PageNumber,
    pub movies: Vec<Movie>,
    /// Films found in all.
    pub total: i64,
    pub has_next: bool,
    /// Films per page.
    pub size: u32,
    /// Everything on it came from Redis in this request.
    pub cached: bool,
}

impl Found {
    /// Films before this page.
    pub fn offset(&self) -> u64 {
        self.page.offset(self.size)
    }
}

/// A film's page: the film, and the films shown next to it.
#[derive(Debug, Clone)]
pub struct Detail {
    pub movie: Movie,
    /// More by its director, newest first.
    pub by_director: Vec<Movie>,
    /// More of its genre from its decade, most voted first.
    pub by_genre: Vec<Movie>,
    /// Everything on it came from Redis in this request (no database read, shared or not).
    pub cached: bool,
}

/// How many related films of each kind a film's page shows.
pub const RELATED: u32 = 6;

/// Which lists a write may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Changed {
    /// The listing's order (a date, a film created or deleted).
    order: bool,
    /// Any other list's members or order (implied by an order change).
    lists: bool,
}

impl Changed {
    const ORDER: Self = Self { order: true, lists: true };
}

/// What the readiness check reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub database: bool,
    pub cache: CacheHealth,
    /// What the cache has not learnt yet (`None`: no cache, or the database did not say).
    pub log: Option<Backlog>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHealth {
    /// `REDIS_URL=off`.
    Off,
    Up,
    Down,
}

/// Films read from the database with the catalog stamp they belong to, and the size of the list
/// they were read from (the catalog's, for films read by slug).
struct Rows {
    stamp: Stamp,
    total: i64,
    movies: Vec<Movie>,
}

#[derive(Clone)]
pub struct MovieService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    cache: Cache,
    deferred: Deferred,
    stats: Arc<Stats>,
    page_size: u32,
    pages: ReadThrough<(MovieList, u32), Rows>,
    /// Keyed by the slugs read, comma-joined.
    movies: ReadThrough<String, Rows>,
    /// Test hook (`MARQUEE_TEST_STALL_AFTER_COMMIT`): a write stops for good after its commit.
    #[cfg(feature = "test-hooks")]
    stall_after_commit: bool,
}

impl MovieService {
    pub fn new(db: Db, cache: Cache, deferred: Deferred, stats: Arc<Stats>, page_size: u32) -> Self {
        let pages = ReadThrough::new(cache.clone(), deferred.clone(), stats.clone());
        let movies = ReadThrough::new(cache.clone(), deferred.clone(), stats.clone());
        Self {
            inner: Arc::new(Inner {
                db,
                cache,
                deferred,
                stats,
                page_size,
                pages,
                movies,
                #[cfg(feature = "test-hooks")]
                stall_after_commit: std::env::var_os("MARQUEE_TEST_STALL_AFTER_COMMIT").is_some(),
            }),
        }
    }

    /// Listing page `page` (every film, newest first); `None` past the end.
    pub async fn page(&self, page: PageNumber) -> Result<Option<Listing>> {
        self.list_page(&MovieList::default(), page).await
    }

    /// Page `page` of `list`; `None` past the end (the first page of a list with no films is
    /// there, and empty).
    pub async fn list_page(&self, list: &MovieList, page: PageNumber) -> Result<Option<Listing>> {
        let look = || async move {
            let found = match self.inner.cache.page(list, page.get()).await {
                Ok(Some(cached)) => self.page_from_cache(list, page, cached).await?,
                _ => None,
            };
            Ok(found.map_or(Lookup::Miss(()), |listing| Lookup::Hit(Some(listing))))
        };
        let pick = |rows: &Rows| self.listing(list, page, rows.movies.clone(), rows.total, false);
        self.inner.pages.get(&(*list, page.get()), look, |()| self.load_page(*list, page), pick).await
    }

    /// The cache's token (see `Cache::token`): `None` without one, or without Redis.
    pub async fn token(&self) -> Option<u64> {
        self.inner.cache.token().await
    }

    /// The token this server knows, while its lease runs (no round trip; see `cache::lease`).
    pub fn leased_token(&self) -> Option<u64> {
        self.inner.cache.leased_token()
    }

    /// Holds this server's cache lease until the task is dropped (see `cache::lease`).
    pub fn hold_lease(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.cache.clone().hold_lease()
    }

    /// Gives up the lease (at shutdown), so that writers stop waiting for this server.
    pub async fn leave(&self) {
        self.inner.cache.leave().await;
    }

    /// One film; `None` when there is no film with that slug.
    pub async fn movie(&self, slug: &Slug) -> Result<Option<Movie>> {
        let look = || async move {
            Ok(match self.inner.cache.movie(slug.as_str()).await {
                Ok(MovieEntry::Movie(m)) => Lookup::Hit(Some(*m)),
                Ok(MovieEntry::Gone) => Lookup::Hit(None),
                Ok(MovieEntry::Missing) | Err(_) => Lookup::Miss(None),
                Ok(MovieEntry::Unreadable(seen)) => Lookup::Miss(seen),
            })
        };
        let load = |seen: Option<Vec<u8>>| self.load_movies(vec![(slug.to_string(), seen)]);
        self.inner.movies.get(&slug.to_string(), look, load, |rows| rows.movies.first().cloned()).await
    }

    /// A film and the films next to it. Warm: one MGET (the stamp, the film, its related slugs)
    /// and one MGET of the related films, no query. Related slugs older than the stamp's lists
    /// version (a film's director, genre or date changed since) are read again from the database,
    /// and written back after the response.
    pub async fn detail(&self, slug: &Slug) -> Result<Option<Detail>> {
        // a Redis that failed this request's first call is not asked again for it
        let (reachable, (stamp, entry, related)) = match self.inner.cache.detail(slug.as_str()).await {
            Ok(found) => (true, found),
            Err(_) => (false, (None, MovieEntry::Missing, None)),
        };
        let mut cached = matches!(entry, MovieEntry::Movie(_));
        let seen = match entry {
            MovieEntry::Movie(m) => Some(*m),
            MovieEntry::Gone => return Ok(None),
            // the film's own read: its GET tells a key of another type (which MGET reads as
            // missing) from a missing one
            _ if reachable => self.movie(slug).await?,
            _ => self.read_movies(vec![(slug.to_string(), None)]).await?.and_then(|read| read.movies.first().cloned()),
        };
        let Some(movie) = seen else { return Ok(None) };
        let current = related.filter(|r| stamp.is_some_and(|s| r.v >= s.list_version));
        let (director, genre) = match current {
            Some(r) => (r.d, r.g),
            None => {
                cached = false;
                let (stamp, read) = self.inner.db.related(&movie, RELATED).await?;
                if reachable {
                    let entry =
                        CachedRelated { v: stamp.list_version, d: read.director.clone(), g: read.genre.clone() };
                    let (cache, key) = (self.inner.cache.clone(), movie.slug.clone());
                    self.inner
                        .deferred
                        .defer(Box::pin(async move { Outcome::of(&cache.put_related(&key, &entry).await) }));
                }
                (read.director, read.genre)
            }
        };
        let wanted: Vec<String> = director.iter().chain(&genre).cloned().collect();
        let (films, all_cached) =
            if wanted.is_empty() { (Vec::new(), true) } else { self.films(&wanted, reachable).await? };
        let pick =
            |slugs: &[String]| slugs.iter().filter_map(|s| films.iter().find(|m| &m.slug == s).cloned()).collect();
        let cached = cached && all_cached;
        Ok(Some(Detail { by_director: pick(&director), by_genre: pick(&genre), movie, cached }))
    }

    /// Films by slug: one MGET (none when Redis already failed this request), and what is missing
    /// from one shared query (written back). The flag: all of them came from Redis.
    async fn films(&self, slugs: &[String], ask_redis: bool) -> Result<(Vec<Movie>, bool)> {
        let entries = match ask_redis {
            true => self.inner.cache.page_movies(slugs).await.map(|(_, entries)| entries).ok(),
            false => None,
        };
        let entries = entries.unwrap_or_else(|| slugs.iter().map(|_| MovieEntry::Missing).collect());
        let mut found = Vec::with_capacity(slugs.len());
        let mut wanted = Vec::new();
        for (slug, entry) in slugs.iter().zip(entries) {
            match entry {
                MovieEntry::Movie(m) => found.push(*m),
                MovieEntry::Gone => {}
                MovieEntry::Missing => wanted.push((slug.clone(), None)),
                MovieEntry::Unreadable(seen) => wanted.push((slug.clone(), seen)),
            }
        }
        let all_cached = wanted.is_empty();
        if !wanted.is_empty()
            && let Some(read) = self.read_movies(wanted).await?
        {
            found.extend(read.movies.iter().cloned());
        }
        Ok((found, all_cached))
    }

    /// Films missing from the cache (each with the unreadable bytes its entry held, if any), from
    /// one database read shared with concurrent requests for the same slugs, written back after
    /// the response.
    async fn read_movies(&self, wanted: Vec<(String, Option<Vec<u8>>)>) -> Result<Option<Arc<Read<Rows>>>> {
        let key = wanted.iter().map(|(slug, _)| slug.as_str()).collect::<Vec<_>>().join(",");
        // without a release count a read always runs
        self.inner.movies.load(&key, None, || self.load_movies(wanted)).await.transpose()
    }

    /// A page whose slugs came from the cache: the films from one MGET (with the stamp), what is
    /// missing from one query. `None` when the page is older than the stamp's order version (or
    /// the stamp is not there to tell) or the cache could not be read: the caller then reads the
    /// page from the database.
    async fn page_from_cache(&self, list: &MovieList, page: PageNumber, cached: CachedPage) -> Result<Option<Listing>> {
        let slugs = cached.slugs;
        let Ok((stamp, entries)) = self.inner.cache.page_movies(&slugs).await else {
            return Ok(None);
        };
        let Some(stamp) = stamp.filter(|s| cached.order_version >= s.version_of(list)) else {
            return Ok(None);
        };
        let total = if list.is_default() { Some(stamp.movie_count) } else { cached.total };
        let Some(total) = total else {
            return Ok(None);
        };
        let mut movies = Vec::with_capacity(entries.len());
        let mut wanted = Vec::new();
        for (slug, entry) in slugs.into_iter().zip(entries) {
            match entry {
                MovieEntry::Movie(m) => movies.push(Some(*m)),
                MovieEntry::Gone => movies.push(None),
                MovieEntry::Missing => {
                    movies.push(None);
                    wanted.push((movies.len() - 1, slug, None));
                }
                MovieEntry::Unreadable(seen) => {
                    movies.push(None);
                    wanted.push((movies.len() - 1, slug, seen));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(self.listing(list, page, movies.into_iter().flatten().collect(), total, true));
        }
        let asked = wanted.iter().map(|(_, slug, seen)| (slug.clone(), seen.clone())).collect();
        let Some(read) = self.read_movies(asked).await? else {
            return Ok(None);
        };
        for (at, slug, _) in &wanted {
            if let Some(slot) = movies.get_mut(*at) {
                *slot = read.movies.iter().find(|m| &m.slug == slug).cloned();
            }
        }
        // the listing's size is the catalog's, as the stamp of this read says
        let total = if list.is_default() { read.stamp.movie_count } else { total };
        Ok(self.listing(list, page, movies.into_iter().flatten().collect(), total, false))
    }

    fn listing(
        &self,
        list: &MovieList,
        page: PageNumber,
        movies: Vec<Movie>,
        total: i64,
        cached: bool,
    ) -> Option<Listing> {
        if movies.is_empty() && page != PageNumber::FIRST {
            return None;
        }
        let size = self.inner.page_size;
        let end = page.offset(size) + u64::from(size);
        let has_next = u64::try_from(total).is_ok_and(|t| t > end);
        Some(Listing { list: *list, page, movies, total, has_next, size, cached })
    }

    /// The database read of a page, and the write that stores its slugs, films and stamp.
    fn load_page(
        &self,
        list: MovieList,
        page: PageNumber,
    ) -> impl Future<Output = Result<Loaded<Rows>>> + Send + 'static {
        let (db, size) = (self.inner.db.clone(), self.inner.page_size);
        async move {
            let (stamp, total, movies) = db.list_page(&list, page, size).await?;
            let write = (!movies.is_empty()).then(|| {
                let mut batch = WriteBatch::default();
                let slugs: Vec<&str> = movies.iter().map(|m| m.slug.as_str()).collect();
                batch.page(&list, page.get(), &slugs, stamp.version_of(&list), total);
                for movie in &movies {
                    batch.movie(movie, None);
                }
                batch.stamp(stamp);
                batch
            });
            Ok(Loaded { value: Rows { stamp, total, movies }, write })
        }
    }

    /// The database read of some films (each with the unreadable bytes its cache entry held, if
    /// it held any), and the write that stores them, or remembers the slugs with no film as gone.
    fn load_movies(
        &self,
        wanted: Vec<(String, Option<Vec<u8>>)>,
    ) -> impl Future<Output = Result<Loaded<Rows>>> + Send + 'static {
        let db = self.inner.db.clone();
        async move {
            let slugs: Vec<&str> = wanted.iter().map(|(s, _)| s.as_str()).collect();
            let (stamp, movies) = db.movies(&slugs).await?;
            let mut batch = WriteBatch::default();
            for (slug, seen) in wanted {
                match movies.iter().find(|m| m.slug == slug) {
                    Some(movie) => batch.movie(movie, seen),
                    None => batch.gone(&slug, stamp.version),
                }
            }
            batch.stamp(stamp);
            let total = stamp.movie_count;
            Ok(Loaded { value: Rows { stamp, total, movies }, write: Some(batch) })
        }
    }

    pub async fn create(&self, new: NewMovie) -> Result<Movie> {
        let (movie, stamp) = self.inner.db.create(new).await?;
        let mut batch = WriteBatch::default();
        batch.movie(&movie, None);
        batch.stamp(stamp);
        self.after_write(batch, stamp.version, Changed::ORDER).await;
        Ok(movie)
    }

    /// `None` when there is no such film.
    pub async fn update(&self, slug: &Slug, patch: &MoviePatch) -> Result<Option<Updated>> {
        let Some(updated) = self.inner.db.update(slug, patch).await? else {
            return Ok(None);
        };
        if !updated.changed.is_empty() {
            let mut batch = WriteBatch::default();
            batch.movie(&updated.movie, None);
            batch.stamp(updated.stamp);
            let changed = Changed {
                order: updated.changed.contains(&"release_date"),
                lists: updated.changed.iter().any(|f| LIST_FIELDS.contains(f)),
            };
            self.after_write(batch, updated.stamp.version, changed).await;
        }
        Ok(Some(updated))
    }

    /// `false` when there was no such film.
    pub async fn delete(&self, slug: &Slug) -> Result<bool> {
        let Some(stamp) = self.inner.db.delete(slug).await? else {
            return Ok(false);
        };
        let mut batch = WriteBatch::default();
        batch.gone(slug.as_str(), stamp.version);
        batch.stamp(stamp);
        self.after_write(batch, stamp.version, Changed::ORDER).await;
        Ok(true)
    }

    /// After a database write (committed with its rows in the cache log): forget the reads it
    /// made stale and refresh the film and stamp keys before the writer gets its answer (the new
    /// stamp makes every older page a miss: one write, whatever the number of pages cached), then
    /// mark the write's log rows done; when the order changed, sweep the stale page keys after the
    /// answer. When Redis does not take it, the rows stay in the log and the relay of whichever
    /// server reaches Redis first applies them (see `relay`).
    async fn after_write(&self, batch: WriteBatch, version: i64, changed: Changed) {
        // page reads carry films too, so both kinds of read under way are stale now
        self.inner.movies.forget_all();
        self.inner.pages.forget_all();
        #[cfg(feature = "test-hooks")]
        if self.inner.stall_after_commit {
            // the test kills the process here: committed, logged, Redis not told
            std::future::pending::<()>().await;
        }
        if !self.inner.cache.is_enabled() {
            return;
        }
        match self.tell_cache(&batch, changed.lists).await {
            Ok(()) => {
                if let Err(e) = self.inner.db.applied(version).await {
                    tracing::warn!(version, error = %e, "cache log not marked done; its relay applies it again");
                }
                self.sweep(changed);
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "cache not refreshed after a write; the cache log's relay will");
            }
        }
    }

    /// Writes `batch`; when Redis answers but refuses it (out of memory, read-only), UNLINKs the
    /// keys it would have replaced (and the stamp when the order changed), so that reads go to
    /// the database instead of finding the older copy. Then waits until no server answers a page
    /// kept under the token before this write (see `cache::lease`). Err: the cache has not learnt
    /// it yet.
    async fn tell_cache(&self, batch: &WriteBatch, listing_changed: bool) -> Result<(), CacheError> {
        let cache = &self.inner.cache;
        let (written, token) = cache.apply(batch).await;
        if let Err(e) = &written
            && e.is_refusal()
        {
            match cache.remove(batch, listing_changed).await {
                Ok(()) => {
                    tracing::warn!(error = %e, "redis refused a newer copy; the older one was removed");
                    // the token's hash went with the keys, and the leases with it
                    cache.outlast_leases().await;
                    return written;
                }
                Err(e) => tracing::warn!(error = %e, "redis refused a newer copy and could not remove the older one"),
            }
        }
        if let Some(token) = token {
            cache.await_leases(&token).await;
        }
        written
    }

    /// Gives back the memory of the page keys a change made stale, after the writer's answer: the
    /// listing's when the order changed, the other lists' when any list may have: they are already
    /// misses, since the stamp written before the answer carries the new versions.
    fn sweep(&self, changed: Changed) {
        let cache = self.inner.cache.clone();
        if changed.order {
            let cache = cache.clone();
            self.inner.deferred.defer(Box::pin(async move { Outcome::of(&cache.drop_pages().await) }));
        }
        if changed.lists {
            self.inner.deferred.defer(Box::pin(async move { Outcome::of(&cache.drop_lists().await) }));
        }
    }

    /// Whether the database answers (within 2 s) and how the cache is.
    pub async fn health(&self) -> Health {
        let db = tokio::time::timeout(Duration::from_secs(2), self.inner.db.ping()).await;
        let cache = if !self.inner.cache.is_enabled() {
            CacheHealth::Off
        } else if self.inner.cache.ping().await.is_ok() {
            CacheHealth::Up
        } else {
            CacheHealth::Down
        };
        let database = matches!(db, Ok(Ok(())));
        let log = if database && cache != CacheHealth::Off {
            tokio::time::timeout(Duration::from_secs(2), self.inner.db.backlog()).await.ok().and_then(Result::ok)
        } else {
            None
        };
        Health { database, cache, log }
    }

    /// Whether there is a cache to keep (false with `REDIS_URL=off`).
    pub fn caches(&self) -> bool {
        self.inner.cache.is_enabled()
    }

    /// Closes the database pool (at shutdown, after the last request).
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    /// Test hook: reads panic while `on` (see `Db::panic_on_reads`).
    #[cfg(feature = "test-hooks")]
    pub fn panic_on_reads(&self, on: bool) {
        self.inner.db.panic_on_reads(on);
    }

    /// Test hook: every page sweep batch waits for a permit of `gate` between its SREM and its
    /// UNLINK (see `Cache::hold_sweeps`).
    #[cfg(feature = "test-hooks")]
    pub fn hold_sweeps(&self, gate: Option<Arc<tokio::sync::Semaphore>>) {
        self.inner.cache.hold_sweeps(gate);
    }

    /// Test hook: how many sweep batches have waited at the hold.
    #[cfg(feature = "test-hooks")]
    pub fn sweeps_held(&self) -> u64 {
        self.inner.cache.sweeps_held()
    }

    /// Test hook: holds every database read of pages and films after it returns, until the
    /// semaphore gives a permit, so a test can replay a read that fetched an old row and is
    /// written back after a newer write.
    #[cfg(feature = "test-hooks")]
    pub fn hold_reads(&self, gate: Option<Arc<tokio::sync::Semaphore>>) {
        self.inner.db.hold_reads(gate);
    }
}
