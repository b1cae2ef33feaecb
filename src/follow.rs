//! Follow mode's change feed: notices another process's commits at once and
//! reads the new rows by id watermark.
//!
//! Owns the read-only connection to the followed store and the three
//! watermarks (usage events, tool calls, messages). Runs on the "follow"
//! thread. It sleeps until a file-change notification on the store's
//! directory (the `-wal` file grows on every commit in WAL mode), confirms
//! with `PRAGMA data_version`, and reads *every* new row in id order in
//! pages of [`PAGE_ROWS`], handing each page to the hub. A slow safety-net
//! poll covers lost notifications and file systems without them.
//!
//! Architecture Invariant: the follower never writes to the store and never
//! skips a row: rows are read by `id > watermark` until none are left,
//! however many a burst committed (upstream reads only the newest 100).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use notify::{RecursiveMode, Watcher as _};
use rusqlite::Connection;

use crate::hub::{FeedBatch, HubMsg};
use crate::latency::ToolMark;
use crate::seed::{self, marks_of_line};
use crate::state::Shared;
use crate::store::{self, StoreError, PAGE_ROWS};
use crate::{info, warn};

/// Safety-net poll while change notification works: it only bounds the
/// delay if a notification is ever lost. A wake-up (stat, `data_version`)
/// measured ~120 µs on a store whose writer is gone, so at 2 s it costs
/// under 0.01 % of a core.
pub const SAFETY_POLL: Duration = Duration::from_secs(2);

/// The poll when notification is unavailable: then it is the change feed,
/// so it runs fast enough to feel live.
pub const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// After a notification, SQLite may not have published the commit in the
/// WAL index yet (the `-wal` write comes first, the index update a few
/// microseconds later); re-check after these delays before going back to
/// sleep. A new notification cuts a wait short. Measured by the bench: a
/// first step of 1 ms, with sleeps that ignored new notifications, put the
/// follow-mode p99 at 10 ms; these steps bring it under 1 ms.
const RECHECK_AFTER: [Duration; 6] = [
    Duration::from_micros(100),
    Duration::from_micros(300),
    Duration::from_millis(1),
    Duration::from_millis(3),
    Duration::from_millis(10),
    Duration::from_millis(30),
];

/// The read side of a followed store.
pub struct Follower {
    path: PathBuf,
    conn: Connection,
    data_version: i64,
    has_messages: bool,
    /// Highest usage event id handed on.
    pub event_id: i64,
    /// Highest tool-call id handed on.
    pub tool_id: i64,
    /// Highest messages id scanned for tool marks.
    pub message_id: i64,
    inode: Option<u64>,
}

fn inode_of(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| m.ino())
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| 0)
    }
}

impl Follower {
    /// Opens `path` read-only, positioned at its current end.
    pub fn open(path: &Path) -> Result<Follower, StoreError> {
        let conn = store::open_read_only(path)?;
        let sq = |e| StoreError::Sqlite(path.to_path_buf(), e);
        let has_messages = store::has_relation(&conn, "messages").map_err(sq)?;
        let (e, t, m) = store::watermarks(&conn).map_err(sq)?;
        let dv = store::data_version(&conn).map_err(sq)?;
        Ok(Follower {
            path: path.to_path_buf(),
            conn,
            data_version: dv,
            has_messages,
            event_id: e,
            tool_id: t,
            message_id: m,
            inode: inode_of(path),
        })
    }

    /// Loads the rolling figures' history into `shared` (see [`seed`]).
    pub fn seed(&self, shared: &Shared) -> rusqlite::Result<()> {
        seed::seed(
            &self.conn,
            shared,
            self.event_id,
            self.tool_id,
            self.has_messages,
        )?;
        info!(
            "follow: {} at events {} / tool calls {}",
            self.path.display(),
            self.event_id,
            self.tool_id
        );
        Ok(())
    }

    /// Whether another connection committed since the last look.
    pub fn changed(&mut self) -> rusqlite::Result<bool> {
        let dv = store::data_version(&self.conn)?;
        let changed = dv != self.data_version;
        self.data_version = dv;
        Ok(changed)
    }

    /// Reads every row past the watermarks and hands them to the hub in
    /// pages. Returns the number of rows read.
    pub fn drain(&mut self, hub: &Sender<HubMsg>) -> rusqlite::Result<usize> {
        let mut total = 0;
        let seen_at = Instant::now();
        loop {
            let tx = self.conn.unchecked_transaction()?;
            let events = store::recent_events(&tx, self.event_id, PAGE_ROWS)?;
            let tools = store::recent_tool_calls(&tx, self.tool_id, PAGE_ROWS)?;
            let (lines, last_msg) = if self.has_messages {
                store::tool_messages_after(&tx, self.message_id, PAGE_ROWS)?
            } else {
                (Vec::new(), self.message_id)
            };
            tx.finish()?;
            let full = events.len() == PAGE_ROWS
                || tools.len() == PAGE_ROWS
                || last_msg - self.message_id >= PAGE_ROWS as i64;
            if let Some(r) = events.last() {
                self.event_id = r.id;
            }
            if let Some(r) = tools.last() {
                self.tool_id = r.id;
            }
            self.message_id = last_msg;
            let marks: Vec<ToolMark> = lines
                .iter()
                .flat_map(|l| marks_of_line(&l.raw_json))
                .collect();
            total += events.len() + tools.len();
            let batch = FeedBatch {
                events,
                tools,
                corrections: Vec::new(),
                marks,
                seen_at: Some(seen_at),
            };
            if !batch.is_empty() && hub.send(HubMsg::Batch(batch)).is_err() {
                break;
            }
            if !full {
                break;
            }
        }
        Ok(total)
    }
}

/// Starts the follow thread on an opened, seeded follower.
pub fn spawn(
    mut follower: Follower,
    shared: Arc<Shared>,
    hub: Sender<HubMsg>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("follow".into()).spawn(move || {
        let (wake_tx, wake_rx) = bounded::<()>(1);
        let name = follower
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = follower
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                // Opening or reading the store (our own /healthz does) is no
                // commit: only writes and renames wake the follower.
                if matches!(ev.kind, notify::EventKind::Access(_)) {
                    return;
                }
                if ev.paths.iter().any(|p| {
                    p.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(&name))
                }) {
                    let _ = wake_tx.try_send(());
                }
            }
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|_| w));
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(
                    "follow: no change notification for {} ({e}); polling every {FALLBACK_POLL:?}",
                    dir.display()
                );
                None
            }
        };
        let poll = if _watcher.is_some() {
            SAFETY_POLL
        } else {
            FALLBACK_POLL
        };
        run(&mut follower, &shared, &hub, &wake_rx, poll);
    })
}

fn run(
    f: &mut Follower,
    shared: &Shared,
    hub: &Sender<HubMsg>,
    wake: &Receiver<()>,
    poll: Duration,
) {
    let mut last_poll = Instant::now();
    while !shared.stopping() {
        let woke = select! {
            recv(wake) -> _ => true,
            default(poll) => false,
        };
        if shared.stopping() {
            break;
        }
        if !woke || last_poll.elapsed() >= poll {
            last_poll = Instant::now();
            if let Err(e) = check_file(f, shared, hub) {
                shared.set_feed_error("follow", Some(e));
                continue;
            }
        }
        match step(f, shared, hub, woke, wake) {
            Ok(()) => shared.set_feed_error("follow", None),
            Err(e) => {
                shared.set_feed_error("follow", Some(format!("reading {}: {e}", f.path.display())))
            }
        }
    }
}

/// One wake-up: confirm a commit happened and drain it.
fn step(
    f: &mut Follower,
    shared: &Shared,
    hub: &Sender<HubMsg>,
    woke: bool,
    wake: &Receiver<()>,
) -> rusqlite::Result<()> {
    let mut changed = f.changed()?;
    if !changed && woke {
        for d in RECHECK_AFTER {
            // Wait, but wake at once if another notification arrives.
            let _ = wake.recv_timeout(d);
            changed = f.changed()?;
            if changed {
                break;
            }
        }
    }
    if changed {
        f.drain(hub)?;
        *shared.last_ingest_ts.lock() = store::last_ingest_ts(&f.conn)?;
    }
    Ok(())
}

/// Notices a store that vanished or was replaced, and reopens it.
fn check_file(f: &mut Follower, shared: &Shared, hub: &Sender<HubMsg>) -> Result<(), String> {
    let inode = inode_of(&f.path);
    if inode.is_none() {
        return Err(format!("store {} is missing", f.path.display()));
    }
    if inode != f.inode {
        let mut fresh = Follower::open(&f.path).map_err(|e| e.to_string())?;
        warn!("follow: {} was replaced; reopened", f.path.display());
        // Rows of the new file past our watermarks are new; if it is
        // smaller, start from its end rather than wait for ids to catch up.
        let (e, t, m) = (fresh.event_id, fresh.tool_id, fresh.message_id);
        fresh.event_id = if e >= f.event_id { f.event_id } else { e };
        fresh.tool_id = if t >= f.tool_id { f.tool_id } else { t };
        fresh.message_id = if m >= f.message_id { f.message_id } else { m };
        let mut live = shared.live.lock();
        live.event_id = live.event_id.min(fresh.event_id);
        live.tool_id = live.tool_id.min(fresh.tool_id);
        drop(live);
        fresh.data_version = -1; // force a read
        if e < f.event_id || t < f.tool_id {
            // Clients hold ids the new store will reuse: make them resume.
            let _ = hub.send(HubMsg::Reset);
        }
        *f = fresh;
    }
    Ok(())
}
