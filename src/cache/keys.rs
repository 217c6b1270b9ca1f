//! The key layout. Every key starts with the configured prefix.

use crate::movies::MovieList;

/// Which page of slugs a key holds: a list's page, a search's page, or a film's related films.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PageOf {
    List(MovieList, u32),
    /// A search by its words (`SearchQuery::key`), and the page.
    Search(String, u32),
    /// The films shown next to a film, by its slug.
    Related(String),
}

/// Builds the keys for one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// `movies:page:{n}`: the slugs of listing page n, a JSON array in page order.
    pub fn page(&self, n: u32) -> String {
        format!("{}movies:page:{n}", self.prefix)
    }

    /// The key of a page of slugs: `movies:page:{n}` for the listing,
    /// `movies:list:{list's key}:page:{n}` for any other list (its parameters in one fixed order),
    /// `movies:search:{words joined by +}:page:{n}` for a search, `movies:related:{slug}` for the
    /// films shown next to a film.
    pub fn page_of(&self, of: &PageOf) -> String {
        match of {
            PageOf::List(list, n) if list.is_default() => self.page(*n),
            PageOf::List(list, n) => format!("{}movies:list:{}:page:{n}", self.prefix, list.key()),
            PageOf::Search(words, n) => format!("{}movies:search:{words}:page:{n}", self.prefix),
            PageOf::Related(slug) => format!("{}movies:related:{slug}", self.prefix),
        }
    }

    /// The set a page's key is listed in, which the sweeps walk: `movies:pages` for the listing's,
    /// `movies:lists` for the other lists' and the searches'. A film's related films are in none:
    /// their version alone retires them.
    pub fn listed_in(&self, of: &PageOf) -> Option<String> {
        match of {
            PageOf::List(list, _) if list.is_default() => Some(self.pages()),
            PageOf::List(..) | PageOf::Search(..) => Some(self.lists()),
            PageOf::Related(_) => None,
        }
    }

    /// `movies:lists`: the set of the other lists' page keys written, swept when a list changes.
    pub fn lists(&self) -> String {
        format!("{}movies:lists", self.prefix)
    }

    /// `movie:{slug}`: one film as JSON (or a "gone" marker for a slug with no film).
    pub fn movie(&self, slug: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 6 + slug.len());
        key.push_str(&self.prefix);
        key.push_str("movie:");
        key.push_str(slug);
        key
    }

    /// `movies:stamp`: the catalog's stamp (its versions and film count).
    pub fn stamp(&self) -> String {
        format!("{}movies:stamp", self.prefix)
    }

    /// `movies:token`: a hash of a random token that changes whenever a write reaches the cache
    /// (rendered pages kept in a server's memory are good while it stays the same), when the hash
    /// was made, and the servers' leases (see `lease`). Also the channel writers announce on.
    pub fn token(&self) -> String {
        format!("{}movies:token", self.prefix)
    }

    /// `movies:pages`: the set of page keys written, swept on invalidation.
    pub fn pages(&self) -> String {
        format!("{}movies:pages", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix() {
        let k = Keys::new("t1:");
        assert_eq!(k.page(3), "t1:movies:page:3");
        assert_eq!(k.movie("heat-1995"), "t1:movie:heat-1995");
        assert_eq!(Keys::new("").movie("heat-1995"), "movie:heat-1995");
        assert_eq!(k.stamp(), "t1:movies:stamp");
        assert_eq!(k.page_of(&PageOf::List(MovieList::default(), 3)), "t1:movies:page:3");
        assert_eq!(k.page_of(&PageOf::Search("heat".into(), 2)), "t1:movies:search:heat:page:2");
        assert_eq!(k.page_of(&PageOf::Related("heat-1995".into())), "t1:movies:related:heat-1995");
        assert_eq!(k.pages(), "t1:movies:pages");
    }
}
