//! The templates' data: each page is a struct, built from the service's results by plain
//! functions, so templates only place values (all escaped by askama).

use askama::Template;
use askama_web::WebTemplate;

use crate::movies::{FIRST_DECADE, GENRES, LAST_DECADE, Movie, MovieList, PageNumber, RATINGS, Sort, format};
use crate::service::{Detail, Found, Listing};

/// Changes whenever app.css or app.js changes: the templates add it to their URLs, so browsers
/// holding the old files (served as immutable) fetch the new ones.
pub const ASSET_VERSION: u64 =
    fnv1a(include_bytes!("../../static/app.css")) ^ fnv1a(include_bytes!("../../static/app.js")).rotate_left(1);

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A listing card.
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
    /// Takes the film by value: its strings move into the card instead of being copied.
    pub fn new(m: Movie) -> Self {
        Self {
            initials: initials(&m.title),
            hue: hue(&m.slug),
            year: m.release_date.year(),
            imdb_rating: m.imdb_rating.map(format::rating),
            slug: m.slug,
            title: m.title,
            genre: m.genre,
            director: m.director,
            mpaa_rating: m.mpaa_rating,
        }
    }
}

fn initials(title: &str) -> String {
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

fn hue(slug: &str) -> u16 {
    // FNV-1a: stable across runs and platforms
    let h = slug.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    u16::try_from(h % 360).unwrap_or(0)
}

/// The feed's items for one page, shared by the full pages (lists, search) and the htmx fragments.
pub struct Feed {
    pub cards: Vec<Card>,
    pub page: u32,
    /// The next page's URL (same list or search), absent on the last page.
    pub next_href: Option<String>,
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
    pub fn new(listing: Listing, fragment: bool) -> Self {
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
        Self::of(listing.movies, paging, |n| list.href(n), text, fragment)
    }

    pub fn found(found: Found, fragment: bool) -> Self {
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
        Self::of(found.movies, paging, |n| query.href(n), text, fragment)
    }

    /// The feed of one page of films, whatever chose them; `href` names page `n` of the same choice.
    fn of(movies: Vec<Movie>, paging: Paging, href: impl Fn(u32) -> String, text: Text, fragment: bool) -> Self {
        let page = paging.page.get();
        Self {
            cards: movies.into_iter().map(Card::new).collect(),
            page,
            next_href: paging.page.next().filter(|_| paging.has_next).map(|n| href(n.get())),
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

/// One option of a list control.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One select of the list's form: its parameter, its label, its options.
pub struct Select {
    pub name: &'static str,
    pub label: &'static str,
    pub choices: Vec<Choice>,
}

/// The list's controls (a plain GET form): each select with its options, the list's own selected.
pub struct Controls {
    pub selects: [Select; 4],
}

impl Controls {
    pub fn new(list: &MovieList) -> Self {
        let any = |label: &str, selected: bool| Choice { value: String::new(), label: label.to_owned(), selected };
        let table = |rows: &[(&str, &str)], current: Option<(&str, &str)>, all: &str| {
            let mut out = vec![any(all, current.is_none())];
            out.extend(rows.iter().map(|(slug, name)| Choice {
                value: (*slug).to_owned(),
                label: (*name).to_owned(),
                selected: current.is_some_and(|(c, _)| c == *slug),
            }));
            out
        };
        let mut decades = vec![any("Any decade", list.decade().is_none())];
        decades.extend((FIRST_DECADE..=LAST_DECADE).rev().step_by(10).map(|d| Choice {
            value: d.to_string(),
            label: format!("{d}s"),
            selected: list.decade() == Some(d),
        }));
        let sorts = Sort::ALL
            .iter()
            .map(|s| Choice { value: s.name().to_owned(), label: capitalized(s.label()), selected: list.sort == *s })
            .collect();
        Self {
            selects: [
                Select { name: "genre", label: "Genre", choices: table(GENRES, list.genre(), "All genres") },
                Select { name: "decade", label: "Decade", choices: decades },
                Select { name: "rating", label: "Rated", choices: table(RATINGS, list.rating(), "Any rating") },
                Select { name: "sort", label: "Sort", choices: sorts },
            ],
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
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

/// The detail page.
#[derive(Template)]
#[template(path = "movies/show.html")]
pub struct DetailPage {
    pub title: String,
    pub year: u16,
    pub release_date: String,
    pub initials: String,
    pub hue: u16,
    /// (label, value) pairs of the fields the film has, in reading order.
    pub facts: Vec<(&'static str, String)>,
    /// One sentence for `<meta name="description">`.
    pub description: String,
    /// The budget beside the grosses; `None` when the film has no budget.
    pub money: Option<MoneyChart>,
    /// "More from {director}", "More {genre} from the {decade}s": those with films.
    pub related: Vec<Related>,
    /// Where "back" leads: the list or search the reader came from, or every film.
    pub back_href: String,
    pub back_label: &'static str,
}

/// A row of films next to the one shown.
pub struct Related {
    pub heading: String,
    pub cards: Vec<Card>,
}

impl Related {
    /// The detail's related films as sections, leaving out those with none.
    pub fn sections(detail: Detail) -> Vec<Self> {
        let m = &detail.movie;
        let mut out = Vec::new();
        if let Some(director) = m.director.as_deref().filter(|_| !detail.by_director.is_empty()) {
            out.push(Self {
                heading: format!("More from {director}"),
                cards: detail.by_director.into_iter().map(Card::new).collect(),
            });
        }
        if let Some(genre) = m.genre.as_deref().filter(|_| !detail.by_genre.is_empty()) {
            out.push(Self {
                heading: format!("More {genre} from the {}s", m.release_date.year() / 10 * 10),
                cards: detail.by_genre.into_iter().map(Card::new).collect(),
            });
        }
        out
    }
}

/// One bar of the money chart.
pub struct Bar {
    pub label: &'static str,
    /// "$1,234,567"
    pub amount: String,
    /// A class name: `budget`, `us`, `world`.
    pub kind: &'static str,
    /// Its length in the chart's units (the longest bar is `MoneyChart::WIDTH`).
    pub length: u32,
    /// Its top, in the chart's units.
    pub y: u32,
}

/// The budget against US and worldwide gross, drawn as bars by the server (an inline SVG: no
/// script, nothing the CSP refuses), the amounts in text beside it.
pub struct MoneyChart {
    pub bars: Vec<Bar>,
    /// The SVG's height in its own units.
    pub height: u32,
}

impl MoneyChart {
    pub const WIDTH: u32 = 300;
    const ROW: u32 = 28;

    pub fn new(m: &Movie) -> Option<Self> {
        let budget = m.production_budget.filter(|b| *b > 0)?;
        let rows = [
            ("Budget", "budget", Some(budget)),
            ("US gross", "us", m.us_gross),
            ("Worldwide gross", "world", m.worldwide_gross),
        ];
        let rows: Vec<(&'static str, &'static str, i64)> =
            rows.into_iter().filter_map(|(label, kind, v)| v.filter(|v| *v >= 0).map(|v| (label, kind, v))).collect();
        let max = rows.iter().map(|r| r.2).max().unwrap_or(budget).max(1);
        let bars = rows
            .into_iter()
            .zip(0u32..)
            .map(|((label, kind, v), i)| Bar {
                label,
                amount: format::money(v),
                kind,
                // at least a sliver, so that a gross of $0 still shows where its bar would be
                length: u32::try_from(i128::from(v) * i128::from(Self::WIDTH) / i128::from(max)).unwrap_or(0).max(1),
                y: i * Self::ROW,
            })
            .collect::<Vec<_>>();
        let height = u32::try_from(bars.len()).unwrap_or(0) * Self::ROW;
        Some(Self { bars, height })
    }
}

impl DetailPage {
    pub fn new(m: &Movie) -> Self {
        let mut facts: Vec<(&'static str, String)> = vec![("Released", m.release_date.long())];
        let mut text = |label, v: &Option<String>| {
            if let Some(v) = v {
                facts.push((label, v.clone()));
            }
        };
        text("Genre", &m.genre);
        text("Director", &m.director);
        text("Rated", &m.mpaa_rating);
        let mut push = |label, v: Option<String>| {
            if let Some(v) = v {
                facts.push((label, v));
            }
        };
        push("Running time", m.running_time_min.map(format::runtime));
        push("IMDB rating", m.imdb_rating.map(|r| format!("{} / 10", format::rating(r))));
        push("IMDB votes", m.imdb_votes.map(format::count));
        push("Rotten Tomatoes", m.rotten_tomatoes_rating.map(|r| format!("{r}%")));
        push("Production budget", m.production_budget.map(format::money));
        push("US gross", m.us_gross.map(format::money));
        push("Worldwide gross", m.worldwide_gross.map(format::money));
        push("US DVD sales", m.us_dvd_sales.map(format::money));
        push("Distributor", m.distributor.clone());
        push("Source", m.source.clone());
        push("Creative type", m.creative_type.clone());
        let mut description = format!("{} ({})", m.title, m.release_date.year());
        if let Some(g) = &m.genre {
            description.push_str(&format!(", {}", g.to_lowercase()));
        }
        if let Some(d) = &m.director {
            description.push_str(&format!(" directed by {d}"));
        }
        description.push('.');
        Self {
            money: MoneyChart::new(m),
            related: Vec::new(),
            back_href: "/".to_owned(),
            back_label: "← All films",
            title: m.title.clone(),
            year: m.release_date.year(),
            release_date: m.release_date.to_string(),
            initials: initials(&m.title),
            hue: hue(&m.slug),
            facts,
            description,
        }
    }
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
