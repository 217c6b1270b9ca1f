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

        // digit strings, with leading zeros and past u32 and u64, where an `any::<String>()` rarely goes
        #[test]
        fn digit_strings_agree_with_the_rule(text in "[0-9]{0,25}") {
            let value = text.trim_start_matches('0');
            let expected = !text.is_empty()
                && value.len() <= 7
                && value.parse::<u32>().is_ok_and(|n| (1..=MAX_PAGE).contains(&n));
            prop_assert_eq!(PageNumber::parse(&text).is_ok(), expected, "{:?}", text);
        }

        #[test]
        fn anything_around_a_number_is_refused(n in 1u32..=MAX_PAGE, junk in "[^0-9]{1,3}", before in any::<bool>()) {
            let text = if before { format!("{junk}{n}") } else { format!("{n}{junk}") };
            prop_assert!(PageNumber::parse(&text).is_err(), "{:?}", text);
        }

        #[test]
        fn offsets_follow_the_pages(n in 1u32..MAX_PAGE, size in 1u32..=500) {
            let page = PageNumber(n);
            let next = page.next().map(|p| p.offset(size));
            prop_assert_eq!(next, Some(page.offset(size) + u64::from(size)));
            prop_assert_eq!(PageNumber(MAX_PAGE).next(), None);
        }

        #[test]
        fn numbers_round_trip(n in 1u32..=MAX_PAGE) {
            prop_assert_eq!(PageNumber::parse(&n.to_string()).map(PageNumber::get), Ok(n));
        }
    }
}
