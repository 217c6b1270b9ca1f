//! Pages read as a browser reads them: parsed with `scraper` (html5ever), queried with CSS
//! selectors, never split as strings.

use reqwest::StatusCode;
use scraper::{ElementRef, Html, Selector};

fn select(css: &str) -> Selector {
    Selector::parse(css).expect("a valid selector")
}

fn text(e: ElementRef<'_>) -> String {
    e.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A listing page or htmx fragment as a reader sees it.
#[derive(Debug)]
pub struct Listing {
    pub status: StatusCode,
    /// The cards' slugs, in order.
    pub slugs: Vec<String>,
    /// The cards' titles (their headings), in order.
    pub titles: Vec<String>,
    /// Each card's `aria-posinset`.
    pub positions: Vec<u64>,
    /// The catalog size the cards announce (`aria-setsize`).
    pub setsize: Option<u64>,
    /// The `data-hx-get` of the control that loads the next page, if any.
    pub next: Option<String>,
    /// The "that's every film" message on the last page.
    pub end: Option<String>,
    pub html: String,
}

impl Listing {
    pub fn parse(status: StatusCode, html: String) -> Self {
        let doc = Html::parse_document(&html);
        let cards: Vec<ElementRef<'_>> = doc.select(&select("article.movie-card")).collect();
        let attr = |e: &ElementRef<'_>, name: &str| e.value().attr(name).map(str::to_owned);
        let slugs = cards.iter().filter_map(|c| attr(c, "data-slug")).collect();
        let titles = cards.iter().filter_map(|c| c.select(&select("h2")).next().map(text)).collect();
        let positions = cards.iter().filter_map(|c| attr(c, "aria-posinset")?.parse().ok()).collect();
        let setsize = cards.first().and_then(|c| attr(c, "aria-setsize")?.parse().ok());
        let next = doc.select(&select("#more [data-hx-get]")).next().and_then(|e| attr(&e, "data-hx-get"));
        let end = doc.select(&select("#more .more-end")).next().map(text);
        Self { status, slugs, titles, positions, setsize, next, end, html }
    }
}

/// A film's page as a reader sees it.
#[derive(Debug)]
pub struct Detail {
    pub status: StatusCode,
    /// The `<h1>`.
    pub heading: Option<String>,
    /// The facts list: (label, value) in reading order.
    pub facts: Vec<(String, String)>,
    pub html: String,
}

impl Detail {
    pub fn parse(status: StatusCode, html: String) -> Self {
        let doc = Html::parse_document(&html);
        let heading = doc.select(&select("h1")).next().map(text);
        let facts = doc
            .select(&select("dl.facts > div"))
            .filter_map(|row| {
                let dt = row.select(&select("dt")).next().map(text)?;
                let dd = row.select(&select("dd")).next().map(text)?;
                Some((dt, dd))
            })
            .collect();
        Self { status, heading, facts, html }
    }

    pub fn fact(&self, label: &str) -> Option<&str> {
        self.facts.iter().find(|(l, _)| l == label).map(|(_, v)| v.as_str())
    }
}

/// The slugs of the cards in a page or fragment, in order.
pub fn card_slugs(html: &str) -> Vec<String> {
    Listing::parse(StatusCode::OK, html.to_owned()).slugs
}

/// The heading levels of a page, in document order (`<h1>` is 1).
pub fn heading_levels(html: &str) -> Vec<u32> {
    Html::parse_document(html)
        .select(&select("h1, h2, h3, h4, h5, h6"))
        .filter_map(|h| h.value().name().strip_prefix('h')?.parse().ok())
        .collect()
}
