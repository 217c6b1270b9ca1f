//! The slug and page parsers, and slug making, on any text: no panic, and what is accepted or made
//! keeps the rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marquee::movies::{PageNumber, Slug, movie_slug, slugify};

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.split('-').all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    assert_eq!(Slug::parse(text).is_ok(), is_slug(text), "{text:?}");
    match PageNumber::parse(text) {
        Ok(n) => {
            assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
            assert!((1..=1_000_000).contains(&n.get()), "{text:?}");
        }
        Err(_) => assert!(
            text.is_empty()
                || !text.bytes().all(|b| b.is_ascii_digit())
                || !text.trim_start_matches('0').parse::<u32>().is_ok_and(|n| (1..=1_000_000).contains(&n)),
            "{text:?} refused"
        ),
    }
    let s = slugify(text, 100);
    assert!(s.is_empty() || is_slug(&s), "{text:?} -> {s:?}");
    let year = u16::from(data.first().copied().unwrap_or(0)) * 8 + 1;
    let n = u32::from(data.last().copied().unwrap_or(1)) * 40 + 1;
    let f = movie_slug(text, year, n);
    assert!(is_slug(&f), "{text:?} {year} {n} -> {f:?}");
});
