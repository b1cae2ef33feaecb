//! The HTTP API on tiny_http: routing, CORS, auth and the JSON endpoints.
//!
//! Owns the listening socket (bound here with a deep backlog, TCP_NODELAY),
//! the worker threads ("http-N") that take requests from tiny_http, and the
//! short answers: `/api/live/stats`, `/healthz`, `/metrics`, the Live page.
//! A stream request is checked here (method, parameters, auth, client cap)
//! and then handed to a new `sse-<peer>` thread running [`stream::serve`].
//!
//! Architecture Invariant: workers never block on a stream; they only
//! answer short requests and spawn stream threads, so `/healthz` stays
//! responsive with thousands of clients connected.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::Sender;
use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::hub::HubMsg;
use crate::sse::{self, parse_last_event_id};
use crate::state::{Reason, Shared};
use crate::store;
use crate::stream::{self, StreamParams, CLIENT_STACK};
use crate::time::now_ms;
use crate::{debug, warn};

/// Worker threads answering short requests. Streams run on their own
/// threads, so a few workers suffice on 2 cores.
pub const WORKERS: usize = 4;

/// Listen backlog: a browser reconnect storm after a restart arrives at
/// once; the kernel queues it while the accept thread catches up (the
/// kernel caps it at `somaxconn`).
pub const BACKLOG: i32 = 4096;

/// Largest `timezone_offset` accepted, in minutes (a day either way).
pub const MAX_TZ_OFFSET: i64 = 1440;

/// Most rows of each kind `?recent=N` may ask for.
pub const MAX_RECENT: i64 = 1000;

/// Seconds a client refused for the cap is told to wait.
pub const RETRY_AFTER_SECS: u32 = 5;

/// What the HTTP layer needs besides the shared state.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Origins allowed besides `http://localhost:*`, `http://127.0.0.1:*`
    /// and `http://[::1]:*`; `*` allows any.
    pub allow_origins: Vec<String>,
    /// Bearer token required on every route but `/healthz` and the page.
    pub token: Option<String>,
    /// Most SSE clients at once.
    pub max_clients: usize,
}

/// Binds `addr` with the socket options the stream needs.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A running HTTP server.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    workers: Vec<thread::JoinHandle<()>>,
    /// The bound address (with the real port when 0 was asked for).
    pub addr: SocketAddr,
}

impl HttpServer {
    /// Starts the workers on an already bound listener.
    pub fn start(
        listener: TcpListener,
        cfg: HttpConfig,
        shared: Arc<Shared>,
        hub: Sender<HubMsg>,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let server =
            Arc::new(tiny_http::Server::from_listener(listener, None).map_err(io::Error::other)?);
        let cfg = Arc::new(cfg);
        let mut workers = Vec::new();
        for i in 0..WORKERS {
            let (server, cfg, shared, hub) =
                (server.clone(), cfg.clone(), shared.clone(), hub.clone());
            workers.push(
                thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        loop {
                            let req = match server.recv() {
                                Ok(req) => req,
                                Err(_) if shared.stopping() => break, // unblocked at shutdown
                                Err(e) => {
                                    listener_failed(&shared, &e);
                                    break;
                                }
                            };
                            if shared.stopping() {
                                let _ = req.respond(json_response(
                                    503,
                                    &json!({"detail": "shutting down"}),
                                    &[],
                                ));
                                continue;
                            }
                            handle(req, &cfg, &shared, &hub, addr.port());
                        }
                    })?,
            );
        }
        let probe_shared = shared.clone();
        thread::Builder::new()
            .name("probe".into())
            .spawn(move || probe_loop(addr, &probe_shared))?;
        Ok(HttpServer {
            server,
            workers,
            addr,
        })
    }

    /// Stops accepting and waits for the workers.
    pub fn stop(self) {
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// tiny_http 0.12 ends its accept loop for good on the first accept error
/// (out of descriptors, say) and reports it through one `recv`. A daemon
/// that no longer accepts must not look alive: record the failure and stop
/// the process through the normal shutdown path, with a non-zero exit, so a
/// service manager (`Restart=on-failure`, launchd `KeepAlive`) restarts it.
fn listener_failed(shared: &Shared, e: &io::Error) {
    crate::error!("the HTTP listener failed ({e}); exiting with status 1 so the service manager restarts the daemon");
    shared.fatal.store(true, Ordering::SeqCst);
    let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
}

/// How often the daemon checks that its own listener still answers.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How long one probe may take before it counts as a failure: far beyond
/// any `/healthz` answer, even on a machine under heavy load.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Failed probes in a row before the daemon gives up (about 30 s without
/// an answer), so a single stall never restarts it.
pub const PROBE_FAILURES: u32 = 3;

/// One `GET /healthz` to ourselves over a fresh connection.
fn probe(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let target = match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&target, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = s.set_write_timeout(Some(PROBE_TIMEOUT));
    if s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The liveness probe ("probe" thread). tiny_http 0.12's accept thread can
/// end without telling anyone (a panic when a descriptor cannot be
/// duplicated), leaving a process that looks alive and answers nothing.
/// Asking ourselves catches every such way of going deaf.
fn probe_loop(addr: SocketAddr, shared: &Shared) {
    let mut failures = 0;
    while !shared.stopping() {
        thread::sleep(PROBE_EVERY);
        if shared.stopping() {
            return;
        }
        if probe(addr) {
            failures = 0;
            continue;
        }
        failures += 1;
        crate::warn!("liveness probe of {addr} failed ({failures} of {PROBE_FAILURES})");
        if failures >= PROBE_FAILURES {
            listener_failed(
                shared,
                &io::Error::other("it no longer answers its own requests"),
            );
            return;
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header names are valid")
}

fn json_response(status: u16, body: &Value, extra: &[Header]) -> Response<io::Cursor<Vec<u8>>> {
    let mut r = Response::from_data(serde_json::to_vec(body).expect("a Value serializes"))
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", "application/json"));
    for h in extra {
        r.add_header(h.clone());
    }
    r
}

fn text_response(
    status: u16,
    content_type: &str,
    body: impl Into<Vec<u8>>,
    extra: &[Header],
) -> Response<io::Cursor<Vec<u8>>> {
    let mut r = Response::from_data(body.into())
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", content_type));
    for h in extra {
        r.add_header(h.clone());
    }
    r
}

/// Decodes `%XX` and `+` in a query component.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a request URL into its path and decoded query pairs.
pub fn split_url(url: &str) -> (&str, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path, pairs)
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn req_header<'a>(req: &'a Request, name: &'static str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// The FastAPI-shaped 422 for a bad `timezone_offset`.
fn tz_error(raw: &str) -> Value {
    json!({"detail": [{
        "type": "int_parsing", "loc": ["query", "timezone_offset"],
        "msg": format!("Input should be a valid integer between -{MAX_TZ_OFFSET} and {MAX_TZ_OFFSET}"),
        "input": raw,
    }]})
}

/// Parses `timezone_offset` (default 0); `Err` carries the 422 body.
pub fn parse_tz(q: &[(String, String)]) -> Result<i64, Value> {
    match param(q, "timezone_offset") {
        None => Ok(0),
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(v) if v.abs() <= MAX_TZ_OFFSET => Ok(v),
            _ => Err(tz_error(raw)),
        },
    }
}

/// Whether `origin` may read our responses from a browser.
pub fn origin_allowed(origin: &str, extra: &[String]) -> bool {
    if extra.iter().any(|o| o == "*" || o == origin) {
        return true;
    }
    ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|base| {
            origin == *base
                || origin
                    .strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit())
                    })
        })
}

fn cors_headers(req: &Request, cfg: &HttpConfig) -> Vec<Header> {
    match req_header(req, "Origin") {
        Some(origin) if origin_allowed(origin, &cfg.allow_origins) => vec![
            header("Access-Control-Allow-Origin", origin),
            header("Vary", "Origin"),
        ],
        _ => Vec::new(),
    }
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

fn authorized(req: &Request, q: &[(String, String)], cfg: &HttpConfig) -> bool {
    let Some(token) = &cfg.token else {
        return true;
    };
    let given = req_header(req, "Authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| param(q, "token"));
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

fn handle(req: Request, cfg: &HttpConfig, shared: &Arc<Shared>, hub: &Sender<HubMsg>, port: u16) {
    let url = req.url().to_string();
    let (path, q) = split_url(&url);
    let cors = cors_headers(&req, cfg);
    let method = req.method().clone();
    if method == Method::Options {
        let mut h = cors.clone();
        if !h.is_empty() {
            h.push(header("Access-Control-Allow-Methods", "GET, OPTIONS"));
            h.push(header(
                "Access-Control-Allow-Headers",
                "Authorization, Last-Event-ID, Cache-Control",
            ));
            h.push(header("Access-Control-Max-Age", "600"));
        }
        let _ = req.respond(text_response(204, "text/plain", Vec::new(), &h));
        return;
    }
    let known = matches!(
        path,
        "/api/live/stream" | "/api/live/stats" | "/healthz" | "/metrics"
    ) || static_file(path).is_some();
    if !known {
        let _ = req.respond(json_response(404, &json!({"detail": "Not Found"}), &cors));
        return;
    }
    if method != Method::Get && method != Method::Head {
        let mut h = cors.clone();
        h.push(header("Allow", "GET"));
        let _ = req.respond(json_response(
            405,
            &json!({"detail": "Method Not Allowed"}),
            &h,
        ));
        return;
    }
    if path == "/healthz" {
        let (status, body) = healthz(shared);
        let _ = req.respond(json_response(status, &body, &cors));
        return;
    }
    if let Some((content_type, body)) = static_file(path) {
        // The page holds no data, so it is served without the token; the
        // API calls it makes carry `?token=`.
        let mut h = cors.clone();
        h.push(header("Cache-Control", "no-cache"));
        let _ = req.respond(text_response(200, content_type, body, &h));
        return;
    }
    if !authorized(&req, &q, cfg) {
        let mut h = cors.clone();
        h.push(header("WWW-Authenticate", "Bearer"));
        let _ = req.respond(json_response(
            401,
            &json!({"detail": "missing or wrong token"}),
            &h,
        ));
        return;
    }
    let tz = match parse_tz(&q) {
        Ok(tz) => tz,
        Err(body) => {
            let _ = req.respond(json_response(422, &body, &cors));
            return;
        }
    };
    match path {
        "/api/live/stats" => {
            let _ = req.respond(json_response(200, &stats(shared, tz), &cors));
        }
        "/metrics" => {
            let _ = req.respond(text_response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics(shared),
                &cors,
            ));
        }
        "/api/live/stream" => start_stream(req, q, tz, cors, cfg, shared, hub, port),
        _ => unreachable!("routes checked above"),
    }
}

/// The Live page, embedded at build time (no build step, no CDN).
fn static_file(path: &str) -> Option<(&'static str, &'static str)> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_str!("../web/index.html"),
        ),
        "/app.js" => (JS, include_str!("../web/app.js")),
        "/live.js" => (JS, include_str!("../web/live.js")),
        "/format.js" => (JS, include_str!("../web/format.js")),
        "/style.css" => ("text/css; charset=utf-8", include_str!("../web/style.css")),
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn start_stream(
    req: Request,
    q: Vec<(String, String)>,
    tz: i64,
    cors: Vec<Header>,
    cfg: &HttpConfig,
    shared: &Arc<Shared>,
    hub: &Sender<HubMsg>,
    port: u16,
) {
    let resume_raw = req_header(&req, "Last-Event-ID")
        .map(str::to_string)
        .or_else(|| param(&q, "last_event_id").map(str::to_string));
    let resume = match resume_raw
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => match parse_last_event_id(raw) {
            Some(p) => Some(p),
            None => {
                let body = json!({"detail": "Last-Event-ID must be <event_id>:<tool_call_id>"});
                let _ = req.respond(json_response(422, &body, &cors));
                return;
            }
        },
    };
    let recent = match param(&q, "recent").map(|r| r.trim().parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if (0..=MAX_RECENT).contains(&n) => n,
        Some(_) => {
            let body =
                json!({"detail": format!("recent must be an integer from 0 to {MAX_RECENT}")});
            let _ = req.respond(json_response(422, &body, &cors));
            return;
        }
    };
    // Reserve a slot first; every path below either keeps it (the stream
    // thread releases it) or gives it back.
    let n = shared.clients.fetch_add(1, Ordering::SeqCst);
    if n >= cfg.max_clients || shared.stopping() {
        shared.clients.fetch_sub(1, Ordering::SeqCst);
        shared.metrics.refused_cap.fetch_add(1, Ordering::Relaxed);
        let mut h = cors.clone();
        h.push(header("Retry-After", &RETRY_AFTER_SECS.to_string()));
        let _ = req.respond(json_response(
            503,
            &json!({"detail": "too many clients"}),
            &h,
        ));
        return;
    }
    let extra_headers: String = cors
        .iter()
        .map(|h| format!("{}: {}\r\n", h.field, h.value))
        .collect();
    let params = StreamParams {
        tz_offset: tz,
        resume,
        recent,
        extra_headers,
    };
    let peer = req.remote_addr().copied();
    // The request moves into the thread; if the spawn fails the closure
    // (and the request in it) is dropped and tiny_http answers 500.
    let (shared2, hub2) = (shared.clone(), hub.clone());
    let spawned = thread::Builder::new()
        .name(format!(
            "sse-{}",
            peer.map(|p| p.to_string()).unwrap_or_default()
        ))
        .stack_size(CLIENT_STACK)
        .spawn(move || stream::serve(req, params, shared2, hub2, port));
    if let Err(e) = spawned {
        shared.clients.fetch_sub(1, Ordering::SeqCst);
        shared.metrics.reaped(Reason::WriteError);
        warn!("cannot start a stream thread for {peer:?}: {e}");
    } else {
        debug!("stream thread started for {peer:?}");
    }
}

/// The `/api/live/stats` body, keys in upstream's order.
pub fn stats(shared: &Shared, tz: i64) -> Value {
    let now = now_ms();
    let burn = shared.burn(now, tz);
    let (lat, e, t) = shared.latency_and_watermarks(now);
    let lat: Vec<Value> = lat
        .iter()
        .map(|l| json!({"tool_name": l.tool_name, "samples": l.samples, "p50": l.p50, "p95": l.p95, "p99": l.p99}))
        .collect();
    json!({
        "burn": sse::burn_json(&burn),
        "tool_latency": lat,
        "watermarks": {"event_id": e, "tool_call_id": t},
        "watcher": {"running": shared.watcher().json()},
    })
}

/// The `/healthz` status code and body.
pub fn healthz(shared: &Shared) -> (u16, Value) {
    let db = store::open_read_only(&shared.store_path).and_then(|c| {
        c.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM usage_events LIMIT 1)",
            [],
            |_| Ok(()),
        )
        .map_err(|e| store::StoreError::Sqlite(shared.store_path.clone(), e))
    });
    let feed_error = shared.feed_error.lock().clone();
    let db_error = db.as_ref().err().map(|e| e.to_string());
    let db_ok = db_error.is_none();
    let status = if !db_ok {
        "error"
    } else if feed_error.is_some() {
        "degraded"
    } else if shared.backfilling.load(Ordering::Relaxed) {
        "backfilling"
    } else {
        "ok"
    };
    let last = shared.last_change_ms.load(Ordering::Relaxed);
    let age = (last > 0).then(|| (now_ms() - last) as f64 / 1000.0);
    let body = json!({
        "status": status,
        "mode": shared.mode.as_str(),
        "store": shared.store_path.display().to_string(),
        "db_ok": db_ok,
        "db_error": db_error,
        "feed_error": feed_error,
        "watcher": shared.watcher().json(),
        "last_change_age_seconds": age,
        "clients": shared.clients.load(Ordering::SeqCst),
        "unknown_models": shared.unknown_models.lock().iter().cloned().collect::<Vec<_>>(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (if db_ok { 200 } else { 503 }, body)
}

/// The Prometheus text exposition.
pub fn metrics(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        out.push_str(&format!(
            "# HELP stackunderflow_live_{name} {help}\n# TYPE stackunderflow_live_{name} {kind}\n"
        ));
        for (labels, v) in lines {
            out.push_str(&format!("stackunderflow_live_{name}{labels} {v}\n"));
        }
    };
    let c = |v: u64| vec![(String::new(), v.to_string())];
    metric(
        "clients",
        "gauge",
        "SSE clients connected now.",
        c(shared.clients.load(Ordering::SeqCst) as u64),
    );
    metric(
        "clients_connected_total",
        "counter",
        "SSE clients that ever connected.",
        c(m.clients_total.load(Ordering::Relaxed)),
    );
    metric(
        "clients_reaped_total",
        "counter",
        "SSE clients disconnected, by reason.",
        Reason::ALL
            .iter()
            .map(|r| {
                (
                    format!("{{reason=\"{}\"}}", r.as_str()),
                    m.reaped[*r as usize - 1]
                        .load(Ordering::Relaxed)
                        .to_string(),
                )
            })
            .collect(),
    );
    metric(
        "clients_refused_total",
        "counter",
        "Stream requests refused by the client cap.",
        c(m.refused_cap.load(Ordering::Relaxed)),
    );
    metric(
        "frames_sent_total",
        "counter",
        "SSE frames written to clients.",
        c(m.frames_sent.load(Ordering::Relaxed)),
    );
    metric(
        "idle_connections_closed_total",
        "counter",
        "Connections closed for staying open too long without a stream.",
        c(m.idle_closed.load(Ordering::Relaxed)),
    );
    metric(
        "rows_published_total",
        "counter",
        "Rows published by the hub.",
        c(m.rows_published.load(Ordering::Relaxed)),
    );
    metric(
        "rows_ingested_total",
        "counter",
        "Rows written by our ingest.",
        c(m.rows_ingested.load(Ordering::Relaxed)),
    );
    metric(
        "malformed_lines_total",
        "counter",
        "Transcript lines skipped as malformed.",
        c(m.malformed_lines.load(Ordering::Relaxed)),
    );
    metric(
        "unknown_model_events_total",
        "counter",
        "Usage events whose model has no price.",
        c(m.unknown_model_events.load(Ordering::Relaxed)),
    );
    let size = std::fs::metadata(&shared.store_path)
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(shared.store_path.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    metric(
        "store_size_bytes",
        "gauge",
        "Size of the store and its WAL.",
        c(size),
    );
    let usage = shared.usage.lock().snapshot();
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let labels = |k: &crate::usage::SeriesKey| {
        format!(
            "provider=\"{}\",model=\"{}\",project=\"{}\"",
            esc(&k.0),
            esc(&k.1),
            esc(&k.2)
        )
    };
    metric(
        "cost_usd_total",
        "counter",
        "Cost of usage events, USD (projects beyond the top 20 as other).",
        usage
            .iter()
            .map(|(k, t)| (format!("{{{}}}", labels(k)), format!("{}", t.cost)))
            .collect(),
    );
    metric(
        "tokens_total",
        "counter",
        "Tokens of usage events by kind.",
        usage
            .iter()
            .flat_map(|(k, t)| {
                [
                    ("input", t.input),
                    ("output", t.output),
                    ("cache_read", t.cache_read),
                    ("cache_write", t.cache_write),
                ]
                .into_iter()
                .map(move |(kind, v)| (format!("{{{},kind=\"{kind}\"}}", labels(k)), v.to_string()))
            })
            .collect(),
    );
    let (buckets, count, sum) = shared.metrics.commit_to_send.read();
    let mut lines: Vec<(String, String)> = crate::usage::LATENCY_BUCKETS
        .iter()
        .zip(buckets)
        .map(|(le, n)| (format!("_bucket{{le=\"{le}\"}}"), n.to_string()))
        .collect();
    lines.push(("_bucket{le=\"+Inf\"}".into(), count.to_string()));
    lines.push(("_sum".into(), format!("{sum}")));
    lines.push(("_count".into(), count.to_string()));
    metric(
        "commit_to_send_seconds",
        "histogram",
        "Seconds from the feed seeing a commit to a client flushing its frames.",
        lines,
    );
    let last = shared.last_change_ms.load(Ordering::Relaxed);
    if last > 0 {
        metric(
            "last_change_age_seconds",
            "gauge",
            "Seconds since the store last changed.",
            vec![(
                String::new(),
                format!("{:.3}", (now_ms() - last) as f64 / 1000.0),
            )],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_and_tz_validation() {
        let (path, q) = split_url("/api/live/stats?timezone_offset=-300&x=a%20b+c");
        assert_eq!(path, "/api/live/stats");
        assert_eq!(parse_tz(&q), Ok(-300));
        assert_eq!(param(&q, "x"), Some("a b c"));
        let (_, q) = split_url("/s?timezone_offset=abc");
        assert_eq!(parse_tz(&q).unwrap_err()["detail"][0]["input"], "abc");
        let (_, q) = split_url("/s?timezone_offset=99999");
        assert!(parse_tz(&q).is_err());
        let (_, q) = split_url("/s?timezone_offset=%");
        assert!(parse_tz(&q).is_err());
        assert_eq!(parse_tz(&split_url("/s").1), Ok(0));
    }

    #[test]
    fn origins() {
        for ok in [
            "http://localhost:5173",
            "http://127.0.0.1:8081",
            "http://[::1]:3000",
            "http://localhost",
        ] {
            assert!(origin_allowed(ok, &[]), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://evil.com",
            "https://localhost:x",
            "http://localhost:",
        ] {
            assert!(!origin_allowed(bad, &[]), "{bad}");
        }
        assert!(origin_allowed(
            "https://dash.example",
            &["https://dash.example".into()]
        ));
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
