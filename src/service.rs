//! The cached movie service: the one way pages and films are read and written. It composes the
//! cache and the repository; nothing else talks to either on a request's behalf.
//!
//! Reads: a warm listing is one GET (the page's slugs) and one MGET (the meta key and the films);
//! a warm detail is one GET. Whatever is missing is read from the database in ONE query, shared by
//! concurrent requests, and written back by a deferred task after the response has been built.
//! Writes: the database first, then the film's key and the meta key are refreshed and, when the
//! listing order may have changed, the page keys are swept.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cache::{Cache, FilmEntry, WriteBatch};
use crate::db::{Db, DbError, Meta, Updated};
use crate::deferred::Deferred;
use crate::flights::{Flights, Role};
use crate::movies::{Movie, MoviePatch, NewMovie, PageNumber, Slug};
use crate::stats::{Outcome, Stats};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("a film with slug {0:?} already exists")]
    SlugTaken(String),
    #[error("the database failed: {0}")]
    Db(Arc<DbError>),
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::SlugTaken(slug) => Self::SlugTaken(slug),
            other => Self::Db(Arc::new(other)),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// How long a shared read's write-back waits for a request to take it before it is written anyway.
const UNCLAIMED_AFTER: Duration = Duration::from_millis(250);

/// One listing page as shown.
#[derive(Debug, Clone)]
pub struct Listing {
    pub page: PageNumber,
    pub films: Vec<Movie>,
    pub total: i64,
    pub has_next: bool,
}

/// A database read of one page, shared by the requests that missed it.
struct PageRead {
    meta: Meta,
    films: Vec<Movie>,
    write_back: Handoff,
}

/// A database read of some films (with the meta), shared likewise.
struct FilmsRead {
    meta: Meta,
    films: Vec<Movie>,
    write_back: Handoff,
}

/// A shared read's cache write and the flight it releases, taken by the first request that gets
/// the result: queued on that request, so it runs once its response is built.
type Handoff = std::sync::Mutex<Option<(WriteBatch, u64)>>;

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
    pages: Flights<u32, PageRead, ServiceError>,
    films: Flights<String, FilmsRead, ServiceError>,
    /// Test hook: when set, every database read waits here before its result is used.
    read_gate: RwLock<Option<Arc<tokio::sync::Semaphore>>>,
}

impl MovieService {
    pub fn new(db: Db, cache: Cache, deferred: Deferred, stats: Arc<Stats>, page_size: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                cache,
                deferred,
                stats,
                page_size,
                pages: Flights::default(),
                films: Flights::default(),
                read_gate: RwLock::new(None),
            }),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn deferred(&self) -> &Deferred {
        &self.inner.deferred
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// Holds every database read after it returns, until the semaphore gives a permit: lets a test
    /// replay a read that fetched an old row and is written back after a newer write.
    #[doc(hidden)]
    pub fn hold_reads(&self, gate: Option<Arc<tokio::sync::Semaphore>>) {
        if let Ok(mut g) = self.inner.read_gate.write() {
            *g = gate;
        }
    }

    /// Listing page `page`; `None` past the end.
    pub async fn page(&self, page: PageNumber) -> Result<Option<Listing>> {
        let mut seen = Some(self.inner.pages.epoch());
        loop {
            if let Ok(Some(slugs)) = self.inner.cache.page(page.get()).await
                && let Some(listing) = self.page_from_slugs(page, slugs).await?
            {
                return Ok(Some(listing));
            }
            match self.read_page(page, seen).await {
                Some(read) => return read,
                // a read of this page finished while we looked: its result is in the cache now
                None => seen = None,
            }
        }
    }

    /// The page from the database, shared with concurrent requests for it, written back after
    /// the response. `None` as `Flights::run` says.
    async fn read_page(&self, page: PageNumber, seen: Option<u64>) -> Option<Result<Option<Listing>>> {
        let n = page.get();
        let this = self.clone();
        let (read, role) = self
            .inner
            .pages
            .run(&n, seen, |id| async move {
                let (meta, films) = this.inner.db.page(page, this.inner.page_size).await?;
                this.gate().await;
                let mut write_back = None;
                if !films.is_empty() {
                    let mut batch = WriteBatch::default();
                    let slugs: Vec<&str> = films.iter().map(|f| f.slug.as_str()).collect();
                    batch.page(n, &slugs, meta.order_version);
                    for film in &films {
                        batch.film(film, false);
                    }
                    batch.meta(meta);
                    write_back = Some((batch, id));
                } else {
                    this.inner.pages.release(&n, id);
                }
                let read = Arc::new(PageRead { meta, films, write_back: Handoff::new(write_back) });
                let pages = this.clone();
                this.unclaimed(read.clone(), |r| &r.write_back, move |id| pages.inner.pages.release(&n, id));
                Ok(read)
            })
            .await?;
        if role == Role::Follower {
            self.inner.stats.coalesced_wait();
        }
        if let Ok(read) = &read
            && let Some((batch, id)) = read.write_back.lock().ok().and_then(|mut w| w.take())
        {
            let pages = self.clone();
            self.write_back(batch, move || pages.inner.pages.release(&n, id));
        }
        Some(read.map(|read| self.listing(page, read.films.clone(), read.meta.film_count)))
    }

    /// A page whose slugs came from the cache: the films from one MGET, what is missing from one
    /// query. `None` when the cache could not be read, so the caller falls back to the database.
    async fn page_from_slugs(&self, page: PageNumber, slugs: Vec<String>) -> Result<Option<Listing>> {
        let Ok((meta, entries)) = self.inner.cache.films(&slugs, true).await else {
            return Ok(None);
        };
        let missing: Vec<(usize, bool)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                FilmEntry::Missing { corrupt } => Some((i, *corrupt)),
                _ => None,
            })
            .collect();
        let mut films: Vec<Option<Movie>> = entries
            .into_iter()
            .map(|e| match e {
                FilmEntry::Film(m) => Some(*m),
                _ => None,
            })
            .collect();
        let total = match meta {
            Some(meta) if missing.is_empty() => meta.film_count,
            _ => {
                let wanted: Vec<(String, bool)> =
                    missing.iter().filter_map(|&(i, corrupt)| slugs.get(i).map(|s| (s.clone(), corrupt))).collect();
                // (without `seen`, a flight always runs; `None` would only send us to the page read)
                let Some(read) = self.fetch_films(wanted, None).await else {
                    return Ok(None);
                };
                let read = read?;
                for (i, _) in &missing {
                    if let (Some(slot), Some(slug)) = (films.get_mut(*i), slugs.get(*i)) {
                        *slot = read.films.iter().find(|f| &f.slug == slug).cloned();
                    }
                }
                read.meta.film_count
            }
        };
        Ok(self.listing(page, films.into_iter().flatten().collect(), total))
    }

    fn listing(&self, page: PageNumber, films: Vec<Movie>, total: i64) -> Option<Listing> {
        if films.is_empty() {
            return None;
        }
        let end = page.offset(self.inner.page_size) + u64::from(self.inner.page_size);
        let has_next = u64::try_from(total).is_ok_and(|t| t > end);
        Some(Listing { page, films, total, has_next })
    }

    /// Films by slug from the database in one query, shared with concurrent requests for the same
    /// slugs; found films are written back, missing ones remembered as gone.
    async fn fetch_films(&self, wanted: Vec<(String, bool)>, seen: Option<u64>) -> Option<Result<Arc<FilmsRead>>> {
        let key = wanted.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(",");
        let this = self.clone();
        let flight_key = key.clone();
        let unclaimed_key = key.clone();
        let (read, role) = self
            .inner
            .films
            .run(&key, seen, |id| async move {
                let slugs: Vec<&str> = wanted.iter().map(|(s, _)| s.as_str()).collect();
                let (meta, films) = this.inner.db.movies(&slugs).await?;
                this.gate().await;
                let mut batch = WriteBatch::default();
                for (slug, corrupt) in &wanted {
                    match films.iter().find(|f| &f.slug == slug) {
                        Some(film) => batch.film(film, *corrupt),
                        None => batch.gone(slug, meta.version),
                    }
                }
                batch.meta(meta);
                let read = Arc::new(FilmsRead { meta, films, write_back: Handoff::new(Some((batch, id))) });
                let flights = this.clone();
                this.unclaimed(
                    read.clone(),
                    |r| &r.write_back,
                    move |id| flights.inner.films.release(&unclaimed_key, id),
                );
                Ok(read)
            })
            .await?;
        if role == Role::Follower {
            self.inner.stats.coalesced_wait();
        }
        if let Ok(read) = &read
            && let Some((batch, id)) = read.write_back.lock().ok().and_then(|mut w| w.take())
        {
            let flights = self.clone();
            self.write_back(batch, move || flights.inner.films.release(&flight_key, id));
        }
        Some(read)
    }

    /// One film; `None` when there is no film with that slug.
    pub async fn movie(&self, slug: &Slug) -> Result<Option<Movie>> {
        let mut seen = Some(self.inner.films.epoch());
        loop {
            let corrupt = match self.inner.cache.film(slug.as_str()).await {
                Ok(FilmEntry::Film(m)) => return Ok(Some(*m)),
                Ok(FilmEntry::Gone) => return Ok(None),
                Ok(FilmEntry::Missing { corrupt }) => corrupt,
                Err(_) => false,
            };
            match self.fetch_films(vec![(slug.to_string(), corrupt)], seen).await {
                Some(read) => return Ok(read?.films.first().cloned()),
                None => seen = None,
            }
        }
    }

    /// A read whose requests have all gone (clients hung up) leaves its write-back unclaimed:
    /// after a moment, write it anyway, so the read still reaches the cache.
    fn unclaimed<R: Send + Sync + 'static>(
        &self,
        read: Arc<R>,
        handoff: fn(&R) -> &Handoff,
        release: impl FnOnce(u64) + Send + 'static,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(UNCLAIMED_AFTER).await;
            if let Some((batch, id)) = handoff(&read).lock().ok().and_then(|mut w| w.take()) {
                this.write_back(batch, move || release(id));
            }
        });
    }

    /// Queues a cache write for after the response; `done` runs once it has been tried.
    fn write_back(&self, batch: WriteBatch, done: impl FnOnce() + Send + 'static) {
        let cache = self.inner.cache.clone();
        self.inner.deferred.defer(Box::pin(async move {
            let outcome = Outcome::of(&cache.write(batch).await);
            done();
            outcome
        }));
    }

    async fn gate(&self) {
        let gate = self.inner.read_gate.read().ok().and_then(|g| g.clone());
        if let Some(gate) = gate {
            let _ = gate.acquire().await.map(|p| p.forget());
        }
    }

    pub async fn create(&self, new: NewMovie) -> Result<Movie> {
        let (movie, meta) = self.inner.db.create(new).await?;
        let mut batch = WriteBatch::default();
        batch.film(&movie, false);
        batch.meta(meta);
        self.after_write(&movie.slug, batch, true).await;
        Ok(movie)
    }

    /// `None` when there is no such film.
    pub async fn update(&self, slug: &Slug, patch: &MoviePatch) -> Result<Option<Updated>> {
        let Some(updated) = self.inner.db.update(slug, patch).await? else {
            return Ok(None);
        };
        if !updated.changed.is_empty() {
            let mut batch = WriteBatch::default();
            batch.film(&updated.movie, false);
            batch.meta(updated.meta);
            self.after_write(slug.as_str(), batch, updated.changed.contains(&"release_date")).await;
        }
        Ok(Some(updated))
    }

    /// `false` when there was no such film.
    pub async fn delete(&self, slug: &Slug) -> Result<bool> {
        let Some(meta) = self.inner.db.delete(slug).await? else {
            return Ok(false);
        };
        let mut batch = WriteBatch::default();
        batch.gone(slug.as_str(), meta.version);
        batch.meta(meta);
        self.after_write(slug.as_str(), batch, true).await;
        Ok(true)
    }

    /// After a database write: forget the reads it made stale, refresh the film and meta keys and,
    /// when the listing changed, sweep the page keys, all before the writer gets its answer. When
    /// Redis does not take it, a background task keeps trying for a while.
    async fn after_write(&self, slug: &str, batch: WriteBatch, listing_changed: bool) {
        // page reads carry films too, so both kinds of read under way are stale now
        self.inner.films.forget_all();
        self.inner.pages.forget_all();
        if !self.inner.cache.is_enabled() {
            return;
        }
        let slug = slug.to_owned();
        if apply(&self.inner.cache, &batch, listing_changed).await {
            return;
        }
        tracing::warn!(slug, "cache not refreshed after a write; retrying in the background");
        let cache = self.inner.cache.clone();
        self.inner.deferred.defer(Box::pin(async move {
            for _ in 0..60 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if apply(&cache, &batch, listing_changed).await {
                    return Outcome::Written;
                }
            }
            tracing::error!(slug, "cache could not be refreshed after a write");
            Outcome::Failed
        }));
    }
}

async fn apply(cache: &Cache, batch: &WriteBatch, listing_changed: bool) -> bool {
    if cache.write(batch.clone()).await.is_err() {
        return false;
    }
    !listing_changed || cache.drop_pages().await.is_ok()
}
