//! The file's rows read straight into the fields the importer looks at, each as it was written.
//!
//! Read as a `serde_json::Value` tree first, the embedded file (1.4 MB, 3,201 rows of 16 keys)
//! became a map per row and a `String` per key and per value. Freed after the import, that heap
//! stayed in the process and counted in its resident memory for as long as it ran: a server that
//! had just loaded the dataset held 13.4 MB of anonymous memory, against 5.7 MB read this way
//! (`/proc/PID/status`, `RssAnon`). Here only the values the importer reads are kept, one row at
//! a time; keys it does not know and values of shapes it cannot use are skipped as they are read.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One row's fields. The title and the release date are kept as they were written whatever
/// their shape, since a row rejected for them says what it held; any other field is a text, a
/// number or neither.
#[derive(Debug, Default)]
pub(super) struct Row {
    pub title: Option<Value>,
    pub release_date: Option<Value>,
    pub genre: Field,
    pub director: Field,
    pub mpaa_rating: Field,
    pub running_time_min: Field,
    pub imdb_rating: Field,
    pub imdb_votes: Field,
    pub rotten_tomatoes_rating: Field,
    pub us_gross: Field,
    pub worldwide_gross: Field,
    pub us_dvd_sales: Field,
    pub production_budget: Field,
    pub distributor: Field,
    pub source: Field,
    pub creative_type: Field,
}

/// A field's value: text, a number, or anything else (missing, `null`, a boolean, an array, an
/// object), which no field uses.
#[derive(Debug, Default)]
pub(super) enum Field {
    Text(String),
    Number(Number),
    #[default]
    Other,
}

impl Field {
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn number(&self) -> Option<&Number> {
        match self {
            Self::Number(n) => Some(n),
            _ => None,
        }
    }
}

/// An element of the file's array: a row, or something that is not an object.
pub(super) enum Element {
    Row(Box<Row>),
    NotAnObject,
}

/// The file: its array's elements, each handed to `each` as it is read (numbered from 1), or
/// `false` when the file is JSON but not an array.
pub(super) fn read(bytes: &[u8], each: impl FnMut(usize, Element)) -> Result<bool, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let array = de.deserialize_any(File { each })?;
    de.end()?;
    Ok(array)
}

/// The JSON keys of the fields a row is read for.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum Key {
    #[serde(rename = "Title")]
    Title,
    #[serde(rename = "Release Date")]
    ReleaseDate,
    #[serde(rename = "Major Genre")]
    Genre,
    #[serde(rename = "Director")]
    Director,
    #[serde(rename = "MPAA Rating")]
    MpaaRating,
    #[serde(rename = "Running Time min")]
    RunningTimeMin,
    #[serde(rename = "IMDB Rating")]
    ImdbRating,
    #[serde(rename = "IMDB Votes")]
    ImdbVotes,
    #[serde(rename = "Rotten Tomatoes Rating")]
    RottenTomatoesRating,
    #[serde(rename = "US Gross")]
    UsGross,
    #[serde(rename = "Worldwide Gross")]
    WorldwideGross,
    #[serde(rename = "US DVD Sales")]
    UsDvdSales,
    #[serde(rename = "Production Budget")]
    ProductionBudget,
    #[serde(rename = "Distributor")]
    Distributor,
    #[serde(rename = "Source")]
    Source,
    #[serde(rename = "Creative Type")]
    CreativeType,
    #[serde(other)]
    Unknown,
}

/// Whatever a value holds, read and dropped.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

struct File<F> {
    each: F,
}

impl<'de, F: FnMut(usize, Element)> Visitor<'de> for File<F> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        let mut number = 0;
        while let Some(element) = seq.next_element()? {
            number += 1;
            (self.each)(number, element);
        }
        Ok(true)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        skip_map(map).map(|()| false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    /// A key given twice counts as its last value, as in a map.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut row = Row::default();
        while let Some(key) = map.next_key()? {
            match key {
                Key::Title => row.title = Some(map.next_value()?),
                Key::ReleaseDate => row.release_date = Some(map.next_value()?),
                Key::Genre => row.genre = map.next_value()?,
                Key::Director => row.director = map.next_value()?,
                Key::MpaaRating => row.mpaa_rating = map.next_value()?,
                Key::RunningTimeMin => row.running_time_min = map.next_value()?,
                Key::ImdbRating => row.imdb_rating = map.next_value()?,
                Key::ImdbVotes => row.imdb_votes = map.next_value()?,
                Key::RottenTomatoesRating => row.rotten_tomatoes_rating = map.next_value()?,
                Key::UsGross => row.us_gross = map.next_value()?,
                Key::WorldwideGross => row.worldwide_gross = map.next_value()?,
                Key::UsDvdSales => row.us_dvd_sales = map.next_value()?,
                Key::ProductionBudget => row.production_budget = map.next_value()?,
                Key::Distributor => row.distributor = map.next_value()?,
                Key::Source => row.source = map.next_value()?,
                Key::CreativeType => row.creative_type = map.next_value()?,
                Key::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Element::Row(Box::new(row)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        skip_seq(seq).map(|()| Element::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Element, E> {
        Ok(Element::NotAnObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
        Ok(Element::NotAnObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
        Ok(Element::NotAnObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Element, E> {
        Ok(Element::NotAnObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Element, E> {
        Ok(Element::NotAnObject)
    }

    fn visit_unit<E>(self) -> Result<Element, E> {
        Ok(Element::NotAnObject)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, text: &str) -> Result<Field, E> {
        Ok(Field::Text(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<Field, E> {
        Ok(Field::Text(text))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Field, E> {
        Ok(Field::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Field, E> {
        Ok(Field::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Field, E> {
        Ok(Number::from_f64(n).map_or(Field::Other, Field::Number))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
        Ok(Field::Other)
    }

    fn visit_unit<E>(self) -> Result<Field, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field, A::Error> {
        skip_seq(seq).map(|()| Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field, A::Error> {
        skip_map(map).map(|()| Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(json: &str) -> Vec<Element> {
        let mut out = Vec::new();
        assert!(read(json.as_bytes(), |_, e| out.push(e)).unwrap());
        out
    }

    #[test]
    fn unknown_keys_and_unusable_shapes_are_skipped_and_the_last_of_a_repeated_key_counts() {
        let got = elements(
            r#"[{"Title": "A", "Extra": {"deep": [1, {"x": null}]}, "US Gross": [1, 2], "Director": "B",
                "Director": "C", "Running Time min": 90.0, "Source": true}, 7, [1], "row", null]"#,
        );
        let [Element::Row(row), rest @ ..] = &got[..] else { panic!("a row first") };
        assert!(rest.iter().all(|e| matches!(e, Element::NotAnObject)));
        assert_eq!(rest.len(), 4);
        assert_eq!(row.title, Some(Value::String("A".into())));
        assert!(matches!(row.us_gross, Field::Other));
        assert_eq!(row.director.text(), Some("C"));
        assert_eq!(row.running_time_min.number().and_then(Number::as_f64), Some(90.0));
        assert!(matches!(row.source, Field::Other));
        assert!(row.release_date.is_none());
    }

    #[test]
    fn only_an_array_is_a_file_of_rows() {
        for json in ["{}", r#"{"a": [1]}"#, "1", "\"x\"", "null", "true"] {
            assert!(!read(json.as_bytes(), |_, _| {}).unwrap(), "{json}");
        }
        assert!(read(b"[] x", |_, _| {}).is_err(), "trailing characters");
    }
}
