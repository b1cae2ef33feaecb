//! Running it as a service, safely: auth, the client cap, slow sockets,
//! `/metrics`, SIGHUP price reloads.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use stackunderflow_live::devtools::insert_rows;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_token_guards_the_api_but_not_health_and_is_never_logged() {
    let dir = TempDir::new("auth");
    let store = upstream_store(&dir);
    let d = Daemon::start(
        &[
            "--follow",
            store.to_str().unwrap(),
            "--token",
            "s3cret-token",
        ],
        &[],
        &dir,
    );
    assert_eq!(d.get("/api/live/stats", &[]).0, 401);
    assert_eq!(
        d.get("/api/live/stats", &[("Authorization", "Bearer wrong")])
            .0,
        401
    );
    assert_eq!(d.get("/api/live/stats?token=s3cret-tokem", &[]).0, 401);
    assert_eq!(d.get("/metrics", &[]).0, 401);
    assert_eq!(d.get("/api/live/stream", &[]).0, 401);
    assert_eq!(
        d.get(
            "/api/live/stats",
            &[("Authorization", "Bearer s3cret-token")]
        )
        .0,
        200
    );
    assert_eq!(d.get("/api/live/stats?token=s3cret-token", &[]).0, 200);
    let sse = Sse::connect(&d.addr, "/api/live/stream?token=s3cret-token", &[]).unwrap();
    assert_eq!(sse.status, 200);
    assert_eq!(d.get("/healthz", &[]).0, 200);
    assert_eq!(d.get("/", &[]).0, 200, "the page itself holds no data");
    assert!(
        !d.stderr().contains("s3cret"),
        "the token must never be logged"
    );
}

#[test]
fn a_non_loopback_address_is_refused_without_a_token_and_the_token_may_come_from_the_environment() {
    let dir = TempDir::new("bind");
    let store = upstream_store(&dir);
    let out = std::process::Command::new(BIN)
        .args(["--follow", store.to_str().unwrap(), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The token from the environment guards the API like --token.
    let d = Daemon::start(
        &["--follow", store.to_str().unwrap()],
        &[("STACKUNDERFLOW_LIVE_TOKEN", "t0k")],
        &dir,
    );
    assert_eq!(d.get("/api/live/stats", &[]).0, 401);
    assert_eq!(
        d.get("/api/live/stats", &[("Authorization", "Bearer t0k")])
            .0,
        200
    );
}

#[test]
fn clients_beyond_the_cap_get_503_with_retry_after() {
    let dir = TempDir::new("cap");
    let store = upstream_store(&dir);
    let d = Daemon::start(
        &["--follow", store.to_str().unwrap(), "--max-clients", "3"],
        &[],
        &dir,
    );
    let mut held: Vec<Sse> = (0..3)
        .map(|_| Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap())
        .collect();
    for s in held.iter_mut() {
        assert_eq!(s.status, 200);
        s.read_until(WAIT, |f| !f.is_empty());
    }
    let (status, headers, _) = d.get("/api/live/stream", &[]);
    assert_eq!(status, 503);
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "5"),
        "{headers:?}"
    );
    drop(held);
    let h = d.wait_health(Duration::from_secs(20), |h| h["clients"] == 0);
    assert_eq!(h["clients"], 0);
    assert_eq!(
        Sse::connect(&d.addr, "/api/live/stream", &[])
            .unwrap()
            .status,
        200
    );
    let (_, _, m) = d.get("/metrics", &[]);
    assert!(
        m.contains("stackunderflow_live_clients_refused_total 1"),
        "{m}"
    );
}

#[test]
fn an_idle_or_trickling_socket_is_closed_and_does_not_block_others() {
    let dir = TempDir::new("slowloris");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let mut idle = TcpStream::connect(&d.addr).unwrap();
    let mut trickle = TcpStream::connect(&d.addr).unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap(); // never finished
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Others are served meanwhile.
    assert_eq!(d.get("/healthz", &[]).0, 200);
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);
    let _ = trickle.read_to_end(&mut buf);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(40),
        "slow sockets held for {took:?}"
    );
    let (_, _, m) = d.get("/metrics", &[]);
    assert!(
        m.contains("stackunderflow_live_idle_connections_closed_total 2"),
        "{m}"
    );
}

#[test]
fn the_server_keeps_accepting_after_a_long_quiet_spell() {
    // Regression: a receive timeout on the listener made tiny_http's accept
    // loop end after that long without a new connection.
    let dir = TempDir::new("quiet");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    assert_eq!(d.get("/healthz", &[]).0, 200);
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(d.get("/healthz", &[]).0, 200);
    assert_eq!(
        Sse::connect(&d.addr, "/api/live/stream", &[])
            .unwrap()
            .status,
        200
    );
}

/// Parses the Prometheus text format strictly enough to catch mistakes.
fn parse_metrics(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap().to_string();
            let kind = it.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counters end in _total: {name}");
            }
            typed.insert(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                assert!(l.ends_with('}'), "{line}");
                (n.to_string(), l.trim_end_matches('}').to_string())
            }
            None => (series.to_string(), String::new()),
        };
        assert!(name.starts_with("stackunderflow_live_"), "{name}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            typed.contains(&name) || typed.contains(base),
            "no # TYPE for {name}"
        );
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label {pair} in {line}"));
            assert!(
                k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            let _ = v;
        }
        out.push((name, labels, value));
    }
    out
}

fn metric(m: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    m.iter()
        .filter(|(n, l, _)| n == name && l.contains(labels))
        .map(|(_, _, v)| *v)
        .sum()
}

#[test]
fn metrics_parse_and_move_with_activity() {
    let dir = TempDir::new("metrics");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let before = parse_metrics(&d.get("/metrics", &[]).2);
    assert_eq!(
        metric(&before, "stackunderflow_live_frames_sent_total", ""),
        0.0
    );
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    sse.read_until(WAIT, |f| !f.is_empty());
    insert_rows(&store, 5, 2, 0.5).unwrap();
    sse.read_until(WAIT, |f| {
        count_of(f, "event") >= 5 && count_of(f, "tool_call") >= 2
    });
    let after = parse_metrics(&d.get("/metrics", &[]).2);
    assert_eq!(metric(&after, "stackunderflow_live_clients", ""), 1.0);
    assert!(metric(&after, "stackunderflow_live_frames_sent_total", "") >= 7.0);
    assert_eq!(
        metric(&after, "stackunderflow_live_rows_published_total", ""),
        7.0
    );
    assert_eq!(
        metric(
            &after,
            "stackunderflow_live_cost_usd_total",
            "project=\"-demo-project\""
        ),
        2.5
    );
    assert_eq!(
        metric(
            &after,
            "stackunderflow_live_tokens_total",
            "kind=\"output\""
        ),
        1000.0
    );
    assert!(
        metric(
            &after,
            "stackunderflow_live_commit_to_send_seconds_count",
            ""
        ) >= 1.0
    );
    assert!(metric(&after, "stackunderflow_live_store_size_bytes", "") > 0.0);
}

#[test]
fn usage_counters_are_restored_from_the_store_after_a_restart() {
    let dir = TempDir::new("restore");
    let store = upstream_store(&dir);
    insert_rows(&store, 4, 0, 0.25).unwrap();
    let mut d = Daemon::follow(&store, &dir);
    let m = parse_metrics(&d.get("/metrics", &[]).2);
    assert_eq!(metric(&m, "stackunderflow_live_cost_usd_total", ""), 1.0);
    d.terminate();
    insert_rows(&store, 1, 0, 0.25).unwrap();
    let d = Daemon::follow(&store, &dir);
    let m = parse_metrics(&d.get("/metrics", &[]).2);
    assert_eq!(
        metric(&m, "stackunderflow_live_cost_usd_total", ""),
        1.25,
        "never backwards across restarts"
    );
}

#[test]
fn sighup_reloads_the_price_file() {
    let dir = TempDir::new("sighup");
    let claude = dir.path().join("claude");
    let codex = dir.path().join("codex");
    std::fs::create_dir_all(claude.join("p")).unwrap();
    std::fs::create_dir_all(&codex).unwrap();
    let prices = dir.path().join("prices.json");
    let write_prices = |output: f64| {
        std::fs::write(
            &prices,
            format!(r#"{{"version":"test","models":{{"test-model-1":{{"input":0,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0,"output":{output}}}}}}}"#),
        )
        .unwrap()
    };
    write_prices(1.0);
    let store = dir.path().join("live.db");
    let d = Daemon::start(
        &[
            "--store",
            store.to_str().unwrap(),
            "--claude-dir",
            claude.to_str().unwrap(),
            "--codex-dir",
            codex.to_str().unwrap(),
            "--prices",
            prices.to_str().unwrap(),
        ],
        &[],
        &dir,
    );
    let line = |id: &str| {
        format!(
            "{{\"type\":\"assistant\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"sessionId\":\"s\",\"requestId\":\"req_{id}\",\"message\":{{\"id\":\"msg_{id}\",\"model\":\"test-model-1\",\"content\":[],\"usage\":{{\"input_tokens\":0,\"output_tokens\":1000000}}}}}}\n"
        )
    };
    let file = claude.join("p/s.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .unwrap();
    let cost_of = |id: i64| -> Option<f64> {
        let c = rusqlite::Connection::open(&store).ok()?;
        c.query_row(
            "SELECT cost_usd FROM usage_events WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .ok()
    };
    let wait_cost = |id: i64| {
        let t0 = Instant::now();
        loop {
            if let Some(c) = cost_of(id) {
                return c;
            }
            assert!(
                t0.elapsed() < WAIT,
                "event {id} never stored: {}",
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    f.write_all(line("a").as_bytes()).unwrap();
    assert_eq!(wait_cost(1), 1.0);
    write_prices(2.0);
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status();
    let t0 = Instant::now();
    while !d.stderr().contains("prices reloaded") {
        assert!(t0.elapsed() < WAIT, "no reload logged: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    f.write_all(line("b").as_bytes()).unwrap();
    assert_eq!(wait_cost(2), 2.0);
    assert_eq!(
        d.get_json("/healthz").1["status"],
        "ok",
        "SIGHUP does not stop the daemon"
    );
}

#[test]
fn every_setting_reads_its_environment_variable_and_print_config_hides_the_token() {
    let out = std::process::Command::new(BIN)
        .arg("--print-config")
        .env("STACKUNDERFLOW_LIVE_FOLLOW", "/tmp/some/store.db")
        .env("STACKUNDERFLOW_LIVE_LISTEN", "127.0.0.1:9999")
        .env("STACKUNDERFLOW_LIVE_TOKEN", "do-not-print-me")
        .env("STACKUNDERFLOW_LIVE_MAX_CLIENTS", "17")
        .env(
            "STACKUNDERFLOW_LIVE_ALLOW_ORIGIN",
            "https://a.example,https://b.example",
        )
        .env("STACKUNDERFLOW_LIVE_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mode"], "follow");
    assert_eq!(v["store"], "/tmp/some/store.db");
    assert_eq!(v["listen"], "127.0.0.1:9999");
    assert_eq!(v["max_clients"], 17);
    assert_eq!(
        v["allow_origin"],
        serde_json::json!(["https://a.example", "https://b.example"])
    );
    assert_eq!(v["log_level"], "debug");
    assert_eq!(v["token"], "(set)");
    assert!(!text.contains("do-not-print-me"));
}

#[test]
fn a_listener_that_fails_stops_the_daemon_with_status_1_for_the_supervisor() {
    // Out of descriptors, tiny_http's accept thread dies (it panics when it
    // cannot duplicate an accepted socket); the daemon must then exit
    // non-zero (so systemd/launchd restart it), not linger deaf.
    let dir = TempDir::new("emfile");
    let store = upstream_store(&dir);
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args([
            "--follow",
            store.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--print-addr",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line.trim().trim_start_matches("http://").to_string();
    // Idle connections pile up in tiny_http until accept() runs out of descriptors.
    let mut held = Vec::new();
    let t0 = Instant::now();
    let status = loop {
        if let Ok(s) = TcpStream::connect(&addr) {
            held.push(s);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // The liveness probe gives up after three failed probes 10 s apart.
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the daemon kept running without a listener"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("the HTTP listener failed"), "{err}");
}
