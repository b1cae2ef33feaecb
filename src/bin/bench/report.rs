//! Distributions and Markdown output.
//!
//! Percentiles are exact: samples are kept and sorted (a few million at
//! most), using the nearest-rank rule `sorted[min(n−1, ⌊q·n⌋)]` that
//! upstream and the daemon use, so our figures and theirs are comparable.

use std::fmt::Write as _;

/// A sorted set of samples, in milliseconds.
pub struct Dist {
    sorted: Vec<f64>,
}

impl Dist {
    /// Sorts `samples` (milliseconds).
    pub fn new(mut samples: Vec<f64>) -> Dist {
        samples.retain(|x| x.is_finite());
        samples.sort_by(f64::total_cmp);
        Dist { sorted: samples }
    }

    /// Number of samples.
    pub fn n(&self) -> usize {
        self.sorted.len()
    }

    /// The `q` quantile (0..=1), nearest rank; NaN when empty.
    pub fn q(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((q * self.sorted.len() as f64).floor() as usize).min(self.sorted.len() - 1);
        self.sorted[i]
    }

    /// Median.
    pub fn p50(&self) -> f64 {
        self.q(0.50)
    }

    /// 99th percentile.
    pub fn p99(&self) -> f64 {
        self.q(0.99)
    }

    /// Largest sample; NaN when empty.
    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(f64::NAN)
    }

    /// Share of samples above `x`.
    pub fn frac_above(&self, x: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let at = self.sorted.partition_point(|v| *v <= x);
        (self.sorted.len() - at) as f64 / self.sorted.len() as f64
    }

    /// `p50 | p99 | max` cells.
    pub fn cells(&self) -> [String; 3] {
        [ms(self.p50()), ms(self.p99()), ms(self.max())]
    }
}

/// A millisecond figure with sensible precision.
pub fn ms(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x < 1.0 {
        format!("{x:.3}")
    } else if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A ratio like `512×`.
pub fn ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite()) || b <= 0.0 {
        return "–".into();
    }
    let r = a / b;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

/// Mebibytes from kibibytes.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A Markdown table.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (cells beyond the headings are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as Markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(&self.head));
        out.push_str(&format!("|{}\n", "---|".repeat(self.head.len())));
        for r in &self.rows {
            let mut r = r.clone();
            r.resize(self.head.len(), String::new());
            out.push_str(&line(&r));
        }
        out
    }
}

/// The command that reproduces this run.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release --bin bench -- {}", args.join(" "))
}

/// The 1-minute load average, to show how busy the shared machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The opening of a scenario's block: heading, command, machine load.
pub fn block_head(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {title}\n");
    let _ = writeln!(s, "```\n{}\n```\n", command_line());
    let _ = writeln!(
        s,
        "Load average (1 min) when the scenario started: {}.\n",
        loadavg()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Dist::new((1..=100).map(f64::from).collect());
        assert_eq!(d.p50(), 51.0);
        assert_eq!(d.p99(), 100.0);
        assert_eq!(d.max(), 100.0);
        assert_eq!(d.frac_above(90.0), 0.1);
        assert!(Dist::new(vec![]).p50().is_nan());
    }

    #[test]
    fn table_renders() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["1".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| 1 |  |\n");
    }
}
