//! Search through the cache: a search's pages are cached like a list's, as slugs
//! (`movies:search:{words}:page:{n}`) with the films shared through their own keys, and are good
//! only at the catalog version they were read at: a search depends on titles, votes and which
//! films exist, so any write makes every cached search a miss (one write: the stamp). The
//! benchmark's query mix decided it (`--only search`): at a million films a query costs a median
//! of 140–160 ms, and the mix repeats itself often enough (31–79% of searches at 1–100 a second)
//! for the cache to save far more than the GET it costs a miss.

use super::{Found, MovieService, Result};
use crate::cache::{CachedPage, MovieEntry, WriteBatch};
use crate::movies::{PageNumber, SearchQuery};
use crate::stats::Outcome;

impl MovieService {
    /// Page `page` of the films whose titles match `query` (see `Db::search`): from the cache when
    /// it holds the page at the current catalog version and all its films, else from the
    /// database's full-text index (written back after the response). `None` past the end (the
    /// first page is there, perhaps empty).
    pub async fn search(&self, query: &SearchQuery, page: PageNumber) -> Result<Option<Found>> {
        // nothing to look for: neither Redis nor the database is asked
        if query.is_empty() {
            return Ok((page == PageNumber::FIRST).then(|| self.found(query, page, Vec::new(), 0, false)));
        }
        let key = query.key();
        if let Ok(Some(cached)) = self.inner.cache.search_page(&key, page.get()).await
            && let Some(found) = self.found_in_cache(query, page, cached).await
        {
            return Ok(Some(found));
        }
        let size = self.inner.page_size;
        let (stamp, total, movies) = self.inner.db.search(query, page, size).await?;
        if movies.is_empty() && page != PageNumber::FIRST {
            return Ok(None);
        }
        if self.inner.cache.is_enabled() {
            let mut batch = WriteBatch::default();
            let slugs: Vec<&str> = movies.iter().map(|m| m.slug.as_str()).collect();
            batch.search_page(&key, page.get(), &slugs, stamp.version, total);
            for movie in &movies {
                batch.movie(movie, None);
            }
            batch.stamp(stamp);
            let cache = self.inner.cache.clone();
            self.inner.deferred.defer(Box::pin(async move { Outcome::of(&cache.write(&batch).await) }));
        }
        Ok(Some(self.found(query, page, movies, total, false)))
    }

    /// The page from the cache: its films from one MGET with the stamp. `None` (read the database)
    /// when the page is older than the catalog, or a film is not there to show.
    async fn found_in_cache(&self, query: &SearchQuery, page: PageNumber, cached: CachedPage) -> Option<Found> {
        let (stamp, entries) = self.inner.cache.page_movies(&cached.slugs).await.ok()?;
        stamp.filter(|s| cached.order_version >= s.version)?;
        let total = cached.total?;
        let movies = entries
            .into_iter()
            .map(|entry| match entry {
                MovieEntry::Movie(m) => Some(*m),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        if movies.is_empty() && page != PageNumber::FIRST {
            return None;
        }
        Some(self.found(query, page, movies, total, true))
    }

    fn found(
        &self,
        query: &SearchQuery,
        page: PageNumber,
        movies: Vec<crate::movies::Movie>,
        total: i64,
        cached: bool,
    ) -> Found {
        let size = self.inner.page_size;
        let has_next = u64::try_from(total).is_ok_and(|t| t > page.offset(size) + u64::from(size));
        Found { query: query.clone(), page, movies, total, has_next, size, cached }
    }
}
