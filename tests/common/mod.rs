//! Test support: a real daemon process on an ephemeral port, a minimal SSE
//! client on a raw socket, and temporary stores. Every wait is bounded.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stackunderflow-live");

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "sul-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An empty upstream-shaped store in `dir`.
pub fn upstream_store(dir: &TempDir) -> PathBuf {
    let p = dir.path().join("store.db");
    stackunderflow_live::devtools::create_upstream_store(&p).unwrap();
    p
}

/// A running daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub stderr_path: PathBuf,
}

impl Daemon {
    /// Starts the daemon with `args` (plus an ephemeral loopback port).
    pub fn start(args: &[&str], envs: &[(&str, &str)], dir: &TempDir) -> Daemon {
        let stderr_path = dir.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["--listen", "127.0.0.1:0", "--print-addr"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start daemon");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().trim_start_matches("http://").to_string();
        assert!(
            !addr.is_empty(),
            "daemon printed no address; stderr: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        Daemon {
            child,
            addr,
            stderr_path,
        }
    }

    pub fn follow(store: &Path, dir: &TempDir) -> Daemon {
        Daemon::start(&["--follow", store.to_str().unwrap()], &[], dir)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// GET `path`; returns (status, headers, body).
    pub fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        http_get(&self.addr, path, headers)
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = self.get(path, &[]);
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }

    /// Polls `/healthz` until `pred` holds or `timeout` passes.
    pub fn wait_health(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let (_, v) = self.get_json("/healthz");
            if pred(&v) || t0.elapsed() > timeout {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Threads of the daemon process (Linux).
    pub fn threads(&self) -> Option<usize> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn terminate(&mut self) -> Duration {
        let t0 = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("daemon did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.0-style GET on a raw socket.
pub fn http_get(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    http_request(addr, "GET", path, headers)
}

pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// One SSE frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Frame {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("bad JSON in frame {self:?}: {e}"))
    }
    pub fn payload_id(&self) -> i64 {
        self.json()["payload"]["id"].as_i64().unwrap()
    }
}

/// A minimal SSE client over a raw socket.
pub struct Sse {
    pub reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub comments: usize,
    pub retry: Option<u64>,
}

impl Sse {
    pub fn connect(addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Sse> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        Sse::handshake(s, addr, path, headers)
    }

    pub fn handshake(
        mut s: TcpStream,
        addr: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Sse> {
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Ok(Sse {
            reader,
            status,
            headers,
            comments: 0,
            retry: None,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next frame; `Ok(None)` at end of stream.
    pub fn next(&mut self) -> io::Result<Option<Frame>> {
        let mut event = String::from("message");
        let mut id = None;
        let mut data: Option<String> = None;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let l = line.trim_end_matches(['\n', '\r']);
            if l.is_empty() {
                if let Some(data) = data.take() {
                    return Ok(Some(Frame { event, id, data }));
                }
                event = "message".into();
                continue;
            }
            if l.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = l
                .split_once(':')
                .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
                .unwrap_or((l, ""));
            match field {
                "event" => event = value.to_string(),
                "id" => id = Some(value.to_string()),
                "data" => {
                    data = Some(
                        data.map(|d| d + "\n" + value)
                            .unwrap_or_else(|| value.to_string()),
                    )
                }
                "retry" => self.retry = value.parse().ok(),
                _ => {}
            }
        }
    }

    /// Reads frames until `done` says so or `timeout` passes; returns all read.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Frame]) -> bool,
    ) -> Vec<Frame> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        while !done(&out) && t0.elapsed() < timeout {
            match self.next() {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(_) => break,
            }
        }
        out
    }
}

/// Number of frames of `kind` (cheap: no JSON parsing, for predicates).
pub fn count_of(frames: &[Frame], kind: &str) -> usize {
    frames.iter().filter(|f| f.event == kind).count()
}

/// The `E:T` id of the last frame that has one, parsed.
pub fn last_marks(frames: &[Frame]) -> (i64, i64) {
    frames
        .iter()
        .rev()
        .find_map(|f| f.id.as_deref())
        .and_then(|id| id.split_once(':'))
        .map(|(e, t)| (e.parse().unwrap(), t.parse().unwrap()))
        .unwrap_or((0, 0))
}

/// Ids of the frames of `kind`, in arrival order.
pub fn ids_of(frames: &[Frame], kind: &str) -> Vec<i64> {
    frames
        .iter()
        .filter(|f| f.event == kind)
        .map(|f| f.payload_id())
        .collect()
}

/// Reads frames like a real client: when the server closes the stream (it
/// cuts off a client that falls behind, which a loaded test machine can
/// make any client), reconnect with the last id and go on. Returns every
/// frame read, across connections.
pub fn read_resuming(
    addr: &str,
    mut sse: Sse,
    timeout: Duration,
    mut done: impl FnMut(&[Frame]) -> bool,
) -> Vec<Frame> {
    let t0 = Instant::now();
    let mut all: Vec<Frame> = Vec::new();
    while !done(&all) && t0.elapsed() < timeout {
        match sse.next() {
            Ok(Some(f)) => all.push(f),
            Ok(None) | Err(_) => {
                let last = all.iter().rev().find_map(|f| f.id.clone());
                let path = match last {
                    Some(id) => format!("/api/live/stream?last_event_id={id}"),
                    None => "/api/live/stream".to_string(),
                };
                match Sse::connect(addr, &path, &[]) {
                    Ok(s) => sse = s,
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
    all
}
