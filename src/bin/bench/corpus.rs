//! Real transcripts for the ingest-mode scenarios: the shipped files in
//! `tests/data/transcripts/` (sources and licences in `SOURCES.tsv` there),
//! read once, and the ways the scenarios multiply them.
//!
//! Two uses. `append-to-client` takes the Claude lines one at a time and
//! gives each a new timestamp and a marker (see [`append_line`]);
//! `backfill` writes many copies of every file into a Claude and a Codex
//! root laid out as the agents lay them out ([`build`]), cached under
//! `target/bench-data/` because a gigabyte takes a while to write.
//!
//! Each copy gets its own ids ([`tag_ids`]): the daemon counts a Claude
//! API response once per `message.id:requestId` across all files and keys
//! tool calls by their id, so copies with the original ids would be
//! swallowed by de-duplication and the scenario would measure nothing.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use stackunderflow_live::time::{civil_from_days, days_from_civil};

/// The shipped transcripts.
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/transcripts");

/// Bump when the corpus layout or the rewriting changes, so a cached
/// corpus from an older bench is not reused.
const CORPUS_VERSION: u32 = 1;

/// Written last into a finished corpus; its presence means "complete".
const MANIFEST: &str = "MANIFEST";

/// Which agent wrote a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// Claude Code (`~/.claude/projects/<project>/<session>.jsonl`).
    Claude,
    /// Codex (`~/.codex/sessions/YYYY/MM/DD/rollout-….jsonl`).
    Codex,
}

/// One shipped transcript.
pub struct Source {
    /// Who wrote it.
    pub agent: Agent,
    /// Claude: its path under a `projects` root (`<project>/…`, sub-agent
    /// folders kept). Codex: its file name.
    pub rel: PathBuf,
    /// Its lines, without the newlines.
    pub lines: Vec<String>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
    Ok(())
}

/// Every shipped transcript of `agent` in a fixed order; with `only`, just
/// those of that source (the directory under `claude-code/` or `codex/`).
pub fn sources(agent: Agent, only: Option<&str>) -> Result<Vec<Source>, String> {
    let top = Path::new(DATA).join(match agent {
        Agent::Claude => "claude-code",
        Agent::Codex => "codex",
    });
    let mut files = Vec::new();
    walk(&top, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&top).expect("found under top");
        let mut parts = rel.components();
        let source = parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if only.is_some_and(|o| o != source) {
            continue;
        }
        let inner: PathBuf = parts.collect();
        let rel = match agent {
            // A file directly in its source's folder gets a project of its own.
            Agent::Claude if inner.components().count() < 2 => {
                Path::new(&format!("-{source}")).join(inner)
            }
            Agent::Claude => inner,
            Agent::Codex => PathBuf::from(inner.file_name().unwrap_or_default()),
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(Source {
            agent,
            rel,
            lines: text.lines().map(str::to_string).collect(),
        });
    }
    if out.is_empty() {
        return Err(format!("no transcripts under {}", top.display()));
    }
    Ok(out)
}

pub use stackunderflow_live::ingest::demo::tag_ids;

/// The sum of a Claude `usage` object's token counts.
fn usage_total(u: &Value) -> i64 {
    [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .iter()
    .map(|k| u[*k].as_i64().unwrap_or(0))
    .sum()
}

/// Whether a Claude line is the first copy of a billed API response, by
/// the rules the research notes give (independent of the daemon's parser):
/// an `assistant` line with non-zero `message.usage`, not the synthetic
/// model nor an API error, whose `message.id:requestId` is not in `seen`
/// (added). Lines without those ids are each their own response.
pub fn new_usage(v: &Value, seen: &mut HashSet<String>) -> bool {
    let Some(u) = v.pointer("/message/usage").filter(|u| u.is_object()) else {
        return false;
    };
    if v["type"] != "assistant"
        || v.pointer("/message/model").and_then(Value::as_str) == Some("<synthetic>")
        || v["isApiErrorMessage"] == true
        || usage_total(u) <= 0
    {
        return false;
    }
    let id = v.pointer("/message/id").and_then(Value::as_str);
    let req = v["requestId"].as_str();
    match (id, req) {
        (Some(id), Some(req)) if !id.is_empty() && !req.is_empty() => {
            seen.insert(format!("{id}:{req}"))
        }
        _ => true,
    }
}

/// One Claude line prepared for `append-to-client`: ids tagged for
/// `round`, `sessionId` set to `marker` (the daemon copies it verbatim
/// into the event's `session_id`, which is how the client's frame is
/// matched back to this line). The timestamp is set at write time.
/// `None` for a line that is not a JSON object (written as it is).
pub fn append_line(line: &str, round: usize, marker: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_str(&tag_ids(line, &format!("a{round}"))).ok()?;
    let obj = v.as_object_mut()?;
    obj.insert("sessionId".into(), marker.into());
    Some(v)
}

/// A backfill corpus on disk.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// The directory holding `claude/projects` and `codex/sessions`.
    pub dir: PathBuf,
    /// Copies of the shipped set.
    pub copies: usize,
    /// Transcript files.
    pub files: usize,
    /// Lines (newlines).
    pub lines: u64,
    /// Bytes.
    pub bytes: u64,
    /// Claude project directories.
    pub projects: usize,
    /// Files in sub-agent folders (`…/subagents/agent-*.jsonl`).
    pub subagent_files: usize,
    /// Writing it took this long (zero when it came from the cache).
    pub built_in: Duration,
}

impl Corpus {
    /// Claude's `projects` root.
    pub fn claude(&self) -> PathBuf {
        self.dir.join("claude").join("projects")
    }

    /// Codex's `sessions` root.
    pub fn codex(&self) -> PathBuf {
        self.dir.join("codex").join("sessions")
    }

    fn manifest_text(&self) -> String {
        format!(
            "version {CORPUS_VERSION}\ncopies {}\nfiles {}\nlines {}\nbytes {}\nprojects {}\nsubagent_files {}\n",
            self.copies, self.files, self.lines, self.bytes, self.projects, self.subagent_files
        )
    }

    fn from_manifest(dir: &Path) -> Option<Corpus> {
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
        let get = |k: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        };
        (get("version")? == u64::from(CORPUS_VERSION)).then_some(())?;
        Some(Corpus {
            dir: dir.to_path_buf(),
            copies: get("copies")? as usize,
            files: get("files")? as usize,
            lines: get("lines")?,
            bytes: get("bytes")?,
            projects: get("projects")? as usize,
            subagent_files: get("subagent_files")? as usize,
            built_in: Duration::ZERO,
        })
    }
}

/// Where copy `k` of `src` goes under `claude` / `codex`. Claude: the
/// project directory gets a `-c<k>` suffix (sessions and sub-agent folders
/// keep their names inside it). Codex: a day folder per copy, counting
/// from 2025-01-01, and a `-c<k>` suffix on the file name.
fn target(src: &Source, k: usize, claude: &Path, codex: &Path) -> PathBuf {
    match src.agent {
        Agent::Claude => {
            let mut parts = src.rel.components();
            let project = parts
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            claude
                .join(format!("{project}-c{k:04}"))
                .join(parts.as_path())
        }
        Agent::Codex => {
            let (y, m, d) = civil_from_days(days_from_civil(2025, 1, 1) + k as i64);
            let stem = src
                .rel
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            codex
                .join(format!("{y:04}"))
                .join(format!("{m:02}"))
                .join(format!("{d:02}"))
                .join(format!("{stem}-c{k:04}.jsonl"))
        }
    }
}

/// The corpus of at least `mib` MiB under `data_dir`, written unless a
/// complete one is cached there.
pub fn build(data_dir: &Path, mib: u64) -> Result<Corpus, String> {
    let dir = data_dir.join(format!("ingest-corpus-{mib}mib-v{CORPUS_VERSION}"));
    if let Some(c) = Corpus::from_manifest(&dir) {
        return Ok(c);
    }
    let t0 = Instant::now();
    let mut all = sources(Agent::Claude, None)?;
    all.extend(sources(Agent::Codex, None)?);
    let per_copy: u64 = all
        .iter()
        .flat_map(|s| &s.lines)
        .map(|l| l.len() as u64 + 1)
        .sum();
    let want = mib << 20;
    let copies = want.div_ceil(per_copy.max(1)).max(1) as usize;
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Corpus {
        dir: dir.clone(),
        copies,
        ..Corpus::default()
    };
    let (claude, codex) = (c.claude(), c.codex());
    let mut projects = HashSet::new();
    eprintln!(
        "backfill: writing {copies} copies of the shipped transcripts ({:.1} MiB each) into {} …",
        per_copy as f64 / 1048576.0,
        dir.display()
    );
    for k in 0..copies {
        let tag = format!("c{k}");
        for src in &all {
            let path = target(src, k, &claude, &codex);
            let parent = path.parent().expect("a file under a root");
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            let f = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            for line in &src.lines {
                let line = tag_ids(line, &tag);
                w.write_all(line.as_bytes())
                    .and_then(|_| w.write_all(b"\n"))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                c.lines += 1;
                c.bytes += line.len() as u64 + 1;
            }
            w.flush().map_err(|e| format!("{}: {e}", path.display()))?;
            c.files += 1;
            if src.agent == Agent::Claude {
                if let Ok(rel) = path.strip_prefix(&claude) {
                    projects.insert(rel.components().next().map(|p| p.as_os_str().to_owned()));
                }
                c.subagent_files +=
                    usize::from(src.rel.components().any(|p| p.as_os_str() == "subagents"));
            }
        }
    }
    c.projects = projects.len();
    std::fs::write(dir.join(MANIFEST), c.manifest_text())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    c.built_in = t0.elapsed();
    Ok(c)
}

/// Reads every file of the corpus once, so the page cache holds it and
/// the backfill measures the daemon, not the disk. Returns the bytes read.
pub fn warm(c: &Corpus) -> u64 {
    let mut files = Vec::new();
    let _ = walk(&c.claude(), &mut files);
    let _ = walk(&c.codex(), &mut files);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for p in files {
        if let Ok(mut f) = File::open(&p) {
            use std::io::Read;
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_tagged_and_the_call_id_key_is_not() {
        let line = r#"{"message":{"id":"msg_01"},"requestId":"req_9","x":"see toolu_2 \"toolu_3","payload":{"call_id":"call_A","id":"call_B"}}"#;
        assert_eq!(
            tag_ids(line, "c7"),
            r#"{"message":{"id":"msg_c7_01"},"requestId":"req_c7_9","x":"see toolu_2 \"toolu_c7_3","payload":{"call_id":"call_c7_A","id":"call_c7_B"}}"#
        );
        assert_eq!(tag_ids("no quotes", "t"), "no quotes");
        assert_eq!(tag_ids("ends with \"", "t"), "ends with \"");
    }

    #[test]
    fn new_usage_follows_the_billing_rules() {
        let mut seen = HashSet::new();
        let line = |id: &str, out: i64| {
            serde_json::json!({"type": "assistant", "requestId": "req_1",
                "message": {"id": id, "model": "claude-x", "usage": {"input_tokens": 0, "output_tokens": out}}})
        };
        assert!(new_usage(&line("msg_1", 5), &mut seen));
        assert!(!new_usage(&line("msg_1", 9), &mut seen), "same response");
        assert!(!new_usage(&line("msg_2", 0), &mut seen), "no tokens");
        assert!(new_usage(&line("msg_2", 1), &mut seen));
        let mut synthetic = line("msg_3", 1);
        synthetic["message"]["model"] = "<synthetic>".into();
        assert!(!new_usage(&synthetic, &mut seen));
        let mut user = line("msg_4", 1);
        user["type"] = "user".into();
        assert!(!new_usage(&user, &mut seen));
    }

    #[test]
    fn the_shipped_transcripts_are_found_and_laid_out() {
        let claude = sources(Agent::Claude, None).unwrap();
        let codex = sources(Agent::Codex, None).unwrap();
        assert!(claude
            .iter()
            .any(|s| s.rel.components().any(|c| c.as_os_str() == "subagents")));
        assert!(claude.iter().all(|s| s.rel.components().count() >= 2));
        let t = target(&codex[0], 40, Path::new("/c"), Path::new("/x"));
        assert!(t.starts_with("/x/2025/02/10"), "{}", t.display());
        let t = target(&claude[0], 3, Path::new("/c"), Path::new("/x"));
        let project = t.components().nth(2).unwrap().as_os_str().to_string_lossy();
        assert!(project.ends_with("-c0003"), "{}", t.display());
    }
}
