//! Spend rate: the rolling 5-minute burn, today, month-to-date and the
//! month-end projection of the upstream contract (§3).
//!
//! Owns [`BurnLedger`], an incremental index of event costs by instant that
//! answers every figure without touching SQLite, so `/api/live/stats` and the
//! `burn_tick` frames stay cheap on a store with millions of rows. Pure: no
//! I/O and no clock — callers pass `now_ms`. The hub thread writes it; HTTP
//! workers read it under the shared state lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::time::{civil_from_days, days_from_civil, days_in_month, DAY_MS};

/// How far back the ledger keeps events: a whole month plus the widest
/// time-zone offset (±14 h) plus slack, so month-to-date is exact anywhere.
pub const HORIZON_MS: i64 = 34 * DAY_MS;

/// One minute in milliseconds.
const MINUTE_MS: i64 = 60_000;

/// The burn figures, in the contract's key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Burn {
    /// Width of the rolling window in minutes (5 upstream).
    pub window_minutes: i64,
    /// Σ cost of events with `ts >= now - window`.
    pub window_cost: f64,
    /// `window_cost / window_minutes`.
    pub per_minute: f64,
    /// `per_minute × 60`.
    pub per_hour: f64,
    /// Σ cost of events in the local day of `now`.
    pub today_cost: f64,
    /// Σ cost of events in the local month of `now`, up to now.
    pub month_to_date: f64,
    /// `mtd + mtd / max(day, 1) × (days_in_month − day)`.
    pub projected_month_end: f64,
    /// The instant the figures were computed for, Unix ms.
    pub ts_ms: i64,
}

/// Costs of recent usage events, indexed by minute (for whole-minute
/// ranges) and by exact instant (for the partial minutes at a range's ends). Re-inserting an id replaces its cost, which is
/// how a corrected (larger) usage event is applied.
#[derive(Debug, Default)]
pub struct BurnLedger {
    // event id → (instant ms, cost); every event within the horizon.
    by_id: HashMap<i64, (i64, f64)>,
    // (instant, id) in time order, to expire the oldest first.
    order: BTreeSet<(i64, i64)>,
    // UTC minute number → (Σ cost, number of events) in that minute; the
    // count lets a minute be dropped exactly when its last event goes.
    minutes: BTreeMap<i64, (f64, u32)>,
}

impl BurnLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of events currently held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds event `id` at `ts_ms` costing `cost`, or replaces its previous
    /// cost and instant. Events older than the horizon are ignored.
    pub fn upsert(&mut self, id: i64, ts_ms: i64, cost: f64, now_ms: i64) {
        self.remove(id);
        if ts_ms < now_ms - HORIZON_MS || !cost.is_finite() {
            return;
        }
        self.by_id.insert(id, (ts_ms, cost));
        self.order.insert((ts_ms, id));
        let m = self
            .minutes
            .entry(ts_ms.div_euclid(MINUTE_MS))
            .or_insert((0.0, 0));
        m.0 += cost;
        m.1 += 1;
    }

    fn remove(&mut self, id: i64) {
        if let Some((ts, cost)) = self.by_id.remove(&id) {
            self.order.remove(&(ts, id));
            let minute = ts.div_euclid(MINUTE_MS);
            if let Some(m) = self.minutes.get_mut(&minute) {
                m.0 -= cost;
                m.1 -= 1;
                if m.1 == 0 {
                    self.minutes.remove(&minute);
                }
            }
        }
    }

    /// Drops events older than the horizon. Cheap when nothing expired.
    pub fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms - HORIZON_MS;
        while let Some(&(ts, id)) = self.order.first() {
            if ts >= cutoff {
                break;
            }
            self.remove(id);
        }
    }

    /// Σ cost of events with `from_ms <= ts < to_ms`, exact to the millisecond.
    fn sum_between(&self, from_ms: i64, to_ms: i64) -> f64 {
        if to_ms <= from_ms {
            return 0.0;
        }
        let first_full =
            from_ms.div_euclid(MINUTE_MS) + i64::from(from_ms.rem_euclid(MINUTE_MS) != 0);
        let last_full = to_ms.div_euclid(MINUTE_MS); // exclusive
        let mut sum = 0.0;
        if first_full < last_full {
            sum += self
                .minutes
                .range(first_full..last_full)
                .map(|(_, v)| v.0)
                .sum::<f64>();
            sum += self.exact_sum(from_ms, first_full * MINUTE_MS);
            sum += self.exact_sum(last_full * MINUTE_MS, to_ms);
        } else {
            sum += self.exact_sum(from_ms, to_ms);
        }
        sum
    }

    fn exact_sum(&self, from_ms: i64, to_ms: i64) -> f64 {
        if to_ms <= from_ms {
            return 0.0;
        }
        self.order
            .range((from_ms, i64::MIN)..(to_ms, i64::MIN))
            .map(|(_, id)| self.by_id[id].1)
            .sum()
    }
}

/// The burn figures at `now_ms` for a viewer `tz_offset_minutes` east of UTC.
///
/// Window: events with `now − window ≤ ts` (events stamped slightly in the
/// future by clock skew count too, as upstream's `ts >= start` does). Today
/// and month-to-date use the viewer's local calendar.
pub fn rolling_burn(
    ledger: &BurnLedger,
    now_ms: i64,
    tz_offset_minutes: i64,
    window_minutes: i64,
) -> Burn {
    let window_minutes = window_minutes.max(1);
    let window_cost = ledger.sum_between(now_ms - window_minutes * MINUTE_MS, i64::MAX / 2);
    let per_minute = window_cost / window_minutes as f64;

    let offset_ms = tz_offset_minutes * MINUTE_MS;
    let local_days = (now_ms + offset_ms).div_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(local_days);
    let day_start = local_days * DAY_MS - offset_ms;
    let month_start = days_from_civil(year, month, 1) * DAY_MS - offset_ms;
    let dim = days_in_month(year, month) as i64;
    let month_end = month_start + dim * DAY_MS;

    let today_cost = ledger.sum_between(day_start, day_start + DAY_MS);
    let month_to_date = ledger.sum_between(month_start, month_end);
    let dom = (day as i64).max(1);
    let projected_month_end = month_to_date + (month_to_date / dom as f64) * (dim - dom) as f64;

    Burn {
        window_minutes,
        window_cost: tidy(window_cost),
        per_minute: tidy(per_minute),
        per_hour: tidy(per_minute * 60.0),
        today_cost: tidy(today_cost),
        month_to_date: tidy(month_to_date),
        projected_month_end: tidy(projected_month_end),
        ts_ms: now_ms,
    }
}

/// Removes the float noise that incremental subtraction leaves (±1e-12)
/// and keeps sums at the precision money needs (1e-9 USD).
fn tidy(x: f64) -> f64 {
    let r = (x * 1e9).round() / 1e9;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_ts_ms;

    fn at(s: &str) -> i64 {
        parse_ts_ms(s).unwrap()
    }

    /// The straightforward definition, to check the incremental one against.
    fn reference(events: &[(i64, f64)], from: i64, to: i64) -> f64 {
        events
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, c)| c)
            .sum()
    }

    #[test]
    fn contract_example_day_10_of_may_projects_to_3_10() {
        let now = at("2025-05-10T12:00:00Z");
        let mut l = BurnLedger::new();
        l.upsert(1, at("2025-05-02T08:00:00Z"), 0.25, now);
        l.upsert(2, at("2025-05-09T08:00:00Z"), 0.75, now);
        l.upsert(3, at("2025-04-30T23:59:59.999Z"), 9.0, now); // April: not in May
        let b = rolling_burn(&l, now, 0, 5);
        assert!((b.month_to_date - 1.0).abs() < 1e-9);
        assert!((b.projected_month_end - 3.10).abs() < 1e-9, "{b:?}");
        assert_eq!(b.today_cost, 0.0);
    }

    #[test]
    fn five_minute_window_is_exact_to_the_millisecond() {
        let now = at("2025-05-10T12:00:30.500Z");
        let mut l = BurnLedger::new();
        l.upsert(1, at("2025-05-10T11:55:30.499Z"), 1.0, now); // 1 ms too old
        l.upsert(2, at("2025-05-10T11:55:30.500Z"), 2.0, now); // exactly at start
        l.upsert(3, at("2025-05-10T11:58:00Z"), 4.0, now);
        l.upsert(4, at("2025-05-10T12:00:31Z"), 8.0, now); // skew: future counts
        let b = rolling_burn(&l, now, 0, 5);
        assert_eq!(b.window_cost, 14.0);
        assert!((b.per_minute - 2.8).abs() < 1e-9);
        assert!((b.per_hour - 168.0).abs() < 1e-9);
        assert_eq!(b.today_cost, 15.0);
    }

    #[test]
    fn local_midnight_and_month_boundary_follow_the_offset() {
        // 2025-05-31T22:30Z is already 1 June 00:30 in UTC+2 (offset +120).
        let now = at("2025-05-31T22:30:00Z");
        let mut l = BurnLedger::new();
        l.upsert(1, at("2025-05-31T21:59:59.999Z"), 1.0, now); // 31 May 23:59 local
        l.upsert(2, at("2025-05-31T22:00:00Z"), 2.0, now); // 1 June 00:00 local
        l.upsert(3, at("2025-05-31T22:29:00Z"), 4.0, now);
        let east = rolling_burn(&l, now, 120, 5);
        assert_eq!(east.today_cost, 6.0);
        assert_eq!(east.month_to_date, 6.0);
        // Day 1 of a 30-day June: 6 + 6/1 × 29.
        assert!((east.projected_month_end - 180.0).abs() < 1e-9);
        let utc = rolling_burn(&l, now, 0, 5);
        assert_eq!(utc.today_cost, 7.0);
        assert_eq!(utc.month_to_date, 7.0);
        // West of UTC (−300): still 31 May 17:30 local; the day began 05:00Z.
        let west = rolling_burn(&l, now, -300, 5);
        assert_eq!(west.today_cost, 7.0);
    }

    #[test]
    fn replacing_an_event_applies_the_correction_once() {
        let now = at("2025-05-10T12:00:00Z");
        let mut l = BurnLedger::new();
        l.upsert(7, at("2025-05-10T11:59:00Z"), 0.5, now);
        l.upsert(7, at("2025-05-10T11:59:00Z"), 0.8, now);
        assert_eq!(rolling_burn(&l, now, 0, 5).window_cost, 0.8);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn matches_the_plain_definition_on_pseudo_random_events() {
        let now = at("2025-03-15T09:07:13.250Z");
        let mut l = BurnLedger::new();
        let mut events = Vec::new();
        let mut x: u64 = 42;
        for id in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let back = (x >> 20) as i64 % (40 * DAY_MS);
            let cost = ((x >> 8) % 1000) as f64 / 1000.0;
            let ts = now - back;
            l.upsert(id, ts, cost, now);
            if ts >= now - HORIZON_MS {
                events.push((ts, cost));
            }
        }
        for tz in [-600, -1, 0, 330, 840] {
            let b = rolling_burn(&l, now, tz, 5);
            let want = reference(&events, now - 5 * MINUTE_MS, i64::MAX);
            assert!((b.window_cost - want).abs() < 1e-6);
            let local = (now + tz * MINUTE_MS).div_euclid(DAY_MS);
            let start = local * DAY_MS - tz * MINUTE_MS;
            assert!((b.today_cost - reference(&events, start, start + DAY_MS)).abs() < 1e-6);
            let (y, m, _) = civil_from_days(local);
            let ms = days_from_civil(y, m, 1) * DAY_MS - tz * MINUTE_MS;
            let me = ms + days_in_month(y, m) as i64 * DAY_MS;
            assert!((b.month_to_date - reference(&events, ms, me)).abs() < 1e-6);
        }
        l.expire(now + 10 * DAY_MS);
        assert!(l.len() < events.len());
    }
}
