//! Scenario `backfill`: the daemon's first start on a heavy user's
//! transcripts. How fast it reads a gigabyte of history into a fresh store,
//! and what that costs in memory and CPU.
//!
//! The corpus is the shipped Claude and Codex transcripts repeated, with
//! ids tagged per copy so de-duplication keeps every copy, in the agents'
//! layout: a project directory per copy of each Claude project (session
//! files and `…/subagents/agent-*.jsonl` inside), Codex rollouts in
//! `YYYY/MM/DD` folders ([`corpus::build`], cached in `target/bench-data/`).
//! It is read once before the daemon starts, so the page cache holds it and
//! the run measures the daemon rather than the disk.
//!
//! The daemon starts in ingest mode on it with a fresh store; the figure is
//! spawn → its `backfill done in X s` log line (the log is read every
//! 20 ms), next to the daemon's own X. No SSE client is connected, as on a
//! first start with no browser open.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::corpus;
use crate::daemon::{self, Daemon, IngestRoots, Scratch};
use crate::procfs::{self, Sampler};
use crate::report::{self, mib, Table};
use crate::Ctx;

/// What to run.
pub struct Opts {
    /// Corpus size, MiB.
    pub size_mib: u64,
    /// Where the corpus is cached.
    pub data_dir: PathBuf,
    /// Most seconds to wait for the backfill to end.
    pub timeout_secs: u64,
}

/// The last line of the daemon's log that contains `needle`.
fn last_line(d: &Daemon, needle: &str) -> Option<String> {
    d.log_lines(needle).pop()
}

/// The number before `after` in `line`: `"…, 123 lines, …"`, `"lines"` → 123.
fn number_before(line: &str, after: &str) -> Option<f64> {
    let i = line.find(after)?;
    line[..i].split_whitespace().last()?.parse().ok()
}

/// The number after `before` in `line`: `"backfill done in 3.2 s"`, `"in"` → 3.2.
fn number_after(line: &str, before: &str) -> Option<f64> {
    let i = line.find(before)? + before.len();
    line[i..].split_whitespace().next()?.parse().ok()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// How often the log is read while the backfill runs.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// Progress points: when a progress line was seen, and its line count.
type Curve = Vec<(Instant, f64)>;

/// Waits (at most `timeout`, while the daemon lives) for the `backfill
/// done` line, noting each new progress line's line count with the instant
/// it was seen. Returns the done line, when it was seen, and the curve.
fn watch(d: &mut Daemon, timeout: Duration) -> Option<(String, Instant, Curve)> {
    let t0 = Instant::now();
    let mut curve: Curve = Vec::new();
    while t0.elapsed() < timeout && d.alive() {
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        if let Some(l) = log.lines().find(|l| l.contains("backfill done in")) {
            return Some((l.to_string(), Instant::now(), curve));
        }
        let last = log
            .lines()
            .rev()
            .find(|l| l.contains(" lines, "))
            .and_then(|l| number_before(l, "lines,"));
        if let Some(n) = last.filter(|n| curve.last().is_none_or(|c| c.1 != *n)) {
            curve.push((Instant::now(), n));
        }
        thread::sleep(WATCH_EVERY);
    }
    None
}

/// Lines/s over the first and the last quarter of the lines, from the
/// progress curve (each point seen within [`WATCH_EVERY`] of its printing;
/// the daemon prints one a second).
fn quarter_rates(curve: &[(Instant, f64)], start: Instant, end: Instant, total: f64) -> (f64, f64) {
    let first = curve
        .iter()
        .find(|(_, n)| *n >= total / 4.0)
        .map_or(f64::NAN, |(t, n)| n / t.duration_since(start).as_secs_f64());
    let last = curve
        .iter()
        .find(|(_, n)| *n >= total * 3.0 / 4.0)
        .map_or(f64::NAN, |(t, n)| {
            (total - n) / end.duration_since(*t).as_secs_f64()
        });
    (first, last)
}

/// A lines/s figure, or "–".
fn rate(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "–".into()
    }
}

/// Rows in the store after the run: (usage events, tool calls, messages).
fn store_rows(store: &Path) -> rusqlite::Result<(i64, i64, i64)> {
    let c = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.query_row(
        "SELECT (SELECT count(*) FROM usage_events), (SELECT count(*) FROM message_tool_mart),
                (SELECT count(*) FROM messages_unknown)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Runs the scenario and returns its Markdown block.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<String, String> {
    std::fs::create_dir_all(&o.data_dir).map_err(|e| format!("{}: {e}", o.data_dir.display()))?;
    // Absolute, as a user's roots are (the daemon stores each file's path).
    let data_dir = o
        .data_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", o.data_dir.display()))?;
    let c = corpus::build(&data_dir, o.size_mib)?;
    if c.built_in > Duration::ZERO {
        eprintln!(
            "backfill: corpus written in {:.1} s",
            c.built_in.as_secs_f64()
        );
    }
    let warmed = corpus::warm(&c);
    let head = report::block_head(&format!(
        "backfill: first start on {:.0} MiB of transcripts",
        c.bytes as f64 / 1048576.0
    ));
    let scratch = Scratch::new("backfill")?;
    let roots = IngestRoots {
        claude: c.claude(),
        codex: c.codex(),
        store: scratch.join("live.db"),
    };
    eprintln!(
        "backfill: {} files, {} lines, {:.0} MiB; starting the daemon",
        c.files,
        c.lines,
        c.bytes as f64 / 1048576.0
    );
    let mut d = Daemon::start_ingest(
        &ctx.daemon,
        &roots,
        64,
        &scratch.join("daemon.log"),
        Duration::from_secs(60),
    )?;
    let sampler = Sampler::start(d.pid);
    let done = watch(&mut d, Duration::from_secs(o.timeout_secs));
    let peak = sampler.stop();
    let Some((done_line, done_at, curve)) = done else {
        let alive = d.alive();
        d.stop();
        return Err(format!(
            "no `backfill done` within {} s (daemon {}); log:\n{}",
            o.timeout_secs,
            if alive { "still running" } else { "exited" },
            daemon::tail(&d.log, 10)
        ));
    };
    let wall = done_at.duration_since(d.spawned).as_secs_f64();
    let ticks = procfs::cpu_ticks(d.pid).unwrap_or(0);
    let threads = procfs::thread_cpu(d.pid);
    let (rchar, wchar) = procfs::io_chars(d.pid).unwrap_or_default();
    let end = procfs::sample(d.pid).unwrap_or_default();
    let own_secs = number_after(&done_line, "backfill done in").unwrap_or(f64::NAN);
    let progress = last_line(&d, " lines, ").unwrap_or_default();
    let lines = number_before(&progress, "lines,").unwrap_or(f64::NAN);
    let events = number_before(&progress, "usage events").unwrap_or(f64::NAN);
    let store_bytes = file_len(&roots.store);
    let wal_bytes = file_len(&roots.store.with_extension("db-wal"));
    let startup = d.startup.as_secs_f64();
    let (q1, q4) = quarter_rates(&curve, d.spawned + d.startup, done_at, lines);
    d.stop();
    let (ev_rows, tool_rows, msg_rows) = store_rows(&roots.store).unwrap_or((-1, -1, -1));

    let cpu_secs = ticks as f64 / procfs::clk_tck();
    let mb = c.bytes as f64 / 1048576.0;
    let mut s = head;
    s.push_str(&format!(
        "Corpus: {} copies of the shipped Claude and Codex transcripts, ids tagged per copy: {} files \
         ({} of them sub-agent transcripts) in {} Claude project directories and {} Codex day folders, \
         {} lines, {:.0} MiB ({:.0} bytes per line on average), cached in `{}` and read once before \
         the start ({:.0} MiB), so it came from the page cache. The daemon started in ingest mode on \
         it with a fresh store and no SSE client.\n\n",
        c.copies,
        c.files,
        c.subagent_files,
        c.projects,
        c.copies,
        c.lines,
        mb,
        c.bytes as f64 / c.lines.max(1) as f64,
        o.data_dir.join(c.dir.file_name().unwrap_or_default()).display(),
        warmed as f64 / 1048576.0,
    ));
    let mut t = Table::new(&[
        "spawn → `backfill done` s",
        "daemon's own backfill s",
        "lines",
        "lines/s",
        "MiB/s",
        "usage events",
        "peak RSS MiB",
        "CPU s (% of one core)",
    ]);
    t.row(vec![
        format!("{wall:.1}"),
        format!("{own_secs:.1}"),
        format!("{lines:.0}"),
        format!("{:.0}", lines / own_secs),
        format!("{:.1}", mb / own_secs),
        format!("{events:.0}"),
        mib(end.hwm_kib.max(peak.hwm_kib)),
        format!("{cpu_secs:.1} ({:.0} %)", cpu_secs / wall * 100.0),
    ]);
    s.push_str(&t.render());
    s.push_str(&format!(
        "\nTarget ≥ 100,000 lines/s. Rates are over the daemon's own backfill time (from its first \
         directory listing to its last commit); spawn → address printed took {startup:.2} s; over spawn → `backfill done` \
         it is {:.0} lines/s. At {:.0} bytes per line, 100,000 lines/s means {:.0} MiB/s of JSON. One \
         response in the shipped set has redacted ids (`[REDACTED]`), which tagging cannot make \
         unique, so it counts once for all copies. As the store grows: {} lines/s over the first \
         quarter of the lines, {} over the last (from the daemon's once-a-second progress lines; – \
         when the run was too short to tell).\n\n",
        lines / wall,
        c.bytes as f64 / c.lines.max(1) as f64,
        100_000.0 * c.bytes as f64 / c.lines.max(1) as f64 / 1048576.0,
        rate(q1),
        rate(q4),
    ));
    s.push_str(&format!(
        "Store afterwards: {:.1} MiB (+ {:.1} MiB WAL); {ev_rows} usage events, {tool_rows} tool calls, \
         {msg_rows} messages; the store is {:.1} % of the transcripts' size. Daemon at the end: RSS {} \
         MiB, {} threads. CPU by thread: {}. The daemon read {:.0} MiB and wrote {:.0} MiB through \
         system calls (`rchar`/`wchar` of `/proc/PID/io`): {:.1}× the store's final size written, \
         the WAL and its checkpoints into the store included.\n\n",
        store_bytes as f64 / 1048576.0,
        wal_bytes as f64 / 1048576.0,
        (store_bytes + wal_bytes) as f64 / c.bytes.max(1) as f64 * 100.0,
        mib(end.rss_kib),
        end.threads,
        threads
            .iter()
            .filter(|(_, t)| *t > 0)
            .take(5)
            .map(|(n, t)| format!("{n} {:.1} s", *t as f64 / procfs::clk_tck()))
            .collect::<Vec<_>>()
            .join(", "),
        rchar as f64 / 1048576.0,
        wchar as f64 / 1048576.0,
        wchar as f64 / (store_bytes + wal_bytes).max(1) as f64,
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_progress_and_done_lines() {
        let p = "backfill: 12/12 files, 2243 lines, 583 usage events, $12.34";
        assert_eq!(number_before(p, "lines,"), Some(2243.0));
        assert_eq!(number_before(p, "usage events"), Some(583.0));
        let done = "2026-01-01T00:00:00Z INFO backfill done in 3.2 s";
        assert_eq!(number_after(done, "backfill done in"), Some(3.2));
    }
}
