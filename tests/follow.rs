//! Follow mode against the real binary: a separate writer connection commits
//! rows while real HTTP clients read the stream.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::{params, Connection};
use stackunderflow_live::devtools::insert_rows;

const WAIT: Duration = Duration::from_secs(30);

fn assert_exactly_once_ascending(ids: &[i64], from: i64, to: i64) {
    let want: Vec<i64> = (from..=to).collect();
    assert_eq!(
        ids.len(),
        want.len(),
        "count: got {} want {}",
        ids.len(),
        want.len()
    );
    assert_eq!(
        ids,
        want.as_slice(),
        "ids must arrive once each, ascending, none missing"
    );
}

#[test]
fn every_usage_event_arrives_exactly_once_in_order_including_a_burst_of_5000() {
    let dir = TempDir::new("events");
    let store = upstream_store(&dir);
    insert_rows(&store, 3, 0, 0.01).unwrap(); // history: not sent to a new client
    let d = Daemon::follow(&store, &dir);
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    assert_eq!(sse.status, 200);
    assert_eq!(
        sse.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(sse.header("cache-control"), Some("no-cache"));
    assert_eq!(sse.header("x-accel-buffering"), Some("no"));
    let first = sse.read_until(WAIT, |f| f.iter().any(|f| f.event == "burn_tick"));
    assert_eq!(first[0].event, "ready");
    assert_eq!(first[0].id.as_deref(), Some("3:0"));
    assert_eq!(first[0].json()["payload"]["watermarks"]["event_id"], 3);
    assert_eq!(sse.retry, Some(2000));

    for _ in 0..20 {
        insert_rows(&store, 1, 0, 0.01).unwrap();
    }
    insert_rows(&store, 5000, 0, 0.001).unwrap();
    let frames = read_resuming(&d.addr, sse, WAIT, |f| count_of(f, "event") >= 5020);
    let ids = ids_of(&frames, "event");
    assert_exactly_once_ascending(&ids, 4, 5023);
    // Each frame's id carries the event watermark it reached.
    let last = frames.iter().rev().find(|f| f.event == "event").unwrap();
    assert_eq!(last.id.as_deref(), Some("5023:0"));
    // And nothing extra arrives afterwards.
    let mut after = Sse::connect(&d.addr, "/api/live/stream?last_event_id=5023:0", &[]).unwrap();
    let extra = after.read_until(Duration::from_millis(700), |_| false);
    assert!(ids_of(&extra, "event").is_empty());
}

#[test]
fn every_tool_call_arrives_exactly_once_in_order() {
    let dir = TempDir::new("tools");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    sse.read_until(WAIT, |f| f.iter().any(|f| f.event == "ready"));
    insert_rows(&store, 0, 1, 0.0).unwrap();
    insert_rows(&store, 0, 2500, 0.0).unwrap();
    let frames = read_resuming(&d.addr, sse, WAIT, |f| count_of(f, "tool_call") >= 2501);
    let ids = ids_of(&frames, "tool_call");
    assert_exactly_once_ascending(&ids, 1, 2501);
    let p = frames
        .iter()
        .find(|f| f.event == "tool_call")
        .unwrap()
        .json();
    let keys: Vec<&String> = p["payload"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "ts",
            "project_id",
            "session_id",
            "tool_name",
            "file_path",
            "byte_count",
            "call_index",
            "project_slug",
            "project_name"
        ]
    );
}

#[test]
fn resume_with_last_event_id_has_no_gap_and_no_duplicate() {
    let dir = TempDir::new("resume");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let mut seen_events = Vec::new();
    let mut seen_tools = Vec::new();
    let mut last_id = None::<String>;
    for round in 0..4i64 {
        let headers: Vec<(&str, &str)> = match (&last_id, round % 2) {
            (Some(id), 0) => vec![("Last-Event-ID", id.as_str())],
            _ => vec![],
        };
        let path = match (&last_id, round % 2) {
            (Some(id), 1) => format!("/api/live/stream?last_event_id={}", id.replace(':', "%3A")),
            _ => "/api/live/stream".to_string(),
        };
        let mut sse = Sse::connect(&d.addr, &path, &headers).unwrap();
        // Rows committed while this client is connected…
        insert_rows(&store, 7, 3, 0.01).unwrap();
        // Everything committed so far: 12 events and 5 tool calls per
        // earlier round (7+5, 3+2), plus this round's 7 and 3.
        let (want_e, want_t) = (12 * round + 7, 5 * round + 3);
        let frames = sse.read_until(WAIT, |f| {
            let (e, t) = last_marks(f);
            e >= want_e && t >= want_t
        });
        assert_eq!(
            last_marks(&frames),
            (want_e, want_t),
            "round {round} caught up"
        );
        for f in &frames {
            match f.event.as_str() {
                "event" => seen_events.push(f.payload_id()),
                "tool_call" => seen_tools.push(f.payload_id()),
                _ => {}
            }
            if f.id.is_some() {
                last_id = f.id.clone();
            }
        }
        drop(sse);
        // …and rows committed while it is away.
        insert_rows(&store, 5, 2, 0.01).unwrap();
    }
    // A final resume collects what was committed during the last absence.
    let id = last_id.unwrap();
    let mut sse = Sse::connect(&d.addr, "/api/live/stream", &[("Last-Event-ID", &id)]).unwrap();
    let total_e = 4 * 7 + 4 * 5;
    let total_t = 4 * 3 + 4 * 2;
    let frames = sse.read_until(WAIT, |f| {
        let (e, t) = last_marks(f);
        e >= total_e && t >= total_t
    });
    seen_events.extend(ids_of(&frames, "event"));
    seen_tools.extend(ids_of(&frames, "tool_call"));
    let mut sorted = seen_events.clone();
    sorted.sort();
    assert_exactly_once_ascending(&sorted, 1, total_e);
    assert_eq!(
        seen_events.iter().collect::<HashSet<_>>().len(),
        seen_events.len(),
        "no duplicate events"
    );
    let mut sorted = seen_tools.clone();
    sorted.sort();
    assert_exactly_once_ascending(&sorted, 1, total_t);
}

#[test]
fn vanished_clients_are_reaped_within_one_heartbeat() {
    let dir = TempDir::new("reap");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut s = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
        s.read_until(WAIT, |f| !f.is_empty());
        clients.push(s);
    }
    let h = d.wait_health(WAIT, |h| h["clients"] == 20);
    assert_eq!(h["clients"], 20);
    drop(clients);
    let t0 = Instant::now();
    let h = d.wait_health(Duration::from_secs(16), |h| h["clients"] == 0);
    assert_eq!(
        h["clients"],
        0,
        "vanished clients still counted after {:?}",
        t0.elapsed()
    );
    let (_, _, metrics) = d.get("/metrics", &[]);
    assert!(
        metrics.contains("stackunderflow_live_clients_reaped_total{reason=\"write_error\"} 20"),
        "{metrics}"
    );
}

#[test]
fn a_storm_of_1000_connects_is_all_answered_with_about_one_thread_each() {
    let dir = TempDir::new("storm");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let before = d.threads();
    let n = 1000;
    // Open every socket first, then send every request, so the daemon sees
    // them all at once.
    let socks: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(&d.addr).unwrap())
        .collect();
    let handles: Vec<_> = socks
        .into_iter()
        .map(|s| {
            let addr = d.addr.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut c = Sse::handshake(s, &addr, "/api/live/stream", &[]).ok()?;
                    let f = c.next().ok()??;
                    (c.status == 200 && f.event == "ready").then_some(c)
                })
                .unwrap()
        })
        .collect();
    let clients: Vec<Sse> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(clients.len(), n, "every connect must be answered");
    let h = d.wait_health(WAIT, |h| h["clients"] == n);
    assert_eq!(h["clients"], n);
    // tiny_http's pool threads, released by the detach, idle out after 5 s;
    // what stays is one thread per client.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15)
        && d.threads()
            .is_some_and(|t| t > before.unwrap_or(0) + n + n / 10)
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    if let (Some(b), Some(after)) = (before, d.threads()) {
        let grown = after as f64 - b as f64;
        eprintln!("threads: {b} before, {after} with {n} clients");
        assert!(
            grown < n as f64 * 1.2,
            "about one thread per client, got {grown} for {n}"
        );
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_others_are_unaffected() {
    let dir = TempDir::new("slow");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    // The slow client: a tiny receive buffer, and it never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&d.addr.parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    let slow = Sse::handshake(sock.into(), &d.addr, "/api/live/stream", &[]).unwrap();
    assert_eq!(slow.status, 200);
    let mut good = Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap();
    good.read_until(WAIT, |f| !f.is_empty());
    // Many separate commits: each one is a message in every client's queue.
    let writer = std::thread::spawn({
        let store = store.clone();
        move || {
            for _ in 0..400 {
                insert_rows(&store, 25, 0, 0.001).unwrap();
            }
        }
    });
    let frames = read_resuming(&d.addr, good, Duration::from_secs(60), |f| {
        count_of(f, "event") >= 10_000
    });
    writer.join().unwrap();
    assert_exactly_once_ascending(&ids_of(&frames, "event"), 1, 10_000);
    // The slow one was disconnected: after draining what the kernel
    // buffered, it reaches end of stream.
    let mut slow = slow;
    slow.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let t0 = Instant::now();
    let mut closed = None;
    let mut slow_frames = Vec::new();
    while t0.elapsed() < Duration::from_secs(30) {
        match slow.next() {
            Ok(None) => {
                closed = Some("end of stream".to_string());
                break;
            }
            Ok(Some(f)) => slow_frames.push(f),
            // The kernel may abort the orphaned connection (a zero window
            // for long) with a reset: that is the server's close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = Some("reset".to_string());
                break;
            }
            Err(e) => panic!("the slow client saw no close, only {e}"),
        }
    }
    assert!(
        closed.is_some(),
        "the slow client must see the server close the stream"
    );
    let h = d.wait_health(WAIT, |h| h["clients"] == 1);
    assert_eq!(h["clients"], 1);
    // Cut off is not lost: resuming from its last id, it gets the rest.
    let last = last_marks(&slow_frames);
    let resumed = Sse::connect(
        &d.addr,
        &format!("/api/live/stream?last_event_id={}:{}", last.0, last.1),
        &[],
    )
    .unwrap();
    let have = count_of(&slow_frames, "event");
    let rest = read_resuming(&d.addr, resumed, WAIT, |f| {
        have + count_of(f, "event") >= 10_000
    });
    slow_frames.extend(rest);
    assert_exactly_once_ascending(&ids_of(&slow_frames, "event"), 1, 10_000);
}

#[test]
fn latency_pairs_parallel_tool_calls_by_id() {
    let dir = TempDir::new("latency");
    let store = upstream_store(&dir);
    insert_rows(&store, 1, 0, 0.0).unwrap(); // creates project, session, month table
    let d = Daemon::follow(&store, &dir);
    let conn = Connection::open(&store).unwrap();
    let table: String = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type='table' AND name GLOB 'messages_2*'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let now = stackunderflow_live::time::now_ms() - 60_000;
    let ts = |off: i64| stackunderflow_live::time::format_ts_z(now + off);
    // Two parallel Read calls: a (t+0) and b (t+5 ms); b's result at
    // t+300, a's at t+2000. "Next message" pairing would give a = 5 ms.
    let lines = [
        (
            0,
            format!(
                r#"{{"type":"assistant","timestamp":"{}","message":{{"content":[{{"type":"tool_use","id":"toolu_a","name":"Read","input":{{}}}}]}}}}"#,
                ts(0)
            ),
        ),
        (
            5,
            format!(
                r#"{{"type":"assistant","timestamp":"{}","message":{{"content":[{{"type":"tool_use","id":"toolu_b","name":"Read","input":{{}}}}]}}}}"#,
                ts(5)
            ),
        ),
        (
            300,
            format!(
                r#"{{"type":"user","timestamp":"{}","message":{{"content":[{{"type":"tool_result","tool_use_id":"toolu_b","content":"x"}}]}}}}"#,
                ts(300)
            ),
        ),
        (
            2000,
            format!(
                r#"{{"type":"user","timestamp":"{}","message":{{"content":[{{"type":"tool_result","tool_use_id":"toolu_a","content":"x"}}]}}}}"#,
                ts(2000)
            ),
        ),
    ];
    let tx = conn.unchecked_transaction().unwrap();
    for (i, (off, raw)) in lines.iter().enumerate() {
        tx.execute("INSERT INTO _messages_id_seq DEFAULT VALUES", [])
            .unwrap();
        let id = tx.last_insert_rowid();
        tx.execute(
            &format!("INSERT INTO {table}(id, session_fk, seq, timestamp, role, raw_json) VALUES (?1, 1, ?2, ?3, 'x', ?4)"),
            params![id, 100_000 + i as i64, ts(*off), raw],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let t0 = Instant::now();
    let read = loop {
        let (_, v) = d.get_json("/api/live/stats");
        let found = v["tool_latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool_name"] == "Read")
            .cloned();
        if let Some(r) = found {
            break r;
        }
        assert!(t0.elapsed() < WAIT, "no Read latency after {WAIT:?}: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(read["samples"], 2);
    // Upstream convention on [0.295, 2.0]: p50 = sorted[1] = 2.0.
    assert_eq!(read["p50"], 2.0);
    assert_eq!(read["p95"], 2.0);
}

#[test]
fn stats_have_the_upstream_shape_and_key_order() {
    let dir = TempDir::new("stats");
    let store = upstream_store(&dir);
    insert_rows(&store, 4, 2, 0.25).unwrap();
    let d = Daemon::follow(&store, &dir);
    let (status, v) = d.get_json("/api/live/stats?timezone_offset=-300");
    assert_eq!(status, 200);
    let top: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(top, ["burn", "tool_latency", "watermarks", "watcher"]);
    let burn: Vec<&String> = v["burn"].as_object().unwrap().keys().collect();
    assert_eq!(
        burn,
        [
            "window_minutes",
            "window_cost",
            "per_minute",
            "per_hour",
            "today_cost",
            "month_to_date",
            "projected_month_end",
            "ts"
        ]
    );
    assert_eq!(v["burn"]["window_cost"], 1.0);
    assert_eq!(v["watermarks"]["event_id"], 4);
    assert_eq!(v["watermarks"]["tool_call_id"], 2);
    assert!(v["burn"]["ts"].as_str().unwrap().ends_with("+00:00"));
}

#[test]
fn bad_requests_get_clear_answers() {
    let dir = TempDir::new("bad");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let (s, _, body) = d.get("/api/live/stats?timezone_offset=abc", &[]);
    assert_eq!(s, 422);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["detail"].is_array());
    let (s, _, _) = d.get("/api/live/stream?timezone_offset=abc", &[]);
    assert_eq!(s, 422);
    assert_eq!(d.get("/nope", &[]).0, 404);
    let (s, h, _) = http_request(
        &d.addr,
        "POST",
        "/api/live/stream",
        &[("Content-Length", "0")],
    );
    assert_eq!(s, 405);
    assert!(h.iter().any(|(k, v)| k == "allow" && v == "GET"));
    let (s, _, _) = d.get("/api/live/stream", &[("Last-Event-ID", "garbage")]);
    assert_eq!(s, 422);
    // The daemon is still healthy after all that.
    assert_eq!(d.get_json("/healthz").1["status"], "ok");
}

#[test]
fn cors_allows_the_local_dashboard_and_no_one_else_by_default() {
    let dir = TempDir::new("cors");
    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let (_, h, _) = d.get("/api/live/stats", &[("Origin", "http://localhost:5173")]);
    assert!(h
        .iter()
        .any(|(k, v)| k == "access-control-allow-origin" && v == "http://localhost:5173"));
    let (_, h, _) = d.get("/api/live/stats", &[("Origin", "http://evil.example")]);
    assert!(!h.iter().any(|(k, _)| k == "access-control-allow-origin"));
    let sse = Sse::connect(
        &d.addr,
        "/api/live/stream",
        &[("Origin", "http://127.0.0.1:8081")],
    )
    .unwrap();
    assert_eq!(
        sse.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8081")
    );
    let (s, h, _) = http_request(
        &d.addr,
        "OPTIONS",
        "/api/live/stream",
        &[("Origin", "http://localhost:3000")],
    );
    assert_eq!(s, 204);
    assert!(h
        .iter()
        .any(|(k, v)| k == "access-control-allow-headers" && v.contains("Last-Event-ID")));
}

#[test]
fn startup_failures_are_one_clear_line_and_a_nonzero_exit() {
    let dir = TempDir::new("startup");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = dir.path().join("missing.db");
    let (code, err) = run(&[
        "--follow",
        missing.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("does not exist") && err.lines().count() == 1,
        "{err}"
    );

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(a)")
        .unwrap();
    let (code, err) = run(&[
        "--follow",
        other.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no `usage_events` table"), "{err}");

    let store = upstream_store(&dir);
    let d = Daemon::follow(&store, &dir);
    let (code, err) = run(&["--follow", store.to_str().unwrap(), "--listen", &d.addr]);
    assert_eq!(code, Some(2));
    assert!(err.contains("address already in use"), "{err}");
    assert!(!err.contains("panicked"));

    let (code, err) = run(&["--follow", store.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("without a token"), "{err}");

    let (code, help) = {
        let out = std::process::Command::new(BIN)
            .arg("--help")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    for flag in [
        "--follow",
        "--listen",
        "--allow-origin",
        "--token",
        "--max-clients",
    ] {
        assert!(help.contains(flag), "--help must explain {flag}");
    }
}

#[test]
fn sigterm_stops_within_a_second_with_clients_connected() {
    let dir = TempDir::new("sigterm");
    let store = upstream_store(&dir);
    let mut d = Daemon::follow(&store, &dir);
    let mut clients: Vec<Sse> = (0..50)
        .map(|_| Sse::connect(&d.addr, "/api/live/stream", &[]).unwrap())
        .collect();
    for c in clients.iter_mut() {
        c.read_until(WAIT, |f| !f.is_empty());
    }
    let took = d.terminate();
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    assert_eq!(d.child.wait().unwrap().code(), Some(0));
    // Every client sees its stream end.
    for c in clients.iter_mut() {
        let rest = c.read_until(Duration::from_secs(5), |_| false);
        assert!(rest.iter().all(|f| f.event == "burn_tick"));
        assert!(matches!(c.next(), Ok(None) | Err(_)));
    }
}

#[test]
fn watcher_reports_the_upstream_server_lock() {
    let dir = TempDir::new("watcher");
    let store = upstream_store(&dir);
    let lock = dir.path().join("server.lock");
    std::fs::write(&lock, "1\n0\n").unwrap();
    let d = Daemon::follow(&store, &dir);
    // A lock file nobody holds: the writer is gone.
    assert_eq!(d.get_json("/api/live/stats").1["watcher"]["running"], false);
    let holder = std::fs::File::open(&lock).unwrap();
    holder.lock().unwrap();
    assert_eq!(d.get_json("/api/live/stats").1["watcher"]["running"], true);
    assert_eq!(d.get_json("/healthz").1["watcher"], true);
    holder.unlock().unwrap();
    assert_eq!(d.get_json("/healthz").1["watcher"], false);
}

#[test]
fn recent_sends_the_newest_rows_first_to_a_client_without_a_resume_point() {
    let dir = TempDir::new("recent");
    let store = upstream_store(&dir);
    insert_rows(&store, 10, 5, 0.01).unwrap();
    let d = Daemon::follow(&store, &dir);
    let mut sse = Sse::connect(&d.addr, "/api/live/stream?recent=3", &[]).unwrap();
    let frames = sse.read_until(WAIT, |f| {
        count_of(f, "event") >= 3 && count_of(f, "tool_call") >= 3
    });
    assert_eq!(frames[0].event, "ready");
    assert_eq!(frames[0].id.as_deref(), Some("7:2"));
    assert_eq!(ids_of(&frames, "event"), vec![8, 9, 10]);
    assert_eq!(ids_of(&frames, "tool_call"), vec![3, 4, 5]);
    // A resume point wins over recent.
    let mut sse =
        Sse::connect(&d.addr, "/api/live/stream?recent=3&last_event_id=9:5", &[]).unwrap();
    let frames = sse.read_until(WAIT, |f| count_of(f, "event") >= 1);
    assert_eq!(ids_of(&frames, "event"), vec![10]);
    assert!(ids_of(&frames, "tool_call").is_empty());
    for bad in ["abc", "-1", "5000"] {
        assert_eq!(
            d.get(&format!("/api/live/stream?recent={bad}"), &[]).0,
            422,
            "recent={bad}"
        );
    }
    assert_eq!(
        d.get_json("/healthz").1["clients"],
        2,
        "refused requests hold no slot"
    );
}
