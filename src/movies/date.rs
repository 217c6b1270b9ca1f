use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar date, valid by construction, stored and exchanged as `YYYY-MM-DD` (which sorts in
/// date order as text, on both databases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Date {
    /// Years outside 1800..=2200 are refused: no film is that old, and nothing is planned that far.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        if !(1800..=2200).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        (day <= days_in_month(year, month)).then_some(Self { year, month, day })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// "12 June 1998"
    pub fn long(self) -> String {
        format!("{} {} {}", self.day, MONTHS[usize::from(self.month - 1)], self.year)
    }

    /// Parses the dataset's `Jun 12 1998` form.
    pub fn parse_us_short(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let month = parts.next()?;
        let day = parts.next()?.parse().ok()?;
        let year = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        let month = MONTHS.iter().position(|m| m.get(..3).is_some_and(|m| m.eq_ignore_ascii_case(month)))?;
        Self::new(year, u8::try_from(month + 1).ok()?, day)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("expected a date as YYYY-MM-DD")]
pub struct DateError;

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !(digits(0..4) && digits(5..7) && digits(8..10)) {
            return Err(DateError);
        }
        let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse().ok()).ok_or(DateError);
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Self::new(y, u8::try_from(m).map_err(|_| DateError)?, u8::try_from(d).map_err(|_| DateError)?).ok_or(DateError)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The dates `Date` reads, as a regular expression (ECMA-262, for the API's document): the days
/// that exist from 1800-01-01 to 2200-12-31, February 29 in leap years only.
pub const PATTERN: &str = concat!(
    "^(?:(?:1[89]|2[01])[0-9]{2}|2200)-",
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))$",
    "|^(?:(?:1[89]|2[01])(?:0[48]|[2468][048]|[13579][26])|2000)-02-29$",
);

impl Date {
    /// The dates `Date` reads, as the API's document describes them.
    pub fn json_schema() -> utoipa::openapi::schema::Object {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .pattern(Some(PATTERN))
            .examples(["1995-12-15"])
            .build()
    }
}

impl utoipa::PartialSchema for Date {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Self::json_schema().into()
    }
}

impl utoipa::ToSchema for Date {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_and_rejects_impossible_days() {
        assert_eq!("1998-06-12".parse::<Date>().ok(), Date::new(1998, 6, 12));
        assert!("1998-02-29".parse::<Date>().is_err());
        assert!("2000-02-29".parse::<Date>().is_ok());
        assert!("1900-02-29".parse::<Date>().is_err());
        assert!("1998-6-12".parse::<Date>().is_err());
        assert!("1998-+6-12".parse::<Date>().is_err(), "only digits");
        assert!("+998-06-12".parse::<Date>().is_err(), "only digits");
        assert!("1998-13-01".parse::<Date>().is_err());
        assert!("".parse::<Date>().is_err());
    }

    proptest::proptest! {
        /// Every text the API's document allows is a date (generated without the anchors). The
        /// other way round, a text the pattern refuses must not be a date: the Schemathesis run
        /// of `tests/openapi.rs` sends such texts and expects them refused.
        #[test]
        fn the_documented_pattern_allows_only_dates(text in proptest::string::string_regex(&PATTERN.replace(['^', '$'], "")).unwrap()) {
            proptest::prop_assert!(text.parse::<Date>().is_ok(), "{}", text);
        }
    }

    #[test]
    fn parses_the_dataset_form() {
        assert_eq!(Date::parse_us_short("Jun 12 1998"), Date::new(1998, 6, 12));
        assert_eq!(Date::parse_us_short("Feb 30 1998"), None);
        assert_eq!(Date::parse_us_short("Jun 12"), None);
        assert_eq!(Date::parse_us_short("June 12 1998 x"), None);
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(Date::new(1998, 6, 12).map(Date::long).as_deref(), Some("12 June 1998"));
    }
}
