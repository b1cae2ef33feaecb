//! Tool latency: pairs each tool call with its result by id and keeps exact
//! per-tool percentiles over a sliding window (24 h upstream).
//!
//! Owns [`LatencyWindow`]. Pure: no I/O, no clock (callers pass `now_ms`).
//! The hub thread feeds it; HTTP workers read it under the shared state lock.
//!
//! Why exact counts and not a sketch (the `quantiles` crate's CKMS): the
//! samples come from millisecond timestamps, so a tool's latencies take few
//! distinct values and a counted `BTreeMap<ms, n>` answers any percentile
//! exactly in O(distinct values); CKMS cannot forget samples that leave the
//! window and grows with the number of inserts. Exact figures also match
//! upstream's percentile convention bit for bit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the upstream contract calls the tool-latency window.
pub const DEFAULT_WINDOW_HOURS: i64 = 24;

/// How many tools `/api/live/stats` reports (most samples first).
pub const TOP_TOOLS: usize = 6;

/// A tool call or result seen in a transcript line, reduced to what pairing
/// needs. Producers: the follow feed (from `messages.raw_json`) and the
/// ingest writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolMark {
    /// A `tool_use` / `function_call` with its id, tool name and instant.
    Use {
        /// Pairing id (`toolu_…`, `call_…`).
        id: String,
        /// Tool name as written.
        name: String,
        /// Instant of the line, Unix ms.
        ts_ms: i64,
    },
    /// A `tool_result` / `function_call_output` for `id`.
    Result {
        /// Pairing id.
        id: String,
        /// Instant of the line, Unix ms.
        ts_ms: i64,
        /// A duration the tool reported itself (Codex), used when the
        /// timestamps are too coarse to tell.
        duration_ms: Option<i64>,
    },
}

/// Timestamp deltas at or below this many milliseconds are treated as "same
/// flush" (Codex 0.58 writes a call and its output together), so the
/// duration the tool reported is preferred.
pub const SAME_FLUSH_MS: i64 = 10;

/// Latency of a tool call paired with its result, in milliseconds: the
/// wall-time delta when it is more than [`SAME_FLUSH_MS`]; otherwise the
/// reported `duration_ms` if any; otherwise the delta. Never negative.
pub fn pair_latency_ms(use_ts_ms: i64, result_ts_ms: i64, duration_ms: Option<i64>) -> i64 {
    let delta = result_ts_ms.saturating_sub(use_ts_ms);
    let latency = if delta > SAME_FLUSH_MS {
        delta
    } else {
        duration_ms.unwrap_or(delta)
    };
    latency.max(0)
}

/// Percentiles of one tool, in seconds (the contract's units).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolLatency {
    /// Tool name.
    pub tool_name: String,
    /// Number of paired samples in the window.
    pub samples: usize,
    /// Median, seconds.
    pub p50: f64,
    /// 95th percentile, seconds.
    pub p95: f64,
    /// 99th percentile, seconds.
    pub p99: f64,
}

#[derive(Debug, Default)]
struct ToolSamples {
    // latency ms → how many samples have it.
    counts: BTreeMap<i64, u32>,
    n: usize,
}

impl ToolSamples {
    fn add(&mut self, ms: i64) {
        *self.counts.entry(ms).or_insert(0) += 1;
        self.n += 1;
    }

    fn remove(&mut self, ms: i64) {
        if let Some(c) = self.counts.get_mut(&ms) {
            *c -= 1;
            self.n -= 1;
            if *c == 0 {
                self.counts.remove(&ms);
            }
        }
    }

    /// Upstream's convention: `sorted[min(N−1, ⌊p/100·N⌋)]`.
    fn percentile(&self, p: f64) -> i64 {
        let rank = ((p / 100.0 * self.n as f64).floor() as usize).min(self.n.saturating_sub(1));
        let mut seen = 0usize;
        for (&ms, &c) in &self.counts {
            seen += c as usize;
            if seen > rank {
                return ms;
            }
        }
        0
    }
}

/// Paired tool latencies over a sliding window, plus the calls still waiting
/// for their result.
#[derive(Debug)]
pub struct LatencyWindow {
    window_ms: i64,
    // tool_use id → (tool name, instant) for calls without a result yet.
    pending: HashMap<String, (String, i64)>,
    // tool_use id → (tool name, use instant, latency ms) for paired calls in
    // the window; also stops a replayed line from counting twice.
    paired: HashMap<String, (String, i64, i64)>,
    // (use instant, id) of paired calls, oldest first, for expiry.
    order: BTreeSet<(i64, String)>,
    per_tool: HashMap<String, ToolSamples>,
}

impl LatencyWindow {
    /// An empty window of `window_hours`.
    pub fn new(window_hours: i64) -> Self {
        LatencyWindow {
            window_ms: window_hours.max(1) * 3_600_000,
            pending: HashMap::new(),
            paired: HashMap::new(),
            order: BTreeSet::new(),
            per_tool: HashMap::new(),
        }
    }

    /// Number of paired samples held.
    pub fn samples(&self) -> usize {
        self.paired.len()
    }

    /// Number of calls waiting for a result.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Applies one mark. A result without a known call is ignored (its call
    /// is older than the window, or in a file we have not read).
    pub fn apply(&mut self, mark: ToolMark, now_ms: i64) {
        match mark {
            ToolMark::Use { id, name, ts_ms } => {
                if ts_ms < now_ms - self.window_ms || self.paired.contains_key(&id) {
                    return;
                }
                self.pending.entry(id).or_insert((name, ts_ms));
            }
            ToolMark::Result {
                id,
                ts_ms,
                duration_ms,
            } => {
                let Some((name, use_ts)) = self.pending.remove(&id) else {
                    return;
                };
                let ms = pair_latency_ms(use_ts, ts_ms, duration_ms);
                self.per_tool.entry(name.clone()).or_default().add(ms);
                self.order.insert((use_ts, id.clone()));
                self.paired.insert(id, (name, use_ts, ms));
            }
        }
    }

    /// Forgets samples and pending calls whose call is older than the window.
    pub fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.window_ms;
        while let Some((ts, _)) = self.order.first() {
            if *ts >= cutoff {
                break;
            }
            let (_, id) = self.order.pop_first().expect("checked non-empty");
            if let Some((name, _, ms)) = self.paired.remove(&id) {
                if let Some(t) = self.per_tool.get_mut(&name) {
                    t.remove(ms);
                    if t.n == 0 {
                        self.per_tool.remove(&name);
                    }
                }
            }
        }
        self.pending.retain(|_, (_, ts)| *ts >= cutoff);
    }
}

/// P50/P95/P99 of the `top` tools with the most samples (ties by name), as of
/// `now_ms`, after expiring what left the window.
pub fn tool_latency_percentiles(
    win: &mut LatencyWindow,
    now_ms: i64,
    top: usize,
) -> Vec<ToolLatency> {
    win.expire(now_ms);
    let mut tools: Vec<(&String, &ToolSamples)> =
        win.per_tool.iter().filter(|(_, s)| s.n > 0).collect();
    tools.sort_by(|a, b| b.1.n.cmp(&a.1.n).then_with(|| a.0.cmp(b.0)));
    tools
        .into_iter()
        .take(top)
        .map(|(name, s)| ToolLatency {
            tool_name: name.clone(),
            samples: s.n,
            p50: s.percentile(50.0) as f64 / 1000.0,
            p95: s.percentile(95.0) as f64 / 1000.0,
            p99: s.percentile(99.0) as f64 / 1000.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn use_(id: &str, name: &str, ts: i64) -> ToolMark {
        ToolMark::Use {
            id: id.into(),
            name: name.into(),
            ts_ms: ts,
        }
    }
    fn res(id: &str, ts: i64) -> ToolMark {
        ToolMark::Result {
            id: id.into(),
            ts_ms: ts,
            duration_ms: None,
        }
    }

    #[test]
    fn samples_1_to_100_give_the_contract_percentiles() {
        let now = 10_000_000;
        let mut w = LatencyWindow::new(24);
        for i in 1..=100 {
            let id = format!("t{i}");
            w.apply(use_(&id, "Bash", now - 1_000_000), now);
            w.apply(res(&id, now - 1_000_000 + i * 1000), now);
        }
        let got = tool_latency_percentiles(&mut w, now, TOP_TOOLS);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].p50, got[0].p95, got[0].p99), (51.0, 96.0, 100.0));
        assert_eq!(got[0].samples, 100);
    }

    #[test]
    fn parallel_calls_pair_by_id_not_by_next_line() {
        // Two Read calls issued 5 ms apart; results come back in reverse order.
        let now = 1_000_000;
        let mut w = LatencyWindow::new(24);
        for m in [
            use_("a", "Read", 100_000),
            use_("b", "Read", 100_005),
            res("b", 100_300),
            res("a", 102_000),
        ] {
            w.apply(m, now);
        }
        let got = tool_latency_percentiles(&mut w, now, TOP_TOOLS);
        // By id: a = 2000 ms, b = 295 ms. "Next line" would give 5 ms for a.
        assert_eq!(got[0].samples, 2);
        assert_eq!(got[0].p50, 2.0);
        assert_eq!(tool_latency_percentiles(&mut w, now, 1)[0].p50, 2.0);
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn replayed_lines_count_once_and_orphans_are_ignored() {
        let now = 1_000_000;
        let mut w = LatencyWindow::new(24);
        for _ in 0..2 {
            w.apply(use_("a", "Edit", 500_000), now);
            w.apply(res("a", 500_100), now);
        }
        w.apply(res("nobody", 500_200), now);
        assert_eq!(w.samples(), 1);
    }

    #[test]
    fn window_expiry_forgets_old_samples_and_pending_calls() {
        let hour = 3_600_000;
        let mut w = LatencyWindow::new(24);
        let t0 = 100 * hour;
        w.apply(use_("old", "Bash", t0), t0);
        w.apply(res("old", t0 + 10), t0);
        w.apply(use_("hanging", "Bash", t0), t0);
        w.apply(use_("new", "Bash", t0 + 2 * hour), t0 + 2 * hour);
        w.apply(res("new", t0 + 2 * hour + 50), t0 + 2 * hour);
        let got = tool_latency_percentiles(&mut w, t0 + 25 * hour, TOP_TOOLS);
        assert_eq!(got[0].samples, 1);
        assert_eq!(got[0].p99, 0.05);
        assert_eq!(w.pending(), 0);
        assert!(tool_latency_percentiles(&mut w, t0 + 27 * hour, TOP_TOOLS).is_empty());
    }

    #[test]
    fn top_tools_by_samples_then_name() {
        let now = 1_000_000;
        let mut w = LatencyWindow::new(24);
        let mut n = 0;
        for (tool, count) in [
            ("A", 1),
            ("B", 3),
            ("C", 2),
            ("D", 2),
            ("E", 1),
            ("F", 1),
            ("G", 1),
        ] {
            for _ in 0..count {
                n += 1;
                w.apply(use_(&n.to_string(), tool, 900_000), now);
                w.apply(res(&n.to_string(), 900_020), now);
            }
        }
        let names: Vec<_> = tool_latency_percentiles(&mut w, now, TOP_TOOLS)
            .into_iter()
            .map(|t| t.tool_name)
            .collect();
        assert_eq!(names, ["B", "C", "D", "A", "E", "F"]);
    }

    #[test]
    fn coarse_timestamps_fall_back_to_reported_duration() {
        assert_eq!(pair_latency_ms(1000, 1000, Some(1500)), 1500);
        assert_eq!(pair_latency_ms(1000, 1005, None), 5);
        assert_eq!(pair_latency_ms(1000, 2000, Some(100)), 1000);
        assert_eq!(pair_latency_ms(2000, 1000, None), 0);
    }
}
