//! Fuzzing (property-based, with shrinking) of every parser we own: JSONL
//! lines (arbitrary bytes, and real lines cut or corrupted), timestamps,
//! query strings, resume ids, price files, and raw bytes thrown at the
//! HTTP port. The property is always the same: no panic, and the daemon
//! stays healthy. `PROPTEST_CASES=20000 cargo test --test fuzz` runs longer.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use stackunderflow_live::http::{parse_tz, split_url};
use stackunderflow_live::pricing::PriceTable;
use stackunderflow_live::sse::parse_last_event_id;
use stackunderflow_live::time::parse_ts_ms;
use stackunderflow_live::transcript::{tool_events, FileParser, Provider};

const REAL: &str = include_str!("data/transcripts/claude-code/claude-code-log/-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20/subagents/agent-a2271d1.jsonl");
const REAL_CODEX: &str =
    include_str!("data/transcripts/codex/agent-history/real_sessions/codex/session-01.jsonl");

fn real_lines() -> Vec<&'static str> {
    REAL.lines().chain(REAL_CODEX.lines()).collect()
}

proptest! {
    #[test]
    fn parsers_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for provider in [Provider::Claude, Provider::Codex] {
            let mut p = FileParser::new(provider);
            let mut out = Vec::new();
            let _ = p.feed_line(0, &bytes, &mut out);
        }
    }

    #[test]
    fn parsers_survive_real_lines_cut_and_corrupted(
        which in 0usize..1000,
        cut in 0usize..100_000,
        flips in proptest::collection::vec((0usize..100_000, any::<u8>()), 0..8),
    ) {
        let lines = real_lines();
        let line = lines[which % lines.len()].as_bytes();
        let mut bytes = line[..cut.min(line.len())].to_vec();
        for (at, b) in flips {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = b;
            }
        }
        for provider in [Provider::Claude, Provider::Codex] {
            let mut p = FileParser::new(provider);
            let mut out = Vec::new();
            // Feed the whole real file first so the state is realistic.
            for (i, l) in lines.iter().enumerate() {
                let _ = p.feed_line(i as u64 * 10_000, l.as_bytes(), &mut out);
            }
            let _ = p.feed_line(99_999_999, &bytes, &mut out);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let _ = tool_events(&v);
            }
        }
    }

    #[test]
    fn timestamps_never_panic(s in ".{0,40}") {
        let _ = parse_ts_ms(&s);
    }

    #[test]
    fn timestamps_round_trip(ms in -62_000_000_000_000i64..253_000_000_000_000i64) {
        let text = stackunderflow_live::time::format_ts_z(ms);
        prop_assert_eq!(parse_ts_ms(&text), Some(ms));
    }

    #[test]
    fn query_strings_and_resume_ids_never_panic(url in "[ -~]{0,120}", id in "[ -~]{0,40}") {
        let (_, q) = split_url(&url);
        let _ = parse_tz(&q);
        let _ = parse_last_event_id(&id);
    }

    #[test]
    fn price_files_never_panic(text in "[ -~\\n]{0,400}") {
        let _ = PriceTable::from_litellm_json(&text);
        let _ = PriceTable::from_json(&text);
    }
}

#[test]
fn raw_garbage_on_the_http_port_leaves_the_daemon_healthy() {
    use common::*;
    let dir = TempDir::new("fuzz-http");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        "(GET|POST|OPTIONS|HEAD|BREW) /[ -~]{0,80} HTTP/1\\.[01]\r\n([A-Za-z-]{1,20}: [ -~]{0,60}\r\n){0,6}\r\n".prop_map(String::into_bytes),
        "GET /api/live/stream\\?[ -~]{0,80} HTTP/1\\.1\r\nLast-Event-ID: [ -~]{0,30}\r\n\r\n".prop_map(String::into_bytes),
    ];
    for _ in 0..300 {
        let bytes = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(mut s) = TcpStream::connect(&d.addr) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let _ = s.write_all(&bytes);
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
    }
    let (status, h) = d.get_json("/healthz");
    assert_eq!(status, 200, "{h}");
    assert!(
        d.child.try_wait_ok(),
        "the daemon must still be running: {}",
        d.stderr()
    );
    assert!(!d.stderr().contains("panicked"), "{}", d.stderr());
}

trait StillRunning {
    fn try_wait_ok(&self) -> bool;
}

impl StillRunning for std::process::Child {
    fn try_wait_ok(&self) -> bool {
        // Alive when /proc says so (Linux) or, elsewhere, when kill -0 works.
        std::process::Command::new("kill")
            .args(["-0", &self.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}
