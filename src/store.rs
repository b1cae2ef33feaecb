//! The SQLite store: schema, opening rules and every query the daemon runs.
//!
//! Owns the upstream-compatible schema (`projects`, `sessions`, the
//! `messages` view, `usage_events`, `message_tool_mart`, `ingest_log`), the
//! row types read from it, and the rules for opening it: a followed store is
//! opened read-only; our own ingest store is created in WAL mode and marked
//! with [`APPLICATION_ID`] so we never write into a store upstream owns.
//! Runs on whichever thread calls it, each with its own `Connection`; it
//! never holds a connection across threads and never formats wire frames.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// `PRAGMA application_id` of a store this daemon created ("SULV").
/// Upstream's store leaves it 0, which is how we tell the two apart.
pub const APPLICATION_ID: i32 = 0x5355_4C56;

/// How long a statement waits on a lock held by another process before
/// giving up with `SQLITE_BUSY`. Long enough to ride out an upstream ingest
/// transaction, short enough that a stuck lock shows up in `/healthz`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows read per query when catching up, so a burst of any size is read in
/// bounded memory and handed on in order.
pub const PAGE_ROWS: usize = 1000;

/// Errors opening or checking a store.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The store file does not exist.
    Missing(PathBuf),
    /// The file exists but lacks a table the live feature reads.
    MissingTable(PathBuf, &'static str),
    /// The store belongs to upstream StackUnderflow; we only ever read it.
    NotOurs(PathBuf),
    /// SQLite refused: locked, corrupt, not a database, disk full, …
    Sqlite(PathBuf, rusqlite::Error),
    /// The directory for a new store could not be created.
    Io(PathBuf, std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Missing(p) => write!(f, "store {} does not exist", p.display()),
            StoreError::MissingTable(p, t) => write!(
                f,
                "store {} has no `{t}` table; is it a StackUnderflow store?",
                p.display()
            ),
            StoreError::NotOurs(p) => write!(
                f,
                "store {} belongs to upstream StackUnderflow; refusing to write into it \
                 (use --follow to stream it, or --store to pick another file)",
                p.display()
            ),
            StoreError::Sqlite(p, e) => write!(f, "store {}: {e}", p.display()),
            StoreError::Io(p, e) => write!(f, "cannot create {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StoreError {}

/// The tables a followed store must have.
const REQUIRED_TABLES: [&str; 3] = ["usage_events", "message_tool_mart", "projects"];

/// Opens a followed store read-only and checks it has the tables we read.
///
/// Architecture Invariant: follow mode never writes to the store, because it
/// belongs to another process; the connection is opened with
/// `SQLITE_OPEN_READ_ONLY` so a write attempt fails inside SQLite.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing(path.to_path_buf()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::Sqlite(path.into(), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::Sqlite(path.into(), e))?;
    for table in REQUIRED_TABLES {
        if !has_relation(&conn, table).map_err(|e| StoreError::Sqlite(path.into(), e))? {
            return Err(StoreError::MissingTable(path.to_path_buf(), table));
        }
    }
    Ok(conn)
}

/// Tables our own store adds to the upstream schema: the de-duplication
/// key of every usage event (so a restart, a re-read file or a resumed
/// session never counts a response twice), and tool-call ids (so a result
/// arriving later fills in the call's byte count).
const OWN_SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS live_usage_keys (
  key TEXT PRIMARY KEY, usage_event_id INTEGER NOT NULL, total INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_tool_ids (
  tool_use_id TEXT PRIMARY KEY, mart_id INTEGER NOT NULL) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ix_ingest_log_path ON ingest_log(file_path);
";

/// Opens (creating if needed) the store our ingest writes: WAL mode,
/// `synchronous=NORMAL`, foreign keys on, marked with [`APPLICATION_ID`].
///
/// Refuses a database that has tables but not our mark: that is upstream's
/// store (or someone else's), and writing into it would corrupt their data.
pub fn open_own_store(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
    }
    let sq = |e| StoreError::Sqlite(path.to_path_buf(), e);
    let conn = Connection::open(path).map_err(sq)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sq)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sq)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(sq)?;
    if tables > 0 && app_id != APPLICATION_ID {
        return Err(StoreError::NotOurs(path.to_path_buf()));
    }
    conn.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    ))
    .map_err(sq)?;
    conn.execute_batch(&upstream_schema_sql(&[])).map_err(sq)?;
    conn.execute_batch(OWN_SCHEMA_SQL).map_err(sq)?;
    Ok(conn)
}

/// Whether a table or view named `name` exists.
pub fn has_relation(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = ?1 AND type IN ('table','view')",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// `PRAGMA data_version`: changes whenever another connection commits.
pub fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// The upstream tables and indexes the live feature reads, in upstream's
/// column order. `messages` is a view over per-month tables, as upstream has
/// had since its migration v008; `month_tables` names them (e.g.
/// `["messages_202511"]`), and `messages_unknown` always exists.
pub fn upstream_schema_sql(month_tables: &[&str]) -> String {
    let mut sql = String::from(
        "PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS projects (
  id INTEGER PRIMARY KEY, provider TEXT NOT NULL, slug TEXT NOT NULL, path TEXT,
  display_name TEXT NOT NULL, first_seen REAL NOT NULL, last_modified REAL NOT NULL,
  worktree_of TEXT, UNIQUE(provider, slug));
CREATE TABLE IF NOT EXISTS sessions (
  id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id),
  session_id TEXT NOT NULL, first_ts TEXT, last_ts TEXT, message_count INTEGER NOT NULL DEFAULT 0,
  team_id TEXT, spawned_by_session_id TEXT, spawn_prompt TEXT, agent_role TEXT,
  UNIQUE(project_id, session_id));
CREATE TABLE IF NOT EXISTS _messages_id_seq (id INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS usage_events (
  id INTEGER PRIMARY KEY, source_message_fk INTEGER NOT NULL UNIQUE, provider TEXT NOT NULL,
  account TEXT NOT NULL DEFAULT 'default', project_id INTEGER NOT NULL REFERENCES projects(id),
  session_id TEXT NOT NULL, ts TEXT NOT NULL, day TEXT NOT NULL, model TEXT NOT NULL DEFAULT '',
  speed TEXT NOT NULL DEFAULT 'standard', input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL, cache_create_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
  cost_source TEXT NOT NULL, role TEXT NOT NULL, raw_extras TEXT, reasoning_tokens INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS ix_usage_day ON usage_events(day);
CREATE INDEX IF NOT EXISTS ix_usage_project_day ON usage_events(project_id, day);
CREATE INDEX IF NOT EXISTS ix_usage_session ON usage_events(session_id);
CREATE INDEX IF NOT EXISTS ix_usage_model_day ON usage_events(model, day);
CREATE TABLE IF NOT EXISTS message_tool_mart (
  id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL, project_id INTEGER NOT NULL,
  session_id TEXT NOT NULL, ts TEXT NOT NULL, day TEXT NOT NULL, tool_name TEXT NOT NULL,
  file_path TEXT, byte_count INTEGER, call_index INTEGER NOT NULL,
  UNIQUE(message_id, tool_name, call_index));
CREATE INDEX IF NOT EXISTS ix_mart_ts ON message_tool_mart(ts, message_id, tool_name);
CREATE INDEX IF NOT EXISTS ix_mart_session ON message_tool_mart(session_id);
CREATE INDEX IF NOT EXISTS ix_mart_tool_day ON message_tool_mart(tool_name, day);
CREATE TABLE IF NOT EXISTS ingest_log (
  id INTEGER PRIMARY KEY, file_path TEXT NOT NULL, provider TEXT NOT NULL, session_id TEXT,
  storage_kind TEXT NOT NULL DEFAULT 'file', mtime REAL NOT NULL, size INTEGER NOT NULL,
  processed_offset INTEGER, last_rowid INTEGER, last_ingest_ts REAL);
CREATE TABLE IF NOT EXISTS price_book (
  id INTEGER PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, effective_from TEXT NOT NULL,
  effective_until TEXT NOT NULL DEFAULT '', input REAL NOT NULL, output REAL NOT NULL,
  cache_write REAL NOT NULL, cache_read REAL NOT NULL, source TEXT NOT NULL, updated_at REAL NOT NULL);
",
    );
    let mut tables: Vec<String> = month_tables.iter().map(|s| s.to_string()).collect();
    tables.push("messages_unknown".into());
    for t in &tables {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (
  id INTEGER PRIMARY KEY, session_fk INTEGER NOT NULL REFERENCES sessions(id), seq INTEGER NOT NULL,
  timestamp TEXT NOT NULL, role TEXT NOT NULL, model TEXT, input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0, cache_create_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens INTEGER NOT NULL DEFAULT 0, content_text TEXT NOT NULL DEFAULT '',
  tools_json TEXT NOT NULL DEFAULT '[]', raw_json TEXT NOT NULL, is_sidechain INTEGER NOT NULL DEFAULT 0,
  uuid TEXT, parent_uuid TEXT, speed TEXT NOT NULL DEFAULT 'standard', UNIQUE(session_fk, seq));
CREATE INDEX IF NOT EXISTS ix_{t}_ts ON {t}(timestamp);
"
        ));
    }
    let union: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT * FROM {t}"))
        .collect();
    sql.push_str("DROP VIEW IF EXISTS messages;\nCREATE VIEW messages AS ");
    sql.push_str(&union.join(" UNION ALL "));
    sql.push_str(";\n");
    sql
}

/// A `usage_events` row as the live stream shows it, joined with its project.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// `usage_events.id`, the event watermark.
    pub id: i64,
    /// Timestamp text as stored.
    pub ts: String,
    /// Project id.
    pub project_id: i64,
    /// Agent session id.
    pub session_id: String,
    /// Model id ("" when unknown).
    pub model: String,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cache-read tokens.
    pub cache_read_tokens: i64,
    /// Cache-write tokens.
    pub cache_create_tokens: i64,
    /// `live`, `rate_card`, `estimated` or `unknown`.
    pub cost_source: String,
    /// `claude` or `codex`.
    pub provider: String,
    /// Project slug, when the project row exists.
    pub project_slug: Option<String>,
    /// Project display name, when the project row exists.
    pub project_name: Option<String>,
}

/// A `message_tool_mart` row as the live stream shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRow {
    /// `message_tool_mart.id`, the tool-call watermark.
    pub id: i64,
    /// Timestamp text as stored.
    pub ts: String,
    /// Project id.
    pub project_id: i64,
    /// Agent session id.
    pub session_id: String,
    /// Tool name.
    pub tool_name: String,
    /// File the tool touched, if any.
    pub file_path: Option<String>,
    /// Bytes written or returned, if known.
    pub byte_count: Option<i64>,
    /// 0-based index per tool name within the message.
    pub call_index: i64,
    /// Project slug, when the project row exists.
    pub project_slug: Option<String>,
    /// Project display name, when the project row exists.
    pub project_name: Option<String>,
}

const EVENT_COLS: &str = "u.id, u.ts, u.project_id, u.session_id, u.model, u.cost_usd, u.input_tokens, \
     u.output_tokens, u.cache_read_tokens, u.cache_create_tokens, u.cost_source, u.provider, p.slug, p.display_name \
     FROM usage_events u LEFT JOIN projects p ON p.id = u.project_id";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        ts: r.get(1)?,
        project_id: r.get(2)?,
        session_id: r.get(3)?,
        model: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        cost_usd: r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
        input_tokens: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
        output_tokens: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
        cache_read_tokens: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
        cache_create_tokens: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
        cost_source: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
        provider: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        project_slug: r.get(12)?,
        project_name: r.get(13)?,
    })
}

const TOOL_COLS: &str = "t.id, t.ts, t.project_id, t.session_id, t.tool_name, t.file_path, t.byte_count, \
     t.call_index, p.slug, p.display_name FROM message_tool_mart t LEFT JOIN projects p ON p.id = t.project_id";

fn tool_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ToolRow> {
    Ok(ToolRow {
        id: r.get(0)?,
        ts: r.get(1)?,
        project_id: r.get(2)?,
        session_id: r.get(3)?,
        tool_name: r.get(4)?,
        file_path: r.get(5)?,
        byte_count: r.get(6)?,
        call_index: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
        project_slug: r.get(8)?,
        project_name: r.get(9)?,
    })
}

/// Usage events with `id > since_id`, ascending, at most `limit`.
pub fn recent_events(
    conn: &Connection,
    since_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLS} WHERE u.id > ?1 ORDER BY u.id LIMIT ?2"
    ))?;
    let rows = st.query_map(params![since_id, limit as i64], event_row)?;
    rows.collect()
}

/// Tool-call rows with `id > since_id`, ascending, at most `limit`.
pub fn recent_tool_calls(
    conn: &Connection,
    since_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<ToolRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {TOOL_COLS} WHERE t.id > ?1 ORDER BY t.id LIMIT ?2"
    ))?;
    let rows = st.query_map(params![since_id, limit as i64], tool_row)?;
    rows.collect()
}

/// Usage events by id (after an update hook named them), ascending.
pub fn events_by_ids(conn: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<EventRow>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut st = conn.prepare_cached(&format!("SELECT {EVENT_COLS} WHERE u.id = ?1"))?;
    for id in ids {
        if let Some(row) = st.query_row([id], event_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// Tool-call rows by id, ascending.
pub fn tools_by_ids(conn: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<ToolRow>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut st = conn.prepare_cached(&format!("SELECT {TOOL_COLS} WHERE t.id = ?1"))?;
    for id in ids {
        if let Some(row) = st.query_row([id], tool_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// The highest ids of the three feeds: `(usage_events, message_tool_mart,
/// messages)`. `messages` is 0 when the store has no such relation.
pub fn watermarks(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    let e = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM usage_events", [], |r| {
        r.get(0)
    })?;
    let t = conn.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM message_tool_mart",
        [],
        |r| r.get(0),
    )?;
    let m = if has_relation(conn, "messages")? {
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
            r.get(0)
        })?
    } else {
        0
    };
    Ok((e, t, m))
}

/// `(id, ts, cost_usd)` of usage events on or after UTC day `from_day`
/// (`YYYY-MM-DD`), used to seed the burn ledger at start.
pub fn event_costs_since_day(
    conn: &Connection,
    from_day: &str,
) -> rusqlite::Result<Vec<(i64, String, f64)>> {
    let mut st = conn.prepare(
        "SELECT id, ts, COALESCE(cost_usd, 0) FROM usage_events WHERE day >= ?1 ORDER BY id",
    )?;
    let rows = st.query_map([from_day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Usage totals by provider, model and project slug, highest cost first:
/// `(provider, model, project, cost, input, output, cache_read, cache_write)`.
#[allow(clippy::type_complexity)]
pub fn usage_totals(
    conn: &Connection,
) -> rusqlite::Result<Vec<(String, String, String, f64, i64, i64, i64, i64)>> {
    let mut st = conn.prepare(
        "SELECT u.provider, u.model, COALESCE(p.slug, 'project-' || u.project_id), SUM(u.cost_usd),
                SUM(u.input_tokens), SUM(u.output_tokens), SUM(u.cache_read_tokens), SUM(u.cache_create_tokens)
         FROM usage_events u LEFT JOIN projects p ON p.id = u.project_id
         GROUP BY 1, 2, 3 ORDER BY 4 DESC",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            r.get(2)?,
            r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
            r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            r.get::<_, Option<i64>>(5)?.unwrap_or(0),
            r.get::<_, Option<i64>>(6)?.unwrap_or(0),
            r.get::<_, Option<i64>>(7)?.unwrap_or(0),
        ))
    })?;
    rows.collect()
}

/// A `messages` row reduced to what latency pairing reads.
#[derive(Debug, Clone)]
pub struct MessageLine {
    /// `messages.id`.
    pub id: i64,
    /// The original JSONL line.
    pub raw_json: String,
}

/// Messages with `id > since_id` that may carry a tool call or result,
/// ascending, at most `limit` rows scanned. Returns the rows and the highest
/// id scanned (the new watermark, even when no row matched).
pub fn tool_messages_after(
    conn: &Connection,
    since_id: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<MessageLine>, i64)> {
    let mut st = conn
        .prepare_cached("SELECT id, raw_json FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut rows = st.query(params![since_id, limit as i64])?;
    let mut out = Vec::new();
    let mut last = since_id;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        last = last.max(id);
        let raw: Option<String> = r.get(1)?;
        if let Some(raw) = raw {
            if may_carry_tool(&raw) {
                out.push(MessageLine { id, raw_json: raw });
            }
        }
    }
    Ok((out, last))
}

/// Messages stamped on or after `from_ts` (text, compared as stored; the
/// caller re-checks instants) that may carry a tool call or result.
pub fn tool_messages_since(conn: &Connection, from_ts: &str) -> rusqlite::Result<Vec<MessageLine>> {
    let mut st =
        conn.prepare("SELECT id, raw_json FROM messages WHERE timestamp >= ?1 ORDER BY id")?;
    let rows = st.query_map([from_ts], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, raw) = row?;
        if let Some(raw) = raw.filter(|r| may_carry_tool(r)) {
            out.push(MessageLine { id, raw_json: raw });
        }
    }
    Ok(out)
}

/// A cheap substring test before parsing JSON: only lines that mention a
/// tool id field can pair.
fn may_carry_tool(raw: &str) -> bool {
    raw.contains("tool_use") || raw.contains("call_id")
}

/// The newest `ingest_log.last_ingest_ts` (Unix seconds), if any.
pub fn last_ingest_ts(conn: &Connection) -> rusqlite::Result<Option<f64>> {
    if !has_relation(conn, "ingest_log")? {
        return Ok(None);
    }
    conn.query_row("SELECT MAX(last_ingest_ts) FROM ingest_log", [], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream_store(dir: &Path) -> PathBuf {
        let path = dir.join("store.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&upstream_schema_sql(&["messages_202511"]))
            .unwrap();
        path
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sul-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn own_store_refuses_a_store_it_did_not_create() {
        let dir = tmpdir("own");
        let upstream = upstream_store(&dir);
        assert!(matches!(
            open_own_store(&upstream).unwrap_err(),
            StoreError::NotOurs(_)
        ));
        let ours = dir.join("sub/live.db");
        drop(open_own_store(&ours).unwrap());
        // Reopening our own store is fine, and it is followable.
        drop(open_own_store(&ours).unwrap());
        open_read_only(&ours).unwrap();
    }

    #[test]
    fn read_only_store_refuses_writes() {
        let dir = tmpdir("ro");
        let path = upstream_store(&dir);
        let conn = open_read_only(&path).unwrap();
        let err = conn
            .execute("INSERT INTO projects(provider, slug, display_name, first_seen, last_modified) VALUES ('c','s','n',0,0)", [])
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }

    #[test]
    fn missing_store_and_missing_tables_are_clear_errors() {
        let dir = tmpdir("missing");
        let err = open_read_only(&dir.join("nope.db")).unwrap_err();
        assert!(matches!(err, StoreError::Missing(_)));
        let other = dir.join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE x(a)")
            .unwrap();
        let err = open_read_only(&other).unwrap_err();
        assert!(err.to_string().contains("no `usage_events` table"), "{err}");
        let garbage = dir.join("garbage.db");
        std::fs::write(
            &garbage,
            b"this is not a database, it is a text file of some length........",
        )
        .unwrap();
        assert!(matches!(
            open_read_only(&garbage).unwrap_err(),
            StoreError::Sqlite(..)
        ));
    }

    #[test]
    fn reads_rows_by_watermark_with_project_names() {
        let dir = tmpdir("rows");
        let path = upstream_store(&dir);
        let w = Connection::open(&path).unwrap();
        // Foreign keys off to leave event 2's project dangling, as a project
        // row deleted by hand would.
        w.execute_batch(
            "PRAGMA foreign_keys=OFF;
             INSERT INTO projects VALUES (1,'claude','-p','/p','p',0,0,NULL);
             INSERT INTO usage_events(id,source_message_fk,provider,project_id,session_id,ts,day,model,input_tokens,output_tokens,cache_read_tokens,cache_create_tokens,cost_usd,cost_source,role)
               VALUES (1,1,'claude',1,'s','2025-11-01T00:00:00.000Z','2025-11-01','m',1,2,3,4,0.5,'rate_card','assistant'),
                      (2,2,'claude',9,'s','2025-11-01T00:00:01.000Z','2025-11-01','m',1,2,3,4,0.25,'rate_card','assistant');",
        )
        .unwrap();
        let r = open_read_only(&path).unwrap();
        let rows = recent_events(&r, 0, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].project_slug.as_deref(), Some("-p"));
        assert_eq!(rows[1].project_slug, None); // project 9 does not exist
        assert_eq!(recent_events(&r, 1, 10).unwrap().len(), 1);
        assert_eq!(watermarks(&r).unwrap(), (2, 0, 0));
        assert_eq!(events_by_ids(&r, &[2, 5]).unwrap().len(), 1);
    }
}
