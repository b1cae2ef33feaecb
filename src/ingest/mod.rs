//! Ingest mode: tails Claude Code and Codex transcripts into our own store.
//!
//! Owns the transcript roots, the per-file read offsets and parsers, and the
//! "ingest" thread. The thread first backfills every existing file (the HTTP
//! server is already answering; `/healthz` says "backfilling"), then sleeps
//! until a file-change notification (inotify / FSEvents through `notify`)
//! names a transcript, reads only the bytes past the file's committed
//! offset, parses the complete lines, and hands them to the [`writer`] in
//! one transaction per chunk. A slow safety-net scan finds files whose
//! notification was lost and roots that appear later.
//!
//! Architecture Invariant: a line is processed only once its `\n` has been
//! written; a half-written last line stays in the file until it is whole.
//!
//! Architecture Invariant: the tailer never talks to clients or the hub
//! except through the writer's committed batches.

pub mod demo;
pub mod writer;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use notify::{RecursiveMode, Watcher as _};

use crate::hub::HubMsg;
use crate::state::Shared;
use crate::transcript::{FileParser, Provider, Record};
use crate::{debug, info, warn};
use writer::{Chunk, FileCtx, Writer};

/// Safety-net scan of the roots while a root has no change notification
/// (missing yet, or a file system without it): a `stat` per file, so new
/// lines are still found within two seconds.
pub const SAFETY_SCAN: Duration = Duration::from_secs(2);

/// The same scan while every root is watched: it only catches a lost
/// notification, and a heavy user's thousands of files cost a visible
/// fraction of a core if stat'ed every two seconds, so it runs rarely.
pub const SAFETY_SCAN_WATCHED: Duration = Duration::from_secs(30);

/// Most bytes read for one transaction. Bounds memory and transaction size
/// during backfill; a live append is far smaller.
pub const CHUNK_BYTES: usize = 8 << 20;

/// Longest line accepted. A longer one (a runaway tool result) is skipped
/// as malformed rather than buffered without bound.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Pause before retrying a file whose commit failed (locked store, full disk).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Interval of the progress line during backfill.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A transcript root and who writes it.
#[derive(Debug, Clone)]
pub struct Root {
    /// `~/.claude/projects` or `~/.codex/sessions`.
    pub dir: PathBuf,
    /// The agent.
    pub provider: Provider,
}

/// The default roots: `$CLAUDE_CONFIG_DIR/projects` (else
/// `~/.claude/projects`) and `$CODEX_HOME/sessions` (else
/// `~/.codex/sessions`), unless overridden.
pub fn default_roots(
    claude_dir: Option<PathBuf>,
    codex_dir: Option<PathBuf>,
    home: &Path,
) -> Vec<Root> {
    let env_dir = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let claude = claude_dir.unwrap_or_else(|| {
        env_dir("CLAUDE_CONFIG_DIR")
            .unwrap_or_else(|| home.join(".claude"))
            .join("projects")
    });
    let codex = codex_dir.unwrap_or_else(|| {
        env_dir("CODEX_HOME")
            .unwrap_or_else(|| home.join(".codex"))
            .join("sessions")
    });
    vec![
        Root {
            dir: claude,
            provider: Provider::Claude,
        },
        Root {
            dir: codex,
            provider: Provider::Codex,
        },
    ]
}

/// One transcript file being tailed.
struct Tracked {
    ctx: FileCtx,
    /// Offset just past the last committed line.
    offset: u64,
    parser: FileParser,
}

impl Tracked {
    fn new(path: &Path, root: &Root, offset: u64) -> Tracked {
        let rel = path.strip_prefix(&root.dir).unwrap_or(path);
        let project_slug = match root.provider {
            Provider::Claude => rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default(),
            Provider::Codex => String::new(),
        };
        let project_slug = if project_slug.ends_with(".jsonl") {
            "unknown".to_string()
        } else {
            project_slug
        };
        let file_key = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Tracked {
            ctx: FileCtx {
                path: path.to_string_lossy().into_owned(),
                provider: root.provider,
                project_slug,
                file_key,
            },
            offset,
            parser: FileParser::new(root.provider),
        }
    }
}

/// Every `*.jsonl` under `dir`, recursively (sub-agent files included).
pub fn find_transcripts(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => find_transcripts(&p, out),
            Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "jsonl") => out.push(p),
            _ => {}
        }
    }
}

/// What one chunk did.
enum Step {
    /// Committed; more bytes wait.
    More,
    /// Nothing (more) to read now.
    Done,
    /// The commit failed; retry later.
    Failed,
}

/// Reads from `offset` up to [`CHUNK_BYTES`] (more if a single line is
/// longer, up to [`MAX_LINE_BYTES`]); `None` when no complete line is there.
/// A line longer than the maximum is skipped (counted as malformed) by
/// returning a buffer that ends at its newline with the line blanked.
fn read_complete_lines(path: &Path, offset: u64, size: u64, shared: &Shared) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let avail = (size - offset) as usize;
    let mut buf = Vec::new();
    (&mut file)
        .take(avail.min(CHUNK_BYTES) as u64)
        .read_to_end(&mut buf)
        .ok()?;
    if buf.contains(&b'\n') {
        return Some(buf);
    }
    if avail <= buf.len() {
        return None; // the whole rest is one unfinished line
    }
    // One long line: read on to its end, within the maximum.
    (&mut file)
        .take((avail.min(MAX_LINE_BYTES) - buf.len()) as u64)
        .read_to_end(&mut buf)
        .ok()?;
    if buf.contains(&b'\n') {
        return Some(buf);
    }
    if avail <= MAX_LINE_BYTES {
        return None;
    }
    // Longer than we hold: find its end and skip it.
    let mut skipped = buf.len();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(i) = memchr::memchr(b'\n', &block[..n]) {
            skipped += i;
            break;
        }
        skipped += n;
    }
    shared
        .metrics
        .malformed_lines
        .fetch_add(1, Ordering::Relaxed);
    warn!(
        "{}: line at byte {offset} longer than {MAX_LINE_BYTES} bytes skipped",
        path.display()
    );
    let mut blank = vec![b' '; skipped];
    blank.push(b'\n');
    Some(blank)
}

/// Splits `buf` (bytes from `base`) into complete lines and feeds them to the
/// parser. Returns the offset just past the last complete line.
fn parse_lines(t: &mut Tracked, buf: &[u8], base: u64, chunk: &mut Chunk, shared: &Shared) -> u64 {
    let mut pos = 0usize;
    let mut scratch = Vec::new();
    while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
        let line = &buf[pos..pos + nl];
        let seq = base + pos as u64;
        scratch.clear();
        match t.parser.feed_line(seq, line, &mut scratch) {
            Ok(()) => {
                if scratch
                    .iter()
                    .any(|r| matches!(r, Record::ToolUse(_) | Record::ToolResult(_)))
                {
                    // The parser accepted the line, so it is UTF-8: the
                    // lossy path (slow, copying) is only a fallback.
                    let text = match std::str::from_utf8(line) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(line).into_owned(),
                    };
                    chunk.raw_lines.insert(seq, text);
                }
                chunk.records.append(&mut scratch);
            }
            Err(e) => {
                shared
                    .metrics
                    .malformed_lines
                    .fetch_add(1, Ordering::Relaxed);
                warn!("{}: line at byte {seq} skipped: {e}", t.ctx.path);
            }
        }
        pos += nl + 1;
    }
    base + pos as u64
}

fn mtime_secs(meta: &std::fs::Metadata) -> f64 {
    meta.modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Running totals for the progress line and `/healthz`.
#[derive(Debug, Default)]
struct Progress {
    files: usize,
    lines: u64,
    events: usize,
    cost: f64,
}

/// The ingest thread's state.
pub struct Ingest {
    roots: Vec<Root>,
    writer: Writer,
    files: HashMap<PathBuf, Tracked>,
    offsets: HashMap<String, u64>,
    shared: Arc<Shared>,
    hub: Sender<HubMsg>,
    progress: Progress,
}

impl Ingest {
    /// Prepares ingest over `roots` with an opened writer.
    pub fn new(
        roots: Vec<Root>,
        writer: Writer,
        shared: Arc<Shared>,
        hub: Sender<HubMsg>,
    ) -> rusqlite::Result<Ingest> {
        let offsets = writer.offsets()?;
        Ok(Ingest {
            roots,
            writer,
            files: HashMap::new(),
            offsets,
            shared,
            hub,
            progress: Progress::default(),
        })
    }

    fn root_of(&self, path: &Path) -> Option<Root> {
        self.roots
            .iter()
            .find(|r| path.starts_with(&r.dir))
            .cloned()
    }

    fn tracked(&mut self, path: &Path) -> Option<&mut Tracked> {
        if !self.files.contains_key(path) {
            let root = self.root_of(path)?;
            let key = path.to_string_lossy().into_owned();
            let offset = self.offsets.get(&key).copied().unwrap_or(0);
            let mut t = Tracked::new(path, &root, offset);
            if offset > 0 && root.provider == Provider::Codex {
                warm_up(&mut t, &self.shared);
            }
            self.files.insert(path.to_path_buf(), t);
        }
        self.files.get_mut(path)
    }

    /// Reads and commits everything new in `path`. Returns false when a
    /// commit failed and the file should be retried.
    pub fn process(&mut self, path: &Path) -> bool {
        loop {
            match self.process_chunk(path) {
                Step::More => continue,
                Step::Done => return true,
                Step::Failed => return false,
            }
        }
    }

    /// Reads, parses and commits one chunk of `path`.
    fn process_chunk(&mut self, path: &Path) -> Step {
        let shared = self.shared.clone();
        let Some(t) = self.tracked(path) else {
            return Step::Done;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return Step::Done; // deleted: nothing to read
        };
        let size = meta.len();
        if size < t.offset {
            info!(
                "{} shrank ({} < {}): reading it again from the start",
                t.ctx.path, size, t.offset
            );
            t.offset = 0;
            t.parser = FileParser::new(t.ctx.provider);
        }
        if size == t.offset {
            return Step::Done;
        }
        let Some(buf) = read_complete_lines(path, t.offset, size, &shared) else {
            return Step::Done; // the last line is still being written
        };
        let before = t.parser.clone();
        let mut chunk = Chunk {
            size,
            mtime: mtime_secs(&meta),
            ..Chunk::default()
        };
        let start = t.offset;
        chunk.end_offset = parse_lines(t, &buf, start, &mut chunk, &shared);
        let lines =
            memchr::memchr_iter(b'\n', &buf[..(chunk.end_offset - start) as usize]).count() as u64;
        let ctx = t.ctx.clone();
        match self.writer.apply(&ctx, &chunk, &shared) {
            Ok((batch, committed)) => {
                let t = self.files.get_mut(path).expect("tracked above");
                t.offset = chunk.end_offset;
                if t.ctx.project_slug.is_empty() {
                    // Codex: the project is known once the session's cwd was seen.
                    t.ctx.project_slug = chunk
                        .records
                        .iter()
                        .find_map(|r| match r {
                            Record::Message(m) => {
                                m.cwd.as_deref().map(|c| c.replace(['/', '\\', '.'], "-"))
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                }
                self.progress.lines += lines;
                self.progress.events += committed.events;
                self.progress.cost += committed.cost;
                shared.set_feed_error("ingest", None);
                if !batch.is_empty() && self.hub.send(HubMsg::Batch(batch)).is_err() {
                    return Step::Done; // the hub stopped: shutting down
                }
                self.writer.checkpoint_if_due();
                if t.offset < size {
                    Step::More
                } else {
                    Step::Done
                }
            }
            Err(e) => {
                self.files.get_mut(path).expect("tracked above").parser = before;
                shared.set_feed_error("ingest", Some(format!("writing {}: {e}", ctx.path)));
                Step::Failed
            }
        }
    }

    fn backfill(&mut self) {
        let started = Instant::now();
        let mut all = Vec::new();
        for r in &self.roots {
            find_transcripts(&r.dir, &mut all);
        }
        all.sort();
        let total = all.len();
        info!(
            "backfill: {total} transcript files under {}",
            self.roots
                .iter()
                .map(|r| r.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut last = Instant::now();
        for (i, p) in all.iter().enumerate() {
            if self.shared.stopping() {
                return;
            }
            while !self.process(p) {
                if self.shared.stopping() {
                    return;
                }
                thread::sleep(RETRY_AFTER);
            }
            self.progress.files = i + 1;
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                self.print_progress(total);
            }
        }
        self.print_progress(total);
        info!("backfill done in {:.1} s", started.elapsed().as_secs_f64());
    }

    fn print_progress(&self, total: usize) {
        let p = &self.progress;
        eprintln!(
            "backfill: {}/{} files, {} lines, {} usage events, ${:.2}",
            p.files, total, p.lines, p.events, p.cost
        );
    }

    /// Every known or newly found file whose size differs from its offset.
    fn stale_files(&self) -> Vec<PathBuf> {
        let mut all = Vec::new();
        for r in &self.roots {
            find_transcripts(&r.dir, &mut all);
        }
        all.into_iter()
            .filter(|p| {
                let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                let offset = self.files.get(p).map(|t| t.offset).unwrap_or_else(|| {
                    self.offsets
                        .get(&*p.to_string_lossy())
                        .copied()
                        .unwrap_or(0)
                });
                size != offset
            })
            .collect()
    }
}

/// Feeds a Codex file's already committed lines to its parser without
/// writing, so the running token total and model are right after a restart.
fn warm_up(t: &mut Tracked, shared: &Shared) {
    let Ok(f) = File::open(&t.ctx.path) else {
        return;
    };
    let mut buf = Vec::new();
    if f.take(t.offset).read_to_end(&mut buf).is_err() {
        return;
    }
    let mut chunk = Chunk::default();
    let malformed = shared.metrics.malformed_lines.load(Ordering::Relaxed);
    parse_lines(t, &buf, 0, &mut chunk, shared);
    // Those lines were counted when first read.
    shared
        .metrics
        .malformed_lines
        .store(malformed, Ordering::Relaxed);
}

/// Starts the ingest thread: backfill, then follow the roots.
pub fn spawn(mut ingest: Ingest) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("ingest".into()).spawn(move || {
        let shared = ingest.shared.clone();
        let (tx, rx) = unbounded::<PathBuf>();
        let mut watchers = Vec::new();
        let mut watched: Vec<bool> = vec![false; ingest.roots.len()];
        watch_roots(&ingest.roots, &mut watched, &mut watchers, &tx);
        // `watcher.running` follows this thread's life, however it ends
        // (a panic unwinds through the guard too).
        struct Alive(Arc<Shared>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.ingest_alive.store(false, Ordering::SeqCst);
            }
        }
        shared.ingest_alive.store(true, Ordering::SeqCst);
        let _alive = Alive(shared.clone());
        shared.backfilling.store(true, Ordering::SeqCst);
        ingest.backfill();
        shared.backfilling.store(false, Ordering::SeqCst);
        if ingest.progress.files == 0 {
            info!("no transcripts yet; waiting for the agents to write some (or run with --demo)");
        }
        run(&mut ingest, &rx, &tx, &mut watched, &mut watchers);
    })
}

fn watch_roots(
    roots: &[Root],
    watched: &mut [bool],
    watchers: &mut Vec<notify::RecommendedWatcher>,
    tx: &Sender<PathBuf>,
) {
    for (i, r) in roots.iter().enumerate() {
        if watched[i] || !r.dir.is_dir() {
            continue;
        }
        let tx = tx.clone();
        let w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                // Reads (ours included) change nothing.
                if matches!(ev.kind, notify::EventKind::Access(_)) {
                    return;
                }
                let created = matches!(ev.kind, notify::EventKind::Create(_));
                for p in ev.paths {
                    // A new directory (a new project, a sub-agent folder) may
                    // hold files written before its watch was added: the
                    // tailer lists it.
                    if p.extension().is_some_and(|x| x == "jsonl") || (created && p.is_dir()) {
                        let _ = tx.send(p);
                    }
                }
            }
        })
        .and_then(|mut w| w.watch(&r.dir, RecursiveMode::Recursive).map(|_| w));
        match w {
            Ok(w) => {
                watchers.push(w);
                watched[i] = true;
                debug!("watching {}", r.dir.display());
            }
            Err(e) => warn!(
                "no change notification for {} ({e}); scanning every {SAFETY_SCAN:?}",
                r.dir.display()
            ),
        }
    }
}

fn run(
    ingest: &mut Ingest,
    rx: &Receiver<PathBuf>,
    tx: &Sender<PathBuf>,
    watched: &mut [bool],
    watchers: &mut Vec<notify::RecommendedWatcher>,
) {
    let mut dirty: BTreeSet<PathBuf> = BTreeSet::new();
    let mut last_scan = Instant::now();
    while !ingest.shared.stopping() {
        let every = if watched.iter().all(|w| *w) {
            SAFETY_SCAN_WATCHED
        } else {
            SAFETY_SCAN
        };
        let wait = if dirty.is_empty() {
            every.saturating_sub(last_scan.elapsed())
        } else {
            RETRY_AFTER
        };
        select! {
            recv(rx) -> p => if let Ok(p) = p { dirty.insert(p); },
            default(wait) => {},
        }
        while let Ok(p) = rx.try_recv() {
            dirty.insert(p);
        }
        if last_scan.elapsed() >= every {
            last_scan = Instant::now();
            watch_roots(&ingest.roots.clone(), watched, watchers, tx);
            dirty.extend(ingest.stale_files());
        }
        let mut batch: Vec<PathBuf> = Vec::new();
        for p in std::mem::take(&mut dirty) {
            if p.is_dir() {
                find_transcripts(&p, &mut batch);
            } else {
                batch.push(p);
            }
        }
        for p in batch {
            if ingest.shared.stopping() {
                return;
            }
            if !ingest.process(&p) {
                dirty.insert(p);
            }
        }
    }
}
