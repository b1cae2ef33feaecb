//! State shared by every thread: the rolling figures, counters and flags.
//!
//! Owns [`Shared`]. The hub thread is the only writer of [`LiveState`]
//! (under its mutex, held for microseconds); HTTP workers and SSE client
//! threads read it. Counters are atomics so no hot path takes a lock to
//! count. Nothing here does I/O.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::burn::{rolling_burn, Burn, BurnLedger};
use crate::latency::{
    tool_latency_percentiles, LatencyWindow, ToolLatency, DEFAULT_WINDOW_HOURS, TOP_TOOLS,
};
use crate::watcher::{self, Watcher};

/// Which writer the daemon listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// We tail transcripts and write our own store.
    Ingest,
    /// Another process writes the store; we read it.
    Follow,
}

impl Mode {
    /// `ingest` / `follow`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Ingest => "ingest",
            Mode::Follow => "follow",
        }
    }
}

/// The rolling figures, updated by the hub from the change feed.
#[derive(Debug)]
pub struct LiveState {
    /// Event costs by instant.
    pub burn: BurnLedger,
    /// Paired tool latencies.
    pub latency: LatencyWindow,
    /// Highest `usage_events.id` published.
    pub event_id: i64,
    /// Highest `message_tool_mart.id` published.
    pub tool_id: i64,
    /// When the store last changed (Unix ms), if seen.
    pub last_change_ms: Option<i64>,
}

/// Why a client left; counted in `/metrics` by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// A write or flush failed: the client went away.
    WriteError = 1,
    /// Its queue filled: it could not keep up.
    Slow = 2,
    /// The daemon is stopping.
    Shutdown = 3,
    /// The followed store was replaced by one with lower ids: every client
    /// reconnects and resumes against the new store.
    Reset = 4,
}

impl Reason {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WriteError => "write_error",
            Reason::Slow => "slow",
            Reason::Shutdown => "shutdown",
            Reason::Reset => "store_reset",
        }
    }

    /// All reasons, for exporting counters.
    pub const ALL: [Reason; 4] = [
        Reason::WriteError,
        Reason::Slow,
        Reason::Shutdown,
        Reason::Reset,
    ];
}

/// Monotonic counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Frames written to clients (all kinds, heartbeats excluded).
    pub frames_sent: AtomicU64,
    /// Clients that ever connected.
    pub clients_total: AtomicU64,
    /// Clients reaped, by [`Reason`] (index = discriminant − 1).
    pub reaped: [AtomicU64; 4],
    /// Clients refused for the cap.
    pub refused_cap: AtomicU64,
    /// Rows published by the hub (events + tool calls).
    pub rows_published: AtomicU64,
    /// Malformed transcript lines skipped (ingest mode).
    pub malformed_lines: AtomicU64,
    /// Usage events whose model has no price (ingest mode).
    pub unknown_model_events: AtomicU64,
    /// Rows written by our ingest (ingest mode).
    pub rows_ingested: AtomicU64,
    /// Connections closed by the idle reaper (not a stream, open too long).
    pub idle_closed: AtomicU64,
    /// Seconds from the feed seeing a commit to a client's flush of it.
    pub commit_to_send: crate::usage::Histogram,
}

impl Metrics {
    /// Counts a reaped client.
    pub fn reaped(&self, reason: Reason) {
        self.reaped[reason as usize - 1].fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the threads share, behind one `Arc`.
#[derive(Debug)]
pub struct Shared {
    /// Ingest or follow.
    pub mode: Mode,
    /// The store file.
    pub store_path: PathBuf,
    /// The rolling figures.
    pub live: Mutex<LiveState>,
    /// Counters.
    pub metrics: Metrics,
    /// SSE client threads alive right now.
    pub clients: AtomicUsize,
    /// Set once on SIGTERM/SIGINT; every loop checks it.
    pub stop: AtomicBool,
    /// Set when the daemon stops because a part of it failed (the HTTP
    /// listener): the exit status is then 1, not 0.
    pub fatal: AtomicBool,
    /// Ingest mode: our watcher thread is alive and healthy.
    pub ingest_alive: AtomicBool,
    /// Ingest mode: still reading existing transcripts.
    pub backfilling: AtomicBool,
    /// The change feed's last error (locked store, vanished file, …), shown
    /// by `/healthz` until the feed recovers.
    pub feed_error: Mutex<Option<String>>,
    /// Newest `ingest_log.last_ingest_ts` seen by the follow feed (seconds).
    pub last_ingest_ts: Mutex<Option<f64>>,
    /// Cost and token counters by provider, model and project.
    pub usage: Mutex<crate::usage::UsageCounters>,
    /// Peers of the connections that are SSE streams (the idle reaper
    /// leaves them alone). Registered by each stream thread.
    pub stream_peers: Mutex<std::collections::HashSet<std::net::SocketAddr>>,
    /// Models seen without a price (ingest mode), for `/healthz`.
    pub unknown_models: Mutex<std::collections::BTreeSet<String>>,
    /// Unix ms of the last store change, for `/healthz` (mirrors LiveState
    /// but readable without the lock).
    pub last_change_ms: AtomicI64,
}

impl Shared {
    /// Fresh state for `mode` on `store_path`.
    pub fn new(mode: Mode, store_path: PathBuf) -> Self {
        Shared {
            mode,
            store_path,
            live: Mutex::new(LiveState {
                burn: BurnLedger::new(),
                latency: LatencyWindow::new(DEFAULT_WINDOW_HOURS),
                event_id: 0,
                tool_id: 0,
                last_change_ms: None,
            }),
            metrics: Metrics::default(),
            clients: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            fatal: AtomicBool::new(false),
            ingest_alive: AtomicBool::new(false),
            backfilling: AtomicBool::new(false),
            feed_error: Mutex::new(None),
            last_ingest_ts: Mutex::new(None),
            last_change_ms: AtomicI64::new(0),
            unknown_models: Mutex::new(Default::default()),
            stream_peers: Mutex::new(Default::default()),
            usage: Mutex::new(crate::usage::UsageCounters::new()),
        }
    }

    /// Records the change feed's condition for `/healthz` (`None` when
    /// healthy), logging only transitions: `feed` names the feed in the log
    /// line. One place for both feeds, so they report alike.
    pub fn set_feed_error(&self, feed: &str, err: Option<String>) {
        let mut slot = self.feed_error.lock();
        if *slot != err {
            match &err {
                Some(e) => crate::warn!("{feed}: {e}; retrying"),
                None => crate::info!("{feed}: recovered"),
            }
            *slot = err;
        }
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The `watcher.running` answer right now.
    pub fn watcher(&self) -> Watcher {
        match self.mode {
            Mode::Ingest => {
                if self.ingest_alive.load(Ordering::SeqCst) {
                    Watcher::Running
                } else {
                    Watcher::Stopped
                }
            }
            Mode::Follow => {
                let lock = self.store_path.with_file_name("server.lock");
                let now = crate::time::now_ms() as f64 / 1000.0;
                watcher::follow_state(&lock, *self.last_ingest_ts.lock(), now)
            }
        }
    }

    /// Burn figures for a viewer at `tz_offset_minutes`.
    pub fn burn(&self, now_ms: i64, tz_offset_minutes: i64) -> Burn {
        let live = self.live.lock();
        rolling_burn(&live.burn, now_ms, tz_offset_minutes, 5)
    }

    /// Top tool latencies and the published watermarks.
    pub fn latency_and_watermarks(&self, now_ms: i64) -> (Vec<ToolLatency>, i64, i64) {
        let mut live = self.live.lock();
        let lat = tool_latency_percentiles(&mut live.latency, now_ms, TOP_TOOLS);
        (lat, live.event_id, live.tool_id)
    }
}
