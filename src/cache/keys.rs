//! The key layout. Every key starts with the configured prefix.

use crate::movies::MovieList;

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

    /// Page n of `list`: `movies:page:{n}` for the listing, `movies:list:{list's key}:page:{n}`
    /// for any other (the key names its parameters in one fixed order).
    pub fn list_page(&self, list: &MovieList, n: u32) -> String {
        if list.is_default() { self.page(n) } else { format!("{}movies:list:{}:page:{n}", self.prefix, list.key()) }
    }

    /// `movies:search:{words joined by +}:page:{n}`: the slugs of a search's page n.
    pub fn search_page(&self, query: &str, n: u32) -> String {
        format!("{}movies:search:{query}:page:{n}", self.prefix)
    }

    /// The set of page keys written for `list`: `movies:pages` for the listing, `movies:lists` for
    /// every other list.
    pub fn pages_of(&self, list: &MovieList) -> String {
        if list.is_default() { self.pages() } else { self.lists() }
    }

    /// `movies:related:{slug}`: the slugs of the films shown next to a film on its page.
    pub fn related(&self, slug: &str) -> String {
        format!("{}movies:related:{slug}", self.prefix)
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

    /// `movies:meta`: the catalog's version, order version and film count.
    pub fn meta(&self) -> String {
        format!("{}movies:meta", self.prefix)
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
        assert_eq!(k.meta(), "t1:movies:meta");
        assert_eq!(k.pages(), "t1:movies:pages");
    }
}
