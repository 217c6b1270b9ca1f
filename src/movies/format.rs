//! How a film's numbers are shown to people.

/// 146083 → "$146,083"
pub fn money(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 2);
    if amount < 0 {
        out.push('-');
    }
    out.push('$');
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 116 → "1 h 56 min", 45 → "45 min", 120 → "2 h"
pub fn runtime(minutes: i64) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// 6.1 → "6.1"; 8 → "8.0"
pub fn rating(value: f64) -> String {
    format!("{value:.1}")
}

/// 1071 → "1,071"
pub fn count(value: i64) -> String {
    let money = money(value);
    money.replacen('$', "", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(146_083), "$146,083");
        assert_eq!(money(0), "$0");
        assert_eq!(money(999), "$999");
        assert_eq!(money(1_000), "$1,000");
        assert_eq!(money(8_000_000), "$8,000,000");
    }

    #[test]
    fn runtime_reads_as_hours_and_minutes() {
        assert_eq!(runtime(116), "1 h 56 min");
        assert_eq!(runtime(45), "45 min");
        assert_eq!(runtime(120), "2 h");
    }

    #[test]
    fn counts_and_ratings() {
        assert_eq!(count(1_071), "1,071");
        assert_eq!(rating(8.0), "8.0");
    }
}
