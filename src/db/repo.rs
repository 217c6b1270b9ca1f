//! The repository: every query marquee runs. Reads return the catalog's `Stamp` from the same
//! statement, so a caller knows which version of the catalog its rows belong to.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::anchors::{self, Set};
use super::rows::{self, COLUMNS, LIST_FIELDS};
use super::{Db, DbError, Result};
use crate::movies::{Movie, MovieList, MoviePatch, NewMovie, PageNumber, Slug, movie_slug};

/// The catalog row: `version` grows with every write, `order_version` whenever the listing order
/// may have changed, `list_version` whenever any other list (a genre, a decade, a rating, a sort)
/// may have changed, `movie_count` is the number of films.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    pub version: i64,
    pub order_version: i64,
    pub list_version: i64,
    pub movie_count: i64,
}

impl Stamp {
    /// The version pages of `list` are read at: the listing's order version, or the lists'.
    pub fn version_of(&self, list: &MovieList) -> i64 {
        if list.is_default() { self.order_version } else { self.list_version }
    }
}

/// What an update did.
#[derive(Debug, Clone)]
pub struct Updated {
    pub movie: Movie,
    /// The fields whose value changed; empty when the patch changed nothing (and nothing was written).
    pub changed: Vec<&'static str>,
    pub stamp: Stamp,
}

pub(super) const STAMP: &str = "c.version as c_version, c.order_version as c_order_version, \
     c.list_version as c_list_version, c.movie_count as c_movie_count";
const RETURNING: &str = "returning version as c_version, order_version as c_order_version, \
     list_version as c_list_version, movie_count as c_movie_count";
const ORDER: &str = "order by release_date desc, slug";

pub(super) fn stamp(row: &AnyRow) -> Result<Stamp> {
    Ok(Stamp {
        version: row.try_get("c_version")?,
        order_version: row.try_get("c_order_version")?,
        list_version: row.try_get("c_list_version")?,
        movie_count: row.try_get("c_movie_count")?,
    })
}

/// Splits a `catalog left join movies` result into its stamp and its films.
pub(super) fn stamp_and_movies(rows: &[AnyRow]) -> Result<(Stamp, Vec<Movie>)> {
    let stamp = rows.first().map(stamp).transpose()?.unwrap_or_default();
    let movies = rows.iter().map(rows::movie).filter_map(Result::transpose).collect::<Result<_, _>>()?;
    Ok((stamp, movies))
}

impl Db {
    /// Page `page` of the listing, `size` films, newest release first.
    pub async fn page(&self, page: PageNumber, size: u32) -> Result<(Stamp, Vec<Movie>)> {
        self.listing_page(page, size).await
    }

    /// Page `page` of `list`: the stamp, the number of films in the whole list, and the page's films.
    pub async fn list_page(&self, list: &MovieList, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        if list.is_default() {
            let (stamp, movies) = self.page(page, size).await?;
            return Ok((stamp, stamp.movie_count, movies));
        }
        self.filtered_page(list, page, size).await
    }

    /// A list other than the listing: its filters and sort in one statement, with the list's size
    /// counted by a window over the same filter. Films without the sort's value come last, ties in
    /// slug order.
    async fn filtered_page(&self, list: &MovieList, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        let mut filters = Vec::new();
        let mut values: Vec<String> = Vec::new();
        if let Some((_, name)) = list.genre() {
            values.push(name.to_owned());
            filters.push(format!("genre = ${}", values.len() + 2));
        }
        if let Some((from, to)) = list.decade_bounds() {
            filters.push(format!("release_date >= ${} and release_date < ${}", values.len() + 3, values.len() + 4));
            values.extend([from, to]);
        }
        if let Some((_, rating)) = list.rating() {
            values.push(rating.to_owned());
            filters.push(format!("mpaa_rating = ${}", values.len() + 2));
        }
        let filter = if filters.is_empty() { String::new() } else { format!("where {}", filters.join(" and ")) };
        let order = |alias: &str| format!("{alias}{} desc nulls last, {alias}slug", list.sort.column());
        let sql = format!(
            "select {STAMP}, f.total as f_total, {cols} from catalog c left join \
             (select {COLUMNS}, count(*) over () as total from movies {filter} order by {inner} limit $1 offset $2) f \
             on 1 = 1 order by {outer}",
            cols = rows::columns_of("f"),
            inner = order(""),
            outer = order("f."),
        );
        let offset = i64::try_from(page.offset(size)).unwrap_or(i64::MAX);
        let mut q = sqlx::query(&sql).bind(i64::from(size)).bind(offset);
        for v in &values {
            q = q.bind(v.as_str());
        }
        self.counted();
        let rows = q.fetch_all(&self.pool).await?;
        let total: Option<i64> = rows.first().map(|r| r.try_get("f_total")).transpose()?.flatten();
        let (stamp, movies) = stamp_and_movies(&rows)?;
        Ok((stamp, total.unwrap_or(0), movies))
    }

    async fn listing_page(&self, page: PageNumber, size: u32) -> Result<(Stamp, Vec<Movie>)> {
        let offset = page.offset(size);
        if offset < anchors::STEP {
            return self.page_at(None, offset, size).await;
        }
        let mut set = match self.anchors.get() {
            Some(set) => set,
            None => self.rebuild_anchors(None).await?,
        };
        // The anchors are rebuilt at most once per read: when the order moves again while the
        // page is read (a flood of writes), the plain offset query answers, which needs none.
        for attempt in 0..2 {
            let read = match set.locate(offset) {
                Some((key, skip)) => self.page_at(Some(key), skip, size).await?,
                // fewer films than one step: the page is past the end, or within the first step
                None => self.page_at(None, offset, size).await?,
            };
            if read.0.order_version == set.order_version {
                return Ok(read);
            }
            if attempt == 0 {
                set = self.rebuild_anchors(Some(set.order_version)).await?;
            }
        }
        self.page_at(None, offset, size).await
    }

    async fn page_at(&self, anchor: Option<&(String, String)>, skip: u64, size: u32) -> Result<(Stamp, Vec<Movie>)> {
        let filter =
            if anchor.is_some() { "where release_date <= $3 and (release_date < $3 or slug >= $4)" } else { "" };
        let sql = format!(
            "select {STAMP}, {cols} from catalog c left join \
             (select {COLUMNS} from movies {filter} {ORDER} limit $1 offset $2) f on 1 = 1 \
             order by f.release_date desc, f.slug",
            cols = rows::columns_of("f"),
        );
        let mut q = sqlx::query(&sql).bind(i64::from(size)).bind(i64::try_from(skip).unwrap_or(i64::MAX));
        if let Some((date, slug)) = anchor {
            q = q.bind(date.as_str()).bind(slug.as_str());
        }
        self.counted();
        let rows = q.fetch_all(&self.pool).await?;
        self.reorder_if_asked().await?;
        stamp_and_movies(&rows)
    }

    /// Builds the anchors anew, unless another task already did while we waited for the lock.
    async fn rebuild_anchors(&self, stale: Option<i64>) -> Result<std::sync::Arc<Set>> {
        let _guard = self.anchors.rebuild.lock().await;
        if let Some(set) = self.anchors.get().filter(|s| Some(s.order_version) != stale) {
            return Ok(set);
        }
        let sql = format!(
            "select c.order_version as c_order_version, w.release_date, w.slug from catalog c left join \
             (select release_date, slug, rn from \
               (select release_date, slug, row_number() over ({ORDER}) as rn from movies) n \
              where (rn - 1) % {step} = 0) w on 1 = 1 \
             order by w.rn",
            step = anchors::STEP,
        );
        self.counted();
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let mut set = Set { order_version: 0, keys: Vec::with_capacity(rows.len()) };
        for row in &rows {
            set.order_version = row.try_get("c_order_version")?;
            let date: Option<String> = row.try_get("release_date")?;
            let slug: Option<String> = row.try_get("slug")?;
            if let (Some(date), Some(slug)) = (date, slug) {
                set.keys.push((date, slug));
            }
        }
        self.anchors.set(set);
        self.anchors.get().ok_or_else(|| DbError::Sqlx(sqlx::Error::PoolClosed))
    }

    /// Many films in ONE query, in the order asked; slugs with no film are left out.
    pub async fn movies(&self, slugs: &[&str]) -> Result<(Stamp, Vec<Movie>)> {
        let sql = if slugs.is_empty() {
            format!("select {STAMP}, {} from catalog c left join movies f on 1 = 0", rows::columns_of("f"))
        } else {
            format!(
                "select {STAMP}, {} from catalog c left join movies f on f.slug in ({})",
                rows::columns_of("f"),
                rows::list(1, slugs.len())
            )
        };
        let mut q = sqlx::query(&sql);
        for slug in slugs {
            q = q.bind(*slug);
        }
        self.counted();
        let rows = q.fetch_all(&self.pool).await?;
        let (stamp, movies) = stamp_and_movies(&rows)?;
        let mut by_slug: HashMap<String, Movie> = movies.into_iter().map(|m| (m.slug.clone(), m)).collect();
        Ok((stamp, slugs.iter().filter_map(|s| by_slug.remove(*s)).collect()))
    }

    /// Up to `limit` slugs after `after` (`""`: from the first), in slug order: every film in
    /// batches, each read from the slug's index where the last one ended, so a million films are
    /// never held at once.
    pub async fn slugs_after(&self, after: &str, limit: u32) -> Result<Vec<String>> {
        self.counted();
        let rows = sqlx::query("select slug from movies where slug > $1 order by slug limit $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.try_get("slug")).collect::<Result<_, _>>()?)
    }

    /// The number of films.
    pub async fn count(&self) -> Result<i64> {
        Ok(self.stamp().await?.movie_count)
    }

    pub async fn stamp(&self) -> Result<Stamp> {
        self.counted();
        let row = sqlx::query(&format!("select {STAMP} from catalog c")).fetch_one(&self.pool).await?;
        stamp(&row)
    }

    /// Creates a film. Its slug is the one asked for (refused when taken) or one derived from its
    /// title and year (`-2`, `-3`, … when taken).
    pub async fn create(&self, new: NewMovie) -> Result<(Movie, Stamp)> {
        let mut tx = self.pool.begin().await?;
        let stamp = self.bump(&mut tx, 1, 1).await?;
        let mut movie = new.movie;
        movie.version = stamp.version;
        let candidates: Vec<String> = match &new.slug {
            Some(slug) => vec![slug.to_string()],
            None => (1..100).map(|n| movie_slug(&movie.title, movie.release_date.year(), n)).collect(),
        };
        let sql =
            format!("insert into movies ({COLUMNS}) values {} on conflict (slug) do nothing", rows::placeholders(1));
        for candidate in candidates {
            movie.slug = candidate;
            self.counted();
            if rows::bind(sqlx::query(&sql), &movie).execute(&mut *tx).await?.rows_affected() == 1 {
                self.log_write(&mut tx, &[&movie.slug], stamp.version, true).await?;
                tx.commit().await?;
                return Ok((movie, stamp));
            }
        }
        tx.rollback().await?;
        Err(match new.slug {
            Some(slug) => DbError::SlugTaken(slug.into_string()),
            None => DbError::NoSlug { title: movie.title, last: movie.slug },
        })
    }

    /// Applies a partial update. `None` when there is no such film.
    pub async fn update(&self, slug: &Slug, patch: &MoviePatch) -> Result<Option<Updated>> {
        let mut tx = self.pool.begin().await?;
        // The catalog row is written first so that, on SQLite, the transaction takes the write lock
        // at once (waiting its turn) instead of failing to upgrade a read lock later.
        let stamp = self.bump(&mut tx, 0, 0).await?;
        let sql = format!("select {COLUMNS} from movies where slug = $1");
        self.counted();
        let row = sqlx::query(&sql).bind(slug.as_str()).fetch_optional(&mut *tx).await?;
        self.hooks.before_write();
        let Some(mut movie) = row.as_ref().map(rows::movie).transpose()?.flatten() else {
            tx.rollback().await?;
            return Ok(None);
        };
        let before = movie.release_date;
        let changed = patch.apply(&mut movie);
        if changed.is_empty() {
            tx.rollback().await?;
            let stamp = self.stamp().await?;
            return Ok(Some(Updated { movie, changed, stamp }));
        }
        let reordered = movie.release_date != before;
        let relisted = changed.iter().any(|c| LIST_FIELDS.contains(c));
        let stamp = if relisted { self.bump_lists(&mut tx, reordered).await? } else { stamp };
        movie.version = stamp.version;
        self.rewrite(&mut tx, &movie).await?;
        self.log_write(&mut tx, &[&movie.slug], stamp.version, relisted).await?;
        tx.commit().await?;
        Ok(Some(Updated { movie, changed, stamp }))
    }

    /// Deletes a film; returns the catalog stamp after the delete, `None` when there was no film.
    pub async fn delete(&self, slug: &Slug) -> Result<Option<Stamp>> {
        let mut tx = self.pool.begin().await?;
        let stamp = self.bump(&mut tx, 1, -1).await?;
        self.counted();
        let gone = sqlx::query("delete from movies where slug = $1").bind(slug.as_str()).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        self.log_write(&mut tx, &[slug.as_str()], stamp.version, true).await?;
        tx.commit().await?;
        Ok(Some(stamp))
    }

    /// Raises the catalog version (and the order version, the list version and the count by the
    /// given steps: an order change is a change of every list).
    pub(super) async fn bump(&self, tx: &mut Transaction<'_, Any>, order: i64, count: i64) -> Result<Stamp> {
        self.counted();
        let sql = format!(
            "update catalog set version = version + 1, order_version = order_version + $1, \
             list_version = list_version + $1, movie_count = movie_count + $2 where id = 1 {RETURNING}"
        );
        let row = sqlx::query(&sql).bind(order).bind(count).fetch_one(&mut **tx).await?;
        stamp(&row)
    }

    /// Raises the list version, and the order version when `reordered`.
    async fn bump_lists(&self, tx: &mut Transaction<'_, Any>, reordered: bool) -> Result<Stamp> {
        self.counted();
        let sql = format!(
            "update catalog set order_version = order_version + $1, list_version = list_version + 1 \
             where id = 1 {RETURNING}"
        );
        let row = sqlx::query(&sql).bind(i64::from(reordered)).fetch_one(&mut **tx).await?;
        stamp(&row)
    }
}
