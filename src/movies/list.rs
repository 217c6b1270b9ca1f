//! Which films a listing shows and in which order: the filters (genre, decade, MPAA rating) and the
//! sort, as a URL gives them, as a cache key names them and as people read them. The vocabularies
//! are the dataset's own: its genres and MPAA ratings, in slug form.

use std::fmt::Write as _;

/// The genres a list can be narrowed to: (slug, the name films carry).
pub const GENRES: &[(&str, &str)] = &[
    ("action", "Action"),
    ("adventure", "Adventure"),
    ("black-comedy", "Black Comedy"),
    ("comedy", "Comedy"),
    ("concert-performance", "Concert/Performance"),
    ("documentary", "Documentary"),
    ("drama", "Drama"),
    ("horror", "Horror"),
    ("musical", "Musical"),
    ("romantic-comedy", "Romantic Comedy"),
    ("thriller-suspense", "Thriller/Suspense"),
    ("western", "Western"),
];

/// The MPAA ratings: (slug, the rating films carry).
pub const RATINGS: &[(&str, &str)] = &[
    ("g", "G"),
    ("pg", "PG"),
    ("pg-13", "PG-13"),
    ("r", "R"),
    ("nc-17", "NC-17"),
    ("not-rated", "Not Rated"),
    ("open", "Open"),
];

/// The decade of `year` as the database's counts and indexes name it: the first three digits of
/// its years (`1994` → `"199"`).
pub fn decade_key(year: u16) -> String {
    format!("{:03}", year / 10)
}

/// The decades a list can be narrowed to, by their first year.
pub const FIRST_DECADE: u16 = 1910;
pub const LAST_DECADE: u16 = 2010;

/// The orders a list can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    /// Newest release first (the listing's own order).
    #[default]
    Newest,
    /// IMDB rating, highest first.
    Rating,
    /// IMDB votes, most first.
    Votes,
    /// Worldwide gross, highest first.
    Gross,
}

impl Sort {
    pub const ALL: [Self; 4] = [Self::Newest, Self::Rating, Self::Votes, Self::Gross];

    pub fn name(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Rating => "rating",
            Self::Votes => "votes",
            Self::Gross => "gross",
        }
    }

    /// How people read it, after "films": "newest first", …
    pub fn label(self) -> &'static str {
        match self {
            Self::Newest => "newest first",
            Self::Rating => "best rated first",
            Self::Votes => "most voted first",
            Self::Gross => "highest grossing first",
        }
    }

    /// The column it sorts on (descending, films without a value last, ties by slug).
    pub fn column(self) -> &'static str {
        match self {
            Self::Newest => "release_date",
            Self::Rating => "imdb_rating",
            Self::Votes => "imdb_votes",
            Self::Gross => "worldwide_gross",
        }
    }
}

/// One list of films. `MovieList::default()` is the listing everybody starts on: every film,
/// newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MovieList {
    genre: Option<u8>,
    decade: Option<u16>,
    rating: Option<u8>,
    pub sort: Sort,
}

/// A query parameter of a list whose value is not one of those allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param} must be {allowed}, not {value:?}")]
pub struct ListError {
    pub param: &'static str,
    pub value: String,
    pub allowed: String,
}

fn index(table: &[(&str, &str)], slug: &str) -> Option<u8> {
    table.iter().position(|(s, _)| *s == slug).and_then(|i| u8::try_from(i).ok())
}

fn slugs(table: &[(&str, &str)]) -> String {
    format!("one of: {}", table.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", "))
}

impl MovieList {
    /// The parameter names a list reads from a URL.
    pub const PARAMS: [&'static str; 4] = ["genre", "decade", "rating", "sort"];

    /// Sets one parameter from its URL value.
    pub fn set(&mut self, param: &str, value: &str) -> Result<(), ListError> {
        let refuse = |param: &'static str, allowed: String| ListError { param, value: value.to_owned(), allowed };
        match param {
            "genre" => self.genre = Some(index(GENRES, value).ok_or_else(|| refuse("genre", slugs(GENRES)))?),
            "rating" => self.rating = Some(index(RATINGS, value).ok_or_else(|| refuse("rating", slugs(RATINGS)))?),
            "decade" => {
                let year = (value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<u16>().ok())
                    .flatten()
                    .filter(|y| y % 10 == 0 && (FIRST_DECADE..=LAST_DECADE).contains(y));
                let allowed = format!("the first year of a decade from {FIRST_DECADE} to {LAST_DECADE} (like 1990)");
                self.decade = Some(year.ok_or_else(|| refuse("decade", allowed))?);
            }
            "sort" => {
                let names = format!("one of: {}", Sort::ALL.map(Sort::name).join(", "));
                self.sort = Sort::ALL.into_iter().find(|s| s.name() == value).ok_or_else(|| refuse("sort", names))?;
            }
            _ => {}
        }
        Ok(())
    }

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a filter narrows it (otherwise it is every film, in its sort's order).
    pub fn is_filtered(&self) -> bool {
        self.genre.is_some() || self.decade.is_some() || self.rating.is_some()
    }

    /// The genre's (slug, name).
    pub fn genre(&self) -> Option<(&'static str, &'static str)> {
        self.genre.and_then(|i| GENRES.get(usize::from(i)).copied())
    }

    /// The MPAA rating's (slug, rating).
    pub fn rating(&self) -> Option<(&'static str, &'static str)> {
        self.rating.and_then(|i| RATINGS.get(usize::from(i)).copied())
    }

    pub fn decade(&self) -> Option<u16> {
        self.decade
    }

    /// The list's parameters in one fixed order, without the defaults: `genre=comedy&decade=1990&sort=rating`.
    /// Empty for the default list. One text per distinct list, whatever the URL's order: it names
    /// the list's cache keys, and its URLs.
    pub fn key(&self) -> String {
        let mut out = String::new();
        let mut add = |name: &str, value: &str| {
            if !out.is_empty() {
                out.push('&');
            }
            let _ = write!(out, "{name}={value}");
        };
        if let Some((slug, _)) = self.genre() {
            add("genre", slug);
        }
        if let Some(decade) = self.decade {
            add("decade", &decade.to_string());
        }
        if let Some((slug, _)) = self.rating() {
            add("rating", slug);
        }
        if self.sort != Sort::Newest {
            add("sort", self.sort.name());
        }
        out
    }

    /// The URL of page `n` of this list.
    pub fn href(&self, page: u32) -> String {
        let key = self.key();
        match (key.is_empty(), page) {
            (true, 1) => "/movies".to_owned(),
            (true, n) => format!("/movies?page={n}"),
            (false, 1) => format!("/movies?{key}"),
            (false, n) => format!("/movies?{key}&page={n}"),
        }
    }

    /// What people read as the list's heading: "Comedy films from the 1990s rated R, best rated first".
    pub fn heading(&self) -> String {
        let mut out = match self.genre() {
            Some((_, name)) => format!("{name} films"),
            None => "Films".to_owned(),
        };
        if let Some(decade) = self.decade {
            let _ = write!(out, " from the {decade}s");
        }
        if let Some((_, rating)) = self.rating() {
            let _ = write!(out, " rated {rating}");
        }
        let _ = write!(out, ", {}", self.sort.label());
        out
    }

    /// The decade as the database's counts and indexes name it (`decade_key`).
    pub fn decade_key(&self) -> Option<String> {
        self.decade.map(decade_key)
    }

    /// The first day of the decade and the first day after it, as the stored dates are written.
    pub fn decade_bounds(&self) -> Option<(String, String)> {
        self.decade.map(|d| (format!("{d:04}-01-01"), format!("{:04}-01-01", d + 10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> Result<MovieList, ListError> {
        let mut l = MovieList::default();
        for (k, v) in pairs {
            l.set(k, v)?;
        }
        Ok(l)
    }

    #[test]
    fn one_key_per_list_whatever_the_order() {
        let a = list(&[("sort", "rating"), ("decade", "1990"), ("genre", "comedy")]).unwrap();
        let b = list(&[("genre", "comedy"), ("sort", "rating"), ("decade", "1990")]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key(), "genre=comedy&decade=1990&sort=rating");
        assert_eq!(list(&[("sort", "newest")]).unwrap().key(), "");
        assert!(list(&[("sort", "newest")]).unwrap().is_default());
        assert_eq!(a.href(3), "/movies?genre=comedy&decade=1990&sort=rating&page=3");
        assert_eq!(MovieList::default().href(2), "/movies?page=2");
    }

    #[test]
    fn unknown_values_say_what_is_allowed() {
        let e = list(&[("genre", "Comedy")]).unwrap_err();
        assert_eq!(e.param, "genre");
        assert!(
            e.to_string().starts_with("genre must be one of: action,") && e.to_string().contains("romantic-comedy"),
            "{e}"
        );
        for (k, v) in [("decade", "1995"), ("decade", "199"), ("decade", "+1990"), ("decade", "2020"), ("rating", "x")]
        {
            assert_eq!(list(&[(k, v)]).unwrap_err().param, k, "{k}={v}");
        }
        assert!(list(&[("sort", "title")]).unwrap_err().to_string().contains("newest, rating, votes, gross"));
    }

    #[test]
    fn headings_read_as_sentences() {
        let l = list(&[("genre", "thriller-suspense"), ("decade", "1980"), ("rating", "r"), ("sort", "votes")]);
        assert_eq!(l.unwrap().heading(), "Thriller/Suspense films from the 1980s rated R, most voted first");
        assert_eq!(MovieList::default().heading(), "Films, newest first");
    }
}
