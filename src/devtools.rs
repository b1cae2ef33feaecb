//! Stores and rows for tests, demos and benchmarks: an empty store with the
//! upstream schema, and synthetic rows appended the way upstream's ingest
//! appends them (one transaction: messages, then usage events, then tool
//! rows).
//!
//! Runs on the caller's thread with its own read-write connection. Never
//! used by the daemon's own data path; the hidden `dev-store` and
//! `dev-insert` subcommands expose it to scripts (the browser test).

use std::path::Path;

use rusqlite::{params, Connection};

use crate::store::upstream_schema_sql;
use crate::time::{civil_from_days, format_ts_z, now_ms, utc_day, DAY_MS};

/// Creates (or completes) a store with the upstream schema, its `messages`
/// view over this month's table and `messages_unknown`.
pub fn create_upstream_store(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    ensure_month_table(&conn, now_ms())
}

fn month_table(ms: i64) -> String {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("messages_{y:04}{m:02}")
}

/// Makes sure the month table for `ms` exists and the view covers every
/// month table present.
fn ensure_month_table(conn: &Connection, ms: i64) -> rusqlite::Result<()> {
    let want = month_table(ms);
    let mut tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type='table' AND name GLOB 'messages_[0-9]*'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tables.contains(&want) && crate::store::has_relation(conn, "messages")? {
        return Ok(());
    }
    tables.push(want);
    tables.sort();
    tables.dedup();
    let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    conn.execute_batch(&upstream_schema_sql(&refs))
}

fn next_message_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute("INSERT INTO _messages_id_seq DEFAULT VALUES", [])?;
    Ok(conn.last_insert_rowid())
}

/// Appends `events` usage events (each with its message) and `tools`
/// tool-call rows (each with a tool_use and a tool_result message, so
/// latency pairs), stamped now, in one transaction.
pub fn insert_rows(
    path: &Path,
    events: usize,
    tools: usize,
    cost_usd: f64,
) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(crate::store::BUSY_TIMEOUT)?;
    let now = now_ms();
    ensure_month_table(&conn, now)?;
    let table = month_table(now);
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR IGNORE INTO projects(id, provider, slug, path, display_name, first_seen, last_modified)
         VALUES (1, 'claude', '-demo-project', '/demo/project', 'demo-project', ?1, ?1)",
        [now as f64 / 1000.0],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO sessions(id, project_id, session_id) VALUES (1, 1, 'demo-session')",
        [],
    )?;
    let ts = format_ts_z(now);
    let day = utc_day(now);
    let base_seq: i64 = tx.query_row(
        &format!("SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}"),
        [],
        |r| r.get(0),
    )?;
    let mut seq = base_seq;
    let mut add_message = |tx: &rusqlite::Transaction<'_>,
                           ts: &str,
                           role: &str,
                           raw: String|
     -> rusqlite::Result<i64> {
        let id = next_message_id(tx)?;
        tx.execute(
            &format!("INSERT INTO {table}(id, session_fk, seq, timestamp, role, model, raw_json) VALUES (?1, 1, ?2, ?3, ?4, 'claude-sonnet-4-5-20250929', ?5)"),
            params![id, seq, ts, role, raw],
        )?;
        seq += 1;
        Ok(id)
    };
    for _ in 0..events {
        let raw = format!(
            r#"{{"type":"assistant","timestamp":"{ts}","message":{{"role":"assistant","content":[{{"type":"text","text":"demo"}}]}}}}"#
        );
        let mid = add_message(&tx, &ts, "assistant", raw)?;
        tx.execute(
            "INSERT INTO usage_events(source_message_fk, provider, project_id, session_id, ts, day, model, input_tokens,
               output_tokens, cache_read_tokens, cache_create_tokens, cost_usd, cost_source, role)
             VALUES (?1, 'claude', 1, 'demo-session', ?2, ?3, 'claude-sonnet-4-5-20250929', 10, 200, 3000, 400, ?4, 'rate_card', 'assistant')",
            params![mid, ts, day, cost_usd],
        )?;
    }
    let tool_names = ["Read", "Bash", "Edit", "Grep"];
    for i in 0..tools {
        let name = tool_names[i % tool_names.len()];
        let id = format!("toolu_demo_{now}_{i}");
        let use_raw = format!(
            r#"{{"type":"assistant","timestamp":"{ts}","message":{{"role":"assistant","content":[{{"type":"tool_use","id":"{id}","name":"{name}","input":{{"file_path":"/demo/project/src/lib.rs"}}}}]}}}}"#
        );
        let mid = add_message(&tx, &ts, "assistant", use_raw)?;
        let res_ts = format_ts_z(now + 40 + 37 * i as i64);
        let res_raw = format!(
            r#"{{"type":"user","timestamp":"{res_ts}","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"{id}","content":"ok"}}]}}}}"#
        );
        add_message(&tx, &res_ts, "user", res_raw)?;
        tx.execute(
            "INSERT INTO message_tool_mart(message_id, project_id, session_id, ts, day, tool_name, file_path, byte_count, call_index)
             VALUES (?1, 1, 'demo-session', ?2, ?3, ?4, '/demo/project/src/lib.rs', 120, 0)",
            params![mid, ts, day, name],
        )?;
    }
    tx.execute(
        "INSERT INTO ingest_log(file_path, provider, mtime, size, last_ingest_ts) VALUES ('demo', 'claude', ?1, 0, ?1)",
        [now as f64 / 1000.0],
    )?;
    tx.commit()
}
