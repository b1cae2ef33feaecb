//! Reading the daemon's `/metrics` (Prometheus text format): plain
//! samples and one histogram, enough to report what the daemon measured
//! itself.

/// Prefix of every metric the daemon exports.
pub const PREFIX: &str = "stackunderflow_live_";

/// The value of an unlabelled sample `PREFIX + name`.
pub fn value(text: &str, name: &str) -> Option<f64> {
    let full = format!("{PREFIX}{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&full))
        .and_then(|v| v.trim().parse().ok())
}

/// A cumulative histogram as exported.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// (upper bound `le` in seconds, observations ≤ it), finite bounds only,
    /// ascending.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum: f64,
}

/// The histogram `PREFIX + name` (`_bucket{le=…}`, `_sum`, `_count`).
pub fn histogram(text: &str, name: &str) -> Option<Histogram> {
    let bucket = format!("{PREFIX}{name}_bucket{{le=\"");
    let mut buckets = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(&bucket) else {
            continue;
        };
        let (le, n) = rest.split_once("\"} ")?;
        if le == "+Inf" {
            continue;
        }
        buckets.push((le.parse().ok()?, n.trim().parse().ok()?));
    }
    Some(Histogram {
        buckets,
        count: value(text, &format!("{name}_count"))? as u64,
        sum: value(text, &format!("{name}_sum"))?,
    })
}

impl Histogram {
    /// The upper bound (seconds) of the bucket holding the nearest-rank
    /// `q` quantile: the quantile is at most this. Infinite when it lies
    /// above the largest finite bound; `None` without observations.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The sample of rank ⌊q·n⌋ + 1 (1-based), as `report::Dist` picks it.
        let rank = ((q * self.count as f64).floor() as u64 + 1).min(self.count);
        Some(
            self.buckets
                .iter()
                .find(|(_, n)| *n >= rank)
                .map(|(le, _)| *le)
                .unwrap_or(f64::INFINITY),
        )
    }

    /// "≤ 0.5 ms", "> 2500 ms" or "–" for a quantile.
    pub fn quantile_text(&self, q: f64) -> String {
        match self.quantile_bound(q) {
            None => "–".into(),
            Some(b) if b.is_infinite() => format!(
                "> {} ms",
                crate::report::ms(self.buckets.last().map_or(0.0, |b| b.0) * 1000.0)
            ),
            Some(b) => format!("≤ {} ms", crate::report::ms(b * 1000.0)),
        }
    }

    /// Mean observation, seconds (NaN without observations).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "# HELP stackunderflow_live_x_seconds X.\n# TYPE stackunderflow_live_x_seconds histogram\n\
        stackunderflow_live_x_seconds_bucket{le=\"0.0005\"} 90\n\
        stackunderflow_live_x_seconds_bucket{le=\"0.001\"} 99\n\
        stackunderflow_live_x_seconds_bucket{le=\"0.002\"} 99\n\
        stackunderflow_live_x_seconds_bucket{le=\"+Inf\"} 100\n\
        stackunderflow_live_x_seconds_sum 0.05\n\
        stackunderflow_live_x_seconds_count 100\n\
        stackunderflow_live_rows_ingested_total 7\n";

    #[test]
    fn reads_a_histogram_and_its_quantile_bounds() {
        assert_eq!(value(TEXT, "rows_ingested_total"), Some(7.0));
        let h = histogram(TEXT, "x_seconds").unwrap();
        assert_eq!(h.count, 100);
        assert_eq!(h.buckets.len(), 3);
        assert_eq!(h.quantile_bound(0.5), Some(0.0005));
        // Rank 90 is the last in the first bucket; rank 91 is not.
        assert_eq!(h.quantile_bound(0.89), Some(0.0005));
        assert_eq!(h.quantile_bound(0.90), Some(0.001));
        assert_eq!(h.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(h.quantile_text(0.5), "≤ 0.500 ms");
        assert_eq!(h.quantile_text(0.99), "> 2.00 ms");
        assert!((h.mean() - 0.0005).abs() < 1e-12);
        assert!(histogram("", "x_seconds").is_none());
    }
}
