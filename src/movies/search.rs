//! What a search box sends, made safe to hand to a full-text index: folded to lower-case ASCII
//! (accents dropped: `Amélie` is `amelie`), cut into words of letters and digits. Every word is
//! matched as the start of a word of the title (`godf` finds The Godfather). Nothing a person
//! types reaches the index as syntax: quotes, `*`, `NEAR`, `-`, NUL are separators like spaces.

/// The longest query accepted, in characters.
pub const MAX_LEN: usize = 200;
/// The most words a query is matched by; further words are ignored.
pub const MAX_WORDS: usize = 8;

/// A title or a query as the index stores and matches it: lower-case ASCII words joined by one
/// space.
pub fn normalize(text: &str) -> String {
    let ascii = deunicode::deunicode(text).to_ascii_lowercase();
    ascii.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A search as asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SearchQuery {
    /// What the person typed, trimmed (shown back to them).
    pub text: String,
    /// Its normalized words, at most `MAX_WORDS`.
    pub words: Vec<String>,
}

/// A query longer than `MAX_LEN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("q must be at most {MAX_LEN} characters")]
pub struct QueryTooLong;

impl SearchQuery {
    pub fn parse(text: &str) -> Result<Self, QueryTooLong> {
        let text = text.trim();
        if text.chars().count() > MAX_LEN {
            return Err(QueryTooLong);
        }
        let normalized = normalize(text);
        let words = normalized.split(' ').filter(|w| !w.is_empty()).take(MAX_WORDS).map(str::to_owned).collect();
        Ok(Self { text: text.to_owned(), words })
    }

    /// Nothing to look for (empty, or only punctuation).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words joined as a stored title is: the query that matches a title exactly.
    /// How a cache key names it: its words joined by `+` (letters and digits only, so nothing
    /// else can appear in the key).
    pub fn key(&self) -> String {
        self.words.join("+")
    }

    pub fn phrase(&self) -> String {
        self.words.join(" ")
    }

    /// The URL of page `n` of this search.
    pub fn href(&self, page: u32) -> String {
        let q: String = form_urlencoded::byte_serialize(self.text.as_bytes()).collect();
        if page == 1 { format!("/search?q={q}") } else { format!("/search?q={q}&page={page}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(normalize("Amélie"), "amelie");
        assert_eq!(normalize("  The Godfather: Part II "), "the godfather part ii");
        assert_eq!(normalize("[Rec]"), "rec");
        assert_eq!(normalize("Astérix aux Jeux Olympiques"), "asterix aux jeux olympiques");
        assert_eq!(normalize("!!!"), "");
    }

    #[test]
    fn index_syntax_is_only_separators() {
        let q = SearchQuery::parse(r#""godf" * NEAR(a b) -x OR col:title ^ab {c} a\0b"#).unwrap();
        assert_eq!(q.words, ["godf", "near", "a", "b", "x", "or", "col", "title"]);
        assert!(q.words.iter().all(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())));
        assert!(SearchQuery::parse("\"*-").unwrap().is_empty());
        assert_eq!(SearchQuery::parse(&"a".repeat(5000)), Err(QueryTooLong));
        assert!(SearchQuery::parse(&"é".repeat(MAX_LEN)).is_ok(), "characters, not bytes");
    }

    #[test]
    fn links_keep_what_was_typed() {
        let q = SearchQuery::parse("Amélie & co").unwrap();
        assert_eq!(q.href(2), "/search?q=Am%C3%A9lie+%26+co&page=2");
        assert_eq!(q.phrase(), "amelie co");
    }
}
