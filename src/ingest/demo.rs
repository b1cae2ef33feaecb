//! `--demo`: replays real, shipped transcripts as if an agent were writing
//! them now, so a fresh machine shows a live stream.
//!
//! Owns a temporary directory with its own transcript roots and store, and
//! the "demo" thread that appends the embedded transcripts (from
//! `tests/data/transcripts/`, licences in `SOURCES.tsv` there) to files in
//! those roots a line at a time, at [`LINES_PER_SEC`], with each line's
//! `timestamp` set to the moment it is written. The ordinary ingest path
//! (notification → tail → parse → store → update hook → hub) does the rest,
//! so the demo exercises exactly what a real session does. After the last
//! line it starts over with fresh ids, so the stream never runs dry.
//!
//! Never touches the user's real transcripts or store.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::state::Shared;
use crate::time::{format_ts_z, now_ms};
use crate::transcript::Provider;
use crate::warn;

/// Lines appended per second across all demo files: a few usage events and
/// tool calls per second, readable as they scroll by.
pub const LINES_PER_SEC: f64 = 12.0;

/// One embedded transcript: provider, path under its root, content.
struct DemoFile {
    provider: Provider,
    rel: &'static str,
    text: &'static str,
}

const FILES: &[DemoFile] = &[
    DemoFile {
        provider: Provider::Claude,
        rel: "-experiments-worktrees/ef958aa1-0e93-49f0-bb71-150f63befcd1.jsonl",
        text: include_str!("../../tests/data/transcripts/claude-code/claude-code-log/-experiments-worktrees/ef958aa1-0e93-49f0-bb71-150f63befcd1.jsonl"),
    },
    DemoFile {
        provider: Provider::Claude,
        rel: "-experiments-worktrees/ef958aa1-0e93-49f0-bb71-150f63befcd1/subagents/agent-a4ca7529859c158c2.jsonl",
        text: include_str!("../../tests/data/transcripts/claude-code/claude-code-log/-experiments-worktrees/ef958aa1-0e93-49f0-bb71-150f63befcd1/subagents/agent-a4ca7529859c158c2.jsonl"),
    },
    DemoFile {
        provider: Provider::Claude,
        rel: "-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl",
        text: include_str!("../../tests/data/transcripts/claude-code/claude-code-log/-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl"),
    },
    DemoFile {
        provider: Provider::Claude,
        rel: "-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl",
        text: include_str!("../../tests/data/transcripts/claude-code/claude-code-log/-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl"),
    },
    DemoFile {
        provider: Provider::Codex,
        rel: "2025/11/17/rollout-2025-11-17T15-30-28-019a93b9-f380-7600-98ff-940e6b99603c.jsonl",
        text: include_str!("../../tests/data/transcripts/codex/codex-session-view/rollout-2025-11-17T15-30-28-019a93b9-f380-7600-98ff-940e6b99603c.jsonl"),
    },
];

/// The demo's private directories.
#[derive(Debug, Clone)]
pub struct DemoDirs {
    /// Everything lives here; removed at exit.
    pub base: PathBuf,
    /// Claude root (`…/claude/projects`).
    pub claude: PathBuf,
    /// Codex root (`…/codex/sessions`).
    pub codex: PathBuf,
    /// The demo store.
    pub store: PathBuf,
}

impl DemoDirs {
    /// Where this process's tree goes, without creating it.
    pub fn planned() -> DemoDirs {
        let base =
            std::env::temp_dir().join(format!("stackunderflow-live-demo-{}", std::process::id()));
        DemoDirs {
            claude: base.join("claude").join("projects"),
            codex: base.join("codex").join("sessions"),
            store: base.join("live.db"),
            base,
        }
    }

    /// Creates a fresh temporary tree for this process.
    pub fn create() -> std::io::Result<DemoDirs> {
        let d = DemoDirs::planned();
        let _ = std::fs::remove_dir_all(&d.base);
        std::fs::create_dir_all(&d.claude)?;
        std::fs::create_dir_all(&d.codex)?;
        Ok(d)
    }

    /// Removes the tree.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The id prefixes that de-duplication and tool pairing key on: Claude's
/// message, request and tool-use ids, Codex's call ids.
const ID_PREFIXES: [&str; 4] = ["\"msg_", "\"req_", "\"toolu_", "\"call_"];

/// Gives every id value in `line` (a string starting with one of
/// [`ID_PREFIXES`]) the infix `tag`: `"msg_01…"` → `"msg_<tag>_01…"`.
/// Codex's `"call_id"` *key* starts like a call id and is left alone.
pub fn tag_ids(line: &str, tag: &str) -> String {
    let mut out = String::with_capacity(line.len() + 64);
    let mut rest = line;
    while let Some(q) = rest.find('"') {
        out.push_str(&rest[..q]);
        rest = &rest[q..];
        match ID_PREFIXES.iter().find(|p| rest.starts_with(**p)) {
            Some(p) if !rest[p.len()..].starts_with("id\"") => {
                out.push_str(p);
                out.push_str(tag);
                out.push('_');
                rest = &rest[p.len()..];
            }
            _ => {
                out.push('"');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Rewrites one transcript line for replay round `round`: its top-level
/// `timestamp` becomes `ts`, and from the second round on, ids that
/// de-duplication keys on get a round suffix so the replay counts as new
/// activity. A line that is not JSON is passed through unchanged.
pub fn rewrite_line(line: &str, ts: &str, round: usize) -> String {
    let line = if round == 0 {
        line.to_string()
    } else {
        tag_ids(line, &format!("r{round}"))
    };
    match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(mut v) => {
            if let Some(obj) = v.as_object_mut() {
                if obj.get("timestamp").is_some_and(|t| t.is_string()) {
                    obj.insert("timestamp".into(), ts.into());
                }
            }
            v.to_string()
        }
        Err(_) => line,
    }
}

fn target(dirs: &DemoDirs, f: &DemoFile, round: usize) -> PathBuf {
    let root = match f.provider {
        Provider::Claude => &dirs.claude,
        Provider::Codex => &dirs.codex,
    };
    let p = root.join(f.rel);
    if round == 0 {
        return p;
    }
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.with_file_name(format!("{stem}-r{round}.jsonl"))
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    // One write per line, newline included, as the agents do.
    f.write_all(format!("{line}\n").as_bytes())
}

/// Starts the replay thread.
pub fn spawn(dirs: DemoDirs, shared: Arc<Shared>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("demo".into()).spawn(move || {
        let pause = Duration::from_secs_f64(1.0 / LINES_PER_SEC);
        let mut round = 0;
        while !shared.stopping() {
            let mut cursors: Vec<std::str::Lines<'static>> =
                FILES.iter().map(|f| f.text.lines()).collect();
            let mut live = FILES.len();
            while live > 0 && !shared.stopping() {
                live = 0;
                for (i, f) in FILES.iter().enumerate() {
                    let Some(line) = cursors[i].next() else {
                        continue;
                    };
                    live += 1;
                    let ts = format_ts_z(now_ms());
                    if let Err(e) =
                        append(&target(&dirs, f, round), &rewrite_line(line, &ts, round))
                    {
                        warn!("demo: cannot write {}: {e}", f.rel);
                        return;
                    }
                    thread::sleep(pause);
                    if shared.stopping() {
                        return;
                    }
                }
            }
            round += 1;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_sets_the_timestamp_and_renames_ids_after_round_zero() {
        let line = r#"{"type":"assistant","timestamp":"2025-01-01T00:00:00.000Z","requestId":"req_1","message":{"id":"msg_1","content":[{"type":"tool_use","id":"toolu_1"}]}}"#;
        let r0 = rewrite_line(line, "2026-11-25T10:00:00.000Z", 0);
        assert!(r0.contains(r#""timestamp":"2026-11-25T10:00:00.000Z""#));
        assert!(r0.contains(r#""msg_1""#));
        let r2 = rewrite_line(line, "2026-11-25T10:00:00.000Z", 2);
        assert!(
            r2.contains(r#""msg_r2_1""#)
                && r2.contains(r#""req_r2_1""#)
                && r2.contains(r#""toolu_r2_1""#)
        );
        assert_eq!(rewrite_line("not json", "x", 0), "not json");
        // Codex: the call id value is renamed, the "call_id" key is not.
        let codex = r#"{"timestamp":"t","payload":{"type":"function_call","call_id":"call_7","name":"shell"}}"#;
        let r1 = rewrite_line(codex, "2026-11-25T10:00:00.000Z", 1);
        assert!(r1.contains(r#""call_id":"call_r1_7""#), "{r1}");
    }

    #[test]
    fn every_embedded_file_is_a_transcript() {
        for f in FILES {
            assert!(f.text.lines().count() > 5, "{}", f.rel);
            assert!(
                f.text
                    .lines()
                    .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
                "{}",
                f.rel
            );
        }
    }
}
