//! A seeded generator of large upstream-shaped stores, shaped like real
//! Claude Code transcripts.
//!
//! Proportions come from the measurements over the shared real transcripts
//! in `/work/shared/research-transcripts.md` (§5 tool latency, §6 tokens):
//! the tool mix and each tool's P50/P95 latency (a log-normal per tool
//! fitted to those two points, capped at an hour), about 70 % Sonnet /
//! 28 % Opus / a few % Haiku, and cache reads dominating the tokens. A
//! session is a run of assistant messages, each with one usage event and
//! 0–3 tool calls (25 % / 57 % / 11 % / 7 %, so tool calls ≈ events); every
//! tool call gets its own `tool_result` user line when the tool finishes,
//! so parallel calls interleave as they do in real files. Sessions end at
//! an instant drawn uniformly over the last 30 days, except that a tenth of
//! them end within the last 24 hours (the busy present a live tab shows).
//!
//! Rows go straight into the tables with ids assigned here, in large
//! transactions with `synchronous=OFF`; the file is written under a
//! temporary name and renamed when complete.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use stackunderflow_live::store::upstream_schema_sql;
use stackunderflow_live::time::{format_ts_z, utc_day, DAY_MS};

use crate::rng::Rng;
use crate::writer::month_table;

/// Tool name, share of calls, P50 and P95 latency in seconds (research §5).
const TOOLS: [(&str, f64, f64, f64); 14] = [
    ("Bash", 282.0, 0.92, 132.24),
    ("Read", 147.0, 0.09, 1.18),
    ("Edit", 141.0, 0.10, 15.04),
    ("TodoWrite", 85.0, 0.04, 0.08),
    ("Write", 58.0, 0.04, 48.85),
    ("Glob", 18.0, 0.30, 1.21),
    ("Grep", 14.0, 0.11, 0.42),
    ("WebFetch", 11.0, 11.26, 254.43),
    ("Task", 9.0, 67.52, 248.20),
    ("MultiEdit", 9.0, 0.26, 64.80),
    ("ExitPlanMode", 9.0, 24.61, 225.90),
    ("BashOutput", 9.0, 0.03, 0.07),
    ("WebSearch", 5.0, 39.51, 58.26),
    ("NotebookEdit", 4.0, 14.33, 27.08),
];

/// Model id, share of events, and $/M tokens: input, output, cache write, cache read.
const MODELS: [(&str, f64, [f64; 4]); 3] = [
    ("claude-sonnet-4-5-20250929", 0.69, [3.0, 15.0, 3.75, 0.30]),
    ("claude-opus-4-5-20251101", 0.28, [5.0, 25.0, 6.25, 0.50]),
    ("claude-haiku-4-5-20251001", 0.03, [1.0, 5.0, 1.25, 0.10]),
];

/// Number of projects; their sizes follow 1/rank.
const PROJECTS: usize = 24;

/// Share of sessions that end within the last 24 hours.
const RECENT_SHARE: f64 = 0.10;

/// Rows per transaction while loading.
const ROWS_PER_TX: usize = 200_000;

/// What was generated.
pub struct Generated {
    /// Sessions.
    pub sessions: usize,
    /// `messages` rows (assistant lines + tool results).
    pub messages: usize,
    /// Usage events.
    pub events: usize,
    /// Tool calls (`message_tool_mart` rows).
    pub tools: usize,
    /// Usage events stamped within the last 24 h.
    pub events_24h: usize,
    /// Time taken.
    pub elapsed: Duration,
}

struct Msg {
    at_ms: i64,
    assistant: bool,
    // For an assistant line: index into the session's events.
    event: usize,
    raw: String,
}

struct Event {
    model: usize,
    tools: Vec<(usize, String)>, // (tool index, tool_use id)
}

/// Generates `rows` usage events and `rows` tool calls into a new store at
/// `path` (replacing it), stamped relative to `now_ms`.
pub fn generate(path: &Path, rows: usize, seed: u64, now_ms: i64) -> rusqlite::Result<Generated> {
    let t0 = Instant::now();
    let tmp = path.with_extension("partial");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    let mut rng = Rng::new(seed);

    // Exactly `rows` tool calls over `rows` events, shuffled.
    let n3 = rows * 7 / 100;
    let n2 = rows * 11 / 100;
    let n1 = rows - 2 * n2 - 3 * n3;
    let n0 = rows - n1 - n2 - n3;
    let mut counts: Vec<u8> = [(0u8, n0), (1, n1), (2, n2), (3, n3)]
        .iter()
        .flat_map(|&(k, n)| std::iter::repeat_n(k, n))
        .collect();
    rng.shuffle(&mut counts);

    let months: Vec<String> = {
        let mut v: Vec<String> = (0..=33).map(|d| month_table(now_ms - d * DAY_MS)).collect();
        v.sort();
        v.dedup();
        v
    };
    let month_refs: Vec<&str> = months.iter().map(String::as_str).collect();
    let mut conn = Connection::open(&tmp)?;
    conn.execute_batch(&upstream_schema_sql(&month_refs))?;
    conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")?;

    let tool_weights: Vec<f64> = TOOLS.iter().map(|t| t.1).collect();
    let project_weights: Vec<f64> = (0..PROJECTS).map(|i| 1.0 / (i + 1) as f64).collect();
    let sigma = |p50: f64, p95: f64| (p95 / p50).ln() / 1.645;

    let tx = conn.transaction()?;
    for p in 0..PROJECTS {
        tx.execute(
            "INSERT INTO projects(id, provider, slug, path, display_name, first_seen, last_modified)
             VALUES (?1, 'claude', ?2, ?3, ?4, ?5, ?5)",
            params![
                p as i64 + 1,
                format!("-home-dev-project-{p}"),
                format!("/home/dev/project-{p}"),
                format!("project-{p}"),
                (now_ms - 40 * DAY_MS) as f64 / 1000.0
            ],
        )?;
    }
    tx.commit()?;

    let mut g = Generated {
        sessions: 0,
        messages: 0,
        events: 0,
        tools: 0,
        events_24h: 0,
        elapsed: Duration::ZERO,
    };
    let mut next_msg_id: i64 = 1;
    let mut next_tool_id: u64 = 1;
    let mut pending_rows = 0usize;
    let mut tx = conn.unchecked_transaction()?;
    let mut e_index = 0usize;
    while e_index < rows {
        let size = (rng.lognormal(60.0, 1.0).round() as usize).clamp(5, 3000);
        let size = size.min(rows - e_index);
        let session_fk = g.sessions as i64 + 1;
        let sid = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            rng.next_u64() as u32,
            rng.next_u64() as u16,
            rng.next_u64() & 0xfff,
            rng.next_u64() & 0xfff,
            rng.next_u64() & 0xffff_ffff_ffff
        );
        let project = rng.weighted(&project_weights) as i64 + 1;
        let primary = if rng.f64() < MODELS[1].1 / (MODELS[0].1 + MODELS[1].1) {
            1
        } else {
            0
        };

        // Build the session's timeline relative to its start.
        let mut events: Vec<Event> = Vec::with_capacity(size);
        let mut msgs: Vec<Msg> = Vec::with_capacity(size * 2);
        let mut t: f64 = 0.0;
        for j in 0..size {
            let k = counts[e_index + j] as usize;
            let model = if rng.f64() < MODELS[2].1 { 2 } else { primary };
            let mut tools = Vec::with_capacity(k);
            let mut done_at: f64 = t;
            let mut results = Vec::with_capacity(k);
            for _ in 0..k {
                let ti = rng.weighted(&tool_weights);
                let (_, _, p50, p95) = TOOLS[ti];
                let lat = rng.lognormal(p50, sigma(p50, p95)).min(3600.0);
                let id = format!("toolu_01{:020x}", next_tool_id);
                next_tool_id += 1;
                results.push((t + lat, id.clone()));
                done_at = done_at.max(t + lat);
                tools.push((ti, id));
            }
            events.push(Event { model, tools });
            msgs.push(Msg {
                at_ms: (t * 1000.0) as i64,
                assistant: true,
                event: j,
                raw: String::new(),
            });
            for (at, id) in results {
                msgs.push(Msg {
                    at_ms: (at * 1000.0) as i64,
                    assistant: false,
                    event: j,
                    raw: id,
                });
            }
            let gap = if k == 0 {
                rng.lognormal(20.0, 1.2) // the user reads and types
            } else {
                rng.lognormal(3.0, 0.8) // the model thinks about the results
            };
            t = done_at + gap.min(1800.0);
        }
        let duration_ms = (t * 1000.0) as i64;
        let end = if rng.f64() < RECENT_SHARE {
            now_ms - rng.range(0, DAY_MS as u64) as i64
        } else {
            now_ms - rng.range(DAY_MS as u64, 30 * DAY_MS as u64) as i64
        };
        let start = end - duration_ms;
        msgs.sort_by_key(|m| m.at_ms);

        let first_ts = format_ts_z(start + msgs.first().map_or(0, |m| m.at_ms));
        let last_ts = format_ts_z(start + msgs.last().map_or(0, |m| m.at_ms));
        tx.prepare_cached(
            "INSERT INTO sessions(id, project_id, session_id, first_ts, last_ts, message_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            session_fk,
            project,
            sid,
            first_ts,
            last_ts,
            msgs.len() as i64
        ])?;

        for (seq, m) in msgs.iter_mut().enumerate() {
            let at = start + m.at_ms;
            let ts = format_ts_z(at);
            let table = month_table(at);
            let mid = next_msg_id;
            next_msg_id += 1;
            let ev = &events[m.event];
            let model = MODELS[ev.model].0;
            if m.assistant {
                let content = if ev.tools.is_empty() {
                    r#"{"type":"text","text":"Done."}"#.to_string()
                } else {
                    ev.tools
                        .iter()
                        .map(|(ti, id)| {
                            format!(
                                r#"{{"type":"tool_use","id":"{id}","name":"{}","input":{{"file_path":"/home/dev/project-{project}/src/mod{}.rs"}}}}"#,
                                TOOLS[*ti].0,
                                ti
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                m.raw = format!(
                    r#"{{"type":"assistant","timestamp":"{ts}","sessionId":"{sid}","message":{{"role":"assistant","model":"{model}","content":[{content}]}}}}"#
                );
                tx.prepare_cached(&format!(
                    "INSERT INTO {table}(id, session_fk, seq, timestamp, role, model, raw_json)
                     VALUES (?1, ?2, ?3, ?4, 'assistant', ?5, ?6)"
                ))?
                .execute(params![mid, session_fk, seq as i64, ts, model, m.raw])?;
                let price = MODELS[ev.model].2;
                let input = rng.lognormal(8.0, 1.0).round();
                let output = rng.lognormal(250.0, 1.0).round();
                let cache_read = rng.lognormal(35_000.0, 0.7).round();
                let cache_write = rng.lognormal(1_200.0, 1.0).round();
                let cost = (input * price[0]
                    + output * price[1]
                    + cache_write * price[2]
                    + cache_read * price[3])
                    / 1e6;
                tx.prepare_cached(
                    "INSERT INTO usage_events(source_message_fk, provider, project_id, session_id, ts, day,
                       model, input_tokens, output_tokens, cache_read_tokens, cache_create_tokens,
                       cost_usd, cost_source, role)
                     VALUES (?1, 'claude', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'rate_card', 'assistant')",
                )?
                .execute(params![
                    mid, project, sid, ts, utc_day(at), model, input as i64, output as i64,
                    cache_read as i64, cache_write as i64, cost
                ])?;
                g.events += 1;
                if at >= now_ms - DAY_MS {
                    g.events_24h += 1;
                }
                let mut per_name: HashMap<usize, i64> = HashMap::new();
                for (ti, _) in &ev.tools {
                    let idx = per_name.entry(*ti).or_insert(0);
                    tx.prepare_cached(
                        "INSERT INTO message_tool_mart(message_id, project_id, session_id, ts, day,
                           tool_name, file_path, byte_count, call_index)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        mid,
                        project,
                        sid,
                        ts,
                        utc_day(at),
                        TOOLS[*ti].0,
                        format!("/home/dev/project-{project}/src/mod{ti}.rs"),
                        (rng.lognormal(2_000.0, 1.0) as i64),
                        *idx
                    ])?;
                    *idx += 1;
                    g.tools += 1;
                }
                pending_rows += 2 + ev.tools.len();
            } else {
                let id = &m.raw;
                let raw = format!(
                    r#"{{"type":"user","timestamp":"{ts}","sessionId":"{sid}","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"{id}","content":"ok"}}]}}}}"#
                );
                tx.prepare_cached(&format!(
                    "INSERT INTO {table}(id, session_fk, seq, timestamp, role, model, raw_json)
                     VALUES (?1, ?2, ?3, ?4, 'user', NULL, ?5)"
                ))?
                .execute(params![mid, session_fk, seq as i64, ts, raw])?;
                pending_rows += 1;
            }
            g.messages += 1;
        }
        g.sessions += 1;
        e_index += size;
        if pending_rows >= ROWS_PER_TX {
            tx.commit()?;
            tx = conn.unchecked_transaction()?;
            pending_rows = 0;
        }
    }
    tx.execute(
        "INSERT INTO _messages_id_seq(id) VALUES (?1)",
        [next_msg_id - 1],
    )?;
    tx.execute(
        "INSERT INTO ingest_log(file_path, provider, mtime, size, last_ingest_ts)
         VALUES ('bench-generator', 'claude', ?1, 0, ?1)",
        [now_ms as f64 / 1000.0],
    )?;
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    std::fs::rename(&tmp, path)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    g.elapsed = t0.elapsed();
    Ok(g)
}
