//! Fault injection with a real daemon and real sockets: forced disconnects
//! while rows stream in, a followed store deleted, replaced and checkpointed
//! underneath, and a full disk under our own store.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;
use stackunderflow_live::devtools::insert_rows;

const WAIT: Duration = Duration::from_secs(60);

/// A tiny deterministic generator (tests must be reproducible).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn a_thousand_forced_disconnects_while_rows_stream_in_lose_and_duplicate_nothing() {
    let dir = TempDir::new("disconnects");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    const CLIENTS: usize = 25;
    const DISCONNECTS_EACH: usize = 40; // 1,000 in all
    const BATCHES: usize = 400;
    const ROWS_PER_BATCH: usize = 5;
    let total = (BATCHES * ROWS_PER_BATCH) as i64;
    let writing = Arc::new(AtomicBool::new(true));
    let disconnects = Arc::new(AtomicUsize::new(0));
    // Rows are written only once every client holds its first `ready`: a
    // client without a resume point starts at the live end by design.
    let ready = Arc::new(AtomicUsize::new(0));
    let writer = std::thread::spawn({
        let (store, writing, ready) = (store.clone(), writing.clone(), ready.clone());
        move || {
            let t0 = Instant::now();
            while ready.load(Ordering::SeqCst) < CLIENTS && t0.elapsed() < WAIT {
                std::thread::sleep(Duration::from_millis(5));
            }
            for i in 0..BATCHES {
                insert_rows(&store, ROWS_PER_BATCH, 0, 0.001).unwrap();
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            writing.store(false, Ordering::SeqCst);
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, disconnects, ready) = (d.addr.clone(), disconnects.clone(), ready.clone());
            std::thread::spawn(move || {
                let mut rng = Lcg(c as u64 + 1);
                let mut seen: Vec<i64> = Vec::new();
                let mut last: Option<String> = None;
                let mut cuts = 0;
                let t0 = Instant::now();
                while (seen.last().copied().unwrap_or(0) < total) && t0.elapsed() < WAIT {
                    let path = match &last {
                        Some(id) => format!("/api/live/stream?last_event_id={id}"),
                        None => "/api/live/stream".into(),
                    };
                    let mut sse = Sse::connect(&addr, &path, &[]).unwrap();
                    // Read a random number of frames, then vanish (unless
                    // the quota of forced disconnects is used up).
                    let budget = if cuts < DISCONNECTS_EACH {
                        1 + rng.next(60) as usize
                    } else {
                        usize::MAX
                    };
                    let mut n = 0;
                    while n < budget && seen.last().copied().unwrap_or(0) < total {
                        match sse.next() {
                            Ok(Some(f)) => {
                                if f.event == "event" {
                                    seen.push(f.payload_id());
                                    n += 1;
                                }
                                if f.event == "ready" && last.is_none() {
                                    ready.fetch_add(1, Ordering::SeqCst);
                                }
                                if f.id.is_some() {
                                    last = f.id.clone();
                                }
                            }
                            _ => break,
                        }
                    }
                    if seen.last().copied().unwrap_or(0) < total {
                        cuts += 1;
                        disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                }
                seen
            })
        })
        .collect();
    let results: Vec<Vec<i64>> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    writer.join().unwrap();
    assert!(!writing.load(Ordering::SeqCst));
    let cut = disconnects.load(Ordering::Relaxed);
    assert!(
        cut >= CLIENTS * DISCONNECTS_EACH,
        "only {cut} forced disconnects happened"
    );
    // A client that connected first without a resume point starts at the
    // live end: it owes nothing before its first ready frame. Every client
    // here connected before the first commit, so each must see every row.
    for (c, ids) in results.iter().enumerate() {
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "client {c}: {} duplicates",
            ids.len() - unique.len()
        );
        let missing: Vec<i64> = (1..=total).filter(|i| !unique.contains(i)).collect();
        assert!(
            missing.is_empty(),
            "client {c}: lost {} rows, first {:?}",
            missing.len(),
            missing.first()
        );
        assert_eq!(ids.len() as i64, total);
    }
}

#[test]
fn a_followed_store_deleted_then_restored_is_reported_and_recovered() {
    let dir = TempDir::new("deleted");
    let store = upstream_store(&dir);
    insert_rows(&store, 3, 0, 0.01).unwrap();
    let d = Daemon::follow(&store, &dir);
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    sse.read_until(WAIT, |f| !f.is_empty());
    let backup = dir.path().join("backup.db");
    {
        let c = Connection::open(&store).unwrap();
        c.execute_batch(&format!("VACUUM INTO '{}'", backup.display()))
            .unwrap();
    }
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", store.display()));
    }
    let h = d.wait_health(Duration::from_secs(10), |h| h["status"] != "ok");
    assert_eq!(h["db_ok"], false, "{h}");
    assert!(
        h["db_error"].as_str().unwrap().contains("does not exist"),
        "{h}"
    );
    // The store comes back (restored from a backup) and gets new rows.
    std::fs::copy(&backup, &store).unwrap();
    let h = d.wait_health(Duration::from_secs(10), |h| h["status"] == "ok");
    assert_eq!(h["status"], "ok", "{h}");
    insert_rows(&store, 2, 0, 0.01).unwrap();
    let frames = sse.read_until(WAIT, |f| count_of(f, "event") >= 2);
    assert_eq!(ids_of(&frames, "event"), vec![4, 5]);
}

#[test]
fn a_followed_store_replaced_by_a_smaller_one_restarts_at_its_end() {
    let dir = TempDir::new("replaced");
    let store = upstream_store(&dir);
    insert_rows(&store, 10, 0, 0.01).unwrap();
    let d = Daemon::follow(&store, &dir);
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    sse.read_until(WAIT, |f| !f.is_empty());
    // A different, smaller store is moved into place (rename is atomic).
    let other = dir.path().join("other.db");
    stackunderflow_live::devtools::create_upstream_store(&other).unwrap();
    insert_rows(&other, 2, 0, 0.01).unwrap();
    Connection::open(&other)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", store.display()));
    }
    std::fs::rename(&other, &store).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", other.display()));
    let t0 = Instant::now();
    while !d.stderr().contains("was replaced") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replacement not noticed: {}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The old ids mean nothing in the new store: the stream is closed so
    // the client resumes against it.
    let rest = sse.read_until(WAIT, |_| false);
    assert!(rest.iter().all(|f| f.event == "burn_tick"));
    assert!(
        matches!(sse.next(), Ok(None) | Err(_)),
        "stream must end on a store reset"
    );
    let (_, _, m) = d.get("/metrics", &[]);
    assert!(
        m.contains("clients_reaped_total{reason=\"store_reset\"} 1"),
        "{m}"
    );
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[("Last-Event-ID", "10:0")]).unwrap();
    let ready = sse.read_until(WAIT, |f| !f.is_empty());
    assert_eq!(
        ready[0].id.as_deref(),
        Some("2:0"),
        "a resume point beyond the new store is clamped"
    );
    // New rows in the new store arrive (ids 3 and 4 there).
    insert_rows(&store, 2, 0, 0.01).unwrap();
    let frames = sse.read_until(WAIT, |f| count_of(f, "event") >= 2);
    assert_eq!(ids_of(&frames, "event"), vec![3, 4]);
    assert_eq!(d.get_json("/healthz").1["status"], "ok");
}

#[test]
fn wal_checkpoints_and_truncation_underneath_do_not_stall_the_feed() {
    let dir = TempDir::new("checkpoint");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    sse.read_until(WAIT, |f| !f.is_empty());
    let mut expected = 0;
    for round in 0..10 {
        insert_rows(&store, 3, 0, 0.01).unwrap();
        expected += 3;
        if round % 2 == 0 {
            Connection::open(&store)
                .unwrap()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
        }
    }
    let frames = sse.read_until(WAIT, |f| count_of(f, "event") >= expected);
    assert_eq!(
        ids_of(&frames, "event"),
        (1..=expected as i64).collect::<Vec<_>>()
    );
}

/// Mounts a small tmpfs; `None` (with the reason printed) where this
/// machine does not allow it.
fn small_tmpfs(at: &Path, size: &str) -> Option<()> {
    std::fs::create_dir_all(at).ok()?;
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(())
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0)
            .status();
    }
}

#[test]
fn a_full_disk_pauses_ingest_with_a_clear_error_and_resumes_without_loss() {
    let dir = TempDir::new("diskfull");
    let mnt = dir.path().join("small");
    if small_tmpfs(&mnt, "600k").is_none() {
        return;
    }
    let _unmount = Unmount(&mnt);
    let claude = dir.path().join("claude");
    let codex = dir.path().join("codex");
    std::fs::create_dir_all(claude.join("proj")).unwrap();
    std::fs::create_dir_all(&codex).unwrap();
    let store = mnt.join("live.db");
    let d = Daemon::start(
        &[
            "--store",
            store.to_str().unwrap(),
            "--claude-dir",
            claude.to_str().unwrap(),
            "--codex-dir",
            codex.to_str().unwrap(),
        ],
        &[],
        &dir,
    );
    // About 1 MB of transcript: more than the store can hold on 600 KB.
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/transcripts/claude-code/claude-code-log/-Users-dain-workspace-claude-code-log-sample/37f83ec9-f2ea-42a9-925e-0d5c105cb6e8.jsonl");
    std::fs::copy(&src, claude.join("proj/37f83ec9.jsonl")).unwrap();
    let h = d.wait_health(WAIT, |h| h["status"] == "degraded");
    assert_eq!(h["status"], "degraded", "{h}");
    let err = h["feed_error"].as_str().unwrap();
    assert!(err.contains("full"), "a clear error: {err}");
    // Space returns.
    let ok = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let h = d.wait_health(WAIT, |h| h["status"] == "ok");
    assert_eq!(h["status"], "ok", "{h}");
    // Independent reference: distinct responses, each with its largest
    // output count (the final copy of a response carries the full count).
    let mut by_key = std::collections::HashMap::<String, i64>::new();
    for line in std::fs::read_to_string(&src).unwrap().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(u) = v.pointer("/message/usage") else {
            continue;
        };
        if v["type"] != "assistant" {
            continue;
        }
        let key = format!(
            "{}:{}",
            v.pointer("/message/id")
                .and_then(|x| x.as_str())
                .unwrap_or(""),
            v["requestId"].as_str().unwrap_or("")
        );
        let out = u["output_tokens"].as_i64().unwrap_or(0);
        let e = by_key.entry(key).or_insert(0);
        *e = (*e).max(out);
    }
    let want = (by_key.len() as i64, by_key.values().sum::<i64>());
    // Wait for the backlog to drain after the remount.
    let t0 = Instant::now();
    let count = || -> (i64, i64) {
        let c = Connection::open(&store).unwrap();
        c.query_row(
            "SELECT count(*), COALESCE(SUM(output_tokens), 0) FROM usage_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let mut got = count();
    while got != want && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(100));
        got = count();
    }
    assert_eq!(got, want, "nothing lost or doubled across the full disk");
}
