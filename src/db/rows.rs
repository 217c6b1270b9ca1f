//! Between `Movie` and a row: the film's columns, decoding (`Movie`'s `FromRow`, which reads each
//! field by its name), and binding.

use sqlx::any::{Any, AnyArguments, AnyRow, AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::query::Query;
use sqlx::{Decode, Encode, Error, FromRow, Row, Type};

use crate::movies::{Date, Movie};

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Declares the film's columns once, each by its `Movie` field: a column is named as the field
/// `FromRow` reads it into, and a misspelt, missing or extra one does not compile. Derives from them
/// the column list, its length, the binding of a film's values, and which changes move a list.
macro_rules! film_columns {
    (columns: $($column:ident),+; lists: $($listed:ident),+;) => {
        /// The film columns in one fixed order, used wherever a whole film is read or written.
        /// `search_title` is the title as the search index holds it (`movies::search_text`),
        /// written with every title and never read back into a `Movie`.
        pub const COLUMNS: &str = concat!($(stringify!($column), ", ",)+ "search_title");

        /// How many `COLUMNS` names.
        pub const COLUMN_COUNT: usize = [$(stringify!($column)),+].len() + 1;

        /// The fields whose change may move a film in or out of a list, or within one: the
        /// filtered and sorted lists, and the related films of a detail page (by director; by
        /// genre and decade).
        pub const LIST_FIELDS: &[&str] = &[$(stringify!($listed)),+];

        /// Binds a film's values in `COLUMNS` order.
        pub fn bind<'q>(q: AnyQuery<'q>, m: &Movie) -> AnyQuery<'q> {
            // every field by name, no `..`: a field added to `Movie` and not to the table does not compile
            let Movie { $($column),+ } = m;
            $(let q = $column.bind_to(q);)+
            q.bind(crate::movies::search_text(&m.title))
        }

        /// Whether a new copy of a film may move it in or out of a list, or within one.
        pub fn moves_in_lists(old: &Movie, new: &Movie) -> bool {
            $(old.$listed != new.$listed)||+
        }
    };
}

film_columns! {
    columns: slug, title, release_date, genre, director, mpaa_rating, running_time_min, imdb_rating, imdb_votes,
        rotten_tomatoes_rating, us_gross, worldwide_gross, us_dvd_sales, production_budget, distributor, source,
        creative_type, version;
    lists: release_date, genre, director, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross;
}

/// How a film's value goes into a statement: as it is, but for the exceptions below.
trait Bind: Clone + for<'q> Encode<'q, Any> + Type<Any> + Send + 'static {
    fn bind_to<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        q.bind(self.clone())
    }
}

impl Bind for String {}
impl Bind for Option<String> {}
impl Bind for i64 {}
impl Bind for Option<i64> {}
impl Bind for Date {}

impl Bind for Option<f64> {
    // sqlx 0.8's Any driver sends a NULL f64 to PostgreSQL as a float4 and a present one as a
    // float8, and a cached statement then refuses the other form ("incorrect binary data format").
    // Its NULL f32 goes as float8, so that is the NULL we send: one type either way.
    fn bind_to<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        match *self {
            Some(value) => q.bind(value),
            None => q.bind(None::<f32>),
        }
    }
}

/// A date is stored as its `YYYY-MM-DD` text, which sorts in date order on both databases.
impl Type<Any> for Date {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }
}

impl<'q> Encode<'q, Any> for Date {
    fn encode_by_ref(&self, buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Any>>::encode(self.to_string(), buf)
    }
}

impl<'r> Decode<'r, Any> for Date {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(<String as Decode<'r, Any>>::decode(value)?.parse()?)
    }
}

/// Decodes a film; `Ok(None)` for the all-null row a left join gives when there is no film.
pub fn movie(row: &AnyRow) -> Result<Option<Movie>, Error> {
    if row.try_get::<Option<String>, _>("slug")?.is_none() {
        return Ok(None);
    }
    Movie::from_row(row).map(Some)
}

/// The same list prefixed with a table alias: `f.slug, f.title, …`.
pub fn columns_of(alias: &str) -> String {
    COLUMNS.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
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
