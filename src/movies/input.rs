//! What the write API accepts: a new film or a partial update, checked field by field so that a
//! bad body is refused with the name of the field at fault and nothing is written.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Date, Movie, Slug};

/// The longest title accepted.
pub const MAX_TITLE: usize = 300;
/// The longest value of the other text fields.
pub const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Title,
    Date,
    Text,
    Int { min: i64, max: i64 },
    Float { min: f64, max: f64 },
}

const MONEY: Kind = Kind::Int { min: 0, max: 1_000_000_000_000 };

/// Every field a client may set, with its kind. `slug` is handled apart: it can only be chosen at
/// creation.
const FIELDS: &[(&str, Kind)] = &[
    ("title", Kind::Title),
    ("release_date", Kind::Date),
    ("genre", Kind::Text),
    ("director", Kind::Text),
    ("mpaa_rating", Kind::Text),
    ("running_time_min", Kind::Int { min: 1, max: 1_000 }),
    ("imdb_rating", Kind::Float { min: 0.0, max: 10.0 }),
    ("imdb_votes", Kind::Int { min: 0, max: 1_000_000_000 }),
    ("rotten_tomatoes_rating", Kind::Int { min: 0, max: 100 }),
    ("us_gross", MONEY),
    ("worldwide_gross", MONEY),
    ("us_dvd_sales", MONEY),
    ("production_budget", MONEY),
    ("distributor", Kind::Text),
    ("source", Kind::Text),
    ("creative_type", Kind::Text),
];

#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Title(String),
    Date(Date),
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
}

/// A partial update: the fields present in the body, each already checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MoviePatch {
    changes: Vec<(&'static str, FieldValue)>,
}

/// A film to create. Without a slug, the repository derives one from the title and year.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMovie {
    pub slug: Option<Slug>,
    pub movie: Movie,
}

fn object(body: &Value) -> Result<&Map<String, Value>, FieldError> {
    body.as_object().ok_or_else(|| FieldError::new("body", "expected a JSON object"))
}

impl MoviePatch {
    pub fn from_json(body: &Value) -> Result<Self, FieldError> {
        Self::from_map(object(body)?, false)
    }

    fn from_map(map: &Map<String, Value>, allow_slug: bool) -> Result<Self, FieldError> {
        let mut changes = Vec::with_capacity(map.len());
        for (name, value) in map {
            if allow_slug && name == "slug" {
                continue;
            }
            let Some(&(field, kind)) = FIELDS.iter().find(|(f, _)| f == name) else {
                let hint = if name == "slug" { "a film's slug cannot be changed" } else { "unknown field" };
                return Err(FieldError::new(name, hint));
            };
            changes.push((field, check(field, kind, value)?));
        }
        // report changes in the fields' own order, whatever the body's order
        changes.sort_by_key(|(field, _)| FIELDS.iter().position(|(f, _)| f == field));
        Ok(Self { changes })
    }

    /// Applies the patch and names the fields whose value really changed.
    pub fn apply(&self, movie: &mut Movie) -> Vec<&'static str> {
        let mut changed = Vec::new();
        for (field, value) in &self.changes {
            if set(movie, field, value.clone()) {
                changed.push(*field);
            }
        }
        changed
    }
}

impl NewMovie {
    pub fn from_json(body: &Value) -> Result<Self, FieldError> {
        let map = object(body)?;
        let slug = match map.get("slug") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Slug::parse(s).map_err(|e| FieldError::new("slug", e.to_string()))?),
            Some(_) => return Err(FieldError::new("slug", "expected a string")),
        };
        let patch = MoviePatch::from_map(map, true)?;
        let placeholder = Date::new(1900, 1, 1).ok_or_else(|| FieldError::new("release_date", "internal"))?;
        let mut movie = Movie::new(String::new(), placeholder);
        for required in ["title", "release_date"] {
            if !patch.changes.iter().any(|(f, _)| *f == required) {
                return Err(FieldError::new(required, "is required"));
            }
        }
        patch.apply(&mut movie);
        Ok(Self { slug, movie })
    }
}

fn check(field: &str, kind: Kind, value: &Value) -> Result<FieldValue, FieldError> {
    let err = |m: &str| FieldError::new(field, m);
    match (kind, value) {
        (Kind::Title, Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Err(err("cannot be empty"))
            } else if s.chars().count() > MAX_TITLE {
                Err(err("is longer than 300 characters"))
            } else if s.chars().any(char::is_control) {
                Err(err("cannot contain control characters"))
            } else {
                Ok(FieldValue::Title(s.to_owned()))
            }
        }
        (Kind::Title, _) => Err(err("expected a string")),
        (Kind::Date, Value::String(s)) => {
            s.parse().map(FieldValue::Date).map_err(|_| err("expected a date as YYYY-MM-DD"))
        }
        (Kind::Date, _) => Err(err("expected a date as YYYY-MM-DD")),
        (Kind::Text, Value::Null) => Ok(FieldValue::Text(None)),
        (Kind::Text, Value::String(s)) => {
            let s = s.trim();
            if s.chars().count() > MAX_TEXT {
                Err(err("is longer than 200 characters"))
            } else if s.chars().any(char::is_control) {
                Err(err("cannot contain control characters"))
            } else {
                Ok(FieldValue::Text((!s.is_empty()).then(|| s.to_owned())))
            }
        }
        (Kind::Text, _) => Err(err("expected a string or null")),
        (Kind::Int { .. }, Value::Null) => Ok(FieldValue::Int(None)),
        (Kind::Int { min, max }, Value::Number(n)) => match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(FieldValue::Int(Some(i))),
            _ => Err(FieldError::new(field, format!("expected a whole number from {min} to {max}"))),
        },
        (Kind::Int { .. }, _) => Err(err("expected a whole number or null")),
        (Kind::Float { .. }, Value::Null) => Ok(FieldValue::Float(None)),
        (Kind::Float { min, max }, Value::Number(n)) => match n.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(FieldValue::Float(Some(x))),
            _ => Err(FieldError::new(field, format!("expected a number from {min} to {max}"))),
        },
        (Kind::Float { .. }, _) => Err(err("expected a number or null")),
    }
}

fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    let changed = *slot != value;
    *slot = value;
    changed
}

fn set(m: &mut Movie, field: &str, value: FieldValue) -> bool {
    use FieldValue as V;
    match (field, value) {
        ("title", V::Title(s)) => replace(&mut m.title, s),
        ("release_date", V::Date(d)) => replace(&mut m.release_date, d),
        ("genre", V::Text(s)) => replace(&mut m.genre, s),
        ("director", V::Text(s)) => replace(&mut m.director, s),
        ("mpaa_rating", V::Text(s)) => replace(&mut m.mpaa_rating, s),
        ("distributor", V::Text(s)) => replace(&mut m.distributor, s),
        ("source", V::Text(s)) => replace(&mut m.source, s),
        ("creative_type", V::Text(s)) => replace(&mut m.creative_type, s),
        ("running_time_min", V::Int(i)) => replace(&mut m.running_time_min, i),
        ("imdb_votes", V::Int(i)) => replace(&mut m.imdb_votes, i),
        ("rotten_tomatoes_rating", V::Int(i)) => replace(&mut m.rotten_tomatoes_rating, i),
        ("us_gross", V::Int(i)) => replace(&mut m.us_gross, i),
        ("worldwide_gross", V::Int(i)) => replace(&mut m.worldwide_gross, i),
        ("us_dvd_sales", V::Int(i)) => replace(&mut m.us_dvd_sales, i),
        ("production_budget", V::Int(i)) => replace(&mut m.production_budget, i),
        ("imdb_rating", V::Float(x)) => replace(&mut m.imdb_rating, x),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(body: Value) -> Result<NewMovie, FieldError> {
        NewMovie::from_json(&body)
    }

    #[test]
    fn a_complete_body_becomes_a_film() {
        let m = new(json!({"title": " Heat ", "release_date": "1995-12-15", "imdb_rating": 8.2, "genre": null}))
            .map(|n| n.movie);
        let m = m.as_ref().ok();
        assert_eq!(m.map(|m| m.title.as_str()), Some("Heat"));
        assert_eq!(m.and_then(|m| m.imdb_rating), Some(8.2));
    }

    #[test]
    fn each_fault_names_its_field() {
        let cases = [
            (json!([1]), "body"),
            (json!({"release_date": "1995-12-15"}), "title"),
            (json!({"title": "Heat"}), "release_date"),
            (json!({"title": 5, "release_date": "1995-12-15"}), "title"),
            (json!({"title": "x".repeat(301), "release_date": "1995-12-15"}), "title"),
            (json!({"title": "Heat", "release_date": "Dec 15 1995"}), "release_date"),
            (json!({"title": "Heat", "release_date": "1995-12-15", "imdb_rating": "8"}), "imdb_rating"),
            (json!({"title": "Heat", "release_date": "1995-12-15", "imdb_rating": 11}), "imdb_rating"),
            (json!({"title": "Heat", "release_date": "1995-12-15", "us_gross": 1.5}), "us_gross"),
            (json!({"title": "Heat", "release_date": "1995-12-15", "colour": "red"}), "colour"),
            (json!({"title": "Heat", "release_date": "1995-12-15", "slug": "Bad Slug"}), "slug"),
        ];
        for (body, field) in cases {
            assert_eq!(new(body.clone()).err().map(|e| e.field), Some(field.to_owned()), "{body}");
        }
    }

    #[test]
    fn a_patch_reports_only_real_changes() {
        let mut m =
            new(json!({"title": "Heat", "release_date": "1995-12-15", "genre": "Action"})).map(|n| n.movie).ok();
        let patch = MoviePatch::from_json(&json!({"genre": "Action", "director": "Michael Mann"}));
        let changed = m.as_mut().zip(patch.ok()).map(|(m, p)| p.apply(m));
        assert_eq!(changed, Some(vec!["director"]));
        assert!(MoviePatch::from_json(&json!({"slug": "other"})).is_err());
        assert!(MoviePatch::from_json(&json!({"title": null})).is_err());
    }
}
