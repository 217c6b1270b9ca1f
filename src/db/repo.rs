//! The repository: every query marquee runs. Reads return the catalog's `Stamp` from the same
//! statement, so a caller knows which version of the catalog its rows belong to.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::anchors::{self, Buckets};
use super::rows::{self, COLUMNS, LIST_FIELDS};
use super::{Backend, Db, DbError, Result};
use crate::movies::{Movie, MovieList, MoviePatch, NewMovie, PageNumber, Slug, Sort, decade_key, movie_slug};

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

/// A value bound to a statement built piece by piece.
enum Value {
    Int(i64),
    Real(f64),
    Text(String),
}

/// A sort's order: highest first, films without the value last, ties by slug. A release date is
/// never missing, and PostgreSQL reads `desc` as nulls first: the listing's indexes say `desc`.
fn order_by(sort: Sort, alias: &str) -> String {
    match sort {
        Sort::Newest => format!("{alias}release_date desc, {alias}slug"),
        other => format!("{alias}{} desc nulls last, {alias}slug", other.column()),
    }
}

/// The same order backwards: an index walked from its end.
fn reversed(sort: Sort, alias: &str) -> String {
    match sort {
        Sort::Newest => format!("{alias}release_date, {alias}slug desc"),
        other => format!("{alias}{} nulls first, {alias}slug desc", other.column()),
    }
}

/// A list narrowed by exactly one filter, as its deep pages walk it: the filter's name and value
/// as `filter_buckets` has them (a decade as the first three digits of its years), and the name
/// its indexes have (`movies_by_{index}_{sort}`).
pub(super) struct OneFilter {
    kind: &'static str,
    value: String,
    index: &'static str,
    /// A decade's first and next first day: the listing's order reads a decade as a date range.
    dates: Option<(String, String)>,
}

impl OneFilter {
    fn of(list: &MovieList) -> Option<Self> {
        match (list.genre(), list.decade_key(), list.rating()) {
            (Some((_, genre)), None, None) => {
                Some(Self { kind: "genre", value: genre.to_owned(), index: "genre", dates: None })
            }
            (None, Some(decade), None) => {
                Some(Self { kind: "decade", value: decade, index: "decade", dates: list.decade_bounds() })
            }
            (None, None, Some((_, rating))) => {
                Some(Self { kind: "rating", value: rating.to_owned(), index: "mpaa", dates: None })
            }
            _ => None,
        }
    }

    /// The key of its buckets in `Anchors`.
    fn key(&self) -> String {
        format!("{}={}", self.kind, self.value)
    }

    /// The condition a walk of `sort` tests, its values bound through `param`; written as the
    /// filter's indexes are (a decade as a date range in the listing's order, as its first three
    /// digits in the others).
    fn condition(&self, sort: Sort, param: &mut impl FnMut(Value) -> String) -> String {
        match (self.kind, &self.dates) {
            ("genre", _) => format!("genre = {}", param(Value::Text(self.value.clone()))),
            ("rating", _) => format!("mpaa_rating = {}", param(Value::Text(self.value.clone()))),
            (_, Some((from, to))) if sort == Sort::Newest => format!(
                "release_date >= {} and release_date < {}",
                param(Value::Text(from.clone())),
                param(Value::Text(to.clone()))
            ),
            _ => format!("substr(release_date, 1, 3) = {}", param(Value::Text(self.value.clone()))),
        }
    }
}

/// The list's filters as list_counts and cell_buckets name them: (column, value).
fn cell_filters(list: &MovieList) -> Vec<(&'static str, String)> {
    [
        list.genre().map(|(_, name)| ("genre", name.to_owned())),
        list.decade_key().map(|decade| ("decade", decade)),
        list.rating().map(|(_, rating)| ("mpaa_rating", rating.to_owned())),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The key of a list's buckets in `Anchors`: empty for every film, its one filter, or its cells.
fn anchor_key(list: &MovieList, one: Option<&OneFilter>) -> String {
    match one {
        Some(one) => one.key(),
        None if list.is_filtered() => format!("cells:{}", list.key()),
        None => String::new(),
    }
}

/// A list of several filters walked cell by cell (PostgreSQL, migration 0011): each cell of
/// `list_counts` that `cells` (conditions on its columns) names is walked in its own index, among
/// the films `filter` (a `where` clause) leaves, to `limit` + `offset` entries in `order`; the walks
/// are then sorted and cut, which reads a page near the top of each cell (or from its bucket).
fn cells_walk(
    sort: Sort,
    order: fn(Sort, &str) -> String,
    cells: &str,
    filter: &str,
    limit: &str,
    offset: &str,
) -> String {
    format!(
        "select slug from (select x.slug, x.{col} from \
           (select genre, decade, mpaa_rating from list_counts where {cells} and n > 0) k \
           cross join lateral (select slug, {col} from movies {filter} \
             and (coalesce(genre, '') collate \"C\") = k.genre \
             and substr(release_date, 1, 3) = k.decade \
             and (coalesce(mpaa_rating, '') collate \"C\") = k.mpaa_rating \
             order by {inner} limit {limit} + {offset}) x \
         order by {outer} limit {limit} offset {offset}) w",
        col = sort.column(),
        inner = order(sort, ""),
        outer = order(sort, "x."),
    )
}

fn whole(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

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
        let (stamp, _, movies) = self.list_page(&MovieList::default(), page, size).await?;
        Ok((stamp, movies))
    }

    /// Page `page` of `list`: the stamp, the number of films in the whole list, and the page's films.
    /// Films without the sort's value come last, ties in slug order.
    pub async fn list_page(&self, list: &MovieList, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        let offset = page.offset(size);
        let one = OneFilter::of(list);
        match (list.is_filtered(), &one) {
            // near the top: one walk of the filters' indexes (of the cells' on PostgreSQL); deeper,
            // from the bucket the page starts in, but for several filters on SQLite
            (true, _) if offset < anchors::STEP => self.filtered_page(list, page, size).await,
            (true, None) if self.backend == Backend::Sqlite => self.filtered_page(list, page, size).await,
            _ => self.sorted_page(list, one.as_ref(), page, size).await,
        }
    }

    /// A narrowed list, in one statement: the size from `list_counts` (the sum of the list's
    /// cells), the page's slugs from an index walk that reads no film (the filter leads the index,
    /// the other filters are in it), then those films. A page in the list's second half walks the
    /// index from its end (the last page reads one page of entries, not the whole list); a page
    /// past the end reads nothing.
    async fn filtered_page(&self, list: &MovieList, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        let mut filters = Vec::new();
        let mut cells = Vec::new();
        let mut values: Vec<String> = Vec::new();
        if let Some((_, name)) = list.genre() {
            values.push(name.to_owned());
            filters.push(format!("genre = ${}", values.len() + 2));
            cells.push(format!("genre = ${}", values.len() + 2));
        }
        if let (Some(decade), Some((from, to))) = (list.decade(), list.decade_bounds()) {
            // the listing's order reads a decade as a range of its dates; the other sorts have
            // indexes led by the decade itself (one form only: both at once mislead the planner)
            values.push(decade_key(decade));
            let prefix = values.len() + 2;
            cells.push(format!("decade = ${prefix}"));
            if list.sort == Sort::Newest {
                values.extend([from, to]);
                filters.push(format!("release_date >= ${} and release_date < ${}", prefix + 1, prefix + 2));
            } else {
                filters.push(format!("substr(release_date, 1, 3) = ${prefix}"));
            }
        }
        if let Some((_, rating)) = list.rating() {
            values.push(rating.to_owned());
            filters.push(format!("mpaa_rating = ${}", values.len() + 2));
            cells.push(format!("mpaa_rating = ${}", values.len() + 2));
        }
        let total =
            format!("(select cast(coalesce(sum(n), 0) as bigint) from list_counts where {})", cells.join(" and "));
        let order = |alias: &str| order_by(list.sort, alias);
        // Which walk answers, and that a page past the end reads no entry of the index: PostgreSQL
        // checks a condition of no row once, before the walk; SQLite tests it on every entry it
        // walks (every film of the leading filter, when the list is empty): there, a LIMIT of 0.
        // From the end, the page is the films between (total - offset - size) and (total - offset).
        let walk = |when: &str, limit: &str| match self.backend {
            Backend::Postgres => (format!(" and {when}"), limit.to_owned()),
            Backend::Sqlite => (String::new(), format!("(case when {when} then {limit} else 0 end)")),
        };
        let (forward_when, forward_limit) = walk(&format!("$2 < {total} and $2 * 2 <= {total}"), "$1");
        let (backward_when, backward_limit) = walk(
            &format!("$2 * 2 > {total} and $2 < {total}"),
            // never negative, even where the walk is not taken (PostgreSQL reads its LIMIT first)
            &format!("(case when $2 + $1 < {total} then $1 when $2 < {total} then {total} - $2 else 0 end)"),
        );
        let backward_offset = format!("(case when $2 + $1 < {total} then {total} - $2 - $1 else 0 end)");
        let (forward, backward) = if self.backend == Backend::Postgres && filters.len() >= 2 {
            // Two or three filters on PostgreSQL: the list is a few cells of list_counts, each
            // walked in its own index (migration 0011), instead of the leading filter's index
            // walked past every film of the other cells (a musical of the 1950s not rated, 186 ms
            // at 1M films). Each cell is walked to the page's reach and the walks sorted: a page
            // near either end of the list (a deeper one starts at its bucket, see `sorted_page`).
            // (the conditions of the two walks, in PostgreSQL's form, test the cells: no cell, no walk)
            let cells = cells.join(" and ");
            (
                cells_walk(list.sort, order_by, &format!("{cells}{forward_when}"), "where true", &forward_limit, "$2"),
                cells_walk(
                    list.sort,
                    reversed,
                    &format!("{cells}{backward_when}"),
                    "where true",
                    &backward_limit,
                    &backward_offset,
                ),
            )
        } else {
            let filter = filters.join(" and ");
            (
                format!(
                    "select slug from (select slug from movies where {filter}{forward_when} \
                     order by {inner} limit {forward_limit} offset $2) a",
                    inner = order(""),
                ),
                format!(
                    "select slug from (select slug from movies where {filter}{backward_when} \
                     order by {back} limit {backward_limit} offset {backward_offset}) b",
                    back = reversed(list.sort, ""),
                ),
            )
        };
        let sql = format!(
            "select {STAMP}, {total} as f_total, {cols} from catalog c left join \
             (select {mcols} from ({forward} union all {backward}) p \
              cross join movies m where m.slug = p.slug) f \
             on 1 = 1 order by {outer}",
            cols = rows::columns_of("f"),
            mcols = rows::columns_of("m"),
            outer = order("f."),
        );
        let offset = i64::try_from(page.offset(size)).unwrap_or(i64::MAX);
        let mut q = sqlx::query(&sql).bind(i64::from(size)).bind(offset);
        for v in &values {
            q = q.bind(v.as_str());
        }
        let rows = self.fetch_heavy(q).await?;
        let total: Option<i64> = rows.first().map(|r| r.try_get("f_total")).transpose()?.flatten();
        let (stamp, movies) = stamp_and_movies(&rows)?;
        Ok((stamp, total.unwrap_or(0), movies))
    }

    /// Every film in one sort's order, or those of one filter. A deep page starts at the bucket its
    /// first film is in (see `anchors`); the counts are read again at most once per page: when the
    /// order moves again while the page is read (a flood of writes), the plain walk answers, which
    /// needs none.
    async fn sorted_page(
        &self,
        list: &MovieList,
        one: Option<&OneFilter>,
        page: PageNumber,
        size: u32,
    ) -> Result<(Stamp, i64, Vec<Movie>)> {
        let (sort, offset) = (list.sort, page.offset(size));
        let with_count = |(stamp, movies): (Stamp, Vec<Movie>)| (stamp, stamp.movie_count, movies);
        if offset < anchors::STEP {
            return Ok(with_count(self.page_at(sort, None, None, None, offset, size).await?));
        }
        let key = anchor_key(list, one);
        let cells = (list.is_filtered() && one.is_none()).then_some(list);
        let mut buckets = match self.anchors.get(&key, sort) {
            Some(b) => b,
            None => self.reload_buckets(list, one, None).await?,
        };
        for attempt in 0..2 {
            let (stamp, movies) = match buckets.locate(offset, u64::from(size)) {
                Some(seek) => self.page_at(sort, one, cells, Some(&seek), 0, size).await?,
                // past the end: the stamp alone says whether the counts were current
                None => (self.stamp().await?, Vec::new()),
            };
            if stamp.version_of(list) == buckets.version {
                let total = if list.is_filtered() { whole(buckets.total()) } else { stamp.movie_count };
                return Ok((stamp, total, movies));
            }
            if attempt == 0 {
                buckets = self.reload_buckets(list, one, Some(buckets.version)).await?;
            }
        }
        if list.is_filtered() {
            self.filtered_page(list, page, size).await
        } else {
            Ok(with_count(self.page_at(sort, None, None, None, offset, size).await?))
        }
    }

    /// A page of every film in `sort`'s order: from the top, skipping `skip`, or from a seek.
    /// Two steps: the page's slugs from the sort's index alone, then their films (a cross join:
    /// SQLite keeps that order, instead of scanning the films and looking each up in the page).
    async fn page_at(
        &self,
        sort: Sort,
        one: Option<&OneFilter>,
        cells: Option<&MovieList>,
        seek: Option<&anchors::Seek>,
        skip: u64,
        size: u32,
    ) -> Result<(Stamp, Vec<Movie>)> {
        let col = sort.column();
        let order = |alias: &str| order_by(sort, alias);
        let part = |filter: &str, limit: &str, offset: &str| {
            format!(
                "select slug from (select slug, {col} from movies {filter} order by {} limit {limit} offset {offset}) s",
                order("")
            )
        };
        let mut binds: Vec<Value> = Vec::new();
        let mut param = |v: Value| {
            binds.push(v);
            format!("${}", binds.len())
        };
        // the list's one filter, in each walk's condition
        let narrowed = match one {
            Some(one) => format!("{} and ", one.condition(sort, &mut param)),
            None => String::new(),
        };
        // a list of several filters (PostgreSQL): each walk is one of each cell of the list,
        // merged (each cell from the bucket's top: a bucket of each at most)
        let cells = cells.map(|list| {
            cell_filters(list)
                .into_iter()
                .map(|(col, value)| format!("{col} = {}", param(Value::Text(value))))
                .collect::<Vec<_>>()
                .join(" and ")
        });
        let part = |filter: &str, limit: &str, offset: &str| match &cells {
            None => part(filter, limit, offset),
            Some(cells) => cells_walk(sort, order_by, cells, filter, limit, offset),
        };
        let mut parts = Vec::new();
        match seek {
            None => {
                let (limit, offset) = (size.to_string(), param(Value::Int(whole(skip))));
                parts.push(part("", &limit, &offset));
            }
            Some(seek) => {
                if let Some((bucket, skip)) = seek.keyed {
                    let bound = match anchors::bound(sort, bucket) {
                        anchors::Bound::Date(d) => param(Value::Text(d)),
                        anchors::Bound::Real(r) => param(Value::Real(r)),
                        anchors::Bound::Whole(w) => param(Value::Int(w)),
                    };
                    let (limit, offset) = (size.to_string(), param(Value::Int(whole(skip))));
                    parts.push(part(&format!("where {narrowed}{col} <= {bound}"), &limit, &offset));
                }
                if let Some((skipped, taken)) = seek.nulls {
                    let filter = format!("{} where {narrowed}{col} is null", self.nulls_index_of(sort, one));
                    if skipped * 2 > seek.null_count && cells.is_none() {
                        // past the middle of the films without the value: from their end (the
                        // last page of `votes`, 70,000 of them at 1M films, walked them all)
                        let end = (skipped + taken).min(seek.null_count);
                        let limit = end.saturating_sub(skipped).to_string();
                        let offset = param(Value::Int(whole(seek.null_count - end)));
                        parts.push(format!(
                            "select slug from (select slug, {col} from movies {filter} order by {} \
                             limit {limit} offset {offset}) s",
                            reversed(sort, "")
                        ));
                    } else {
                        let (limit, offset) = (taken.to_string(), param(Value::Int(whole(skipped))));
                        parts.push(part(&filter, &limit, &offset));
                    }
                }
            }
        }
        let sql = format!(
            "select {STAMP}, {cols} from catalog c left join \
             (select {mcols} from ({slugs}) p cross join movies m where m.slug = p.slug) f on 1 = 1 \
             order by {outer}",
            slugs = parts.join(" union all "),
            cols = rows::columns_of("f"),
            mcols = rows::columns_of("m"),
            outer = order("f."),
        );
        let mut q = sqlx::query(&sql);
        for v in binds {
            q = match v {
                Value::Int(i) => q.bind(i),
                Value::Real(r) => q.bind(r),
                Value::Text(t) => q.bind(t),
            };
        }
        // a walk of every entry above the page: a heavy read (see `HeavyBudget`); an anchored
        // page, or one near the top, walks at most a bucket. Of the listing (no filter), such a
        // page is a read by key (see `Db::by_key`): its plan is the sort's index from the bound,
        // the films by slug, whatever the values, once its limits are written out (a plan made
        // without them guessed a tenth of the films, and joined the films by hashing them all).
        let rows = if seek.is_none() && skip >= anchors::STEP {
            self.fetch_heavy(q).await?
        } else if one.is_none() && cells.is_none() {
            self.counted_in(&self.by_key);
            q.fetch_all(&self.by_key).await?
        } else {
            self.counted();
            q.fetch_all(&self.pool).await?
        };
        self.reorder_if_asked().await?;
        stamp_and_movies(&rows)
    }

    /// What a walk of the films without `sort`'s value says of its index: on SQLite, that it is
    /// the sort's own. SQLite's figures count the films per value, not the films without one: it
    /// takes `col is null` for a few films, skip-scans another index for them and sorts them all
    /// (70,000 films without votes at 1M: 15-30 ms a page; with a search's title test, 250-430 ms).
    pub(super) fn nulls_index(&self, sort: Sort) -> String {
        self.nulls_index_of(sort, None)
    }

    /// The same for a list of one filter: the filter's index for the sort (on SQLite).
    fn nulls_index_of(&self, sort: Sort, one: Option<&OneFilter>) -> String {
        match (self.backend, one) {
            (Backend::Sqlite, None) => format!(" indexed by movies_by_{}", sort.name()),
            (Backend::Sqlite, Some(one)) => format!(" indexed by movies_by_{}_{}", one.index, sort.name()),
            (Backend::Postgres, _) => String::new(),
        }
    }

    /// Reads the bucket counts of `list`'s sort (of its one filter, if any), unless another task
    /// already did while we waited.
    async fn reload_buckets(
        &self,
        list: &MovieList,
        one: Option<&OneFilter>,
        stale: Option<i64>,
    ) -> Result<std::sync::Arc<Buckets>> {
        let sort = list.sort;
        let key = anchor_key(list, one);
        let _guard = self.anchors.reload.lock().await;
        if let Some(b) = self.anchors.get(&key, sort).filter(|b| Some(b.version) != stale) {
            return Ok(b);
        }
        let rows = match one {
            None if list.is_filtered() => {
                let named = cell_filters(list);
                let tests: Vec<String> =
                    named.iter().enumerate().map(|(i, (col, _))| format!("{col} = ${}", i + 2)).collect();
                let sql = format!(
                    "select {STAMP}, b.bucket as b_bucket, b.n as b_n from catalog c left join \
                     (select bucket, cast(sum(n) as bigint) as n from cell_buckets where sort = $1 and {} \
                      group by bucket having sum(n) > 0) b on 1 = 1 order by b.bucket desc",
                    tests.join(" and ")
                );
                let mut q = sqlx::query(&sql).bind(sort.name());
                for (_, v) in &named {
                    q = q.bind(v.as_str());
                }
                self.counted();
                q.fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!(
                    "select {STAMP}, b.bucket as b_bucket, b.n as b_n from catalog c \
                     left join sort_buckets b on b.sort = $1 and b.n > 0 order by b.bucket desc"
                );
                self.counted();
                sqlx::query(&sql).bind(sort.name()).fetch_all(&self.pool).await?
            }
            Some(one) => {
                let sql = format!(
                    "select {STAMP}, b.bucket as b_bucket, b.n as b_n from catalog c \
                     left join filter_buckets b on b.filter = $1 and b.value = $2 and b.sort = $3 and b.n > 0 \
                     order by b.bucket desc"
                );
                self.counted();
                sqlx::query(&sql)
                    .bind(one.kind)
                    .bind(one.value.as_str())
                    .bind(sort.name())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let version = rows.first().map(stamp).transpose()?.unwrap_or_default().version_of(list);
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let bucket: Option<f64> = row.try_get("b_bucket")?;
            let n: Option<i64> = row.try_get("b_n")?;
            if let (Some(bucket), Some(n)) = (bucket, n) {
                counts.push((bucket, n));
            }
        }
        Ok(self.anchors.set(&key, sort, Buckets { version, counts }))
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
        self.counted_in(&self.by_key);
        let rows = q.fetch_all(&self.by_key).await?;
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
