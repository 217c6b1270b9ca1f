//! The domain: a film, the values that enter from outside (slugs, page numbers, dates), and how they
//! are shown to people.

mod date;
pub mod format;
mod input;
mod list;
mod page;
mod search;
mod slug;

pub use date::Date;
pub use input::{FieldError, MoviePatch, NewMovie};
pub use list::{FIRST_DECADE, GENRES, LAST_DECADE, ListError, MovieList, RATINGS, Sort, decade_key};
pub use page::{MAX_PAGE, PageNumber};
pub use search::normalize as search_text;
pub use search::{QueryTooLong, SearchQuery};
pub use slug::{MAX_LEN as SLUG_MAX_LEN, Slug, SlugError, movie_slug, slugify};

/// One film as stored: the one declaration of its fields. The database reads it by field name
/// (`FromRow`); the cache and the API write its fields by their names (serde), each putting the
/// version where its own format wants it.
///
/// `version` is the catalog version of the film's last write: it only grows, across deletes and
/// re-creations too, so the cache can refuse an older copy over a newer one. It is the catalog's
/// mark on the film, not one of its facts: serde leaves it out, and it is `0` when read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(description = "A film: its facts as the catalog stores them; `null` where a fact is unknown.")]
pub struct Movie {
    #[serde(skip)]
    pub version: i64,
    pub slug: String,
    pub title: String,
    pub release_date: Date,
    pub genre: Option<String>,
    pub director: Option<String>,
    pub mpaa_rating: Option<String>,
    pub running_time_min: Option<i64>,
    pub imdb_rating: Option<f64>,
    pub imdb_votes: Option<i64>,
    pub rotten_tomatoes_rating: Option<i64>,
    pub us_gross: Option<i64>,
    pub worldwide_gross: Option<i64>,
    pub us_dvd_sales: Option<i64>,
    pub production_budget: Option<i64>,
    pub distributor: Option<String>,
    pub source: Option<String>,
    pub creative_type: Option<String>,
}

impl Movie {
    /// A film with only its title and date known (slug and version are the repository's to set).
    pub fn new(title: String, release_date: Date) -> Self {
        Self {
            version: 0,
            slug: String::new(),
            title,
            release_date,
            genre: None,
            director: None,
            mpaa_rating: None,
            running_time_min: None,
            imdb_rating: None,
            imdb_votes: None,
            rotten_tomatoes_rating: None,
            us_gross: None,
            worldwide_gross: None,
            us_dvd_sales: None,
            production_budget: None,
            distributor: None,
            source: None,
            creative_type: None,
        }
    }
}
