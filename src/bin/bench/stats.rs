//! Scenario `stats`: `GET /api/live/stats` on a store with a million usage
//! events and a million tool calls, against the same answer computed with
//! SQL per request as upstream does it.
//!
//! The daemon answers from figures it keeps in memory (seeded once at
//! start, then updated by the change feed); upstream opens the store and
//! runs its sums and its latency self-join on every request. Both are timed
//! here on the same store, from the same process, one request at a time.
//! The daemon's start-up (open + seed) is timed too, since that is where
//! its cost went.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use stackunderflow_live::time::now_ms;

use crate::daemon::{Daemon, Scratch};
use crate::generator;
use crate::http_get;
use crate::procfs::{self, CpuMeter};
use crate::report::{self, mib, ratio, Dist, Table};
use crate::upstream::{self, SqlStats};
use crate::Ctx;

/// What to run.
pub struct Opts {
    /// Usage events, and tool calls, to generate.
    pub rows: usize,
    /// Requests to time.
    pub requests: usize,
    /// Most seconds for the upstream SQL loop.
    pub upstream_secs: u64,
    /// Where generated stores are kept between runs.
    pub data_dir: PathBuf,
}

/// A cached store older than this is regenerated: its "last 24 hours"
/// would have drifted out of the window.
const MAX_STORE_AGE: Duration = Duration::from_secs(6 * 3600);

/// Seeding a million rows takes a while on a busy machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(600);

/// Requests sent before timing starts (connections, caches, page cache).
const WARMUP: usize = 20;

/// Most seconds for the daemon's request loop.
const OURS_SECS: u64 = 120;

fn store_path(o: &Opts, seed: u64) -> PathBuf {
    o.data_dir.join(format!("stats-{}-seed{seed}.db", o.rows))
}

fn fresh(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < MAX_STORE_AGE)
}

/// Times `n` GETs of `path` (bounded by `secs`); returns the samples (ms)
/// and the last body.
fn time_gets(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
    secs: u64,
) -> (Dist, Vec<u8>, usize) {
    let mut v = Vec::with_capacity(n);
    let mut body = Vec::new();
    let mut errors = 0;
    let t0 = Instant::now();
    for _ in 0..n {
        if t0.elapsed().as_secs() >= secs {
            break;
        }
        let t = Instant::now();
        match http_get::get(addr, path, Duration::from_secs(10)) {
            Ok((200, b)) => {
                v.push(t.elapsed().as_secs_f64() * 1000.0);
                body = b;
            }
            _ => errors += 1,
        }
    }
    (Dist::new(v), body, errors)
}

/// Runs the scenario and returns its Markdown block.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<String, String> {
    std::fs::create_dir_all(&o.data_dir).map_err(|e| format!("{}: {e}", o.data_dir.display()))?;
    let store = store_path(o, ctx.seed);
    let mut generated = None;
    if !fresh(&store) {
        eprintln!(
            "stats: generating {} usage events and {} tool calls into {} …",
            o.rows,
            o.rows,
            store.display()
        );
        let g = generator::generate(&store, o.rows, ctx.seed, now_ms())
            .map_err(|e| format!("generating {}: {e}", store.display()))?;
        eprintln!("stats: generated in {:.1} s", g.elapsed.as_secs_f64());
        generated = Some(g);
    }
    let size = std::fs::metadata(&store).map(|m| m.len()).unwrap_or(0);
    let counts = count_rows(&store).map_err(|e| e.to_string())?;

    let scratch = Scratch::new("stats")?;
    eprintln!("stats: starting the daemon on {}", store.display());
    let mut d = Daemon::start(
        &ctx.daemon,
        &store,
        64,
        &scratch.join("daemon.log"),
        STARTUP_TIMEOUT,
    )?;
    let startup = d.startup;
    let seeded = d
        .log_lines("seeded")
        .first()
        .and_then(|l| l.split("; ").nth(1).map(str::to_string))
        .unwrap_or_default();
    let after_start = procfs::sample(d.pid).unwrap_or_default();

    let _ = time_gets(d.addr, "/api/live/stats", WARMUP, 30);
    eprintln!("stats: timing {} requests to the daemon", o.requests);
    let cpu = CpuMeter::start(d.pid);
    let (ours, body, ours_errors) = time_gets(d.addr, "/api/live/stats", o.requests, OURS_SECS);
    let ours_cpu = cpu.percent();
    let (floor, _, _) = time_gets(d.addr, "/", o.requests / 4, OURS_SECS / 4);
    let ours_tz = time_gets(
        d.addr,
        "/api/live/stats?timezone_offset=-300",
        o.requests / 4,
        OURS_SECS / 4,
    )
    .0;
    let after_load = procfs::sample(d.pid).unwrap_or_default();
    let ours_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    d.stop();

    eprintln!(
        "stats: timing upstream's SQL per request (at most {} s)",
        o.upstream_secs
    );
    let mut up = Vec::new();
    let mut burn_t = Vec::new();
    let mut lat_t = Vec::new();
    let mut last: Option<SqlStats> = None;
    let t0 = Instant::now();
    for i in 0..o.requests {
        if i > 0 && t0.elapsed().as_secs() >= o.upstream_secs {
            break;
        }
        let t = Instant::now();
        let r =
            upstream::stats_sql(&store, now_ms(), 0).map_err(|e| format!("upstream SQL: {e}"))?;
        up.push(t.elapsed().as_secs_f64() * 1000.0);
        burn_t.push(r.burn_time.as_secs_f64() * 1000.0);
        lat_t.push(r.latency_time.as_secs_f64() * 1000.0);
        last = Some(r);
    }
    let up = Dist::new(up);
    let burn_t = Dist::new(burn_t);
    let lat_t = Dist::new(lat_t);
    let sql = last.unwrap_or_default();

    let mut s = report::block_head(&format!(
        "stats: /api/live/stats over {} usage events and {} tool calls",
        counts.0, counts.1
    ));
    s.push_str(&format!(
        "Store: {} ({:.0} MiB; {} messages, {} sessions; {} usage events in the last 24 h){}. \
         Requests are sequential, each on a new connection (`Connection: close`), as a page load does.\n\n",
        store.display(),
        size as f64 / 1_048_576.0,
        counts.2,
        counts.3,
        counts.4,
        generated
            .map(|g| format!("; generated in {:.1} s", g.elapsed.as_secs_f64()))
            .unwrap_or_else(|| "; generated earlier with the same seed".into())
    ));
    let mut t = Table::new(&["answer", "requests", "p50 ms", "p99 ms", "max ms"]);
    let row = |name: &str, d: &Dist, extra: &str| {
        let [a, b, c] = d.cells();
        vec![format!("{name}{extra}"), d.n().to_string(), a, b, c]
    };
    t.row(row(
        "**stackunderflow-live** `GET /api/live/stats` (HTTP round trip)",
        &ours,
        "",
    ));
    t.row(row(
        "**stackunderflow-live** same, `timezone_offset=-300`",
        &ours_tz,
        "",
    ));
    t.row(row(
        "HTTP floor: `GET /` (static text) on the same daemon",
        &floor,
        "",
    ));
    t.row(row(
        "upstream's SQL per request, in-process (no HTTP, no JSON)",
        &up,
        "",
    ));
    t.row(row("  of which the burn sums", &burn_t, ""));
    t.row(row(
        "  of which tool latency (mart window + LEAD over messages)",
        &lat_t,
        "",
    ));
    s.push_str(&t.render());
    s.push_str(&format!(
        "\nRatio upstream / ours: p50 {}, p99 {}. Failed requests to the daemon: {}. Daemon CPU \
         during its request loop: {:.0} % of one core (the client is on the same cores).\n\n",
        ratio(up.p50(), ours.p50()),
        ratio(up.p99(), ours.p99()),
        ours_errors,
        ours_cpu
    ));
    s.push_str(&format!(
        "Daemon start-up on this store (spawn → listening, including opening the store and seeding \
         the rolling figures: {}): **{:.2} s**. RSS after start {} MiB, after the requests {} MiB \
         (peak {} MiB); {} threads.\n\n",
        if seeded.is_empty() { "?".into() } else { seeded },
        startup.as_secs_f64(),
        mib(after_start.rss_kib),
        mib(after_load.rss_kib),
        mib(after_load.hwm_kib),
        after_load.threads
    ));
    s.push_str(&agreement(&ours_json, &sql));
    Ok(s)
}

/// (usage events, tool calls, messages, sessions, events in the last 24 h).
fn count_rows(store: &Path) -> rusqlite::Result<(i64, i64, i64, i64, i64)> {
    let c =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
    let since =
        stackunderflow_live::time::format_ts_z(now_ms() - stackunderflow_live::time::DAY_MS);
    Ok((
        one("SELECT count(*) FROM usage_events")?,
        one("SELECT count(*) FROM message_tool_mart")?,
        one("SELECT count(*) FROM messages")?,
        one("SELECT count(*) FROM sessions")?,
        c.query_row(
            "SELECT count(*) FROM usage_events WHERE ts >= ?1",
            [since],
            |r| r.get(0),
        )?,
    ))
}

/// Do the two answers agree? Burn sums must (same rows, same instants);
/// latency differs by design (pairing by id vs "next message").
fn agreement(ours: &Value, sql: &SqlStats) -> String {
    let b = &ours["burn"];
    let f = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0);
    let mut s = String::from("Do the answers agree?\n\n");
    let mut t = Table::new(&["figure", "stackunderflow-live", "upstream SQL", "agree"]);
    for (name, o, u) in [
        ("window_cost (5 min)", f("window_cost"), sql.window_cost),
        ("today_cost", f("today_cost"), sql.today_cost),
        ("month_to_date", f("month_to_date"), sql.month_to_date),
    ] {
        t.row(vec![
            name.into(),
            format!("{o:.6}"),
            format!("{u:.6}"),
            if close(o, u) { "yes" } else { "**no**" }.into(),
        ]);
    }
    let wm = &ours["watermarks"];
    t.row(vec![
        "watermarks (event, tool call)".into(),
        format!("{}, {}", wm["event_id"], wm["tool_call_id"]),
        format!("{}, {}", sql.event_id, sql.tool_id),
        if wm["event_id"].as_i64() == Some(sql.event_id)
            && wm["tool_call_id"].as_i64() == Some(sql.tool_id)
        {
            "yes"
        } else {
            "**no**"
        }
        .into(),
    ]);
    s.push_str(&t.render());
    s.push_str(
        "\nTool latency, top tools (samples; p50 / p95 / p99 s). Ours pairs each tool_use with its \
         tool_result by id; upstream takes the next message in the session, which for parallel calls \
         is a sibling's result, so the two differ by design:\n\n",
    );
    let mut t = Table::new(&["tool", "ours", "upstream SQL"]);
    let empty = Vec::new();
    let ours_tools = ours["tool_latency"].as_array().unwrap_or(&empty);
    let fmt = |n: u64, a: f64, b: f64, c: f64| format!("{n}; {a:.2} / {b:.2} / {c:.2}");
    for tool in ours_tools {
        let name = tool["tool_name"].as_str().unwrap_or("?");
        let up = sql
            .tools
            .iter()
            .find(|x| x.0 == name)
            .map(|x| fmt(x.1 as u64, x.2, x.3, x.4))
            .unwrap_or_else(|| "–".into());
        t.row(vec![
            name.into(),
            fmt(
                tool["samples"].as_u64().unwrap_or(0),
                tool["p50"].as_f64().unwrap_or(f64::NAN),
                tool["p95"].as_f64().unwrap_or(f64::NAN),
                tool["p99"].as_f64().unwrap_or(f64::NAN),
            ),
            up,
        ]);
    }
    s.push_str(&t.render());
    s
}
