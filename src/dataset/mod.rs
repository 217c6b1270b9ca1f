//! The film dataset: the real `movies.json` (vega-datasets 3.2.1, 3,201 rows, with its known
//! data-quality problems) embedded in the binary and cleaned into [`Movie`]s, plus deterministic
//! synthetic films for seeding large catalogs.
//!
//! The importer keeps every row it can. A row is rejected only when it has no title or no usable
//! release date (both are required by [`Movie`]); each rejection names its 1-based row and reason.
//! Any other field that is missing, null, of the wrong type or out of a sane range becomes `None`.

mod rows;
mod seed;

use std::collections::HashSet;

use serde_json::{Number, Value};

use rows::{Element, Field, Row};

use crate::movies::{Date, Movie, Slug, movie_slug};

pub use seed::synthetic;

/// The real dataset, embedded.
pub const MOVIES_JSON: &[u8] = include_bytes!("movies.json");

/// The dataset was compiled around 2010 and its latest real films are from 2011, but some old
/// films had two-digit years expanded into the wrong century (Gone with the Wind "Dec 15 2039",
/// The Wizard of Oz "Aug 25 2039", Modern Times "Feb 05 2036"). A release year after this one
/// is therefore taken as 100 years too late and moved back a century.
pub const LATEST_PLAUSIBLE_YEAR: u16 = 2012;

/// Characters seen as mojibake in this file, with the character that was meant.
///
/// The file's accented Latin-1 bytes were read as MacRoman: `é` (0xE9) shows as `È`, `ê` (0xEA)
/// as `Í`, and so on. Each character below is the MacRoman reading of a Latin-1 byte, and in this
/// file every occurrence of each is mojibake ("AstÈrix", "LÈon", "DÈj‡ Vu", "I Love You Ö
/// Don't Touch Me!"), so the table is unambiguous here. It is deliberately limited to the
/// characters actually observed: `¢` ("Ri¢hie Ri¢h") and `³` ("Alien³") are the real titles and
/// are kept as given. Do not reuse this table for other files without checking their characters.
const MOJIBAKE: [(char, char); 12] = [
    ('È', 'é'),
    ('Í', 'ê'),
    ('Ë', 'è'),
    ('Î', 'ë'),
    ('Û', 'ó'),
    ('Ù', 'ô'),
    ('˘', 'ù'),
    ('‡', 'à'),
    ('‰', 'ä'),
    ('·', 'á'),
    ('Ω', '½'),
    ('Ö', '…'),
];

/// The films of one file, in file order, and the rows that could not become films.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub movies: Vec<Movie>,
    pub rejected: Vec<Rejection>,
}

/// A row that could not become a film.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based position in the array.
    pub row: usize,
    /// The cleaned title, when the row had one.
    pub title: Option<String>,
    pub reason: String,
}

/// The file as a whole is unusable. Problems inside single rows are [`Rejection`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("the dataset is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the dataset is not a JSON array")]
    NotAnArray,
    #[error("element {row} of the dataset is not an object")]
    NotAnObject {
        /// 1-based position in the array.
        row: usize,
    },
}

/// Reads a dataset in the `movies.json` format. Rows come out in file order with `version` 0 (the
/// repository assigns versions) and a unique slug each: `{title}-{year}`, then `-2`, `-3`, … when
/// an earlier row of the same file already took it.
pub fn parse(bytes: &[u8]) -> Result<Dataset, DatasetError> {
    let mut taken = HashSet::new();
    let (mut movies, mut rejected) = (Vec::new(), Vec::new());
    let mut not_an_object = None;
    let array = rows::read(bytes, |number, element| match element {
        Element::Row(row) => match movie(&row, &mut taken) {
            Ok(movie) => movies.push(movie),
            Err((title, reason)) => rejected.push(Rejection { row: number, title, reason }),
        },
        Element::NotAnObject => {
            not_an_object.get_or_insert(number);
        }
    })
    .map_err(DatasetError::NotJson)?;
    if !array {
        return Err(DatasetError::NotAnArray);
    }
    if let Some(row) = not_an_object {
        return Err(DatasetError::NotAnObject { row });
    }
    movies.shrink_to_fit();
    Ok(Dataset { movies, rejected })
}

/// One row as a film, or its cleaned title (if any) and why it was rejected.
fn movie(row: &Row, taken: &mut HashSet<String>) -> Result<Movie, (Option<String>, String)> {
    let title = title(row.title.as_ref()).map_err(|reason| (None, reason))?;
    let release_date = release_date(row.release_date.as_ref()).map_err(|reason| (Some(title.clone()), reason))?;
    let slug = unique_slug(&title, release_date.year(), taken).map_err(|reason| (Some(title.clone()), reason))?;
    let text = |field: &Field| field.text().and_then(clean_text);
    let whole = |field: &Field| field.number().and_then(whole_number);
    Ok(Movie {
        version: 0,
        slug,
        title,
        release_date,
        genre: text(&row.genre),
        director: text(&row.director),
        mpaa_rating: text(&row.mpaa_rating),
        running_time_min: whole(&row.running_time_min).filter(|&m| m > 0),
        imdb_rating: row.imdb_rating.number().and_then(Number::as_f64).filter(|r| (0.0..=10.0).contains(r)),
        imdb_votes: whole(&row.imdb_votes).filter(|&v| v >= 0),
        rotten_tomatoes_rating: whole(&row.rotten_tomatoes_rating).filter(|r| (0..=100).contains(r)),
        us_gross: whole(&row.us_gross).filter(|&m| m >= 0),
        worldwide_gross: whole(&row.worldwide_gross).filter(|&m| m >= 0),
        us_dvd_sales: whole(&row.us_dvd_sales).filter(|&m| m >= 0),
        production_budget: whole(&row.production_budget).filter(|&m| m >= 0),
        distributor: text(&row.distributor),
        source: text(&row.source),
        creative_type: text(&row.creative_type),
    })
}

/// Text titles are cleaned; titles that are JSON numbers (`1776`, `300`) are the films' real
/// names, so they become text too.
fn title(value: Option<&Value>) -> Result<String, String> {
    match value {
        Some(Value::String(raw)) => clean_text(raw).ok_or_else(|| "no title".to_owned()),
        Some(Value::Number(n)) => Ok(whole_number(n).map_or_else(|| n.to_string(), |w| w.to_string())),
        None | Some(Value::Null) => Err("no title".to_owned()),
        Some(other) => Err(format!("title {other} is not text")),
    }
}

fn release_date(value: Option<&Value>) -> Result<Date, String> {
    let raw = match value {
        None | Some(Value::Null) => return Err("no release date".to_owned()),
        Some(Value::String(raw)) => raw,
        Some(other) => return Err(format!("release date {other} is not a date")),
    };
    let cleaned = clean_text(raw).unwrap_or_default();
    let date = Date::parse_us_short(&cleaned).ok_or_else(|| format!("release date {cleaned:?} is not a date"))?;
    if date.year() <= LATEST_PLAUSIBLE_YEAR {
        return Ok(date);
    }
    let year = date.year() - 100;
    if year > LATEST_PLAUSIBLE_YEAR {
        return Err(format!("release date {cleaned:?} is after {LATEST_PLAUSIBLE_YEAR} even a century earlier"));
    }
    Date::new(year, date.month(), date.day())
        .ok_or_else(|| format!("release date {cleaned:?} is not a date a century earlier"))
}

/// The film's slug ([`movie_slug`]) with the first `n` whose slug is free; always a valid [`Slug`].
fn unique_slug(title: &str, year: u16, taken: &mut HashSet<String>) -> Result<String, String> {
    let mut n: u32 = 1;
    loop {
        let candidate = movie_slug(title, year, n);
        if !taken.contains(&candidate) {
            let slug = Slug::parse(&candidate).map_err(|e| format!("slug {candidate:?}: {e}"))?.into_string();
            taken.insert(slug.clone());
            return Ok(slug);
        }
        n += 1;
    }
}

/// Text: mojibake repaired, whitespace trimmed (inner runs collapsed to one space), and `None`
/// when nothing is left.
fn clean_text(raw: &str) -> Option<String> {
    let repaired: String = raw.chars().map(repair_char).collect();
    let cleaned = repaired.split_whitespace().collect::<Vec<_>>().join(" ");
    (!cleaned.is_empty()).then_some(cleaned)
}

fn repair_char(c: char) -> char {
    MOJIBAKE.iter().find(|&&(bad, _)| bad == c).map_or(c, |&(_, good)| good)
}

/// An integer, also when written as a float with no fraction (`120.0`). Anything else is `None`.
fn whole_number(value: &Number) -> Option<i64> {
    // Beyond 2^53 a float no longer holds whole numbers exactly; no field here gets near it.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    let f = value.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0)?;
    #[expect(clippy::cast_possible_truncation, reason = "a whole number within 2^53 converts exactly")]
    let whole = (f.abs() <= EXACT).then_some(f as i64);
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Movie {
        let data = parse(json.as_bytes()).unwrap();
        assert!(data.rejected.is_empty(), "{:?}", data.rejected);
        assert_eq!(data.movies.len(), 1);
        data.movies.into_iter().next().unwrap()
    }

    fn rejection(json: &str) -> Rejection {
        let data = parse(json.as_bytes()).unwrap();
        assert!(data.movies.is_empty());
        assert_eq!(data.rejected.len(), 1);
        data.rejected.into_iter().next().unwrap()
    }

    fn real() -> Dataset {
        parse(MOVIES_JSON).unwrap()
    }

    fn real_movie<'a>(data: &'a Dataset, slug: &str) -> &'a Movie {
        data.movies.iter().find(|m| m.slug == slug).unwrap_or_else(|| panic!("no film {slug}"))
    }

    #[test]
    fn reads_every_field_of_a_full_row() {
        let m = one(r#"[{"Title": "King Kong", "US Gross": 218080025, "Worldwide Gross": 550517357,
                "US DVD Sales": 140752353, "Production Budget": 207000000, "Release Date": "Dec 14 2005",
                "MPAA Rating": "PG-13", "Running Time min": 187, "Distributor": "Universal", "Source": "Remake",
                "Major Genre": "Adventure", "Creative Type": "Fantasy", "Director": "Peter Jackson",
                "Rotten Tomatoes Rating": 83, "IMDB Rating": 7.6, "IMDB Votes": 132720}]"#);
        let expected = Movie {
            version: 0,
            slug: "king-kong-2005".into(),
            title: "King Kong".into(),
            release_date: Date::new(2005, 12, 14).unwrap(),
            genre: Some("Adventure".into()),
            director: Some("Peter Jackson".into()),
            mpaa_rating: Some("PG-13".into()),
            running_time_min: Some(187),
            imdb_rating: Some(7.6),
            imdb_votes: Some(132720),
            rotten_tomatoes_rating: Some(83),
            us_gross: Some(218080025),
            worldwide_gross: Some(550517357),
            us_dvd_sales: Some(140752353),
            production_budget: Some(207000000),
            distributor: Some("Universal".into()),
            source: Some("Remake".into()),
            creative_type: Some("Fantasy".into()),
        };
        assert_eq!(m, expected);
    }

    #[test]
    fn missing_keys_and_nulls_are_none() {
        let bare = one(r#"[{"Title": "Bare", "Release Date": "Jun 12 1998"}]"#);
        let nulls = one(
            r#"[{"Title": "Bare", "Release Date": "Jun 12 1998", "US Gross": null, "Worldwide Gross": null, "US DVD Sales": null,
                "Production Budget": null, "MPAA Rating": null, "Running Time min": null, "Distributor": null,
                "Source": null, "Major Genre": null, "Creative Type": null, "Director": null,
                "Rotten Tomatoes Rating": null, "IMDB Rating": null, "IMDB Votes": null}]"#,
        );
        assert_eq!(bare, nulls);
        assert_eq!(bare.version, 0);
        assert_eq!(bare.slug, "bare-1998");
        for field in
            [&bare.genre, &bare.director, &bare.mpaa_rating, &bare.distributor, &bare.source, &bare.creative_type]
        {
            assert_eq!(field, &None);
        }
        for field in [
            bare.running_time_min,
            bare.imdb_votes,
            bare.rotten_tomatoes_rating,
            bare.us_gross,
            bare.worldwide_gross,
            bare.us_dvd_sales,
            bare.production_budget,
        ] {
            assert_eq!(field, None);
        }
        assert_eq!(bare.imdb_rating, None);
    }

    #[test]
    fn wrong_types_become_none_without_rejecting_the_row() {
        let m = one(r#"[{"Title": "Odd", "Release Date": "Jun 12 1998", "US Gross": "lots", "Worldwide Gross": [1],
                "Production Budget": true, "MPAA Rating": 13, "Running Time min": "90", "Distributor": {},
                "Major Genre": false, "Director": 7, "Rotten Tomatoes Rating": "80%", "IMDB Rating": "7.1",
                "IMDB Votes": 12.5}]"#);
        assert_eq!(m.us_gross, None);
        assert_eq!(m.worldwide_gross, None);
        assert_eq!(m.production_budget, None);
        assert_eq!(m.mpaa_rating, None);
        assert_eq!(m.running_time_min, None);
        assert_eq!(m.distributor, None);
        assert_eq!(m.genre, None);
        assert_eq!(m.director, None);
        assert_eq!(m.rotten_tomatoes_rating, None);
        assert_eq!(m.imdb_rating, None);
        assert_eq!(m.imdb_votes, None, "a fraction is not a whole number");
    }

    #[test]
    fn accepts_whole_floats_and_integer_ratings() {
        let m =
            one(r#"[{"Title": "Floats", "Release Date": "Jun 12 1998", "US Gross": 1000.0, "Running Time min": 95.0,
                "Rotten Tomatoes Rating": 80.0, "IMDB Votes": 1200.0, "IMDB Rating": 7}]"#);
        assert_eq!(m.us_gross, Some(1000));
        assert_eq!(m.running_time_min, Some(95));
        assert_eq!(m.rotten_tomatoes_rating, Some(80));
        assert_eq!(m.imdb_votes, Some(1200));
        assert_eq!(m.imdb_rating, Some(7.0));
    }

    #[test]
    fn out_of_range_values_become_none() {
        let m = one(r#"[{"Title": "Wild", "Release Date": "Jun 12 1998", "US Gross": -1, "Worldwide Gross": -5.0,
                "Production Budget": -100, "Running Time min": 0, "Rotten Tomatoes Rating": 101,
                "IMDB Rating": 10.5, "IMDB Votes": -3}]"#);
        assert_eq!((m.us_gross, m.worldwide_gross, m.production_budget, m.running_time_min), (None, None, None, None));
        assert_eq!((m.rotten_tomatoes_rating, m.imdb_rating, m.imdb_votes), (None, None, None));
        let negative = one(r#"[{"Title": "Wild", "Release Date": "Jun 12 1998", "Running Time min": -90,
                "Rotten Tomatoes Rating": -1, "IMDB Rating": -0.5}]"#);
        assert_eq!(
            (negative.running_time_min, negative.rotten_tomatoes_rating, negative.imdb_rating),
            (None, None, None)
        );
        let edges = one(r#"[{"Title": "Edges", "Release Date": "Jun 12 1998", "US Gross": 0, "Running Time min": 1,
                "Rotten Tomatoes Rating": 100, "IMDB Rating": 10}]"#);
        assert_eq!(edges.us_gross, Some(0));
        assert_eq!(edges.running_time_min, Some(1));
        assert_eq!(edges.rotten_tomatoes_rating, Some(100));
        assert_eq!(edges.imdb_rating, Some(10.0));
    }

    #[test]
    fn number_titles_become_text() {
        let data = parse(
            br#"[{"Title": 1776, "Release Date": "Nov 09 1972"}, {"Title": 300, "Release Date": "Mar 09 2007"},
                 {"Title": 9.0, "Release Date": "Sep 09 2009"}]"#,
        )
        .unwrap();
        let got: Vec<_> = data.movies.iter().map(|m| (m.title.as_str(), m.slug.as_str())).collect();
        assert_eq!(got, [("1776", "1776-1972"), ("300", "300-2007"), ("9", "9-2009")]);
        let real = real();
        assert_eq!(real_movie(&real, "300-2007").title, "300");
        assert_eq!(real_movie(&real, "1776-1972").title, "1776");
    }

    #[test]
    fn rows_without_a_title_are_rejected_with_their_row_number() {
        let data = parse(
            br#"[{"Title": "Kept", "Release Date": "Jun 12 1998"},
                 {"Title": null, "Release Date": "Jun 12 1998"},
                 {"Release Date": "Jun 12 1998"},
                 {"Title": "", "Release Date": "Jun 12 1998"},
                 {"Title": "   ", "Release Date": "Jun 12 1998"}]"#,
        )
        .unwrap();
        assert_eq!(data.movies.len(), 1);
        let expected: Vec<_> =
            (2..=5).map(|row| Rejection { row, title: None, reason: "no title".to_owned() }).collect();
        assert_eq!(data.rejected, expected);
        assert_eq!(
            rejection(r#"[{"Title": ["x"], "Release Date": "Jun 12 1998"}]"#).reason,
            r#"title ["x"] is not text"#
        );
    }

    #[test]
    fn trims_whitespace_in_all_text() {
        let m = one(r#"[{"Title": "  Halloween:  The Curse\tof Michael Myers ", "Release Date": " Sep 29 1995 ",
                "Director": " Joe Chappelle ", "Major Genre": "Horror\n", "MPAA Rating": "   ",
                "Distributor": " Miramax ", "Source": " Based on TV ", "Creative Type": " Fantasy "}]"#);
        assert_eq!(m.title, "Halloween: The Curse of Michael Myers");
        assert_eq!(m.release_date, Date::new(1995, 9, 29).unwrap());
        assert_eq!(m.director.as_deref(), Some("Joe Chappelle"));
        assert_eq!(m.genre.as_deref(), Some("Horror"));
        assert_eq!(m.mpaa_rating, None, "blank text is no text");
        assert_eq!(m.distributor.as_deref(), Some("Miramax"));
        assert_eq!(m.source.as_deref(), Some("Based on TV"));
        assert_eq!(m.creative_type.as_deref(), Some("Fantasy"));
    }

    #[test]
    fn parses_release_dates_and_rejects_bad_ones() {
        assert_eq!(
            one(r#"[{"Title": "A", "Release Date": "Jun 12 1998"}]"#).release_date,
            Date::new(1998, 6, 12).unwrap()
        );
        let bad = rejection(r#"[{"Title": " A ", "Release Date": "xyz"}]"#);
        assert_eq!(
            bad,
            Rejection { row: 1, title: Some("A".into()), reason: r#"release date "xyz" is not a date"#.into() }
        );
        assert_eq!(
            rejection(r#"[{"Title": "A", "Release Date": "Feb 30 1998"}]"#).reason,
            r#"release date "Feb 30 1998" is not a date"#
        );
        assert_eq!(rejection(r#"[{"Title": "A"}]"#).reason, "no release date");
        assert_eq!(rejection(r#"[{"Title": "A", "Release Date": null}]"#).reason, "no release date");
        assert_eq!(rejection(r#"[{"Title": "A", "Release Date": 1998}]"#).reason, "release date 1998 is not a date");
    }

    #[test]
    fn years_after_2012_are_moved_back_a_century() {
        assert_eq!(
            one(r#"[{"Title": "A", "Release Date": "Dec 15 2039"}]"#).release_date,
            Date::new(1939, 12, 15).unwrap()
        );
        assert_eq!(
            one(r#"[{"Title": "A", "Release Date": "Dec 31 2012"}]"#).release_date,
            Date::new(2012, 12, 31).unwrap()
        );
        assert_eq!(
            one(r#"[{"Title": "A", "Release Date": "Jan 01 2013"}]"#).release_date,
            Date::new(1913, 1, 1).unwrap()
        );
        assert!(rejection(r#"[{"Title": "A", "Release Date": "Jan 01 2150"}]"#).reason.contains("after 2012"));
        // 2100 is not a leap year; 2000 was.
        assert!(rejection(r#"[{"Title": "A", "Release Date": "Feb 29 2100"}]"#).reason.contains("not a date"));

        let real = real();
        let gone = real_movie(&real, "gone-with-the-wind-1939");
        assert_eq!(gone.release_date, Date::new(1939, 12, 15).unwrap());
        assert_eq!(real_movie(&real, "the-wizard-of-oz-1939").release_date, Date::new(1939, 8, 25).unwrap());
        assert_eq!(real_movie(&real, "modern-times-1936").release_date, Date::new(1936, 2, 5).unwrap());
    }

    #[test]
    fn repairs_mojibake_and_keeps_real_symbols() {
        let cases = [
            ("AstÈrix aux Jeux Olympiques", "Astérix aux Jeux Olympiques"),
            ("LÈon", "Léon"),
            ("Alien³", "Alien³"),
            ("Ri¢hie Ri¢h", "Ri¢hie Ri¢h"),
            ("I Love You Ö Don't Touch Me!", "I Love You … Don't Touch Me!"),
            ("De battre mon coeur s'est arrÍtÈ", "De battre mon coeur s'est arrêté"),
            ("IndigËnes", "Indigènes"),
            ("Joyeux NoÎl", "Joyeux Noël"),
            ("La mala educaciÛn", "La mala educación"),
            ("La MÙme", "La Môme"),
            ("Per qualche dollaro in pi˘", "Per qualche dollaro in più"),
            ("DÈj‡ Vu", "Déjà Vu"),
            ("Die F‰lscher", "Die Fälscher"),
            ("Obsluhoval jsem anglickÈho kr·le", "Obsluhoval jsem anglického krále"),
            ("The Naked Gun 2Ω: The Smell of Fear", "The Naked Gun 2½: The Smell of Fear"),
        ];
        for (raw, fixed) in cases {
            assert_eq!(clean_text(raw).as_deref(), Some(fixed), "{raw}");
        }
        let m = one(
            r#"[{"Title": "LÈon", "Release Date": "Nov 18 1994", "Director": "Luc BÈsson", "Distributor": "GaumÙnt"}]"#,
        );
        assert_eq!((m.title.as_str(), m.slug.as_str()), ("Léon", "leon-1994"));
        assert_eq!(m.director.as_deref(), Some("Luc Bésson"));
        assert_eq!(m.distributor.as_deref(), Some("Gaumônt"));

        let real = real();
        assert_eq!(real_movie(&real, "asterix-aux-jeux-olympiques-2008").title, "Astérix aux Jeux Olympiques");
        assert_eq!(real_movie(&real, "alien3-1992").title, "Alien³");
        assert_eq!(real_movie(&real, "richie-rich-1994").title, "Ri¢hie Ri¢h");
    }

    #[test]
    fn slugs_carry_the_year_so_remakes_differ() {
        let real = real();
        let kongs: Vec<_> = real.movies.iter().filter(|m| m.title == "King Kong").map(|m| m.slug.as_str()).collect();
        assert_eq!(kongs, ["king-kong-1976", "king-kong-2005"]);
        assert_eq!(real_movie(&real, "king-kong-1976").director.as_deref(), Some("John Guillermin"));
        assert_eq!(real_movie(&real, "king-kong-2005").director.as_deref(), Some("Peter Jackson"));
    }

    #[test]
    fn taken_slugs_get_a_counter_in_file_order() {
        let data = parse(
            br#"[{"Title": "Twin", "Release Date": "Jun 12 1998"}, {"Title": "twin!", "Release Date": "Jan 01 1998"},
                 {"Title": "Other", "Release Date": "Jun 12 1998"}, {"Title": "TWIN", "Release Date": "Dec 31 1998"},
                 {"Title": "Twin", "Release Date": "Jun 12 1999"}]"#,
        )
        .unwrap();
        let slugs: Vec<_> = data.movies.iter().map(|m| m.slug.as_str()).collect();
        assert_eq!(slugs, ["twin-1998", "twin-1998-2", "other-1998", "twin-1998-3", "twin-1999"]);
        assert_eq!(
            parse(br#"[{"Title": "Twin", "Release Date": "Jun 12 1999"}]"#).unwrap().movies[0].slug,
            "twin-1999"
        );
    }

    #[test]
    fn unsluggable_titles_become_movie_and_long_ones_stay_within_the_limit() {
        let data = parse(
            br#"[{"Title": "!!!", "Release Date": "Jun 12 1998"}, {"Title": "???", "Release Date": "Jun 12 1998"}]"#,
        )
        .unwrap();
        let slugs: Vec<_> = data.movies.iter().map(|m| m.slug.as_str()).collect();
        assert_eq!(slugs, ["film-1998", "film-1998-2"]);

        let long = "word ".repeat(60);
        let rows: Vec<_> = (0..12).map(|_| serde_json::json!({"Title": long, "Release Date": "Jun 12 1998"})).collect();
        let data = parse(serde_json::to_string(&rows).unwrap().as_bytes()).unwrap();
        assert_eq!(data.movies.len(), 12);
        let mut seen = HashSet::new();
        for m in &data.movies {
            assert!(m.slug.len() <= crate::movies::SLUG_MAX_LEN, "{}", m.slug);
            assert!(Slug::parse(&m.slug).is_ok(), "{}", m.slug);
            assert!(seen.insert(m.slug.clone()), "{}", m.slug);
        }
        assert!(data.movies[11].slug.ends_with("-1998-12"));
    }

    #[test]
    fn whole_file_errors() {
        assert!(matches!(parse(b"not json"), Err(DatasetError::NotJson(_))));
        assert!(parse(b"not json").unwrap_err().to_string().starts_with("the dataset is not JSON: expected"));
        assert!(matches!(parse(b""), Err(DatasetError::NotJson(_))));
        assert!(matches!(parse(b"{}"), Err(DatasetError::NotAnArray)));
        assert!(matches!(parse(b"[1]"), Err(DatasetError::NotAnObject { row: 1 })));
        assert!(matches!(
            parse(br#"[{"Title": "A", "Release Date": "Jun 12 1998"}, null]"#),
            Err(DatasetError::NotAnObject { row: 2 })
        ));
        assert_eq!(parse(b"[]").unwrap(), Dataset { movies: vec![], rejected: vec![] });
    }

    #[test]
    fn the_embedded_file_imports_cleanly() {
        let data = real();
        assert_eq!(data.movies.len() + data.rejected.len(), 3201);
        assert_eq!(
            data.rejected,
            [Rejection { row: 3054, title: None, reason: "no title".to_owned() }],
            "the one row with a null title"
        );
        let mut seen = HashSet::new();
        for m in &data.movies {
            assert!(Slug::parse(&m.slug).is_ok(), "{}", m.slug);
            assert!(seen.insert(m.slug.as_str()), "duplicate slug {}", m.slug);
            assert!(m.release_date.year() <= LATEST_PLAUSIBLE_YEAR, "{} {}", m.title, m.release_date);
            assert_eq!(m.version, 0);
            assert!(!m.title.is_empty() && m.title.trim() == m.title);
            let texts = [Some(&m.title), m.genre.as_ref(), m.director.as_ref(), m.mpaa_rating.as_ref()]
                .into_iter()
                .chain([m.distributor.as_ref(), m.source.as_ref(), m.creative_type.as_ref()])
                .flatten();
            for text in texts {
                assert!(!text.chars().any(|c| MOJIBAKE.iter().any(|&(bad, _)| bad == c)), "{text}");
            }
        }
        assert_eq!(data.movies.iter().map(|m| m.release_date.year()).max(), Some(2011));
    }
}
