//! The pages the site shows, each built on the one slug-page read (`read`): a list's page, a
//! search's page, a film with its related films.

use std::sync::Arc;

use super::read::{Known, Rows, SlugPage};
use super::{MovieService, Result};
use crate::cache::{CachedPage, MovieEntry, PageOf};
use crate::db::{Db, DbError, Stamp};
use crate::movies::{Movie, MovieList, PageNumber, SearchQuery, Slug};

/// One page of a list or of a search, as shown.
#[derive(Debug, Clone)]
pub struct Page<Q> {
    /// What chose its films: a `MovieList`, or a `SearchQuery`.
    pub of: Q,
    pub page: PageNumber,
    pub movies: Vec<Arc<Movie>>,
    /// Films in the whole list, or found in all.
    pub total: i64,
    pub has_next: bool,
    /// Films per page.
    pub size: u32,
    /// Everything on it came from Redis in this request (no database read, shared or not).
    pub cached: bool,
}

/// A page of a list.
pub type Listing = Page<MovieList>;
/// A page of search results.
pub type Found = Page<SearchQuery>;

impl<Q> Page<Q> {
    /// How many films come before this page's first.
    pub fn offset(&self) -> u64 {
        self.page.offset(self.size)
    }
}

/// A film's page: the film, and the films shown next to it.
#[derive(Debug, Clone)]
pub struct Detail {
    pub movie: Arc<Movie>,
    /// More by its director, newest first.
    pub by_director: Vec<Arc<Movie>>,
    /// More of its genre from its decade, most voted first.
    pub by_genre: Vec<Arc<Movie>>,
    /// Everything on it came from Redis in this request (no database read, shared or not).
    pub cached: bool,
}

/// How many films `list` has as of `stamp`, when Redis knows it at that version: the listing's is
/// the catalog's count, in the stamp itself; another list's is in its first page, when that page
/// was read at the stamp's version of it. A page past it is past the end, with no query.
fn list_length(list: &MovieList, stamp: &Stamp, first: Option<&CachedPage>) -> Option<u64> {
    let count = if list.is_default() {
        stamp.movie_count
    } else {
        first.filter(|p| p.version >= stamp.version_of(list))?.count?
    };
    u64::try_from(count).ok()
}

/// How many related films of each kind a film's page shows.
pub const RELATED: u32 = 6;

impl MovieService {
    /// Page `page` of `list`; `None` past the end (the first page of a list with no films is
    /// there, and empty).
    pub async fn list_page(&self, list: &MovieList, page: PageNumber) -> Result<Option<Listing>> {
        let (size, list) = (self.inner.page_size, *list);
        let of = PageOf::List(list, page.get());
        let mut known = None;
        if page != PageNumber::FIRST
            && let Ok((stamp, cached, first)) =
                self.inner.cache.list_page(&of, &PageOf::List(list, PageNumber::FIRST.get())).await
        {
            if stamp
                .and_then(|stamp| list_length(&list, &stamp, first.as_ref()))
                .is_some_and(|n| n <= page.offset(size))
            {
                return Ok(None);
            }
            // nothing read for the page itself: its own GET tells a missing key from a corrupt one
            known = cached.map(|page| Known { stamp, page });
        }
        let read = self.films_page(of, known, move |db| async move { db.list_page(&list, page, size).await }).await?;
        Ok(self.page(list, page, read))
    }

    /// Page `page` of the films whose titles match `query` (see `Db::search`); `None` past the end
    /// (the first page is there, perhaps empty). A search depends on titles, votes and which films
    /// exist, so its pages are good only at the catalog version they were read at.
    pub async fn search(&self, query: &SearchQuery, page: PageNumber) -> Result<Option<Found>> {
        // nothing to look for: neither Redis nor the database is asked
        if query.is_empty() {
            let none = SlugPage { slugs: Vec::new(), movies: Vec::new(), count: 0, cached: false };
            return Ok(self.page(query.clone(), page, none));
        }
        let (size, asked) = (self.inner.page_size, query.clone());
        let of = PageOf::Search(query.key(), page.get());
        let read = self
            .films_page(of, None, move |db| {
                let asked = asked.clone();
                async move { db.search(&asked, page, size).await }
            })
            .await?;
        Ok(self.page(query.clone(), page, read))
    }

    /// A page whose database read (`read`) gives its films, a list's or a search's, through the one
    /// slug-page read; `known`: what the caller already read of it from Redis.
    async fn films_page<F>(&self, of: PageOf, known: Option<Known>, read: impl Fn(Db) -> F) -> Result<SlugPage>
    where
        F: Future<Output = Result<(Stamp, i64, Vec<Movie>), DbError>> + Send + 'static,
    {
        let (db, hooks) = (self.inner.db.clone(), self.inner.hooks.clone());
        let load = || {
            let (reading, hooks, of) = (read(db.clone()), hooks.clone(), of.clone());
            async move {
                let (stamp, total, movies) = reading.await?;
                hooks.after_read().await;
                let slugs = movies.iter().map(|m| m.slug.clone()).collect();
                Ok(Rows::loaded(of, stamp, total, slugs, Some(movies.into_iter().map(Arc::new).collect())))
            }
        };
        self.slug_page(&of, known, true, load).await
    }

    /// The page as shown; `None` for a page past the end.
    fn page<Q>(&self, of: Q, page: PageNumber, read: SlugPage) -> Option<Page<Q>> {
        if read.movies.is_empty() && page != PageNumber::FIRST {
            return None;
        }
        let size = self.inner.page_size;
        let has_next = u64::try_from(read.count).is_ok_and(|t| t > page.offset(size) + u64::from(size));
        Some(Page { of, page, movies: read.movies, total: read.count, has_next, size, cached: read.cached })
    }

    /// A film and the films next to it. Warm: one MGET (the stamp, the film, its related films'
    /// page) and one MGET of the related films, no query.
    pub async fn detail(&self, slug: &Slug) -> Result<Option<Detail>> {
        // a Redis that failed this request's first call is not asked again for it
        let (redis, (stamp, entry, related)) = match self.inner.cache.detail(slug.as_str()).await {
            Ok(found) => (true, found),
            Err(_) => (false, (None, MovieEntry::Missing, None)),
        };
        let film_cached = matches!(entry, MovieEntry::Movie(_));
        let movie = match entry {
            MovieEntry::Movie(m) => Some(m),
            MovieEntry::Gone => return Ok(None),
            // the film's own read: its GET tells a key of another type (which MGET reads as
            // missing) from a missing one
            _ if redis => self.movie(slug).await?,
            _ => self.read_movies(vec![(slug.to_string(), None)]).await?.movies.first().cloned(),
        };
        let Some(movie) = movie else { return Ok(None) };
        tracing::trace!(title = %movie.title, from_redis = film_cached, "film page");
        let of = PageOf::Related(movie.slug.clone());
        let (db, hooks) = (self.inner.db.clone(), self.inner.hooks.clone());
        let load = || {
            let (db, hooks, of, film) = (db.clone(), hooks.clone(), of.clone(), movie.clone());
            async move {
                let (stamp, related) = db.related(&film, RELATED).await?;
                hooks.after_read().await;
                let by_director = i64::try_from(related.director.len()).unwrap_or(i64::MAX);
                let slugs = related.director.into_iter().chain(related.genre).collect();
                Ok(Rows::loaded(of, stamp, by_director, slugs, None))
            }
        };
        let read = self.slug_page(&of, Some(Known { stamp, page: related }), redis, load).await?;
        let split = usize::try_from(read.count).unwrap_or(0).min(read.slugs.len());
        let pick = |slugs: &[String]| -> Vec<Arc<Movie>> {
            slugs.iter().filter_map(|s| read.movies.iter().find(|m| &m.slug == s).cloned()).collect()
        };
        let (by_director, by_genre) = (pick(&read.slugs[..split]), pick(&read.slugs[split..]));
        Ok(Some(Detail { movie, by_director, by_genre, cached: film_cached && read.cached }))
    }
}
