//! Upstream's design, re-implemented in the bench for comparison (our own
//! code, written from the description of upstream's `routes/live.py` and
//! `services/live.py` in `/work/shared/upstream-live-contract.md`):
//!
//! * [`Poller`]: the SSE loop's read side. Every 2 s it runs
//!   `… WHERE id > watermark ORDER BY id DESC LIMIT 100`, emits those rows
//!   and jumps the watermark to the newest, so older rows of a backlog are
//!   skipped. We record when each row was emitted, when it first became
//!   visible to a poll, and how many were skipped.
//! * [`stats_sql`]: `/api/live/stats` computed per request with SQL, the
//!   way upstream does: a fresh connection, a window sum and a today/month
//!   sum over `usage_events` (bounded by the `day` index), the last 24 h of
//!   `message_tool_mart`, a `LEAD()` "next message in the session" query
//!   over the `messages` view for latency, and the two `MAX(id)`s.
//!
//! Timestamps are compared in the store's own `…Z` text form (upstream
//! binds Python `isoformat()` strings, which differ in the suffix); this
//! only makes our sums agree exactly, it does not change the work done.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{params_from_iter, Connection, OpenFlags};
use stackunderflow_live::time::{
    civil_from_days, days_from_civil, format_ts_z, parse_ts_ms, utc_day, DAY_MS,
};

use crate::report::Dist;

/// Upstream's `POLL_INTERVAL_SECONDS`.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Upstream's `MAX_PER_CYCLE`: rows emitted per poll, the newest ones.
pub const MAX_PER_CYCLE: usize = 100;

/// Upstream sleeps in slices of this to notice a disconnect.
const SLICE: Duration = Duration::from_millis(100);

/// Upstream's bound on session ids bound into one `IN (…)` list.
const MAX_BOUND_SESSIONS: usize = 900;

fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// What the simulated upstream stream did.
#[derive(Default)]
pub struct PollLog {
    /// (event id, ns since base) of every emitted row.
    pub emitted: Vec<(i64, u64)>,
    /// (event id, ns since base of the start of the first poll that could
    /// see it) for every row, emitted or not.
    pub visible: Vec<(i64, u64)>,
    /// Rows that were visible to a poll and never emitted.
    pub skipped: u64,
    /// Polls run.
    pub polls: u64,
}

/// Upstream's stream loop, reading the store on its own thread.
pub struct Poller {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<rusqlite::Result<PollLog>>,
}

impl Poller {
    /// Starts polling `store`, watermark at its current end (as upstream
    /// seeds a new stream).
    pub fn start(store: &Path, base: Instant) -> rusqlite::Result<Poller> {
        let conn = open_ro(store)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name("upstream-poller".into())
            .spawn(move || poll_loop(conn, flag, base))
            .expect("spawn poller");
        Ok(Poller { stop, handle })
    }

    /// Stops after the current poll and returns the log.
    pub fn stop(self) -> rusqlite::Result<PollLog> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .join()
            .unwrap_or_else(|_| Ok(PollLog::default()))
    }
}

fn poll_loop(conn: Connection, stop: Arc<AtomicBool>, base: Instant) -> rusqlite::Result<PollLog> {
    let mut log = PollLog::default();
    let mut wm: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM usage_events", [], |r| {
        r.get(0)
    })?;
    let mut st = conn.prepare(
        "SELECT e.id, e.ts, e.project_id, e.session_id, e.model, e.cost_usd, e.input_tokens,
                e.output_tokens, e.cache_read_tokens, e.cache_create_tokens, e.cost_source,
                p.slug AS project_slug, p.display_name AS project_name
           FROM usage_events e LEFT JOIN projects p ON p.id = e.project_id
          WHERE e.id > ?1 ORDER BY e.id DESC LIMIT ?2",
    )?;
    while !stop.load(Ordering::SeqCst) {
        let polled = base.elapsed().as_nanos() as u64;
        let mut ids: Vec<i64> = st
            .query_map(rusqlite::params![wm, MAX_PER_CYCLE as i64], |r| {
                // Read every column, as upstream builds a dict per row.
                let _: (String, i64, String, String, f64) =
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                r.get::<_, i64>(0)
            })?
            .collect::<rusqlite::Result<_>>()?;
        let emitted = base.elapsed().as_nanos() as u64;
        log.polls += 1;
        ids.reverse();
        if let Some(&newest) = ids.last() {
            // Ids are dense here (one writer), so (wm, newest] is exactly
            // what this poll could see.
            for id in wm + 1..=newest {
                log.visible.push((id, polled));
            }
            log.skipped += (newest - wm) as u64 - ids.len() as u64;
            log.emitted.extend(ids.iter().map(|&id| (id, emitted)));
            wm = newest;
        }
        let t = Instant::now();
        while t.elapsed() < POLL_INTERVAL && !stop.load(Ordering::SeqCst) {
            thread::sleep(SLICE);
        }
    }
    Ok(log)
}

/// `/api/live/stats` as upstream computes it, reduced to what we compare.
#[derive(Debug, Default)]
pub struct SqlStats {
    /// Σ cost over the last 5 minutes.
    pub window_cost: f64,
    /// Σ cost since local midnight.
    pub today_cost: f64,
    /// Σ cost since the local month began.
    pub month_to_date: f64,
    /// (tool, samples, p50 s, p95 s, p99 s), top 6 by samples.
    pub tools: Vec<(String, usize, f64, f64, f64)>,
    /// `MAX(usage_events.id)`.
    pub event_id: i64,
    /// `MAX(message_tool_mart.id)`.
    pub tool_id: i64,
    /// Time spent on the burn sums.
    pub burn_time: Duration,
    /// Time spent on tool latency.
    pub latency_time: Duration,
}

/// One `/api/live/stats` answer computed with SQL at `now_ms` for a viewer
/// `tz_min` minutes east of UTC.
pub fn stats_sql(store: &Path, now_ms: i64, tz_min: i64) -> rusqlite::Result<SqlStats> {
    let conn = open_ro(store)?;
    let mut out = SqlStats::default();
    let t0 = Instant::now();

    let window_cutoff = now_ms - 5 * 60_000;
    out.window_cost = conn.query_row(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM usage_events WHERE day >= ?1 AND ts >= ?2",
        [utc_day(window_cutoff), format_ts_z(window_cutoff)],
        |r| r.get(0),
    )?;
    let off = tz_min * 60_000;
    let local_days = (now_ms + off).div_euclid(DAY_MS);
    let today_cutoff = local_days * DAY_MS - off;
    let (y, m, _) = civil_from_days(local_days);
    let month_cutoff = days_from_civil(y, m, 1) * DAY_MS - off;
    let (today, month): (f64, f64) = conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN ts >= ?1 THEN cost_usd ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN ts >= ?2 THEN cost_usd ELSE 0 END), 0)
           FROM usage_events WHERE day >= ?3",
        [
            format_ts_z(today_cutoff),
            format_ts_z(month_cutoff),
            utc_day(month_cutoff),
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    out.today_cost = today;
    out.month_to_date = month;
    out.burn_time = t0.elapsed();

    let t1 = Instant::now();
    out.tools = tool_latency_sql(&conn, now_ms - DAY_MS)?;
    out.latency_time = t1.elapsed();

    out.event_id = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM usage_events", [], |r| {
        r.get(0)
    })?;
    out.tool_id = conn.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM message_tool_mart",
        [],
        |r| r.get(0),
    )?;
    Ok(out)
}

type ToolRowSql = (String, usize, f64, f64, f64);

fn tool_latency_sql(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<Vec<ToolRowSql>> {
    let cutoff = format_ts_z(cutoff_ms);
    let win: Vec<(i64, String, String)> = conn
        .prepare("SELECT message_id, tool_name, session_id FROM message_tool_mart WHERE ts >= ?1")?
        .query_map([&cutoff], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if win.is_empty() {
        return Ok(Vec::new());
    }
    let min_id = win.iter().map(|w| w.0).min().unwrap_or(0);
    let sessions: HashSet<&str> = win.iter().map(|w| w.2.as_str()).collect();
    let mut sessions: Vec<&str> = sessions.into_iter().collect();
    sessions.sort_unstable();
    let lead = |scope: &str| {
        format!(
            "SELECT id, timestamp, LEAD(timestamp) OVER (PARTITION BY session_fk ORDER BY seq)
               FROM messages WHERE session_fk IN ({scope}) AND id >= ?"
        )
    };
    let mut next_ts: HashMap<i64, (String, Option<String>)> = HashMap::new();
    let mut collect = |sql: &str, params: Vec<rusqlite::types::Value>| -> rusqlite::Result<()> {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map(params_from_iter(params), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, ts, next) = row?;
            next_ts.insert(id, (ts, next));
        }
        Ok(())
    };
    if sessions.len() <= MAX_BOUND_SESSIONS {
        let marks = vec!["?"; sessions.len()].join(",");
        let scope = format!("SELECT id FROM sessions WHERE session_id IN ({marks})");
        let mut params: Vec<rusqlite::types::Value> =
            sessions.iter().map(|s| s.to_string().into()).collect();
        params.push(min_id.into());
        collect(&lead(&scope), params)?;
    } else {
        let scope = "SELECT id FROM sessions WHERE session_id IN \
                     (SELECT session_id FROM message_tool_mart WHERE ts >= ?)";
        collect(&lead(scope), vec![cutoff.clone().into(), min_id.into()])?;
    }
    let mut per_tool: HashMap<&str, Vec<f64>> = HashMap::new();
    for (mid, tool, _) in &win {
        let Some((ts, Some(next))) = next_ts.get(mid) else {
            continue;
        };
        let (Some(a), Some(b)) = (parse_ts_ms(ts), parse_ts_ms(next)) else {
            continue;
        };
        if tool.is_empty() || b < a {
            continue;
        }
        per_tool
            .entry(tool.as_str())
            .or_default()
            .push((b - a) as f64 / 1000.0);
    }
    let mut out: Vec<ToolRowSql> = per_tool
        .into_iter()
        .map(|(name, v)| {
            let n = v.len();
            let d = Dist::new(v);
            (name.to_string(), n, d.q(0.50), d.q(0.95), d.q(0.99))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(6);
    Ok(out)
}
