//! The listing's query string, decoded by `form_urlencoded`: the page and the list (genre, decade,
//! rating, sort). A parameter given twice, a page that is empty or not a plain number, a value not
//! among those allowed: each is refused with a precise answer, never guessed at. An empty list
//! parameter means "any" (what a plain form's "All genres" sends). Other parameters are ignored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::error::{AppError, PageError};
use crate::movies::{FIRST_DECADE, GENRES, LAST_DECADE, MAX_PAGE, MovieList, PageNumber, RATINGS, SearchQuery, Sort};

/// What `/movies?…` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingQuery {
    pub page: PageNumber,
    pub list: MovieList,
}

impl ListingQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, AppError> {
        let mut page = None;
        let mut list = MovieList::default();
        let mut seen = [false; MovieList::PARAMS.len()];
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if key == "page" {
                if page.is_some() {
                    return Err(twice("page"));
                }
                page = Some(PageNumber::parse(&value).map_err(|e| AppError::BadRequest(e.to_string()))?);
            } else if let Some(i) = MovieList::PARAMS.iter().position(|p| *p == key) {
                if std::mem::replace(&mut seen[i], true) {
                    return Err(twice(MovieList::PARAMS[i]));
                }
                if !value.is_empty() {
                    list.set(&key, &value).map_err(|e| AppError::BadRequest(e.to_string()))?;
                }
            }
        }
        Ok(Self { page: page.unwrap_or(PageNumber::FIRST), list })
    }
}

/// The parameters as the API's document lists them, each with the values `parse` allows (an empty
/// one is the same as none).
impl utoipa::IntoParams for ListingQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let one_of = |values: Vec<String>| {
            let values = std::iter::once(String::new()).chain(values);
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build()
        };
        let slugs = |table: &[(&str, &str)]| table.iter().map(|(slug, _)| (*slug).to_owned()).collect();
        let decades = (FIRST_DECADE..=LAST_DECADE).step_by(10).map(|d| d.to_string()).collect();
        let sorts = Sort::ALL.iter().map(|s| s.name().to_owned()).collect();
        let page = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(MAX_PAGE)).build();
        let param = |name: &str, description: &str, schema| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        vec![
            param("genre", "Only films of this genre", one_of(slugs(GENRES))),
            param("decade", "Only films released in the decade starting this year", one_of(decades)),
            param("rating", "Only films with this MPAA rating", one_of(slugs(RATINGS))),
            param("sort", "The order: newest release (the default), or highest first", one_of(sorts)),
            param("page", "The page, from 1 (the default)", page),
        ]
    }
}

/// What `/search?q=…&page=N` asks for. `q` missing or empty is an empty search; longer than
/// `search::MAX_LEN` characters, a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParams {
    pub query: SearchQuery,
    pub page: PageNumber,
}

impl SearchParams {
    pub fn parse(query: Option<&str>) -> Result<Self, AppError> {
        let (mut q, mut page) = (None, None);
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "q" if q.is_some() => return Err(twice("q")),
                "q" => q = Some(SearchQuery::parse(&value).map_err(|e| AppError::BadRequest(e.to_string()))?),
                "page" if page.is_some() => return Err(twice("page")),
                "page" => page = Some(PageNumber::parse(&value).map_err(|e| AppError::BadRequest(e.to_string()))?),
                _ => {}
            }
        }
        let query = q.unwrap_or_default();
        Ok(Self { query, page: page.unwrap_or(PageNumber::FIRST) })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SearchParams {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        Ok(Self::parse(parts.uri.query())?)
    }
}

fn twice(param: &str) -> AppError {
    AppError::BadRequest(format!("{param} is given more than once"))
}

impl<S: Send + Sync> FromRequestParts<S> for ListingQuery {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        Ok(Self::parse(parts.uri.query())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(q: &str) -> Result<u32, String> {
        ListingQuery::parse(Some(q)).map(|q| q.page.get()).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_page() {
        assert_eq!(ListingQuery::parse(None).map(|q| q.page.get()).ok(), Some(1));
        assert_eq!(page(""), Ok(1));
        assert_eq!(page("page=3"), Ok(3));
        assert_eq!(page("utm=x&page=3"), Ok(3));
        assert_eq!(page("page=%33"), Ok(3));
        assert_eq!(page("p%61ge=4"), Ok(4));
    }

    /// Percent-encodes every byte of `text`.
    fn encode_all(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    proptest::proptest! {
        #[test]
        fn never_panics(query in proptest::prelude::any::<String>()) {
            let _ = ListingQuery::parse(Some(&query));
        }

        #[test]
        fn the_page_is_found_among_other_parameters(
            n in 1u32..=1_000_000,
            others in proptest::collection::vec("[a-z]{1,5}=[a-z0-9%*?]{0,5}", 0..4),
            at in 0usize..4,
            encoded in proptest::prelude::any::<bool>(),
        ) {
            let value = if encoded { encode_all(&n.to_string()) } else { n.to_string() };
            let mut pairs: Vec<String> = others.into_iter().filter(|p| !p.starts_with("page=")).collect();
            pairs.insert(at.min(pairs.len()), format!("page={value}"));
            proptest::prop_assert_eq!(page(&pairs.join("&")), Ok(n));
        }

        #[test]
        fn a_page_given_twice_is_refused(a in 1u32..100, b in 1u32..100, middle in "[a-z]{1,5}=[a-z]{0,5}") {
            let query = format!("page={a}&{middle}&page={b}");
            proptest::prop_assert!(page(&query).is_err(), "{}", query);
        }
    }

    fn list(q: &str) -> Result<String, String> {
        ListingQuery::parse(Some(q)).map(|q| q.list.key()).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_search() {
        let s = SearchParams::parse(Some("q=Am%C3%A9lie&page=2")).unwrap();
        assert_eq!((s.query.words.as_slice(), s.page.get()), (["amelie".to_owned()].as_slice(), 2));
        assert!(SearchParams::parse(None).unwrap().query.is_empty());
        assert!(SearchParams::parse(Some("q=a&q=b")).unwrap_err().to_string().contains("q is given more than once"));
        let long = format!("q={}", "a".repeat(5000));
        assert!(SearchParams::parse(Some(&long)).unwrap_err().to_string().contains("q must be at most 200 characters"));
    }

    #[test]
    fn reads_the_list() {
        assert_eq!(list("sort=rating&page=2&genre=comedy"), Ok("genre=comedy&sort=rating".into()));
        assert_eq!(list("genre=&decade=1990&rating=&sort="), Ok("decade=1990".into()));
        assert_eq!(list("genre=romantic%2Dcomedy"), Ok("genre=romantic-comedy".into()));
        let refused = list("genre=comedy&genre=drama").unwrap_err();
        assert!(refused.contains("genre is given more than once"), "{refused}");
        let refused = list("decade=1995").unwrap_err();
        assert!(refused.contains("decade") && refused.contains("1990"), "{refused}");
        assert!(list("sort=title").unwrap_err().contains("newest, rating, votes, gross"));
    }

    #[test]
    fn refuses_odd_forms() {
        for q in [
            "page=",
            "page",
            "page=0",
            "page=-1",
            "page=abc",
            "page=1.5",
            "page=1e3",
            "page=1&page=2",
            "page=%",
            "page=%ff",
            "page=+1",
        ] {
            assert!(page(q).is_err(), "{q}");
        }
    }
}
