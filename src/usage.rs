//! Usage counters for `/metrics`: cost and tokens by provider, model and
//! project, monotonic, with bounded cardinality.
//!
//! Owns [`UsageCounters`] and the latency [`Histogram`]. Pure bookkeeping:
//! no I/O. The hub adds each published event (and the growth of corrected
//! ones); start-up restores the totals from the store so the counters never
//! go backwards across a restart; `/metrics` reads them.
//!
//! Cardinality: the first [`MAX_PROJECTS`] projects seen (at start-up in
//! order of cost, then in order of arrival) keep their own label; later
//! ones are summed under `project="other"`. Membership never changes while
//! the process runs, so no series ever decreases.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::EventRow;

/// Projects with a label of their own; the rest are `other`.
pub const MAX_PROJECTS: usize = 20;

/// Corrections are matched to the event they correct within this many
/// recent events (a larger copy of an API response arrives seconds later).
const RECENT_EVENTS: usize = 20_000;

/// Totals of one series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// USD.
    pub cost: f64,
    /// Input tokens.
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Cache-read tokens.
    pub cache_read: i64,
    /// Cache-write tokens.
    pub cache_write: i64,
}

impl Totals {
    fn of(r: &EventRow) -> Totals {
        Totals {
            cost: r.cost_usd,
            input: r.input_tokens,
            output: r.output_tokens,
            cache_read: r.cache_read_tokens,
            cache_write: r.cache_create_tokens,
        }
    }

    fn add(&mut self, o: &Totals, sign: f64) {
        self.cost += o.cost * sign;
        let s = sign as i64;
        self.input += o.input * s;
        self.output += o.output * s;
        self.cache_read += o.cache_read * s;
        self.cache_write += o.cache_write * s;
    }
}

/// `(provider, model, project label)`.
pub type SeriesKey = (String, String, String);

/// Monotonic usage totals per series.
#[derive(Debug, Default)]
pub struct UsageCounters {
    series: HashMap<SeriesKey, Totals>,
    labelled: Vec<String>,
    // Recent events by id, to turn a correction into a delta.
    recent: HashMap<i64, (SeriesKey, Totals)>,
    recent_order: VecDeque<i64>,
}

impl UsageCounters {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    fn label(&mut self, project: &str) -> String {
        if self.labelled.iter().any(|p| p == project) {
            return project.to_string();
        }
        if self.labelled.len() < MAX_PROJECTS {
            self.labelled.push(project.to_string());
            return project.to_string();
        }
        "other".to_string()
    }

    /// Restores a total read from the store (call in descending cost order).
    pub fn restore(&mut self, provider: &str, model: &str, project: &str, t: Totals) {
        let key = (provider.to_string(), model.to_string(), self.label(project));
        self.series.entry(key).or_default().add(&t, 1.0);
    }

    /// Counts a new event.
    pub fn add(&mut self, r: &EventRow) {
        let project = r
            .project_slug
            .clone()
            .unwrap_or_else(|| format!("project-{}", r.project_id));
        let key = (r.provider.clone(), r.model.clone(), self.label(&project));
        let t = Totals::of(r);
        self.series.entry(key.clone()).or_default().add(&t, 1.0);
        self.recent.insert(r.id, (key, t));
        self.recent_order.push_back(r.id);
        while self.recent_order.len() > RECENT_EVENTS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// Counts the growth of a corrected event (never a decrease).
    pub fn correct(&mut self, r: &EventRow) {
        let Some((key, old)) = self.recent.get(&r.id).cloned() else {
            return;
        };
        let new = Totals::of(r);
        let mut delta = new;
        delta.add(&old, -1.0);
        if delta.cost < 0.0
            || delta.input < 0
            || delta.output < 0
            || delta.cache_read < 0
            || delta.cache_write < 0
        {
            return;
        }
        self.series.entry(key.clone()).or_default().add(&delta, 1.0);
        self.recent.insert(r.id, (key, new));
    }

    /// Every series, sorted for a stable exposition.
    pub fn snapshot(&self) -> Vec<(SeriesKey, Totals)> {
        let mut v: Vec<_> = self.series.iter().map(|(k, t)| (k.clone(), *t)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Upper bounds of the commit→send histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A Prometheus histogram updated with atomics from many threads.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Cumulative bucket counts, total count and sum in seconds.
    pub fn read(&self) -> (Vec<u64>, u64, f64) {
        let mut cum = 0;
        let buckets = self
            .buckets
            .iter()
            .map(|b| {
                cum += b.load(Ordering::Relaxed);
                cum
            })
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, project: &str, cost: f64, out: i64) -> EventRow {
        EventRow {
            id,
            ts: String::new(),
            project_id: 1,
            session_id: String::new(),
            model: "m".into(),
            cost_usd: cost,
            input_tokens: 1,
            output_tokens: out,
            cache_read_tokens: 0,
            cache_create_tokens: 0,
            cost_source: "rate_card".into(),
            provider: "claude".into(),
            project_slug: Some(project.into()),
            project_name: None,
        }
    }

    #[test]
    fn projects_beyond_the_cap_go_to_other_and_corrections_add_growth() {
        let mut c = UsageCounters::new();
        for i in 0..(MAX_PROJECTS as i64 + 5) {
            c.add(&ev(i, &format!("p{i}"), 1.0, 10));
        }
        let snap = c.snapshot();
        assert_eq!(snap.len(), MAX_PROJECTS + 1);
        let other = snap.iter().find(|(k, _)| k.2 == "other").unwrap().1;
        assert_eq!(other.cost, 5.0);
        c.correct(&ev(0, "p0", 1.5, 30));
        c.correct(&ev(0, "p0", 1.2, 20)); // a smaller copy never decreases a counter
        let p0 = c
            .snapshot()
            .into_iter()
            .find(|(k, _)| k.2 == "p0")
            .unwrap()
            .1;
        assert_eq!((p0.cost, p0.output), (1.5, 30));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(0.0003);
        h.observe(0.003);
        h.observe(9.0);
        let (b, n, sum) = h.read();
        assert_eq!((b[0], b[3], b[11], n), (1, 2, 2, 3));
        assert!((sum - 9.0033).abs() < 1e-6);
    }
}
