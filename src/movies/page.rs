use std::fmt;

/// The deepest listing page anyone may ask for.
pub const MAX_PAGE: u32 = 1_000_000;

/// A listing page number, 1 to 1,000,000, parsed from the query string's exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageNumber(u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("page must be a whole number from 1 to {MAX_PAGE}")]
pub struct PageError;

impl PageNumber {
    pub const FIRST: Self = Self(1);

    /// Only plain decimal digits: no sign, no spaces, no exponent, no fraction.
    pub fn parse(text: &str) -> Result<Self, PageError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PageError);
        }
        let n: u32 = text.parse().map_err(|_| PageError)?;
        Self::new(n).ok_or(PageError)
    }

    pub fn new(n: u32) -> Option<Self> {
        (1..=MAX_PAGE).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn next(self) -> Option<Self> {
        Self::new(self.0 + 1)
    }

    /// Rows before this page, for pages of `size` films.
    pub fn offset(self, size: u32) -> u64 {
        u64::from(self.0 - 1) * u64::from(size)
    }
}

impl fmt::Display for PageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_range() {
        assert_eq!(PageNumber::parse("1"), Ok(PageNumber(1)));
        assert_eq!(PageNumber::parse("1000000"), Ok(PageNumber(MAX_PAGE)));
        assert_eq!(PageNumber::parse("007"), Ok(PageNumber(7)));
        for bad in ["", "0", "-1", "+1", "abc", "1.5", "1e3", " 1", "1000001", "99999999999999999999", "١"] {
            assert_eq!(PageNumber::parse(bad), Err(PageError), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_agrees_with_the_rule(text in any::<String>()) {
            let expected = text.bytes().all(|b| b.is_ascii_digit())
                && text.parse::<u64>().is_ok_and(|n| (1..=u64::from(MAX_PAGE)).contains(&n));
            prop_assert_eq!(PageNumber::parse(&text).is_ok(), expected);
        }

        #[test]
        fn numbers_round_trip(n in 1u32..=MAX_PAGE) {
            prop_assert_eq!(PageNumber::parse(&n.to_string()).map(PageNumber::get), Ok(n));
        }
    }
}
