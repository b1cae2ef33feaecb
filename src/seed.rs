//! Start-up: loads the rolling figures' history from a store.
//!
//! Owns the one query pass that fills [`Shared`]'s burn ledger (event costs
//! over the burn horizon), latency window (tool lines of the last day) and
//! published watermarks before the HTTP server answers, so the first
//! `/api/live/stats` and the first `ready` frame are already right. Runs on
//! the main thread, once, for either mode; later changes arrive through the
//! hub.

use rusqlite::Connection;

use crate::burn::HORIZON_MS;
use crate::info;
use crate::latency::ToolMark;
use crate::state::Shared;
use crate::store;
use crate::time::{now_ms, parse_ts_ms, utc_day};
use crate::usage::Totals;

/// Tool marks a stored transcript line carries (its `raw_json`).
pub fn marks_of_line(raw: &str) -> Vec<ToolMark> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => crate::transcript::tool_events(&v),
        Err(_) => Vec::new(),
    }
}

/// Seeds `shared` from `conn`, whose watermarks are `(event_id, tool_id)`.
pub fn seed(
    conn: &Connection,
    shared: &Shared,
    event_id: i64,
    tool_id: i64,
    has_messages: bool,
) -> rusqlite::Result<()> {
    let now = now_ms();
    let costs = store::event_costs_since_day(conn, &utc_day(now - HORIZON_MS))?;
    // Text prefilter with a day of margin; the window checks instants.
    let lines = if has_messages {
        store::tool_messages_since(conn, &utc_day(now - 2 * 86_400_000))?
    } else {
        Vec::new()
    };
    let mut live = shared.live.lock();
    for (id, ts, cost) in &costs {
        if let Some(t) = parse_ts_ms(ts) {
            live.burn.upsert(*id, t, *cost, now);
        }
    }
    for line in &lines {
        for mark in marks_of_line(&line.raw_json) {
            live.latency.apply(mark, now);
        }
    }
    live.event_id = event_id;
    live.tool_id = tool_id;
    drop(live);
    let mut usage = shared.usage.lock();
    for (provider, model, project, cost, input, output, cache_read, cache_write) in
        store::usage_totals(conn)?
    {
        usage.restore(
            &provider,
            &model,
            &project,
            Totals {
                cost,
                input,
                output,
                cache_read,
                cache_write,
            },
        );
    }
    drop(usage);
    *shared.last_ingest_ts.lock() = store::last_ingest_ts(conn)?;
    info!(
        "seeded {} recent event costs and {} tool lines from the store",
        costs.len(),
        lines.len()
    );
    Ok(())
}
