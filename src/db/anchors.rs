//! Deep pages without a crawl. `OFFSET n` walks n index entries, so page 40,000 of a million films
//! would read 960,000 of them. Instead the database keeps, for each sort, how many films have each
//! sort key in buckets (`sort_buckets`: a month of release, an IMDB rating, votes and gross by their
//! first two digits, `-1` for films without the value), kept by triggers on every write. A deep
//! page of an unfiltered list adds the counts up to the bucket its first film is in, and walks the
//! sort's index from that bucket's first entry: at most one bucket, whatever the depth.
//!
//! A list narrowed by one filter (a genre, a decade, an MPAA rating) has its own counts
//! (`filter_buckets`, migration 0013 on PostgreSQL, 0011 on SQLite), and its deep pages walk the
//! filter's index the same way: the middle page of the films rated R walked 84,000 entries.
//!
//! The counts belong to one version of the catalog (the order version for the listing, the list
//! version for the other lists); a page query returns the current one with its rows, so counts
//! made stale by a write on any app server are noticed and read again (a few hundred rows, never
//! a scan of the films).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::movies::Sort;

/// Offsets below this are read with a plain `OFFSET`: the walk is shorter than the counts.
pub const STEP: u64 = 256;

/// The bucket a film without the sort's value is counted in (they come last).
pub const NULLS: f64 = -1.0;

/// One sort's buckets, highest first (`NULLS` last), with the films in each.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub version: i64,
    pub counts: Vec<(f64, i64)>,
}

/// Where a page starts: a walk of the sort's index from the films at or below `bound` (skipping
/// `skip` of them), then films without the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Seek {
    /// The highest sort key of the walk and the entries skipped; `None` when the page starts
    /// among the films without the value.
    pub keyed: Option<(f64, u64)>,
    /// Films without the value: (skipped, taken), when the page reaches them.
    pub nulls: Option<(u64, u64)>,
    /// How many films are without the value: a page past the middle of them walks from their end.
    pub null_count: u64,
}

impl Buckets {
    /// The films counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| u64::try_from(*n).unwrap_or(0)).sum()
    }

    /// Where the page of `size` films at `offset` starts; `None` past the end.
    pub fn locate(&self, offset: u64, size: u64) -> Option<Seek> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let valued: u64 = self.counts.iter().filter(|(b, _)| *b != NULLS).map(|(_, n)| count(*n)).sum();
        let nulls: u64 = self.counts.iter().filter(|(b, _)| *b == NULLS).map(|(_, n)| count(*n)).sum();
        if offset >= valued + nulls {
            return None;
        }
        if offset >= valued {
            return Some(Seek { keyed: None, nulls: Some((offset - valued, size)), null_count: nulls });
        }
        let mut before = 0;
        let mut keyed = None;
        for &(bucket, n) in self.counts.iter().filter(|(b, _)| *b != NULLS) {
            if offset < before + count(n) {
                keyed = Some((bucket, offset - before));
                break;
            }
            before += count(n);
        }
        let reach = offset + size;
        Some(Seek { keyed, nulls: (reach > valued && nulls > 0).then(|| (0, reach - valued)), null_count: nulls })
    }
}

/// The highest value in `bucket` of `sort`, as the column holds it: every film at or below it is
/// in this bucket or a later one (the buckets are made by the triggers of migration 0007).
pub enum Bound {
    Date(String),
    Real(f64),
    Whole(i64),
}

#[expect(clippy::cast_possible_truncation, reason = "buckets of dates, votes and gross are whole numbers")]
pub fn bound(sort: Sort, bucket: f64) -> Bound {
    match sort {
        // 199806: June 1998; every day of it is at or below its 31st as text
        Sort::Newest => {
            let month = bucket as i64;
            Bound::Date(format!("{:04}-{:02}-31", month / 100, month % 100))
        }
        Sort::Rating => Bound::Real(bucket),
        // 120000 holds 120000..=129999: the first two digits kept, the rest zeroed
        Sort::Votes | Sort::Gross => {
            let low = bucket as i64;
            let digits = low.max(1).ilog10() + 1;
            Bound::Whole(low + 10i64.pow(digits.saturating_sub(2)) - 1)
        }
    }
}

/// The buckets of each list's sort, as last read: the key is the list's one filter
/// (`OneFilter::key`, empty for every film) and the sort.
#[derive(Default)]
pub struct Anchors {
    current: RwLock<HashMap<(String, Sort), Arc<Buckets>>>,
    /// Held while reading the counts, so that concurrent deep pages wait for one read.
    pub reload: tokio::sync::Mutex<()>,
}

impl Anchors {
    pub fn get(&self, filter: &str, sort: Sort) -> Option<Arc<Buckets>> {
        self.current.read().ok().and_then(|g| g.get(&(filter.to_owned(), sort)).cloned())
    }

    pub fn set(&self, filter: &str, sort: Sort, buckets: Buckets) -> Arc<Buckets> {
        let buckets = Arc::new(buckets);
        if let Ok(mut g) = self.current.write() {
            g.insert((filter.to_owned(), sort), buckets.clone());
        }
        buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(counts: &[(f64, i64)]) -> Buckets {
        Buckets { version: 1, counts: counts.to_vec() }
    }

    #[test]
    fn a_page_starts_in_the_bucket_of_its_first_film() {
        let b = buckets(&[(9.0, 10), (8.0, 5), (7.0, 20), (NULLS, 4)]);
        assert_eq!(b.locate(0, 3), Some(Seek { keyed: Some((9.0, 0)), nulls: None, null_count: 4 }));
        assert_eq!(b.locate(12, 3), Some(Seek { keyed: Some((8.0, 2)), nulls: None, null_count: 4 }));
        assert_eq!(b.locate(15, 3), Some(Seek { keyed: Some((7.0, 0)), nulls: None, null_count: 4 }));
    }

    #[test]
    fn films_without_the_value_come_after_every_bucket() {
        let b = buckets(&[(9.0, 10), (7.0, 20), (NULLS, 4)]);
        assert_eq!(b.locate(28, 3), Some(Seek { keyed: Some((7.0, 18)), nulls: Some((0, 1)), null_count: 4 }));
        assert_eq!(b.locate(31, 3), Some(Seek { keyed: None, nulls: Some((1, 3)), null_count: 4 }));
        assert_eq!(b.locate(34, 3), None, "past the end");
        assert_eq!(
            buckets(&[(9.0, 10)]).locate(9, 3),
            Some(Seek { keyed: Some((9.0, 9)), nulls: None, null_count: 0 })
        );
    }

    #[test]
    fn bounds_hold_every_value_of_their_bucket() {
        assert!(matches!(bound(Sort::Newest, 199_806.0), Bound::Date(d) if d == "1998-06-31"));
        assert!(matches!(bound(Sort::Votes, 120_000.0), Bound::Whole(129_999)));
        assert!(matches!(bound(Sort::Gross, 99.0), Bound::Whole(99)));
        assert!(matches!(bound(Sort::Gross, 7.0), Bound::Whole(7)));
        assert!(matches!(bound(Sort::Gross, 0.0), Bound::Whole(0)));
        assert!(matches!(bound(Sort::Votes, 100.0), Bound::Whole(109)));
    }
}
