use std::fmt;

/// The longest slug we make or accept.
pub const MAX_LEN: usize = 100;

/// What `Slug::parse` accepts, as a regular expression (for the API's document).
pub const PATTERN: &str = "^[a-z0-9]+(?:-[a-z0-9]+)*$";

/// A film's URL key: ASCII lower-case letters and digits in runs joined by single hyphens, at most
/// 100 characters. Anything else is refused at the edge, so it never reaches Redis or the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlugError {
    #[error("a slug cannot be empty")]
    Empty,
    #[error("a slug is at most {MAX_LEN} characters")]
    TooLong,
    #[error("a slug uses only a-z, 0-9 and single hyphens between them")]
    BadCharacters,
}

impl Slug {
    pub fn parse(text: &str) -> Result<Self, SlugError> {
        if text.is_empty() {
            return Err(SlugError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(SlugError::TooLong);
        }
        let well_formed = text
            .split('-')
            .all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if well_formed { Ok(Self(text.to_owned())) } else { Err(SlugError::BadCharacters) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl utoipa::PartialSchema for Slug {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let shape = "ASCII lower-case letters and digits in runs joined by single hyphens";
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!("A film's key: {shape}, at most {MAX_LEN} characters")))
            .max_length(Some(MAX_LEN))
            .pattern(Some(PATTERN))
            .examples(["heat-1995"])
            .into()
    }
}

impl utoipa::ToSchema for Slug {}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Turns any text into slug form: accents transliterated (`Astérix` → `asterix`), everything that is
/// not a letter or digit becomes one hyphen, cut to `max` characters at a hyphen where possible.
/// Returns an empty string when nothing usable is left (a title of only punctuation).
pub fn slugify(text: &str, max: usize) -> String {
    // Where the transliteration reads badly: "2½" would become "21/2", "Ri¢h" "Ric/h".
    let text = text.replace('½', " 1/2").replace('¢', "c");
    let ascii = deunicode::deunicode(&text);
    let mut out = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    if out.len() > max {
        out.truncate(max);
        if let Some(cut) = out.rfind('-').filter(|&i| i > max / 2) {
            out.truncate(cut);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A film's slug: `{title}-{year}`, then `-{n}` from n = 2 for the n-th film of that title and
/// year. A title that already ends in its year ("King Kong (1933)") does not get it twice.
pub fn movie_slug(title: &str, year: u16, n: u32) -> String {
    let year = year.to_string();
    let dedup = if n <= 1 { String::new() } else { format!("-{n}") };
    let mut base = slugify(title, MAX_LEN - year.len() - 1 - dedup.len());
    if base.is_empty() {
        base.push_str("film");
    }
    if !base.strip_suffix(&year).is_some_and(|rest| rest.ends_with('-')) {
        base.push('-');
        base.push_str(&year);
    }
    base + &dedup
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_well_formed_slugs() {
        for s in ["king-kong-1976", "300-2007", "a", "1776-1972"] {
            assert_eq!(Slug::parse(s).map(|s| s.into_string()), Ok(s.to_owned()));
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "a".repeat(MAX_LEN + 1);
        for s in ["", "-a", "a-", "a--b", "A", "a b", "a*", "a?", "a[1]", "a:b", "a\0", "../x", "é", &long] {
            assert!(Slug::parse(s).is_err(), "{s:?} was accepted");
        }
        assert!(Slug::parse(&"a".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn slugify_transliterates_and_joins() {
        assert_eq!(slugify("Astérix aux Jeux Olympiques", 100), "asterix-aux-jeux-olympiques");
        assert_eq!(slugify("  The Naked Gun 2½: The Smell of Fear ", 100), "the-naked-gun-2-1-2-the-smell-of-fear");
        assert_eq!(slugify("Ri¢hie Ri¢h", 100), "richie-rich");
        assert_eq!(slugify("<script>alert(1)</script>", 100), "script-alert-1-script");
        assert_eq!(slugify("!!!", 100), "");
        assert_eq!(slugify("aaaa bbbb cccc", 11), "aaaa-bbbb");
    }

    #[test]
    fn movie_slugs_carry_the_year_once() {
        assert_eq!(movie_slug("King Kong", 1976, 1), "king-kong-1976");
        assert_eq!(movie_slug("King Kong (1933)", 1933, 1), "king-kong-1933");
        assert_eq!(movie_slug("1933", 1933, 1), "1933-1933");
        assert_eq!(movie_slug("Heat", 1995, 3), "heat-1995-3");
        assert_eq!(movie_slug("!!!", 1995, 1), "film-1995");
        assert!(movie_slug(&"long words ".repeat(30), 1995, 12).len() <= MAX_LEN);
    }

    proptest! {
        #[test]
        fn slugify_output_is_always_a_valid_slug_or_empty(text in any::<String>(), max in 1usize..=MAX_LEN) {
            let s = slugify(&text, max);
            prop_assert!(s.len() <= max);
            if !s.is_empty() {
                prop_assert!(Slug::parse(&s).is_ok(), "{:?} -> {:?}", text, s);
            }
        }

        // `any::<String>()` almost never draws a slug: these draw from the slug alphabet itself.
        #[test]
        fn every_well_formed_slug_is_accepted(text in "[a-z0-9]{1,12}(-[a-z0-9]{1,12}){0,6}") {
            prop_assert_eq!(Slug::parse(&text).map(Slug::into_string), Ok(text.clone()));
        }

        /// The API's document says the same as `parse`: a text its pattern generates (without the
        /// anchors) is a slug when it is within the length bound beside the pattern.
        #[test]
        fn the_documented_pattern_allows_only_slugs(text in proptest::string::string_regex(&PATTERN.replace(['^', '$'], "")).unwrap()) {
            prop_assert_eq!(Slug::parse(&text).is_ok(), text.len() <= MAX_LEN, "{:?}", text);
        }

        #[test]
        fn parse_agrees_with_the_rule_on_the_alphabet(text in "[a-z0-9-]{0,110}") {
            let expected = !text.is_empty()
                && text.len() <= MAX_LEN
                && !text.starts_with('-')
                && !text.ends_with('-')
                && !text.contains("--");
            prop_assert_eq!(Slug::parse(&text).is_ok(), expected, "{:?}", text);
        }

        #[test]
        fn near_misses_are_refused(
            good in "[a-z0-9]{1,10}",
            bad in "[A-Z*?\\[\\]:/. _%\u{0}\u{e9}\u{2014}]",
            at in 0usize..=10,
        ) {
            let mut text = good.clone();
            text.insert_str(at.min(text.len()), &bad);
            prop_assert!(Slug::parse(&text).is_err(), "{:?} was accepted", text);
        }

        #[test]
        fn movie_slugs_are_always_valid(title in any::<String>(), year in 1u16..=9999, n in 1u32..=10_000) {
            let slug = movie_slug(&title, year, n);
            prop_assert!(Slug::parse(&slug).is_ok(), "{:?} ({}, {}) -> {:?}", title, year, n, slug);
            let dedup = format!("-{n}");
            prop_assert!(n == 1 || slug.ends_with(&dedup), "{:?}", slug);
        }

        #[test]
        fn parse_never_panics_and_accepts_only_the_alphabet(text in any::<String>()) {
            if let Ok(slug) = Slug::parse(&text) {
                prop_assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(!slug.as_str().contains("--"));
            }
        }
    }
}
