//! The write API's body checks on any JSON: no panic, and an accepted film keeps the field rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marquee::movies::{MoviePatch, NewMovie};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = MoviePatch::from_json(value.clone());
    if let Ok(new) = NewMovie::from_json(value) {
        let title = &new.movie.title;
        assert!(!title.is_empty() && title.chars().count() <= 300, "{title:?}");
        assert!(!title.chars().any(char::is_control) && title.trim() == title, "{title:?}");
        for text in [&new.movie.genre, &new.movie.director, &new.movie.distributor].into_iter().flatten() {
            assert!(!text.is_empty() && text.chars().count() <= 200, "{text:?}");
        }
        if let Some(r) = new.movie.imdb_rating {
            assert!((0.0..=10.0).contains(&r), "{r}");
        }
    }
});
