//! Reads: ONE way to read a page of slugs — a list's page, a search's page, a film's related films —
//! and the films it names.
//!
//! Warm, a page is its key's GET and ONE MGET of the catalog stamp and its films, and no query. The
//! page is current when it was read at the stamp's version for its kind (`version_for`): older, it
//! is a miss. Films missing from the MGET are read in ONE query shared by concurrent requests; a
//! page that is a miss is read in ONE query shared by the concurrent requests that missed it. What
//! the database gave is written back after the response (see `coalesce`).

use std::sync::Arc;

use super::coalesce::{Got, Loaded, Ticket};
use super::{MovieService, Result};
use crate::cache::{CachedPage, MovieEntry, PageOf, WriteBatch};
use crate::db::Stamp;
use crate::movies::Movie;

/// A page of slugs as read, with the films they name.
pub(super) struct SlugPage {
    pub slugs: Vec<String>,
    /// The films, in the slugs' order; a slug whose film is no longer there is left out.
    pub movies: Vec<Arc<Movie>>,
    /// The page's count (see `CachedPage`): films in the whole list or search, or for a film's
    /// related films how many are by its director.
    pub count: i64,
    /// Everything on it came from Redis in this request (no database read, shared or not).
    pub cached: bool,
}

/// A page read from the database: its count, its slugs, and its films (`None` when only the
/// slugs were read).
pub(super) struct Rows {
    pub count: i64,
    pub slugs: Vec<String>,
    pub movies: Option<Vec<Arc<Movie>>>,
}

/// Films read by slug, with the stamp of the read.
pub(super) struct Films {
    pub stamp: Stamp,
    pub movies: Vec<Arc<Movie>>,
}

/// The version a page of `of` is read at: the listing's order version, the other lists' (and the
/// related films') lists version, or the catalog's version for a search, which any write changes.
fn version_for(of: &PageOf, stamp: &Stamp) -> i64 {
    match of {
        PageOf::List(list, _) => stamp.version_of(list),
        PageOf::Search(..) => stamp.version,
        PageOf::Related(_) => stamp.list_version,
    }
}

/// What a caller already read of a page in its own first round trip: the stamp and the page.
pub(super) struct Known {
    pub stamp: Option<Stamp>,
    pub page: Option<CachedPage>,
}

impl Rows {
    /// A page read at `stamp`, and the cache write that stores it, its films and the stamp. A page
    /// past the end is stored too, empty, with the list's count: asked again, it is answered as
    /// "past the end" from Redis instead of the database.
    pub fn loaded(
        of: PageOf,
        stamp: Stamp,
        count: i64,
        slugs: Vec<String>,
        movies: Option<Vec<Arc<Movie>>>,
    ) -> Loaded<Self> {
        let mut batch = WriteBatch::default();
        let named: Vec<&str> = slugs.iter().map(String::as_str).collect();
        let stored_count = match &of {
            PageOf::List(list, _) if list.is_default() => None,
            _ => Some(count),
        };
        batch.page(of.clone(), &named, version_for(&of, &stamp), stored_count);
        for movie in movies.iter().flatten() {
            batch.movie(movie, None);
        }
        batch.stamp(stamp);
        Loaded { value: Self { count, slugs, movies }, write: Some(batch) }
    }
}

impl MovieService {
    /// The page `of`: from Redis when it holds it current, else from `load`, one database read
    /// shared by the concurrent requests that missed it. `known`: what the caller read of it in its
    /// own first round trip (then Redis is asked only for the films). With `redis` false (its first
    /// call failed), Redis is asked nothing more.
    pub(super) async fn slug_page<F>(
        &self,
        of: &PageOf,
        mut known: Option<Known>,
        redis: bool,
        load: impl Fn() -> F,
    ) -> Result<SlugPage>
    where
        F: Future<Output = Result<Loaded<Rows>>> + Send + 'static,
    {
        let mut ticket = self.inner.pages.ticket();
        loop {
            let found = match known.take() {
                Some(Known { stamp, page: Some(page) }) if redis => self.cached_page(of, page, Some(stamp)).await?,
                Some(_) => None,
                None if redis => match self.inner.cache.page(of).await {
                    Ok(Some(page)) => self.cached_page(of, page, None).await?,
                    _ => None,
                },
                None => None,
            };
            if let Some(page) = found {
                return Ok(page);
            }
            match self.inner.pages.get_or_load(of, ticket, &load).await? {
                Got::Read(rows) => return self.loaded_page(&rows, redis).await,
                Got::LookAgain => ticket = ticket.always_read(),
            }
        }
    }

    /// The page a database read gave; when it read only the slugs, their films as `films` reads them.
    async fn loaded_page(&self, rows: &Rows, redis: bool) -> Result<SlugPage> {
        let movies = match &rows.movies {
            Some(movies) => movies.clone(),
            None => self.films(&rows.slugs, redis).await?.0,
        };
        Ok(SlugPage { slugs: rows.slugs.clone(), movies, count: rows.count, cached: false })
    }

    /// A page found in Redis, with its films from one MGET (after the stamp, unless `stamp` says
    /// what the caller read of it) and what is missing from one shared query. `None` when the page
    /// is older than the stamp (or there is no stamp to tell), or Redis could not be read.
    async fn cached_page(
        &self,
        of: &PageOf,
        page: CachedPage,
        stamp: Option<Option<Stamp>>,
    ) -> Result<Option<SlugPage>> {
        let read = match stamp {
            Some(stamp) => self.inner.cache.films(&page.slugs, false).await.map(|(_, films)| (stamp, films)),
            None => self.inner.cache.films(&page.slugs, true).await,
        };
        let Ok((Some(stamp), entries)) = read else { return Ok(None) };
        if page.version < version_for(of, &stamp) {
            return Ok(None);
        }
        let listing = matches!(of, PageOf::List(list, _) if list.is_default());
        let Some(mut count) = (if listing { Some(stamp.movie_count) } else { page.count }) else {
            return Ok(None);
        };
        let (movies, read) = self.complete(&page.slugs, entries).await?;
        if let Some(read) = &read
            && listing
        {
            // the listing's size is the catalog's, as the stamp of this read says
            count = read.stamp.movie_count;
        }
        Ok(Some(SlugPage { slugs: page.slugs, movies, count, cached: read.is_none() }))
    }

    /// The films `slugs` name: from one MGET (none when `redis` is false) and what is missing from
    /// one shared query. The flag: all of them came from Redis.
    pub(super) async fn films(&self, slugs: &[String], redis: bool) -> Result<(Vec<Arc<Movie>>, bool)> {
        let entries = match redis {
            true => self.inner.cache.films(slugs, false).await.map(|(_, entries)| entries).ok(),
            false => None,
        };
        let entries = entries.unwrap_or_else(|| slugs.iter().map(|_| MovieEntry::Missing).collect());
        let (movies, read) = self.complete(slugs, entries).await?;
        Ok((movies, read.is_none()))
    }

    /// The films of `slugs` from their cache entries, those missing read from the database in one
    /// query shared with concurrent requests for the same films (`Some` of it when it ran).
    async fn complete(
        &self,
        slugs: &[String],
        entries: Vec<MovieEntry>,
    ) -> Result<(Vec<Arc<Movie>>, Option<Arc<Films>>)> {
        let mut movies = Vec::with_capacity(slugs.len());
        let mut wanted = Vec::new();
        for (slug, entry) in slugs.iter().zip(entries) {
            match entry {
                MovieEntry::Movie(m) => movies.push(Some(m)),
                MovieEntry::Gone => movies.push(None),
                MovieEntry::Missing => {
                    movies.push(None);
                    wanted.push((slug.clone(), None));
                }
                MovieEntry::Unreadable(seen) => {
                    movies.push(None);
                    wanted.push((slug.clone(), seen));
                }
            }
        }
        if wanted.is_empty() {
            return Ok((movies.into_iter().flatten().collect(), None));
        }
        let read = self.read_movies(wanted).await?;
        for (slot, slug) in movies.iter_mut().zip(slugs) {
            if slot.is_none() {
                *slot = read.movies.iter().find(|m| &m.slug == slug).cloned();
            }
        }
        Ok((movies.into_iter().flatten().collect(), Some(read)))
    }

    /// Films missing from the cache (each with the unreadable bytes its entry held, if any), from
    /// one database read shared with concurrent requests for the same slugs, written back after
    /// the response (a "gone" marker for a slug with no film).
    pub(super) async fn read_movies(&self, wanted: Vec<(String, Option<Vec<u8>>)>) -> Result<Arc<Films>> {
        loop {
            if let Got::Read(read) = self.load_movies(&wanted, self.inner.films.ticket().always_read()).await? {
                return Ok(read);
            }
        }
    }

    /// `read_movies`, or `LookAgain` when a read of these films was released since `ticket`.
    async fn load_movies(&self, wanted: &[(String, Option<Vec<u8>>)], ticket: Ticket) -> Result<Got<Films>> {
        let key = wanted.iter().map(|(slug, _)| slug.as_str()).collect::<Vec<_>>().join(",");
        let (db, hooks, wanted) = (self.inner.db.clone(), self.inner.hooks.clone(), wanted.to_vec());
        let load = move || async move {
            let slugs: Vec<&str> = wanted.iter().map(|(s, _)| s.as_str()).collect();
            let (stamp, movies) = db.movies(&slugs).await?;
            hooks.after_read().await;
            let mut batch = WriteBatch::default();
            for (slug, seen) in wanted {
                match movies.iter().find(|m| m.slug == slug) {
                    Some(movie) => batch.movie(movie, seen),
                    None => batch.gone(&slug, stamp.version),
                }
            }
            batch.stamp(stamp);
            let movies = movies.into_iter().map(Arc::new).collect();
            Ok(Loaded { value: Films { stamp, movies }, write: Some(batch) })
        };
        self.inner.films.get_or_load(&key, ticket, load).await
    }

    /// One film; `None` when there is no film with that slug. Its key's GET, or one database read
    /// shared with concurrent requests for it.
    pub async fn movie(&self, slug: &crate::movies::Slug) -> Result<Option<Arc<Movie>>> {
        let mut ticket = self.inner.films.ticket();
        loop {
            let seen = match self.inner.cache.movie(slug.as_str()).await {
                Ok(MovieEntry::Movie(m)) => {
                    tracing::trace!(title = %m.title, "film from redis");
                    return Ok(Some(m));
                }
                Ok(MovieEntry::Gone) => return Ok(None),
                Ok(MovieEntry::Missing) | Err(_) => None,
                Ok(MovieEntry::Unreadable(seen)) => seen,
            };
            if let Got::Read(read) = self.load_movies(&[(slug.to_string(), seen)], ticket).await? {
                let title = read.movies.first().map(|m| m.title.as_str());
                tracing::trace!(title, version = read.stamp.version, "film from a database read");
                return Ok(read.movies.first().cloned());
            }
            ticket = ticket.always_read();
        }
    }
}
