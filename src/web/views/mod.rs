//! The templates' data: each page is a struct, built from the service's results by plain
//! functions, so templates only place values (all escaped by askama). The pages are here; the feed
//! of cards (`feed`), the list's controls (`controls`) and the film's page (`detail`) beside them.

mod cards;
mod controls;
mod detail;
mod feed;

pub use cards::{Cards, FeedCard};
pub use controls::Controls;
pub use detail::{Bar, DetailPage, MoneyChart, Related};
pub use feed::{Card, Feed};

use askama::Template;
use askama_web::WebTemplate;

/// Changes whenever app.css or app.js changes: the templates add it to their URLs, so browsers
/// holding the old files (served as immutable) fetch the new ones.
pub const ASSET_VERSION: u64 =
    fnv1a(include_bytes!("../../../static/app.css")) ^ fnv1a(include_bytes!("../../../static/app.js")).rotate_left(1);

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The whole listing document (`/`, `/movies?page=N`).
#[derive(Template)]
#[template(path = "movies/index.html")]
pub struct ListingPage {
    pub feed: Feed,
    pub controls: Controls,
}

/// The list under the controls: heading, feed and trigger (htmx requests from the controls).
#[derive(Template)]
#[template(path = "movies/index.html", block = "listing")]
pub struct ListingSection {
    pub feed: Feed,
}

/// Only the feed items and the next trigger (htmx requests of the infinite scroll, lists and
/// search alike).
#[derive(Template)]
#[template(path = "movies/_feed_items.html")]
pub struct FeedFragment {
    pub feed: Feed,
}

/// The search page (`/search?q=…`).
#[derive(Template)]
#[template(path = "movies/search.html")]
pub struct SearchPage {
    pub feed: Feed,
    /// What was typed, shown back in the search field.
    pub query: String,
}

/// The search page's results alone (htmx requests from the search field).
#[derive(Template)]
#[template(path = "movies/search.html", block = "results")]
pub struct SearchSection {
    pub feed: Feed,
    pub query: String,
}

/// An error page in the site's layout. `PageError` answers with it as it is (so it is a
/// `WebTemplate`); the pages are rendered through `pages::render` instead.
#[derive(Template, WebTemplate)]
#[template(path = "errors/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub heading: String,
    pub message: String,
}
