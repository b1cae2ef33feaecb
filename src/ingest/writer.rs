//! The ingest writer: one connection, one transaction per chunk of a file,
//! and the SQLite update hook that tells the hub what each commit added.
//!
//! Owns the only read-write connection to our store. Runs on the "ingest"
//! thread. For each chunk of complete lines it writes, in one transaction,
//! the messages, the usage events (inserted, or updated when a larger copy
//! of the same API response arrives), the tool-call rows, and the file's
//! `ingest_log.processed_offset`. While the transaction runs, the
//! connection's `update_hook` records the rowids of usage events and tool
//! rows it touches; after `COMMIT` returns, those rows are read back and
//! handed to the hub. A rollback (`rollback_hook`) discards them.
//!
//! Architecture Invariant: a file's offset commits in the same transaction
//! as the rows of the lines before it, so a crash at any point neither
//! loses nor double-counts a usage event: on restart the file is read again
//! from the committed offset.
//!
//! Architecture Invariant: no polling on the commit path: the hub hears of
//! a row from the hook of the transaction that wrote it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rusqlite::hooks::Action;
use rusqlite::{params, Connection, OptionalExtension};

use crate::hub::FeedBatch;
use crate::latency::ToolMark;
use crate::pricing::{CostSource, PriceTable};
use crate::state::Shared;
use crate::store::{self, StoreError};
use crate::time::{now_ms, parse_ts_ms, utc_day};
use crate::transcript::{Provider, Record};
use crate::warn;

/// Where a chunk comes from.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// The transcript's path, as stored in `ingest_log.file_path`.
    pub path: String,
    /// Who wrote it.
    pub provider: Provider,
    /// Claude: the project directory name under `projects/`. Codex: empty
    /// until the session's working directory is known.
    pub project_slug: String,
    /// The file's session key (its file stem).
    pub file_key: String,
}

/// Parsed lines of one file, ready to commit.
#[derive(Debug, Default)]
pub struct Chunk {
    /// What the lines yielded, in order.
    pub records: Vec<Record>,
    /// The original text of lines that carry tool calls or results, by
    /// offset (stored as `messages.raw_json` so latency pairing survives a
    /// restart; other lines store an empty `raw_json` to keep the store
    /// small).
    pub raw_lines: HashMap<u64, String>,
    /// Offset just past the last complete line in this chunk.
    pub end_offset: u64,
    /// File size and modification time when read.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: f64,
}

/// What one commit changed, by rowid, collected by the update hook.
#[derive(Debug, Default)]
struct Touched {
    events_inserted: Vec<i64>,
    events_updated: Vec<i64>,
    tools_inserted: Vec<i64>,
}

/// Totals of one commit, for progress lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Committed {
    /// New usage events.
    pub events: usize,
    /// New tool-call rows.
    pub tools: usize,
    /// Cost added (new events plus growth of corrected ones), USD.
    pub cost: f64,
}

/// The one read-write connection and what it caches.
pub struct Writer {
    conn: Connection,
    touched: Arc<Mutex<Touched>>,
    prices: Arc<RwLock<PriceTable>>,
    // (provider, slug) → (id, whether its path is recorded).
    projects: HashMap<(Provider, String), (i64, bool)>,
    sessions: HashMap<(i64, String), i64>,
    // Commits since the last WAL checkpoint.
    since_checkpoint: u32,
}

/// Commits between two WAL checkpoints. SQLite's automatic checkpoint runs
/// inside COMMIT, on the path from a transcript line to the hub (it cost
/// 1–2 % of live events 5–9 ms instead of ~1 ms in the append benchmark);
/// ours runs after the batch is handed on, in PASSIVE mode so it never
/// waits for readers.
pub const CHECKPOINT_EVERY: u32 = 200;

/// Display name of a project: the last component of its working directory,
/// else the slug.
fn display_name(cwd: Option<&str>, slug: &str) -> String {
    cwd.and_then(|c| Path::new(c).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| slug.to_string())
}

/// Scopes keys that are only unique within one file (`line:…`, `codex:…`);
/// Claude's `message.id:requestId` keys are global, so a response copied
/// into a resumed session's file is still counted once.
fn scoped_key(key: &str, path: &str) -> String {
    if key.starts_with("line:") || key.starts_with("codex:") {
        format!("{path}#{key}")
    } else {
        key.to_string()
    }
}

impl Writer {
    /// Opens our store and installs the hooks.
    pub fn open(path: &Path, prices: Arc<RwLock<PriceTable>>) -> Result<Writer, StoreError> {
        let mut conn = store::open_own_store(path)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(|e| StoreError::Sqlite(path.into(), e))?;
        let touched = Arc::new(Mutex::new(Touched::default()));
        let t = touched.clone();
        conn.update_hook(Some(
            move |action: Action, _db: &str, table: &str, rowid: i64| {
                let mut t = t.lock();
                match (table, action) {
                    ("usage_events", Action::SQLITE_INSERT) => t.events_inserted.push(rowid),
                    ("usage_events", Action::SQLITE_UPDATE) => t.events_updated.push(rowid),
                    ("message_tool_mart", Action::SQLITE_INSERT) => t.tools_inserted.push(rowid),
                    _ => {}
                }
            },
        ))
        .map_err(|e| StoreError::Sqlite(path.into(), e))?;
        let t = touched.clone();
        conn.rollback_hook(Some(move || *t.lock() = Touched::default()))
            .map_err(|e| StoreError::Sqlite(path.into(), e))?;
        Ok(Writer {
            conn,
            touched,
            prices,
            projects: HashMap::new(),
            sessions: HashMap::new(),
            since_checkpoint: 0,
        })
    }

    /// Checkpoints the WAL every [`CHECKPOINT_EVERY`] commits. Call after
    /// the commit's batch is with the hub. A failure is logged, not fatal:
    /// the WAL only grows until the next attempt.
    pub fn checkpoint_if_due(&mut self) {
        self.since_checkpoint += 1;
        if self.since_checkpoint < CHECKPOINT_EVERY {
            return;
        }
        self.since_checkpoint = 0;
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            crate::warn!("WAL checkpoint failed: {e}");
        }
    }

    /// The connection, for start-up reads (offsets, seeding).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Committed offsets of every file ingested before: path → offset.
    pub fn offsets(&self) -> rusqlite::Result<HashMap<String, u64>> {
        let mut st = self
            .conn
            .prepare("SELECT file_path, COALESCE(processed_offset, 0) FROM ingest_log")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect()
    }

    fn project_id(
        &mut self,
        provider: Provider,
        slug: &str,
        cwd: Option<&str>,
    ) -> rusqlite::Result<i64> {
        if let Some(&(id, has_path)) = self.projects.get(&(provider, slug.to_string())) {
            if let (false, Some(cwd)) = (has_path, cwd) {
                // The first lines of a Claude file often carry no cwd; name
                // the project after its directory once a line says it.
                self.conn.execute(
                    "UPDATE projects SET path = ?2, display_name = ?3 WHERE id = ?1 AND path IS NULL",
                    params![id, cwd, display_name(Some(cwd), slug)],
                )?;
                self.projects
                    .insert((provider, slug.to_string()), (id, true));
            }
            return Ok(id);
        }
        let now = now_ms() as f64 / 1000.0;
        self.conn.execute(
            "INSERT INTO projects(provider, slug, path, display_name, first_seen, last_modified)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(provider, slug) DO NOTHING",
            params![provider.as_str(), slug, cwd, display_name(cwd, slug), now],
        )?;
        let (id, has_path): (i64, bool) = self.conn.query_row(
            "SELECT id, path IS NOT NULL FROM projects WHERE provider = ?1 AND slug = ?2",
            params![provider.as_str(), slug],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.projects
            .insert((provider, slug.to_string()), (id, has_path));
        if !has_path && cwd.is_some() {
            return self.project_id(provider, slug, cwd);
        }
        Ok(id)
    }

    fn session_fk(&mut self, project_id: i64, key: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.sessions.get(&(project_id, key.to_string())) {
            return Ok(*id);
        }
        self.conn.execute(
            "INSERT INTO sessions(project_id, session_id) VALUES (?1, ?2) ON CONFLICT(project_id, session_id) DO NOTHING",
            params![project_id, key],
        )?;
        let id = self.conn.query_row(
            "SELECT id FROM sessions WHERE project_id = ?1 AND session_id = ?2",
            params![project_id, key],
            |r| r.get(0),
        )?;
        self.sessions.insert((project_id, key.to_string()), id);
        Ok(id)
    }

    /// Writes a chunk in one transaction and returns what to publish.
    ///
    /// On error nothing is committed (the caller retries the same lines
    /// later with the parser state it had before them).
    pub fn apply(
        &mut self,
        ctx: &FileCtx,
        chunk: &Chunk,
        shared: &Shared,
    ) -> rusqlite::Result<(FeedBatch, Committed)> {
        *self.touched.lock() = Touched::default();
        // Caches may hold ids from a rolled-back transaction; they are
        // rebuilt from the store on a miss, so clear them on any error.
        let result = self.write_chunk(ctx, chunk, shared);
        if result.is_err() {
            self.projects.clear();
            self.sessions.clear();
            *self.touched.lock() = Touched::default();
        }
        let (marks, mut committed) = result?;
        let committed_at = std::time::Instant::now();
        let touched = std::mem::take(&mut *self.touched.lock());
        let inserted: HashSet<i64> = touched.events_inserted.iter().copied().collect();
        let mut updated: Vec<i64> = touched
            .events_updated
            .into_iter()
            .filter(|id| !inserted.contains(id))
            .collect();
        updated.sort_unstable();
        updated.dedup();
        let events = store::events_by_ids(&self.conn, &touched.events_inserted)?;
        let corrections = store::events_by_ids(&self.conn, &updated)?;
        let tools = store::tools_by_ids(&self.conn, &touched.tools_inserted)?;
        committed.events = events.len();
        committed.tools = tools.len();
        shared
            .metrics
            .rows_ingested
            .fetch_add((events.len() + tools.len()) as u64, Ordering::Relaxed);
        Ok((
            FeedBatch {
                events,
                tools,
                corrections,
                marks,
                seen_at: Some(committed_at),
            },
            committed,
        ))
    }

    fn write_chunk(
        &mut self,
        ctx: &FileCtx,
        chunk: &Chunk,
        shared: &Shared,
    ) -> rusqlite::Result<(Vec<ToolMark>, Committed)> {
        // BEGIN/COMMIT by hand: the record loop needs `&mut self` (caches),
        // which a borrowed `Transaction` would not allow. IMMEDIATE takes the
        // write lock up front, so a lock held by another process shows up
        // here (after the busy timeout) rather than half-way through.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let out = self
            .write_records(ctx, chunk, shared)
            .and_then(|out| self.conn.execute_batch("COMMIT").map(|_| out));
        if out.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        out
    }

    fn write_records(
        &mut self,
        ctx: &FileCtx,
        chunk: &Chunk,
        shared: &Shared,
    ) -> rusqlite::Result<(Vec<ToolMark>, Committed)> {
        // The project is named after the main session's working directory:
        // sub-agents often run in worktrees of their own.
        let cwd = chunk.records.iter().find_map(|r| match r {
            Record::Message(m) if !m.is_sidechain => m.cwd.clone(),
            _ => None,
        });
        let slug = if ctx.project_slug.is_empty() {
            cwd.as_deref()
                .map(|c| c.replace(['/', '\\', '.'], "-"))
                .unwrap_or_else(|| "unknown".into())
        } else {
            ctx.project_slug.clone()
        };
        let project_id = self.project_id(ctx.provider, &slug, cwd.as_deref())?;
        let session_fk = self.session_fk(project_id, &ctx.file_key)?;
        let prices = self.prices.clone();
        let prices = prices.read();
        let now = now_ms();
        let mut msg_ids: HashMap<u64, i64> = HashMap::new();
        let mut marks = Vec::new();
        let mut committed = Committed::default();
        for rec in &chunk.records {
            match rec {
                Record::Message(m) => {
                    let raw = chunk
                        .raw_lines
                        .get(&m.seq)
                        .map(String::as_str)
                        .unwrap_or("");
                    let id = self.insert_message(
                        session_fk,
                        m.seq,
                        m.ts.as_deref().unwrap_or(""),
                        &m.role,
                        m.model.as_deref(),
                        m,
                        raw,
                    )?;
                    msg_ids.insert(m.seq, id);
                }
                Record::Usage(u) => {
                    let ts_ms = parse_ts_ms(&u.ts).unwrap_or(now);
                    let ts = if u.ts.is_empty() {
                        crate::time::format_ts_z(now)
                    } else {
                        u.ts.clone()
                    };
                    let msg_id = match msg_ids.get(&u.seq) {
                        Some(id) => *id,
                        None => {
                            let id = self.placeholder_message(session_fk, u.seq, &ts)?;
                            msg_ids.insert(u.seq, id);
                            id
                        }
                    };
                    let (cost, source) = prices.cost(&u.model, &u.speed, &u.tokens);
                    if source == CostSource::Unknown {
                        shared
                            .metrics
                            .unknown_model_events
                            .fetch_add(1, Ordering::Relaxed);
                        if shared.unknown_models.lock().insert(u.model.clone()) {
                            warn!("no price for model {:?} (first seen in {}); its events are marked cost_source=unknown", u.model, ctx.path);
                        }
                    }
                    let key = scoped_key(&u.key, &ctx.path);
                    let total = u.tokens.total();
                    let existing: Option<(i64, i64)> = self
                        .conn
                        .prepare_cached(
                            "SELECT usage_event_id, total FROM live_usage_keys WHERE key = ?1",
                        )?
                        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    let session = u.session_id.clone().unwrap_or_else(|| ctx.file_key.clone());
                    let t = &u.tokens;
                    match existing {
                        None => {
                            self.conn
                                .prepare_cached(
                                    "INSERT INTO usage_events(source_message_fk, provider, project_id, session_id, ts, day, model, speed,
                                       input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, cost_usd, cost_source,
                                       role, raw_extras, reasoning_tokens)
                                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'assistant', ?15, ?16)",
                                )?
                                .execute(params![
                                    msg_id,
                                    ctx.provider.as_str(),
                                    project_id,
                                    session,
                                    ts,
                                    utc_day(ts_ms),
                                    u.model,
                                    u.speed,
                                    t.input,
                                    t.output,
                                    t.cache_read,
                                    t.cache_create(),
                                    cost,
                                    source.as_str(),
                                    extras(u),
                                    t.reasoning
                                ])?;
                            let id = self.conn.last_insert_rowid();
                            self.conn
                                .prepare_cached("INSERT INTO live_usage_keys(key, usage_event_id, total) VALUES (?1, ?2, ?3)")?
                                .execute(params![key, id, total])?;
                            committed.cost += cost;
                        }
                        Some((id, old_total)) if total > old_total => {
                            let old_cost: f64 = self.conn.query_row(
                                "SELECT cost_usd FROM usage_events WHERE id = ?1",
                                [id],
                                |r| r.get(0),
                            )?;
                            self.conn
                                .prepare_cached(
                                    "UPDATE usage_events SET input_tokens = ?2, output_tokens = ?3, cache_read_tokens = ?4,
                                       cache_create_tokens = ?5, cost_usd = ?6, cost_source = ?7, raw_extras = ?8,
                                       reasoning_tokens = ?9, speed = ?10 WHERE id = ?1",
                                )?
                                .execute(params![
                                    id,
                                    t.input,
                                    t.output,
                                    t.cache_read,
                                    t.cache_create(),
                                    cost,
                                    source.as_str(),
                                    extras(u),
                                    t.reasoning,
                                    u.speed
                                ])?;
                            self.conn
                                .prepare_cached(
                                    "UPDATE live_usage_keys SET total = ?2 WHERE key = ?1",
                                )?
                                .execute(params![key, total])?;
                            committed.cost += cost - old_cost;
                        }
                        Some(_) => {}
                    }
                }
                Record::ToolUse(t) => {
                    let msg_id = match msg_ids.get(&t.seq) {
                        Some(id) => *id,
                        None => {
                            let ts = if t.ts.is_empty() {
                                crate::time::format_ts_z(now)
                            } else {
                                t.ts.clone()
                            };
                            let id = self.placeholder_message(session_fk, t.seq, &ts)?;
                            msg_ids.insert(t.seq, id);
                            id
                        }
                    };
                    let ts_ms = parse_ts_ms(&t.ts).unwrap_or(now);
                    let ts = if t.ts.is_empty() {
                        crate::time::format_ts_z(now)
                    } else {
                        t.ts.clone()
                    };
                    let session = t.session_id.clone().unwrap_or_else(|| ctx.file_key.clone());
                    let mart_id: Option<i64> = self
                        .conn
                        .prepare_cached(
                            "INSERT INTO message_tool_mart(message_id, project_id, session_id, ts, day, tool_name, file_path, byte_count, call_index)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                             ON CONFLICT(message_id, tool_name, call_index) DO NOTHING RETURNING id",
                        )?
                        .query_row(
                            params![msg_id, project_id, session, ts, utc_day(ts_ms), t.tool_name, t.file_path, t.byte_count, t.call_index],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let (Some(mart_id), None) = (mart_id, t.byte_count) {
                        self.conn
                            .prepare_cached("INSERT OR REPLACE INTO live_tool_ids(tool_use_id, mart_id) VALUES (?1, ?2)")?
                            .execute(params![t.id, mart_id])?;
                    }
                    if let Some(ms) = parse_ts_ms(&t.ts) {
                        marks.push(ToolMark::Use {
                            id: t.id.clone(),
                            name: t.tool_name.clone(),
                            ts_ms: ms,
                        });
                    }
                }
                Record::ToolResult(r) => {
                    self.conn
                        .prepare_cached(
                            "UPDATE message_tool_mart SET byte_count = ?2
                             WHERE id = (SELECT mart_id FROM live_tool_ids WHERE tool_use_id = ?1) AND byte_count IS NULL",
                        )?
                        .execute(params![r.tool_use_id, r.result_bytes])?;
                    self.conn
                        .prepare_cached("DELETE FROM live_tool_ids WHERE tool_use_id = ?1")?
                        .execute([&r.tool_use_id])?;
                    if let Some(ms) = parse_ts_ms(&r.ts) {
                        marks.push(ToolMark::Result {
                            id: r.tool_use_id.clone(),
                            ts_ms: ms,
                            duration_ms: r.duration_ms,
                        });
                    }
                }
            }
        }
        self.conn
            .prepare_cached(
                "INSERT INTO ingest_log(file_path, provider, session_id, mtime, size, processed_offset, last_ingest_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(file_path) DO UPDATE SET mtime = excluded.mtime, size = excluded.size,
                   processed_offset = excluded.processed_offset, last_ingest_ts = excluded.last_ingest_ts",
            )?
            .execute(params![
                ctx.path,
                ctx.provider.as_str(),
                ctx.file_key,
                chunk.mtime,
                chunk.size as i64,
                chunk.end_offset as i64,
                now as f64 / 1000.0
            ])?;
        Ok((marks, committed))
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_message(
        &mut self,
        session_fk: i64,
        seq: u64,
        ts: &str,
        role: &str,
        model: Option<&str>,
        m: &crate::transcript::MessageRec,
        raw: &str,
    ) -> rusqlite::Result<i64> {
        let id: Option<i64> = self
            .conn
            .prepare_cached(
                "INSERT INTO messages_unknown(session_fk, seq, timestamp, role, model, input_tokens, output_tokens,
                   cache_create_tokens, cache_read_tokens, content_text, tools_json, raw_json, is_sidechain, uuid,
                   parent_uuid, speed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT(session_fk, seq) DO NOTHING RETURNING id",
            )?
            .query_row(
                params![
                    session_fk,
                    seq as i64,
                    ts,
                    role,
                    model,
                    m.tokens.input,
                    m.tokens.output,
                    m.tokens.cache_create(),
                    m.tokens.cache_read,
                    m.content_text,
                    m.tools_json,
                    raw,
                    m.is_sidechain,
                    m.uuid,
                    m.parent_uuid,
                    m.speed
                ],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Ok(id),
            None => self.existing_message(session_fk, seq),
        }
    }

    fn existing_message(&self, session_fk: i64, seq: u64) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("SELECT id FROM messages_unknown WHERE session_fk = ?1 AND seq = ?2")?
            .query_row(params![session_fk, seq as i64], |r| r.get(0))
    }

    /// A message row for a line that carried usage or a tool call but no
    /// message of its own (no timestamp), so foreign keys have a target.
    fn placeholder_message(
        &mut self,
        session_fk: i64,
        seq: u64,
        ts: &str,
    ) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO messages_unknown(session_fk, seq, timestamp, role, raw_json) VALUES (?1, ?2, ?3, 'assistant', '')
                 ON CONFLICT(session_fk, seq) DO NOTHING",
            )?
            .execute(params![session_fk, seq as i64, ts])?;
        self.existing_message(session_fk, seq)
    }
}

/// `raw_extras`: what the upstream columns cannot hold (the 5-minute / 1-hour
/// split of cache writes, the de-duplication key, sidechain).
fn extras(u: &crate::transcript::UsageRec) -> String {
    serde_json::json!({
        "cache_write_5m": u.tokens.cache_write_5m,
        "cache_write_1h": u.tokens.cache_write_1h,
        "key": u.key,
        "sidechain": u.is_sidechain,
    })
    .to_string()
}
