//! The films next to a film, for its detail page: more by its director (newest first), and more of
//! its genre from its decade (most voted first). Both in one statement, with the catalog stamp.

use sqlx::Row;

use super::repo::{STAMP, stamp};
use super::{Db, Result, Stamp};
use crate::movies::{Movie, decade_key};

/// Slugs of the films related to one film, in the order shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelatedSlugs {
    pub director: Vec<String>,
    pub genre: Vec<String>,
}

impl Db {
    /// Up to `limit` films of each kind related to `movie` (never the film itself).
    pub async fn related(&self, movie: &Movie, limit: u32) -> Result<(Stamp, RelatedSlugs)> {
        let decade = decade_key(movie.release_date.year());
        // each relation is a walk of an index in its order that stops at `limit` films
        // (movies_by_director; on PostgreSQL movies_related_genre, led by both the genre and the
        // decade, so that the plan is the same for every film and is kept: see `Db::by_key`; on
        // SQLite movies_by_genre_votes or movies_by_decade_votes, the other of genre and decade
        // read from the index entry), numbered once they are found. The decade as a range of
        // dates instead led SQLite to read the genre's films of the decade by date and sort them
        // (Drama from the 1950s: ~20,000 films, 70-100 ms). The limit is written out: a plan kept
        // without its value would guess a tenth of the rows.
        let sql = format!(
            "select {STAMP}, r.kind as r_kind, r.slug as r_slug from catalog c left join ( \
               select cast(0 as bigint) as kind, slug, row_number() over (order by release_date desc, slug) as i \
               from (select slug, release_date from movies where director = $1 and slug <> $3 \
                 order by release_date desc, slug limit {limit}) d \
               union all \
               select cast(1 as bigint) as kind, slug, row_number() over (order by imdb_votes desc nulls last, slug) as i \
               from (select slug, imdb_votes from movies \
                 where genre = $2 and substr(release_date, 1, 3) = $4 and slug <> $3 \
                 order by imdb_votes desc nulls last, slug limit {limit}) g \
             ) r on 1 = 1 where c.id = 1 order by r.kind, r.i"
        );
        self.counted_in(&self.by_key);
        let rows = sqlx::query(&sql)
            .bind(movie.director.as_deref())
            .bind(movie.genre.as_deref())
            .bind(movie.slug.as_str())
            .bind(decade)
            .fetch_all(&self.by_key)
            .await?;
        let first = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        let stamp = stamp(first)?;
        let mut related = RelatedSlugs::default();
        for row in &rows {
            let (kind, slug): (Option<i64>, Option<String>) = (row.try_get("r_kind")?, row.try_get("r_slug")?);
            match (kind, slug) {
                (Some(0), Some(slug)) => related.director.push(slug),
                (Some(1), Some(slug)) => related.genre.push(slug),
                _ => {}
            }
        }
        Ok((stamp, related))
    }
}
