//! Deterministic synthetic films, for seeding catalogs far larger than the real dataset.
//!
//! Film `n` is a pure function of `n`: every field is drawn from a splitmix64 stream seeded with
//! the number, so the same number gives the same film on every run and machine, and any range of
//! numbers can be generated independently (and in parallel) without state.

mod words;

use crate::movies::{Date, Movie, slugify};
use words::{
    ADJECTIVES, CREATIVE_TYPES, DISTRIBUTORS, FIRST_NAMES, GENRES, LAST_NAMES, NOUNS, PLACES, SEQUELS, SOURCES,
};

const FIRST_YEAR: u64 = 1920;
const YEARS: u64 = 92; // 1920..=2011, the span of the real dataset's films.

/// Films `start .. start + count`, in order. The same number always gives the same film, and its
/// slug, `{title}-{year}-s{number}`, is unique per number and never equal to a slug of the real
/// dataset (whose last part is always all digits).
pub fn synthetic(start: u64, count: u64) -> impl Iterator<Item = Movie> {
    // `synthetic_film` is `None` for no number (see there): the count is exact.
    (start..start.saturating_add(count)).filter_map(synthetic_movie)
}

/// Synthetic film number `number`. Always `Some`: the date is built from a year in 1920..=2011, a
/// month in 1..=12 and a day in 1..=28, which `Date::new` always accepts.
#[expect(
    clippy::cast_possible_truncation,
    reason = "every draw is below a small bound, and money stays far below i64::MAX"
)]
fn synthetic_movie(number: u64) -> Option<Movie> {
    let mut draw = Draw(number ^ 0x6d61_7271_7565_6521); // "marquee!": apart from other uses of the numbers
    let year = (FIRST_YEAR + draw.below(YEARS)) as u16;
    let month = 1 + draw.below(12) as u8;
    let day = 1 + draw.below(28) as u8;
    let release_date = Date::new(year, month, day)?;

    let title = title(&mut draw);
    let slug = format!("{}-{year}-s{number}", title_slug(&title));

    let genre = draw.chance(92).then(|| draw.pick(&GENRES).to_owned());
    let director = draw.chance(70).then(|| format!("{} {}", draw.pick(&FIRST_NAMES), draw.pick(&LAST_NAMES)));
    let mpaa_rating = mpaa(&mut draw, year);
    let running_time_min = draw.chance(60).then(|| 75 + draw.below(116) as i64);

    // Roughly bell-shaped 1.5..=9.3, one decimal, like IMDB's.
    let tenths = 15 + draw.below(40) + draw.below(40);
    let imdb_rating = draw.chance(93).then_some(tenths as f64 / 10.0);
    let imdb_votes = imdb_rating.map(|_| {
        let scale = 10u64.pow(1 + draw.below(5) as u32);
        (scale + draw.below(scale * 9)) as i64
    });
    let rotten_tomatoes_rating = draw.chance(72).then(|| {
        let around = (tenths as i64 - 15) * 100 / 78; // 0..=100, following the IMDB rating
        (around + draw.below(41) as i64 - 20).clamp(0, 100)
    });

    // Budgets from $100k to about $250M, skewed low; grosses from nothing to several times that.
    let unit = draw.below(1_000) as f64 / 1_000.0;
    let budget = (100_000.0 + unit * unit * unit * 250_000_000.0) as i64 / 1_000 * 1_000;
    let us = (budget as f64 * draw.below(400) as f64 / 100.0) as i64;
    let worldwide = us + (us as f64 * draw.below(200) as f64 / 100.0) as i64;
    let money_known = draw.chance(97);

    Some(Movie {
        version: 0,
        slug,
        title,
        release_date,
        genre,
        director,
        mpaa_rating,
        running_time_min,
        imdb_rating,
        imdb_votes,
        rotten_tomatoes_rating,
        us_gross: money_known.then_some(us),
        worldwide_gross: money_known.then_some(worldwide),
        us_dvd_sales: None,
        production_budget: Some(budget),
        distributor: draw.chance(90).then(|| draw.pick(&DISTRIBUTORS).to_owned()),
        source: draw.chance(88).then(|| draw.pick(&SOURCES).to_owned()),
        creative_type: draw.chance(85).then(|| draw.pick(&CREATIVE_TYPES).to_owned()),
    })
}

/// `slugify(title, 60)`, or "film" if that is empty. The word lists hold only ASCII letters and
/// single spaces, for which slugify is lower-casing with hyphens for spaces; doing just that here
/// makes generation several times faster (the tests check it matches slugify).
fn title_slug(title: &str) -> String {
    const MAX: usize = 60;
    let simple = title.len() <= MAX
        && !title.starts_with(' ')
        && !title.ends_with(' ')
        && !title.contains("  ")
        && title.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ');
    let slug = if simple { title.to_ascii_lowercase().replace(' ', "-") } else { slugify(title, MAX) };
    if slug.is_empty() { "film".to_owned() } else { slug }
}

fn title(draw: &mut Draw) -> String {
    let adjective = draw.pick(&ADJECTIVES);
    let noun = draw.pick(&NOUNS);
    match draw.below(8) {
        0 => format!("Return of the {adjective} {noun}"),
        1 => format!("{noun} of {}", draw.pick(&PLACES)),
        2 => format!("The {noun} and the {}", draw.pick(&NOUNS)),
        3 => format!("{adjective} {noun}"),
        4 => format!("{noun} in {}", draw.pick(&PLACES)),
        5 => format!("The {adjective} {noun} {}", draw.pick(&SEQUELS)),
        6 => format!("Escape from {}", draw.pick(&PLACES)),
        _ => format!("The {adjective} {noun}"),
    }
}

/// Ratings as they existed in the film's year: none before 1968, PG-13 from 1984, NC-17 from 1990.
fn mpaa(draw: &mut Draw, year: u16) -> Option<String> {
    if year < 1968 {
        return draw.chance(20).then(|| "Not Rated".to_owned());
    }
    let rating = match draw.below(20) {
        0 => "G",
        1..=4 => "PG",
        5..=9 if year >= 1984 => "PG-13",
        5..=9 => "PG",
        10..=16 => "R",
        17 if year >= 1990 => "NC-17",
        17 | 18 => "Not Rated",
        _ => return None,
    };
    Some(rating.to_owned())
}

/// A splitmix64 stream: tiny, fast and well mixed, which is all seeding needs.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n` > 0; the tiny modulo bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    #[expect(clippy::cast_possible_truncation, reason = "the draw is below N, a usize")]
    fn pick<const N: usize>(&mut self, list: &[&'static str; N]) -> &'static str {
        list.get(self.below(N as u64) as usize).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::movies::Slug;

    #[test]
    fn the_same_number_always_gives_the_same_movie() {
        let first: Vec<_> = synthetic(0, 500).collect();
        assert_eq!(first, synthetic(0, 500).collect::<Vec<_>>());
        assert_eq!(first[123..200], synthetic(123, 77).collect::<Vec<_>>());
        let far = synthetic(987_654_321, 1).next().unwrap();
        assert_eq!(Some(far.clone()), synthetic(987_654_320, 2).nth(1));
        assert!(far.slug.ends_with("-s987654321"), "{}", far.slug);
        // Pinned, so an accidental change to the generator shows up.
        assert_eq!(synthetic(0, 3).map(|m| m.slug).collect::<Vec<_>>(), PINNED);
    }

    const PINNED: [&str; 3] = [
        "the-winter-and-the-lantern-2004-s0",
        "return-of-the-midnight-river-2009-s1",
        "return-of-the-crimson-empire-1983-s2",
    ];

    #[test]
    fn counts_are_exact() {
        assert_eq!(synthetic(0, 0).count(), 0);
        assert_eq!(synthetic(5, 1234).count(), 1234);
        assert_eq!(synthetic(u64::MAX - 1, 10).count(), 1, "stops at the end of the numbers");
    }

    #[test]
    fn ten_thousand_movies_are_unique_valid_and_plausible() {
        let mut slugs = HashSet::new();
        let mut titles = HashSet::new();
        let mut years = HashSet::new();
        for (number, m) in (0u64..).zip(synthetic(0, 10_000)) {
            assert!(Slug::parse(&m.slug).is_ok(), "{}", m.slug);
            assert!(slugs.insert(m.slug.clone()), "duplicate {}", m.slug);
            assert_eq!(m.slug, format!("{}-{}-s{number}", slugify(&m.title, 60), m.release_date.year()));
            assert!((1920..=2011).contains(&m.release_date.year()), "{}", m.release_date);
            assert_eq!(m.release_date.to_string().parse::<Date>().ok(), Some(m.release_date));
            assert_eq!(m.version, 0);
            assert!(!m.title.is_empty() && m.title.trim() == m.title);
            assert!(m.imdb_rating.is_none_or(|r| (1.0..=10.0).contains(&r)));
            assert_eq!(m.imdb_rating.is_some(), m.imdb_votes.is_some());
            assert!(m.imdb_votes.is_none_or(|v| v > 0));
            assert!(m.rotten_tomatoes_rating.is_none_or(|r| (0..=100).contains(&r)));
            assert!(m.running_time_min.is_none_or(|r| (75..=190).contains(&r)));
            assert!(m.production_budget.is_some_and(|b| b >= 100_000));
            if let (Some(us), Some(world)) = (m.us_gross, m.worldwide_gross) {
                assert!(0 <= us && us <= world);
            }
            if m.release_date.year() < 1968 {
                assert!(matches!(m.mpaa_rating.as_deref(), None | Some("Not Rated")));
            }
            titles.insert(m.title);
            years.insert(m.release_date.year());
        }
        assert!(titles.len() > 2_000, "only {} distinct titles", titles.len());
        assert_eq!(years.len(), 92);
    }

    #[test]
    fn synthetic_slugs_never_meet_real_ones() {
        let real = super::super::parse(super::super::MOVIES_JSON).unwrap();
        let real: HashSet<_> = real.movies.into_iter().map(|m| m.slug).collect();
        assert!(synthetic(0, 10_000).all(|m| !real.contains(&m.slug)));
    }
}
