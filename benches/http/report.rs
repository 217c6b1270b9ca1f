//! The one table, and how its figures are written.

use crate::client::Sweep;
use crate::wrk::Wrk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    Info,
}

impl Verdict {
    pub fn of(ok: bool) -> Self {
        if ok { Self::Pass } else { Self::Miss }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Miss => "MISS",
            Self::Info => "",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub scope: String,
    pub what: String,
    pub ours: String,
    pub other: String,
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(scope: &str, what: impl Into<String>) -> Self {
        Self {
            scope: scope.to_owned(),
            what: what.into(),
            ours: String::new(),
            other: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    pub fn ours(mut self, s: impl Into<String>) -> Self {
        self.ours = s.into();
        self
    }

    pub fn other(mut self, s: impl Into<String>) -> Self {
        self.other = s.into();
        self
    }

    pub fn ratio(mut self, r: f64) -> Self {
        self.ratio = times(r);
        self
    }

    pub fn ratio_text(mut self, s: impl Into<String>) -> Self {
        self.ratio = s.into();
        self
    }

    pub fn target(mut self, t: impl Into<String>, verdict: Verdict) -> Self {
        self.target = t.into();
        self.verdict = verdict;
        self
    }
}

pub fn times(r: f64) -> String {
    if !r.is_finite() {
        "–".to_owned()
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// 12345.6 → "12,346"
pub fn thousands(x: f64) -> String {
    #[expect(clippy::cast_possible_truncation, reason = "figures shown are far below i64::MAX")]
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

pub fn wrk(w: &Wrk) -> String {
    let errors = if w.errors > 0 { format!(" ({} errors)", w.errors) } else { String::new() };
    format!(
        "{} r/s · p50 {} · p99 {}{errors}{}",
        thousands(w.rps),
        ms(w.p50_ms),
        ms(w.p99_ms),
        timeouts(w.redis_errors)
    )
}

pub fn sweep(s: &Sweep) -> String {
    let failed = if s.failed > 0 { format!(" ({} failed)", s.failed) } else { String::new() };
    format!(
        "{} r/s · p50 {} · p99 {}{failed}{}",
        thousands(s.rps()),
        ms(s.percentile_ms(50.0)),
        ms(s.percentile_ms(99.0)),
        timeouts(s.redis_errors)
    )
}

fn timeouts(n: u64) -> String {
    if n > 0 { format!(" ({n} Redis timeouts)") } else { String::new() }
}

pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// The table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let header = ["scope", "measurement", "marquee", "compared with", "ratio", "target", "result"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.scope.clone(),
                r.what.clone(),
                r.ours.clone(),
                r.other.clone(),
                r.ratio.clone(),
                r.target.clone(),
                r.verdict.text().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&header.map(str::to_owned));
    out.push_str(&format!("|{}|\n", widths.map(|w| "-".repeat(w + 2)).join("|")));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}
