//! Is the writer of the store alive? The `watcher.running` figure.
//!
//! Owns the rule that turns what we can observe into `true`, `false` or
//! `"unknown"`. In ingest mode the writer is our own ingest thread, so the
//! answer is its health flag. In follow mode the writer is upstream
//! StackUnderflow, which holds an exclusive `flock` on `server.lock` beside
//! its store while it runs:
//!
//! 1. `server.lock` exists and another process holds its lock → running.
//! 2. `server.lock` exists and nobody holds its lock → stopped: the server
//!    that left it is gone.
//! 3. no `server.lock`: an ingest recorded in `ingest_log.last_ingest_ts`
//!    within [`FRESH_INGEST_SECS`] → running (a one-off `stackunderflow
//!    ingest`); otherwise unknown — nothing says a writer exists or not.
//!
//! Called from HTTP workers and SSE client threads; it only opens and locks
//! (shared, non-blocking, released at once) a file, and never writes.

use std::fs::{File, TryLockError};
use std::path::Path;

/// How recent an ingest must be to count as a live writer when there is no
/// lock file to ask: upstream's watcher ingests within seconds of a change,
/// so ten minutes of silence means nobody is writing.
pub const FRESH_INGEST_SECS: f64 = 600.0;

/// The three answers of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watcher {
    /// The writer is alive.
    Running,
    /// The writer is gone; the UI shows "watcher not running".
    Stopped,
    /// We cannot tell.
    Unknown,
}

impl Watcher {
    /// `true`, `false` or `"unknown"`, as upstream serializes it.
    pub fn json(self) -> serde_json::Value {
        match self {
            Watcher::Running => true.into(),
            Watcher::Stopped => false.into(),
            Watcher::Unknown => "unknown".into(),
        }
    }
}

/// Whether another process holds a lock on `lock_path`: `None` when the file
/// does not exist or cannot be opened.
pub fn lock_held(lock_path: &Path) -> Option<bool> {
    let file = File::open(lock_path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Some(false)
        }
        Err(TryLockError::WouldBlock) => Some(true),
        Err(TryLockError::Error(_)) => None,
    }
}

/// The follow-mode rule above.
pub fn follow_state(lock_path: &Path, last_ingest_ts: Option<f64>, now_secs: f64) -> Watcher {
    match lock_held(lock_path) {
        Some(true) => Watcher::Running,
        Some(false) => Watcher::Stopped,
        None => match last_ingest_ts {
            Some(ts) if now_secs - ts <= FRESH_INGEST_SECS => Watcher::Running,
            _ => Watcher::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_in_all_three_cases() {
        let dir = std::env::temp_dir().join(format!("sul-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("server.lock");
        let _ = std::fs::remove_file(&lock);
        assert_eq!(follow_state(&lock, None, 1000.0), Watcher::Unknown);
        assert_eq!(follow_state(&lock, Some(900.0), 1000.0), Watcher::Running);
        assert_eq!(follow_state(&lock, Some(0.0), 1000.0), Watcher::Unknown);
        std::fs::write(&lock, "123\n0\n").unwrap();
        assert_eq!(follow_state(&lock, Some(999.0), 1000.0), Watcher::Stopped);
        // flock locks belong to the open file description, so a second
        // handle in this process conflicts just as another process would.
        let holder = File::open(&lock).unwrap();
        holder.lock().unwrap();
        assert_eq!(follow_state(&lock, None, 1000.0), Watcher::Running);
        holder.unlock().unwrap();
        assert_eq!(follow_state(&lock, None, 1000.0), Watcher::Stopped);
    }
}
