//! The list's controls: a select for each filter and for the sort, the current choice selected.

use crate::movies::{FIRST_DECADE, GENRES, LAST_DECADE, MovieList, RATINGS, Sort};

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
