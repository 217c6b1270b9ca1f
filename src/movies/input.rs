//! What the write API accepts: a new film or a partial update. The body is deserialized straight
//! into checked values, so a bad body is refused with the name of the field at fault (the path
//! `serde_path_to_error` reports) and nothing is written.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, SchemaType, Type};

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

/// A title: trimmed, not empty, at most 300 characters, no control characters.
#[derive(Debug, Clone, PartialEq)]
struct Title(String);

/// Another text field: trimmed (empty means none), at most 200 characters.
#[derive(Debug, Clone, PartialEq)]
struct Text(Option<String>);

/// A release date written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct IsoDate(Date);

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Whole<const MIN: i64, const MAX: i64>(i64);

/// An IMDB rating, 0 to 10.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

type Money = Whole<0, 1_000_000_000_000>;

/// The length is the text's as sent, the length the API's document states a bound on.
fn checked_text<E: serde::de::Error>(text: &str, max: usize) -> Result<&str, E> {
    if text.chars().count() > max {
        Err(E::custom(format!("is longer than {max} characters")))
    } else if text.chars().any(char::is_control) {
        Err(E::custom("cannot contain control characters"))
    } else {
        Ok(text.trim())
    }
}

/// Text without control characters (Unicode's `Cc`, what `char::is_control` finds), as a regular
/// expression for the API's document.
const NO_CONTROL: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";
/// The same, with at least one character that is not white space (`char::is_whitespace`): a text
/// that is not empty once trimmed.
const NOT_BLANK: &str = concat!(
    r"^[^\x00-\x1f\x7f-\x9f]*",
    r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\x00-\x1f\x7f-\x9f]*$",
);

/// How a checked value reads in the API's document: its JSON Schema, the rules it is checked by.
trait Described {
    fn described() -> Object;
}

/// A field that may be null.
impl<T: Described> Described for Option<T> {
    fn described() -> Object {
        let mut schema = T::described();
        if let SchemaType::Type(t) = schema.schema_type {
            schema.schema_type = SchemaType::from_iter([t, Type::Null]);
        }
        schema
    }
}

fn text(max: usize, pattern: &str) -> Object {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(max)).pattern(Some(pattern)).build()
}

impl Described for Title {
    fn described() -> Object {
        let mut schema = text(MAX_TITLE, NOT_BLANK);
        schema.description = Some("Trimmed; not blank, no control characters.".into());
        schema
    }
}

impl Described for Text {
    fn described() -> Object {
        let mut schema = text(MAX_TEXT, NO_CONTROL);
        schema.description = Some("Trimmed; empty is the same as null.".into());
        schema
    }
}

impl Described for IsoDate {
    fn described() -> Object {
        Date::json_schema()
    }
}

impl<const MIN: i64, const MAX: i64> Described for Whole<MIN, MAX> {
    fn described() -> Object {
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(MIN)).maximum(Some(MAX)).build()
    }
}

/// A number without a fraction, within the range where every whole `f64` is exact.
fn whole(x: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() != 0.0 || x.abs() > EXACT {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "a whole number within ±2^53 converts exactly")]
    let n = x as i64;
    Some(n)
}

impl Described for Score {
    fn described() -> Object {
        ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0)).maximum(Some(10)).build()
    }
}

/// A new film's own slug.
struct GivenSlug;

impl Described for GivenSlug {
    fn described() -> Object {
        let mut schema = text(super::SLUG_MAX_LEN, super::slug::PATTERN);
        schema.description = Some("Made from the title and year when missing or null.".into());
        schema
    }
}

impl<'de> Deserialize<'de> for Title {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::String(text) = Value::deserialize(d)? else { return Err(D::Error::custom("expected a string")) };
        let text = checked_text(&text, MAX_TITLE)?;
        if text.is_empty() { Err(D::Error::custom("cannot be empty")) } else { Ok(Self(text.to_owned())) }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::String(text) = Value::deserialize(d)? else {
            return Err(D::Error::custom("expected a string or null"));
        };
        let text = checked_text(&text, MAX_TEXT)?;
        Ok(Self((!text.is_empty()).then(|| text.to_owned())))
    }
}

impl<'de> Deserialize<'de> for IsoDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = || D::Error::custom("expected a date as YYYY-MM-DD");
        let Value::String(text) = Value::deserialize(d)? else { return Err(expected()) };
        text.parse().map(Self).map_err(|_| expected())
    }
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Whole<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::Number(n) = Value::deserialize(d)? else {
            return Err(D::Error::custom("expected a whole number or null"));
        };
        // JSON has one kind of number: `170.0` is a whole number too (and JSON Schema's `integer`)
        match n.as_i64().or_else(|| n.as_f64().and_then(whole)) {
            Some(i) if (MIN..=MAX).contains(&i) => Ok(Self(i)),
            _ => Err(D::Error::custom(format!("expected a whole number from {MIN} to {MAX}"))),
        }
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::Number(n) = Value::deserialize(d)? else {
            return Err(D::Error::custom("expected a number or null"));
        };
        match n.as_f64() {
            Some(x) if (0.0..=10.0).contains(&x) => Ok(Self(x)),
            _ => Err(D::Error::custom("expected a number from 0 to 10")),
        }
    }
}

/// A checked value, and the value it gives the film's field of the same name. A field that may be
/// set to null is checked as an `Option` (null is `None`).
trait Checked: Clone {
    type Field: PartialEq;
    fn into_field(self) -> Self::Field;
}

impl Checked for Title {
    type Field = String;
    fn into_field(self) -> String {
        self.0
    }
}

impl Checked for IsoDate {
    type Field = Date;
    fn into_field(self) -> Date {
        self.0
    }
}

impl Checked for Option<Text> {
    type Field = Option<String>;
    fn into_field(self) -> Option<String> {
        self.and_then(|t| t.0)
    }
}

impl<const MIN: i64, const MAX: i64> Checked for Option<Whole<MIN, MAX>> {
    type Field = Option<i64>;
    fn into_field(self) -> Option<i64> {
        self.map(|w| w.0)
    }
}

impl Checked for Option<Score> {
    type Field = Option<f64>;
    fn into_field(self) -> Option<f64> {
        self.map(|s| s.0)
    }
}

/// A field the body has is `Some`, whatever its value (null too, for a field checked as an
/// `Option`); one it does not have is `None`, the default.
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Declares the fields a client may send once, each by its `Movie` field and the check its value
/// must pass, and derives from them the body and how it is applied to a film.
macro_rules! body {
    ($($field:ident: $checked:ty,)+) => {
        /// Every field a client may send. `slug` is read as it came: only a new film may have one.
        #[derive(Debug, Clone, PartialEq, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[serde(default, deserialize_with = "given")]
            slug: Option<Value>,
            $(
                #[serde(default, deserialize_with = "given")]
                $field: Option<$checked>,
            )+
        }

        impl Body {
            /// The body as the API's document describes it: each field by its check, no other.
            fn described() -> Object {
                let mut schema = ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(AdditionalProperties::FreeForm(false)));
                $(schema = schema.property(stringify!($field), <$checked as Described>::described());)+
                schema.build()
            }

            /// Sets the fields the body has and names those whose value really changed, in the
            /// fields' order.
            fn apply(&self, m: &mut Movie) -> Vec<&'static str> {
                // every field but the repository's two, no `..`: a field added to `Movie` and not
                // here does not compile
                let Movie { version: _, slug: _, $($field: _),+ } = m;
                let mut changed = Vec::new();
                $(
                    if let Some(value) = self.$field.clone().map(Checked::into_field)
                        && m.$field != value
                    {
                        m.$field = value;
                        changed.push(stringify!($field));
                    }
                )+
                changed
            }
        }
    };
}

body! {
    title: Title,
    release_date: IsoDate,
    genre: Option<Text>,
    director: Option<Text>,
    mpaa_rating: Option<Text>,
    running_time_min: Option<Whole<1, 1_000>>,
    imdb_rating: Option<Score>,
    imdb_votes: Option<Whole<0, 1_000_000_000>>,
    rotten_tomatoes_rating: Option<Whole<0, 100>>,
    us_gross: Option<Money>,
    worldwide_gross: Option<Money>,
    us_dvd_sales: Option<Money>,
    production_budget: Option<Money>,
    distributor: Option<Text>,
    source: Option<Text>,
    creative_type: Option<Text>,
}

impl Body {
    fn parse(body: Value) -> Result<Self, FieldError> {
        if !body.is_object() {
            return Err(FieldError::new("body", "expected a JSON object"));
        }
        serde_path_to_error::deserialize(body).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { "body".to_owned() } else { field };
            FieldError { field, message: e.into_inner().to_string() }
        })
    }
}

/// A partial update: the fields present in the body, each already checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MoviePatch {
    body: Body,
}

/// A film to create. Without a slug, the repository derives one from the title and year.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMovie {
    pub slug: Option<Slug>,
    pub movie: Movie,
}

impl MoviePatch {
    pub fn from_json(body: Value) -> Result<Self, FieldError> {
        let body = Body::parse(body)?;
        if body.slug.is_some() {
            return Err(FieldError::new("slug", "a film's slug cannot be changed"));
        }
        Ok(Self { body })
    }

    /// Applies the patch and names the fields whose value really changed, in the fields' order.
    pub fn apply(&self, m: &mut Movie) -> Vec<&'static str> {
        self.body.apply(m)
    }
}

impl NewMovie {
    pub fn from_json(body: Value) -> Result<Self, FieldError> {
        let mut body = Body::parse(body)?;
        let slug = match body.slug.take() {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Slug::parse(&s).map_err(|e| FieldError::new("slug", e.to_string()))?),
            Some(_) => return Err(FieldError::new("slug", "expected a string")),
        };
        let Some(title) = body.title.clone() else { return Err(FieldError::new("title", "is required")) };
        let Some(date) = body.release_date else { return Err(FieldError::new("release_date", "is required")) };
        let mut movie = Movie::new(title.0, date.0);
        body.apply(&mut movie);
        Ok(Self { slug, movie })
    }
}

impl utoipa::PartialSchema for NewMovie {
    fn schema() -> RefOr<Schema> {
        let mut schema = Body::described();
        schema.properties.insert("slug".into(), Option::<GivenSlug>::described().into());
        schema.required = vec!["title".into(), "release_date".into()];
        schema.description = Some("A new film. Fields left out are unknown (null).".into());
        schema.into()
    }
}

impl utoipa::ToSchema for NewMovie {}

impl utoipa::PartialSchema for MoviePatch {
    fn schema() -> RefOr<Schema> {
        let mut schema = Body::described();
        schema.description = Some("The fields to change; the others stay. A film's slug cannot change.".into());
        schema.into()
    }
}

impl utoipa::ToSchema for MoviePatch {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(body: Value) -> Result<NewMovie, FieldError> {
        NewMovie::from_json(body)
    }

    #[test]
    fn a_complete_body_becomes_a_movie() {
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
            (json!({"title": format!(" {} ", "x".repeat(299)), "release_date": "1995-12-15"}), "title"),
            (json!({"title": " \u{3000} ", "release_date": "1995-12-15"}), "title"),
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
    fn messages_say_what_is_allowed() {
        let says = |body: Value| MoviePatch::from_json(body).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(says(json!({"title": null})), "title: expected a string");
        assert_eq!(says(json!({"imdb_votes": 1.5})), "imdb_votes: expected a whole number from 0 to 1000000000");
        assert_eq!(says(json!({"imdb_votes": 1e10})), "imdb_votes: expected a whole number from 0 to 1000000000");
        assert_eq!(says(json!({"imdb_votes": -0.5})), "imdb_votes: expected a whole number from 0 to 1000000000");
        assert_eq!(says(json!({"imdb_rating": "8"})), "imdb_rating: expected a number or null");
        assert_eq!(says(json!({"release_date": 19951215})), "release_date: expected a date as YYYY-MM-DD");
        assert!(says(json!({"colour": "red"})).starts_with("colour: unknown field"));
        assert_eq!(says(json!({"slug": "other"})), "slug: a film's slug cannot be changed");
    }

    #[test]
    fn every_field_is_set_and_named_as_the_film_names_it() {
        let mut m = Movie::new("Heat".into(), Date::new(1995, 12, 15).unwrap());
        let body = json!({
            "title": "Heat II", "release_date": "1996-01-02", "genre": "Action", "director": "Michael Mann",
            "mpaa_rating": "R", "running_time_min": 170, "imdb_rating": 8.2, "imdb_votes": 3,
            "rotten_tomatoes_rating": 87, "us_gross": 1, "worldwide_gross": 2, "us_dvd_sales": 3,
            "production_budget": 4, "distributor": "Warner Bros.", "source": "Original Screenplay",
            "creative_type": "Contemporary Fiction",
        });
        let changed = MoviePatch::from_json(body.clone()).unwrap().apply(&mut m);
        let mut names: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = changed.clone();
        names.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(sorted, names);
        assert_eq!(changed[..3], ["title", "release_date", "genre"], "changes come in the fields' order");
        assert_eq!((m.title.as_str(), m.running_time_min, m.imdb_rating), ("Heat II", Some(170), Some(8.2)));
        assert_eq!(
            (m.us_dvd_sales, m.production_budget, m.creative_type.as_deref()),
            (Some(3), Some(4), Some("Contemporary Fiction"))
        );
        let whole = MoviePatch::from_json(json!({"running_time_min": 171.0})).unwrap().apply(&mut m);
        assert_eq!((whole, m.running_time_min), (vec!["running_time_min"], Some(171)), "171.0 is a whole number");
        let cleared = MoviePatch::from_json(json!({"genre": "", "us_gross": null})).unwrap().apply(&mut m);
        assert_eq!(cleared, ["genre", "us_gross"], "an empty text is no text");
        assert_eq!((m.genre, m.us_gross), (None, None));
    }

    #[test]
    fn a_patch_reports_only_real_changes_and_null_clears() {
        let mut m = new(json!({"title": "Heat", "release_date": "1995-12-15", "genre": "Action", "imdb_votes": 3}))
            .map(|n| n.movie)
            .ok();
        let patch = MoviePatch::from_json(json!({"genre": "Action", "director": "Michael Mann", "imdb_votes": null}));
        let changed = m.as_mut().zip(patch.ok()).map(|(m, p)| p.apply(m));
        assert_eq!(changed, Some(vec!["director", "imdb_votes"]));
        assert_eq!(m.and_then(|m| m.imdb_votes), None);
    }
}
