//! The daemon under test as a child process: started on an ephemeral
//! loopback port (following a store written by another process, or in
//! ingest mode on transcript roots of its own), its log kept in a file,
//! stopped with SIGTERM (and killed if it does not exit).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a stopped daemon may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// How often [`Daemon::wait_log`] reads the log: the resolution of a
/// duration that ends at a log line (a backfill of tens of seconds).
const LOG_POLL: Duration = Duration::from_millis(20);

/// Where an ingest-mode daemon reads transcripts and writes its store.
pub struct IngestRoots {
    /// Claude Code's `projects` directory.
    pub claude: PathBuf,
    /// Codex's `sessions` directory.
    pub codex: PathBuf,
    /// The daemon's own store (created if missing).
    pub store: PathBuf,
}

/// A running `stackunderflow-live` (`--follow STORE`, or ingest mode).
pub struct Daemon {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// Its stderr (the log).
    pub log: PathBuf,
    /// From spawn to the printed address: opening and seeding the store.
    pub startup: Duration,
    /// When the process was spawned.
    pub spawned: Instant,
}

/// The daemon binary: `--daemon PATH`, else the one built next to us.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("stackunderflow-live")))
        .unwrap_or_else(|| PathBuf::from("target/release/stackunderflow-live"))
}

impl Daemon {
    /// Starts the daemon following `store`, with room for `max_clients`,
    /// and waits (at most `timeout`) until it prints its address.
    pub fn start(
        bin: &Path,
        store: &Path,
        max_clients: usize,
        log: &Path,
        timeout: Duration,
    ) -> Result<Daemon, String> {
        let mode = [OsString::from("--follow"), store.into()];
        Daemon::spawn(bin, &mode, max_clients, log, timeout)
    }

    /// Starts the daemon in ingest mode: it writes `store` from the
    /// transcripts under `claude` and `codex`. Returns once it prints its
    /// address, which it does before the backfill of existing files ends.
    pub fn start_ingest(
        bin: &Path,
        roots: &IngestRoots,
        max_clients: usize,
        log: &Path,
        timeout: Duration,
    ) -> Result<Daemon, String> {
        let mode = [
            OsString::from("--store"),
            roots.store.clone().into(),
            OsString::from("--claude-dir"),
            roots.claude.clone().into(),
            OsString::from("--codex-dir"),
            roots.codex.clone().into(),
        ];
        Daemon::spawn(bin, &mode, max_clients, log, timeout)
    }

    fn spawn(
        bin: &Path,
        mode: &[OsString],
        max_clients: usize,
        log: &Path,
        timeout: Duration,
    ) -> Result<Daemon, String> {
        if !bin.exists() {
            return Err(format!(
                "daemon binary {} not found; run `cargo build --release` or pass --daemon PATH",
                bin.display()
            ));
        }
        let t0 = Instant::now();
        let mut child = Command::new(bin)
            .args(mode)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--print-addr",
                "--log-level",
                "info",
            ])
            .args(["--max-clients", &max_clients.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(timeout).unwrap_or_default();
        let startup = t0.elapsed();
        let addr = line
            .trim()
            .trim_start_matches("http://")
            .parse::<SocketAddr>()
            .map_err(|_| {
                let _ = child.kill();
                let _ = child.wait();
                format!(
                    "daemon printed no address within {timeout:?}; log {}:\n{}",
                    log.display(),
                    tail(log, 10)
                )
            })?;
        Ok(Daemon {
            child,
            addr,
            pid,
            log: log.to_path_buf(),
            startup,
            spawned: t0,
        })
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits; returns how long it took to exit (killed
    /// after [`EXIT_GRACE`]; `None` then).
    pub fn stop(&mut self) -> Option<Duration> {
        let t0 = Instant::now();
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        while t0.elapsed() < EXIT_GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(t0.elapsed());
            }
            thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Waits until the log has a line containing `needle` (checked every
    /// [`LOG_POLL`]), at most `timeout`, and while the process lives.
    /// Returns the line and when it was first seen.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Option<(String, Instant)> {
        let t0 = Instant::now();
        loop {
            if let Some(line) = self.log_lines(needle).into_iter().next() {
                return Some((line, Instant::now()));
            }
            if t0.elapsed() > timeout || !self.alive() {
                return None;
            }
            thread::sleep(LOG_POLL);
        }
    }

    /// Log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A scratch directory for one scenario, removed on drop unless
/// `SUL_BENCH_KEEP` is set (to read the daemon's log afterwards).
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Result<Scratch, String> {
        let p = std::env::temp_dir().join(format!("sul-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Scratch(p))
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("SUL_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            eprintln!("bench: kept {}", self.0.display());
        }
    }
}
