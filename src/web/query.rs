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
