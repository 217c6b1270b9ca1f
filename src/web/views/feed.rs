//! The feed: one page of a list or of a search as cards, with its paging and its words.

use std::sync::Arc;

use super::cards::{Cards, FeedCard};
use crate::movies::{Movie, PageNumber, format};
use crate::service::{Found, Listing};

/// A film as its cards show it (a feed's, rendered once per version by `Cards`, and a related
/// film's).
pub struct Card {
    pub slug: String,
    pub title: String,
    pub year: u16,
    pub genre: Option<String>,
    pub director: Option<String>,
    pub imdb_rating: Option<String>,
    pub mpaa_rating: Option<String>,
    /// Up to two letters for the poster placeholder.
    pub initials: String,
    /// A hue (0–359) derived from the slug, for the poster placeholder's colour.
    pub hue: u16,
}

impl Card {
    pub fn new(m: &Movie) -> Self {
        Self {
            initials: initials(&m.title),
            hue: hue(&m.slug),
            year: m.release_date.year(),
            imdb_rating: m.imdb_rating.map(format::rating),
            slug: m.slug.clone(),
            title: m.title.clone(),
            genre: m.genre.clone(),
            director: m.director.clone(),
            mpaa_rating: m.mpaa_rating.clone(),
        }
    }
}

pub(super) fn initials(title: &str) -> String {
    const SKIP: [&str; 12] = ["the", "a", "an", "of", "and", "la", "le", "les", "el", "der", "die", "das"];
    let first = |skip_articles: bool| {
        title
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !(w.is_empty() || skip_articles && SKIP.iter().any(|s| s.eq_ignore_ascii_case(w))))
            .take(2)
            .filter_map(|w| w.chars().next())
            .flat_map(char::to_uppercase)
            .collect::<String>()
    };
    let letters = first(true);
    if letters.is_empty() { first(false) } else { letters }
}

pub(super) fn hue(slug: &str) -> u16 {
    // FNV-1a: stable across runs and platforms
    let h = slug.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    u16::try_from(h % 360).unwrap_or(0)
}

/// The feed's items for one page, shared by the full pages (lists, search) and the htmx fragments.
pub struct Feed {
    pub cards: Vec<FeedCard>,
    pub page: u32,
    /// The next page's URL (same list or search), absent on the last page.
    pub next_href: Option<String>,
    /// This page's URL, which the feed's first card of the page carries: the address to name when
    /// a reader opens one of its films.
    pub href: String,
    /// The first page's URL.
    pub first_href: String,
    /// The page before this one, absent on the first.
    pub prev_href: Option<String>,
    pub total: i64,
    /// The total for people: "3,200".
    pub total_text: String,
    /// "Comedy films from the 1990s, best rated first"; "Films matching “godf”".
    pub heading: String,
    /// Narrowed by a filter, a sort or a search: an empty feed offers the way back to every film.
    pub narrowed: bool,
    /// What the end of the feed says: "That's every film — 3,200 in all."; "No film matches…".
    pub end_text: String,
    /// aria-posinset of the first card on this page
    pub first_position: u64,
    /// Rendered as an htmx fragment: the next trigger replaces the old one out of band.
    pub fragment: bool,
}

impl Feed {
    pub fn new(listing: Listing, fragment: bool, cards: &Cards) -> Self {
        let list = listing.of;
        let total_text = format::count(listing.total);
        let end_text = match (listing.total, list.is_default()) {
            (0, true) => "No films yet.".to_owned(),
            (0, false) => "No film matches this choice.".to_owned(),
            _ => format!("That's every film — {total_text} in all."),
        };
        let paging = Paging {
            page: listing.page,
            total: listing.total,
            has_next: listing.has_next,
            first: listing.offset() + 1,
        };
        let text = Text { heading: list.heading(), end: end_text, total: total_text, narrowed: !list.is_default() };
        Self::of(listing.movies, paging, |n| list.href(n), text, fragment, cards)
    }

    pub fn found(found: Found, fragment: bool, cards: &Cards) -> Self {
        let total_text = format::count(found.total);
        let query = &found.of;
        let end_text = match found.total {
            0 if query.is_empty() => "Type a title to look for.".to_owned(),
            0 => format!("No film title has words starting with “{}”.", query.text),
            1 => "That's the one film found.".to_owned(),
            _ => format!("That's every film found — {total_text} in all."),
        };
        let heading =
            if query.is_empty() { "Search films".to_owned() } else { format!("Films matching “{}”", query.text) };
        let paging =
            Paging { page: found.page, total: found.total, has_next: found.has_next, first: found.offset() + 1 };
        let text = Text { heading, end: end_text, total: total_text, narrowed: true };
        Self::of(found.movies, paging, |n| query.href(n), text, fragment, cards)
    }

    /// The feed of one page of films, whatever chose them; `href` names page `n` of the same choice.
    fn of(
        movies: Vec<Arc<Movie>>,
        paging: Paging,
        href: impl Fn(u32) -> String,
        text: Text,
        fragment: bool,
        cards: &Cards,
    ) -> Self {
        let page = paging.page.get();
        Self {
            cards: movies.into_iter().map(|m| cards.card(m)).collect(),
            page,
            next_href: paging.page.next().filter(|_| paging.has_next).map(|n| href(n.get())),
            href: href(page),
            first_href: href(1),
            prev_href: (page > 1).then(|| href(page - 1)),
            total: paging.total,
            total_text: text.total,
            heading: text.heading,
            narrowed: text.narrowed,
            end_text: text.end,
            first_position: paging.first,
            fragment,
        }
    }
}

/// Where a page sits in its list or search.
struct Paging {
    page: PageNumber,
    total: i64,
    has_next: bool,
    /// The position of its first film.
    first: u64,
}

/// What a feed says of itself.
struct Text {
    heading: String,
    end: String,
    total: String,
    narrowed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_skip_articles() {
        assert_eq!(initials("The Land Girls"), "LG");
        assert_eq!(initials("300"), "3");
        assert_eq!(initials("Astérix aux Jeux Olympiques"), "AA");
        assert_eq!(initials("The"), "T");
    }

    // Fixed values, not a second call: every server (and every build) must give a film one colour.
    #[test]
    fn hue_is_the_same_on_every_server() {
        assert_eq!(hue("heat-1995"), 354);
        assert_eq!(hue("jurassic-park-1993"), 7);
        assert_eq!(hue("the-land-girls-1998"), 188);
    }
}
