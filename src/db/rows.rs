//! Between `Movie` and a row: the column list, decoding, and binding.

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Error, Row};

use crate::movies::Movie;

/// The film columns in one fixed order, used wherever a whole film is read or written.
/// `search_title` is the title as the search index holds it (`movies::search_text`), written with
/// every title and never read back into a `Movie`.
pub const COLUMNS: &str = "slug, title, release_date, genre, director, mpaa_rating, running_time_min, imdb_rating, \
     imdb_votes, rotten_tomatoes_rating, us_gross, worldwide_gross, us_dvd_sales, production_budget, distributor, source, \
     creative_type, version, search_title";

/// How many `COLUMNS` names, counted from the list itself.
pub const COLUMN_COUNT: usize = {
    let bytes = COLUMNS.as_bytes();
    let (mut commas, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            commas += 1;
        }
        i += 1;
    }
    commas + 1
};

/// The same list prefixed with a table alias: `f.slug, f.title, …`.
pub fn columns_of(alias: &str) -> String {
    COLUMNS.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

/// Decodes a film; `Ok(None)` for the all-null row a left join gives when there is no film.
pub fn movie(row: &AnyRow) -> Result<Option<Movie>, Error> {
    let Some(slug) = row.try_get::<Option<String>, _>("slug")? else {
        return Ok(None);
    };
    let date: String = row.try_get("release_date")?;
    Ok(Some(Movie {
        version: row.try_get("version")?,
        slug,
        title: row.try_get("title")?,
        release_date: date.parse().map_err(|e| Error::Decode(Box::new(e)))?,
        genre: row.try_get("genre")?,
        director: row.try_get("director")?,
        mpaa_rating: row.try_get("mpaa_rating")?,
        running_time_min: row.try_get("running_time_min")?,
        imdb_rating: row.try_get("imdb_rating")?,
        imdb_votes: row.try_get("imdb_votes")?,
        rotten_tomatoes_rating: row.try_get("rotten_tomatoes_rating")?,
        us_gross: row.try_get("us_gross")?,
        worldwide_gross: row.try_get("worldwide_gross")?,
        us_dvd_sales: row.try_get("us_dvd_sales")?,
        production_budget: row.try_get("production_budget")?,
        distributor: row.try_get("distributor")?,
        source: row.try_get("source")?,
        creative_type: row.try_get("creative_type")?,
    }))
}

/// Binds a film's values in `COLUMNS` order.
pub fn bind<'q>(q: Query<'q, Any, AnyArguments<'q>>, m: &Movie) -> Query<'q, Any, AnyArguments<'q>> {
    let q = q
        .bind(m.slug.clone())
        .bind(m.title.clone())
        .bind(m.release_date.to_string())
        .bind(m.genre.clone())
        .bind(m.director.clone())
        .bind(m.mpaa_rating.clone())
        .bind(m.running_time_min);
    // sqlx 0.8's Any driver sends a NULL f64 to PostgreSQL as a float4 and a present one as a
    // float8, and a cached statement then refuses the other form ("incorrect binary data format").
    // Its NULL f32 goes as float8, so that is the NULL we send: one type either way.
    let q = match m.imdb_rating {
        Some(rating) => q.bind(rating),
        None => q.bind(None::<f32>),
    };
    q.bind(m.imdb_votes)
        .bind(m.rotten_tomatoes_rating)
        .bind(m.us_gross)
        .bind(m.worldwide_gross)
        .bind(m.us_dvd_sales)
        .bind(m.production_budget)
        .bind(m.distributor.clone())
        .bind(m.source.clone())
        .bind(m.creative_type.clone())
        .bind(m.version)
        .bind(crate::movies::search_text(&m.title))
}

/// `($1, …, $N), ($N+1, …)` with N = `COLUMN_COUNT`: placeholders for `rows` films, numbered as
/// both databases accept.
pub fn placeholders(rows: usize) -> String {
    let mut out = String::with_capacity(rows * COLUMN_COUNT * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..COLUMN_COUNT {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * COLUMN_COUNT + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// `(?, …, ?), (?, …)`: anonymous placeholders for `rows` films, bound in order (SQLite only).
pub fn anonymous_placeholders(rows: usize) -> String {
    let row = format!("({})", vec!["?"; COLUMN_COUNT].join(", "));
    vec![row; rows].join(", ")
}

/// `$from, $from+1, …` for an `in (…)` list of `n` values.
pub fn list(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::LIST_FIELDS;

    #[test]
    fn the_columns_and_the_list_fields_are_as_the_schema_has_them() {
        assert_eq!(
            COLUMNS,
            "slug, title, release_date, genre, director, mpaa_rating, running_time_min, imdb_rating, imdb_votes, \
             rotten_tomatoes_rating, us_gross, worldwide_gross, us_dvd_sales, production_budget, distributor, \
             source, creative_type, version, search_title"
        );
        assert_eq!(COLUMN_COUNT, 19);
        assert_eq!(columns_of("f").split(", ").nth(2), Some("f.release_date"));
        let mut lists = LIST_FIELDS.to_vec();
        lists.sort_unstable();
        let expected =
            ["director", "genre", "imdb_rating", "imdb_votes", "mpaa_rating", "release_date", "worldwide_gross"];
        assert_eq!(lists, expected, "the fields the lists filter and sort on, and the related films' fields");
        assert_eq!(placeholders(2).matches('$').count(), 2 * COLUMN_COUNT);
        assert!(placeholders(2).ends_with("$37, $38)"));
    }
}
