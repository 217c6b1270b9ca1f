//! The listing's query string, read by hand so that every odd form gets a precise answer: a
//! `page` given twice, empty, or not a plain number is refused, never guessed at.

use crate::error::AppError;
use crate::movies::PageNumber;

/// The `page` parameter of a query string; page 1 when absent. Other parameters are ignored.
pub fn page_param(query: Option<&str>) -> Result<PageNumber, AppError> {
    let mut found: Option<String> = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(name).as_deref() != Some("page") {
            continue;
        }
        if found.is_some() {
            return Err(AppError::BadRequest("page is given more than once".into()));
        }
        found = Some(decode(value).unwrap_or_else(|| value.to_owned()));
    }
    match found {
        None => Ok(PageNumber::FIRST),
        Some(text) => PageNumber::parse(&text).map_err(|e| AppError::BadRequest(e.to_string())),
    }
}

/// Percent-decoding (and `+` as space) of one query component; `None` when it is not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(q: &str) -> Result<u32, String> {
        page_param(Some(q)).map(PageNumber::get).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_page() {
        assert_eq!(page_param(None).map(PageNumber::get).ok(), Some(1));
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
            let _ = page_param(Some(&query));
        }

        #[test]
        fn decoding_undoes_percent_encoding(text in proptest::prelude::any::<String>()) {
            proptest::prop_assert_eq!(decode(&encode_all(&text)), Some(text));
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
