//! A film's page: its facts, the money chart, the films next to it, the way back.

use askama::Template;

use super::feed::{Card, hue, initials};
use crate::movies::{Movie, format};
use crate::service::Detail;

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
                cards: detail.by_director.iter().map(|m| Card::new(m)).collect(),
            });
        }
        if let Some(genre) = m.genre.as_deref().filter(|_| !detail.by_genre.is_empty()) {
            out.push(Self {
                heading: format!("More {genre} from the {}s", m.release_date.year() / 10 * 10),
                cards: detail.by_genre.iter().map(|m| Card::new(m)).collect(),
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
