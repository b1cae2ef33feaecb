//! The other process's side: a writer connection that commits usage events
//! the way upstream's ingest does (the message line, then its usage event,
//! in one transaction; WAL, `synchronous=NORMAL`), and the record of when
//! each commit returned.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rusqlite::{params, Connection};
use stackunderflow_live::time::{civil_from_days, format_ts_z, now_ms, utc_day, DAY_MS};

use crate::rng::Rng;

/// When each event's commit returned, by event id, as ns since `base`.
/// Written by the writer thread, read by client threads; 0 = not yet.
pub struct CommitLog {
    base: Instant,
    first_id: i64,
    times: Vec<AtomicU64>,
}

impl CommitLog {
    /// Room for ids `first_id .. first_id + cap`.
    pub fn new(base: Instant, first_id: i64, cap: usize) -> CommitLog {
        CommitLog {
            base,
            first_id,
            times: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Index of `id` (ids outside the log map to `u32::MAX`).
    pub fn offset(&self, id: i64) -> u32 {
        u32::try_from(id - self.first_id).unwrap_or(u32::MAX)
    }

    /// Records that `id`'s commit returned at `at`.
    pub fn record(&self, id: i64, at: Instant) {
        if let Some(slot) = self.times.get(self.offset(id) as usize) {
            // +1 so that 0 keeps meaning "not yet".
            slot.store(
                at.duration_since(self.base).as_nanos() as u64 + 1,
                Ordering::Release,
            );
        }
    }

    /// When `id`'s commit returned (ns since base), if recorded.
    pub fn get(&self, id: i64) -> Option<u64> {
        let v = self
            .times
            .get(self.offset(id) as usize)?
            .load(Ordering::Acquire);
        (v > 0).then(|| v - 1)
    }
}

/// `messages_YYYYMM` for an instant.
pub fn month_table(ms: i64) -> String {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("messages_{y:04}{m:02}")
}

/// A fresh upstream-shaped store at `dir/store.db` with one project and
/// one session.
pub fn new_store(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("store.db");
    stackunderflow_live::devtools::create_upstream_store(&path).map_err(|e| e.to_string())?;
    let conn = Connection::open(&path).map_err(|e| e.to_string())?;
    let now = now_ms() as f64 / 1000.0;
    conn.execute(
        "INSERT INTO projects(id, provider, slug, path, display_name, first_seen, last_modified)
         VALUES (1, 'claude', '-bench-project', '/bench/project', 'bench-project', ?1, ?1)",
        [now],
    )
    .map_err(|e| e.to_string())?;
    conn.execute(
        "INSERT INTO sessions(id, project_id, session_id) VALUES (1, 1, 'bench-session')",
        [],
    )
    .map_err(|e| e.to_string())?;
    Ok(path)
}

/// Models and a typical cost per event (USD), drawn at random per commit.
const MODELS: [(&str, f64); 3] = [
    ("claude-sonnet-4-5-20250929", 0.03),
    ("claude-opus-4-5-20251101", 0.09),
    ("claude-haiku-4-5-20251001", 0.004),
];

/// A read-write connection that appends usage events.
pub struct Writer {
    conn: Connection,
    rows: RowMaker,
}

/// What the next row looks like (kept apart from the connection so a
/// transaction can borrow one while the other changes).
struct RowMaker {
    table: String,
    seq: i64,
    rng: Rng,
}

impl Writer {
    /// Opens `store` for writing, as upstream's ingest would.
    pub fn open(store: &Path, seed: u64) -> rusqlite::Result<Writer> {
        let conn = Connection::open(store)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        let table = month_table(now_ms());
        let seq = conn.query_row(
            &format!("SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        Ok(Writer {
            conn,
            rows: RowMaker {
                table,
                seq,
                rng: Rng::new(seed),
            },
        })
    }
}

impl RowMaker {
    /// Appends one message and its usage event; returns the event id.
    fn append(&mut self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
        let now = now_ms();
        let ts = format_ts_z(now);
        let (model, cost) = MODELS[self.rng.weighted(&[0.69, 0.28, 0.03])];
        let cost = cost * self.rng.lognormal(1.0, 0.6);
        tx.prepare_cached("INSERT INTO _messages_id_seq DEFAULT VALUES")?
            .execute([])?;
        let mid = tx.last_insert_rowid();
        let raw = format!(
            r#"{{"type":"assistant","timestamp":"{ts}","sessionId":"bench-session","message":{{"role":"assistant","model":"{model}","content":[{{"type":"text","text":"ok"}}]}}}}"#
        );
        tx.prepare_cached(&format!(
            "INSERT INTO {}(id, session_fk, seq, timestamp, role, model, raw_json) VALUES (?1, 1, ?2, ?3, 'assistant', ?4, ?5)",
            self.table
        ))?
        .execute(params![mid, self.seq, ts, model, raw])?;
        self.seq += 1;
        tx.prepare_cached(
            "INSERT INTO usage_events(source_message_fk, provider, project_id, session_id, ts, day, model,
               input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, cost_usd, cost_source, role)
             VALUES (?1, 'claude', 1, 'bench-session', ?2, ?3, ?4, 12, 320, 41000, 1500, ?5, 'rate_card', 'assistant')",
        )?
        .execute(params![mid, ts, utc_day(now), model, cost])?;
        Ok(tx.last_insert_rowid())
    }
}

impl Writer {
    /// Commits one usage event; returns its id once COMMIT has returned.
    pub fn commit_one(&mut self) -> rusqlite::Result<i64> {
        let tx = self.conn.unchecked_transaction()?;
        let id = self.rows.append(&tx)?;
        tx.commit()?;
        Ok(id)
    }

    /// Commits `n` usage events in one transaction (upstream ingests a
    /// whole transcript file per transaction); returns the first and last id.
    pub fn commit_burst(&mut self, n: usize) -> rusqlite::Result<(i64, i64)> {
        let tx = self.conn.unchecked_transaction()?;
        let mut first = 0;
        let mut last = 0;
        for i in 0..n {
            last = self.rows.append(&tx)?;
            if i == 0 {
                first = last;
            }
        }
        tx.commit()?;
        Ok((first, last))
    }
}
