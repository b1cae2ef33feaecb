//! Ingest mode against the real binary: transcripts appended to files in a
//! temporary root come out of the stream, through the store and its update
//! hook, exactly once; crashes, bad lines, unknown models, truncation and
//! locks lose nothing.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;

const WAIT: Duration = Duration::from_secs(30);
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/transcripts");

/// A small Claude session with a sub-agent in the 2.1.x `subagents/` layout.
fn claude_files() -> Vec<(&'static str, PathBuf)> {
    let base = Path::new(DATA).join("claude-code/claude-code-log/-src-experiments-claude_p");
    vec![
        ("-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl", base.join("29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl")),
        (
            "-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl",
            base.join("29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl"),
        ),
    ]
}

/// Independent reference: distinct billed responses (message.id:requestId)
/// with non-zero usage, as the research notes define them.
fn reference_usage_keys(text: &str) -> HashSet<String> {
    let mut keys = HashSet::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(u) = v.pointer("/message/usage") else {
            continue;
        };
        if v["type"] != "assistant"
            || v.pointer("/message/model").and_then(|m| m.as_str()) == Some("<synthetic>")
        {
            continue;
        }
        let total: i64 = [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ]
        .iter()
        .map(|k| u[*k].as_i64().unwrap_or(0))
        .sum();
        if total == 0 {
            continue;
        }
        let id = v
            .pointer("/message/id")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        let req = v["requestId"].as_str().unwrap_or("");
        keys.insert(format!("{id}:{req}"));
    }
    keys
}

struct Env {
    dir: TempDir,
    claude: PathBuf,
    codex: PathBuf,
    store: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = TempDir::new(tag);
        let claude = dir.path().join("claude/projects");
        let codex = dir.path().join("codex/sessions");
        std::fs::create_dir_all(&claude).unwrap();
        std::fs::create_dir_all(&codex).unwrap();
        let store = dir.path().join("live.db");
        Env {
            dir,
            claude,
            codex,
            store,
        }
    }

    fn start(&self) -> Daemon {
        Daemon::start(
            &[
                "--store",
                self.store.to_str().unwrap(),
                "--claude-dir",
                self.claude.to_str().unwrap(),
                "--codex-dir",
                self.codex.to_str().unwrap(),
            ],
            &[],
            &self.dir,
        )
    }

    fn append(&self, rel: &str, bytes: &[u8]) {
        let p = self.claude.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// `(usage events, Σ output tokens, Σ cost, tool rows)` in the store.
    fn totals(&self) -> (i64, i64, f64, i64) {
        let c = Connection::open(&self.store).unwrap();
        c.query_row(
            "SELECT (SELECT count(*) FROM usage_events), (SELECT COALESCE(SUM(output_tokens),0) FROM usage_events),
                    (SELECT COALESCE(SUM(cost_usd),0) FROM usage_events), (SELECT count(*) FROM message_tool_mart)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    }
}

fn wait_idle(d: &Daemon, want_events: i64) {
    let t0 = Instant::now();
    loop {
        let (_, s) = d.get_json("/api/live/stats");
        if s["watermarks"]["event_id"].as_i64().unwrap_or(0) >= want_events {
            let h = d.get_json("/healthz").1;
            if h["status"] == "ok" {
                return;
            }
        }
        assert!(
            t0.elapsed() < WAIT,
            "daemon did not reach {want_events} events: {s}\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn appending_a_transcript_line_by_line_gives_one_event_per_usage_event() {
    let env = Env::new("append");
    let d = env.start();
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    assert_eq!(sse.read_until(WAIT, |f| !f.is_empty())[0].event, "ready");
    let mut want = 0;
    let mut lines_written = 0;
    for (rel, src) in claude_files() {
        let text = std::fs::read_to_string(&src).unwrap();
        want += reference_usage_keys(&text).len();
        for (i, line) in text.lines().enumerate() {
            if i % 7 == 3 {
                // A line split across two writes: nothing may be read from
                // the first half alone.
                let (a, b) = line.split_at(line.len() / 2);
                env.append(rel, a.as_bytes());
                std::thread::sleep(Duration::from_millis(30));
                env.append(rel, format!("{b}\n").as_bytes());
            } else {
                env.append(rel, format!("{line}\n").as_bytes());
            }
            lines_written += 1;
        }
    }
    assert!(want >= 10 && lines_written > 60);
    let frames = sse.read_until(WAIT, |f| count_of(f, "event") >= want);
    let extra = sse.read_until(Duration::from_secs(2), |_| false);
    let ids: Vec<i64> = frames
        .iter()
        .chain(extra.iter())
        .filter(|f| f.event == "event")
        .map(|f| f.payload_id())
        .collect();
    assert_eq!(ids.len(), want, "exactly one event frame per usage event");
    assert_eq!(ids, (1..=want as i64).collect::<Vec<_>>());
    // Projects are named after the session's working directory.
    let last = frames
        .iter()
        .rev()
        .find(|f| f.event == "event")
        .unwrap()
        .json();
    assert_eq!(last["payload"]["project_name"], "claude_p");
    assert_eq!(last["payload"]["project_slug"], "-src-experiments-claude_p");
    let tools = frames
        .iter()
        .chain(extra.iter())
        .filter(|f| f.event == "tool_call")
        .count();
    assert_eq!(tools as i64, env.totals().3);
    assert_eq!(d.get_json("/healthz").1["status"], "ok");
    let (_, _, m) = d.get("/metrics", &[]);
    assert!(
        m.contains("stackunderflow_live_malformed_lines_total 0"),
        "{m}"
    );
}

/// Copies a set of files into the root, then returns the store totals of a
/// clean ingest: the reference a crashed run must match.
fn clean_totals(files: &[(&str, String)]) -> (i64, i64, f64, i64) {
    let env = Env::new("clean");
    for (rel, text) in files {
        env.append(rel, text.as_bytes());
    }
    let d = env.start();
    let want: usize = files
        .iter()
        .map(|(_, t)| reference_usage_keys(t).len())
        .sum();
    wait_idle(&d, want as i64);
    drop(d);
    env.totals()
}

fn sigkill(d: &mut Daemon) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &d.pid().to_string()])
        .status();
    let _ = d.child.wait();
}

#[test]
fn kill_9_mid_file_and_mid_backfill_loses_and_duplicates_nothing() {
    // A larger corpus: several real sessions, so the backfill spans many
    // transactions and a kill lands inside one.
    let base = Path::new(DATA).join("claude-code/claude-code-log");
    let mut files: Vec<(&str, String)> = vec![
        ("-src-deep-manifest/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl", "-src-deep-manifest/a7da6a22-facc-4fcd-8bab-f83c87862004.jsonl"),
        ("-src-deep-manifest/agent-c8d9b115.jsonl", "-src-deep-manifest/agent-c8d9b115.jsonl"),
        (
            "-Users-dain-workspace-claude-code-log-sample/37f83ec9-f2ea-42a9-925e-0d5c105cb6e8.jsonl",
            "-Users-dain-workspace-claude-code-log-sample/37f83ec9-f2ea-42a9-925e-0d5c105cb6e8.jsonl",
        ),
    ]
    .into_iter()
    .map(|(rel, src)| (rel, std::fs::read_to_string(base.join(src)).unwrap()))
    .collect();
    files.sort();
    let want_events: usize = files
        .iter()
        .map(|(_, t)| reference_usage_keys(t).len())
        .sum();
    let reference = clean_totals(&files);
    assert_eq!(reference.0 as usize, want_events);

    let env = Env::new("crash");
    // Half of each file exists before the first start (backfill) …
    for (rel, text) in &files {
        let cut = text.len() / 2;
        let cut = text[..cut].rfind('\n').unwrap() + 1;
        env.append(rel, &text.as_bytes()[..cut]);
    }
    let mut d = env.start();
    std::thread::sleep(Duration::from_millis(150));
    sigkill(&mut d); // most likely inside the backfill
    let mut d = env.start();
    // … the rest is appended while it runs, with a half line left dangling
    // at the moment of the second kill.
    for (rel, text) in &files {
        let cut = text.len() / 2;
        let cut = text[..cut].rfind('\n').unwrap() + 1;
        let rest = &text[cut..];
        let mid = rest.len() / 3;
        env.append(rel, &rest.as_bytes()[..mid]);
    }
    std::thread::sleep(Duration::from_millis(300));
    sigkill(&mut d);
    for (rel, text) in &files {
        let cut = text.len() / 2;
        let cut = text[..cut].rfind('\n').unwrap() + 1;
        let rest = &text[cut..];
        let mid = rest.len() / 3;
        env.append(rel, &rest.as_bytes()[mid..]);
    }
    let d = env.start();
    wait_idle(&d, want_events as i64);
    std::thread::sleep(Duration::from_millis(500));
    let got = env.totals();
    assert_eq!(got.0, reference.0, "usage events");
    assert_eq!(got.1, reference.1, "output tokens");
    assert!(
        (got.2 - reference.2).abs() < 1e-9,
        "cost {} vs {}",
        got.2,
        reference.2
    );
    assert_eq!(got.3, reference.3, "tool rows");
    let c = Connection::open(&env.store).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn malformed_lines_are_counted_and_skipped_and_unknown_models_are_reported() {
    let env = Env::new("bad");
    let d = env.start();
    let good = |id: &str, model: &str| {
        format!(
            r#"{{"type":"assistant","timestamp":"2026-01-01T00:00:00.000Z","sessionId":"s1","requestId":"req_{id}","message":{{"id":"msg_{id}","model":"{model}","role":"assistant","content":[{{"type":"text","text":"hi"}}],"usage":{{"input_tokens":10,"output_tokens":20,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}}}}}"#
        )
    };
    let mut text = String::new();
    text.push_str(&good("a", "claude-sonnet-4-5-20250929"));
    text.push('\n');
    text.push_str("{\"type\":\"assistant\",\"truncated\n");
    text.push_str("not json at all\n");
    text.push_str("[1,2,3]\n");
    text.push('\n');
    text.push_str(&good("b", "claude-mystery-9"));
    text.push('\n');
    env.append("-proj/s1.jsonl", text.as_bytes());
    wait_idle(&d, 2);
    let (_, _, m) = d.get("/metrics", &[]);
    assert!(
        m.contains("stackunderflow_live_malformed_lines_total 3"),
        "{m}"
    );
    assert!(
        m.contains("stackunderflow_live_unknown_model_events_total 1"),
        "{m}"
    );
    let h = d.get_json("/healthz").1;
    assert_eq!(h["unknown_models"], serde_json::json!(["claude-mystery-9"]));
    let c = Connection::open(&env.store).unwrap();
    let rows: Vec<(String, String, f64)> = c
        .prepare("SELECT model, cost_source, cost_usd FROM usage_events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows[0].1, "rate_card");
    assert!((rows[0].2 - (10.0 * 3.0 + 20.0 * 15.0) / 1e6).abs() < 1e-12);
    assert_eq!(rows[1], ("claude-mystery-9".into(), "unknown".into(), 0.0));
    assert!(
        d.stderr().contains("line at byte"),
        "malformed lines are logged with their offset"
    );
}

#[test]
fn a_truncated_and_rewritten_file_is_not_counted_twice() {
    let env = Env::new("trunc");
    let (rel, src) = &claude_files()[1];
    let text = std::fs::read_to_string(src).unwrap();
    let want = reference_usage_keys(&text).len() as i64;
    env.append(rel, text.as_bytes());
    let d = env.start();
    wait_idle(&d, want);
    let before = env.totals();
    // The file is truncated and written again (an editor's "save").
    std::fs::write(env.claude.join(rel), b"").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(env.claude.join(rel), text.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.totals(), before);
    assert!(
        d.stderr().contains("reading it again from the start"),
        "{}",
        d.stderr()
    );
}

#[test]
fn codex_rollouts_bill_the_change_in_cumulative_tokens() {
    let env = Env::new("codex");
    let src = Path::new(DATA).join("codex/codex-session-view/rollout-2025-11-17T15-30-28-019a93b9-f380-7600-98ff-940e6b99603c.jsonl");
    let dst = env.codex.join("2025/11/17").join(src.file_name().unwrap());
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    // Reference: the last cumulative total_token_usage.total_tokens.
    let text = std::fs::read_to_string(&src).unwrap();
    let final_total = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            v.pointer("/payload/info/total_token_usage/total_tokens")
                .and_then(|t| t.as_i64())
        })
        .unwrap();
    assert_eq!(final_total, 1_121_566);
    let d = env.start();
    wait_idle(&d, 1);
    std::thread::sleep(Duration::from_millis(500));
    let c = Connection::open(&env.store).unwrap();
    let (n, billed, tools, provider): (i64, i64, i64, String) = c
        .query_row(
            "SELECT count(*), SUM(input_tokens + output_tokens + cache_read_tokens + cache_create_tokens),
                    (SELECT count(*) FROM message_tool_mart), MIN(provider) FROM usage_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        billed, final_total,
        "doubled token_count events counted once"
    );
    assert_eq!(n, 39);
    assert_eq!(
        tools, 39,
        "Codex function calls become tool rows (upstream yields none)"
    );
    assert_eq!(provider, "codex");
}

#[test]
fn a_locked_store_pauses_ingest_visibly_and_loses_nothing() {
    let env = Env::new("locked");
    let d = env.start();
    wait_idle(&d, 0);
    let (rel, src) = &claude_files()[1];
    let text = std::fs::read_to_string(src).unwrap();
    let want = reference_usage_keys(&text).len() as i64;
    let locker = Connection::open(&env.store).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    env.append(rel, text.as_bytes());
    let h = d.wait_health(Duration::from_secs(15), |h| h["status"] == "degraded");
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["feed_error"].as_str().unwrap().contains("locked"), "{h}");
    locker.execute_batch("COMMIT").unwrap();
    wait_idle(&d, want);
    assert_eq!(env.totals().0, want);
}

#[test]
fn ingest_refuses_to_write_into_an_upstream_store() {
    let env = Env::new("refuse");
    let upstream = env.dir.path().join("store.db");
    stackunderflow_live::devtools::create_upstream_store(&upstream).unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "--store",
            upstream.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to upstream StackUnderflow"), "{err}");
}

#[test]
fn restart_resumes_from_committed_offsets_and_seeds_the_figures() {
    let env = Env::new("restart");
    let files: BTreeMap<&str, String> = claude_files()
        .into_iter()
        .map(|(r, p)| (r, std::fs::read_to_string(p).unwrap()))
        .collect();
    for (rel, text) in &files {
        env.append(rel, text.as_bytes());
    }
    let want: i64 = files
        .values()
        .map(|t| reference_usage_keys(t).len() as i64)
        .sum();
    let mut d = env.start();
    wait_idle(&d, want);
    let stats_before = d.get_json("/api/live/stats").1;
    d.terminate();
    let d = env.start();
    wait_idle(&d, want);
    let stats_after = d.get_json("/api/live/stats").1;
    assert_eq!(stats_after["watermarks"], stats_before["watermarks"]);
    assert_eq!(
        stats_after["burn"]["month_to_date"],
        stats_before["burn"]["month_to_date"]
    );
    assert_eq!(env.totals().0, want, "nothing re-ingested");
}

#[test]
fn files_in_a_directory_created_after_start_are_picked_up_at_once() {
    let env = Env::new("newdir");
    let d = env.start();
    wait_idle(&d, 0);
    // A new project and a sub-agent folder appear with their files already
    // written (faster than a watch on the new directory can be added).
    let t0 = Instant::now();
    let mut want = 0;
    for (rel, src) in claude_files() {
        let text = std::fs::read_to_string(src).unwrap();
        want += reference_usage_keys(&text).len() as i64;
        env.append(rel, text.as_bytes());
    }
    wait_idle(&d, want);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "new files took {took:?} (the slow safety scan is 30 s)"
    );
    assert_eq!(env.totals().0, want);
}
