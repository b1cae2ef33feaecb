//! Scenario `fanout`: K connected SSE clients, then R events/s for S
//! seconds. Every client must receive every frame; we count what is lost,
//! time each delivery, and watch the daemon's CPU, memory, threads and
//! descriptors. With `--max` the client count steps up until something
//! breaks, and the first thing that broke is reported.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::daemon::{self, Daemon, Scratch};
use crate::http_get;
use crate::procfs::{self, CpuMeter, Sampler};
use crate::report::{self, mib, Dist, Table};
use crate::sse_pool::{connect_many, Pool};
use crate::writer::{self, CommitLog, Writer};
use crate::Ctx;

/// What to run.
pub struct Opts {
    /// Clients (without --max).
    pub clients: usize,
    /// Events per second.
    pub rate: u32,
    /// Seconds of commits.
    pub secs: u64,
    /// Step up until failure.
    pub max: bool,
    /// Steps for --max (default below).
    pub steps: Vec<usize>,
}

/// Client counts tried by `--max`, up to the 10,000 the issue asks about.
const MAX_STEPS: [usize; 6] = [1000, 2000, 4000, 6000, 8000, 10_000];

/// Client counts tried by `--max --quick`.
const MAX_STEPS_QUICK: [usize; 4] = [250, 500, 1000, 2000];

/// Pool threads reading the clients: one per core of this machine.
const READERS: usize = 2;

/// Connector threads.
const CONNECTORS: usize = 4;

/// Verdict of a step whose only failure is latency: stepping up goes on,
/// to find the hard limits too.
const SLOW: &str = "SLOW";

/// A p99 above this counts as "latency blew up" (the stream is no longer
/// live in any useful sense).
const LATENCY_LIMIT_MS: f64 = 1000.0;

/// After the last commit we keep reading while frames still arrive, for
/// at most this long: a backlog that is late is not a loss.
const DRAIN_MAX: Duration = Duration::from_secs(120);

/// … and stop once no frame arrived for this long: what is missing then
/// is lost.
const DRAIN_STALL: Duration = Duration::from_secs(10);

/// Connecting gives up when no client got an answer for this long (the
/// daemon stopped accepting, or every thread is stuck).
const CONNECT_STALL: Duration = Duration::from_secs(20);

struct Step {
    clients: usize,
    subscribed: usize,
    connect_secs: f64,
    connect_errors: String,
    refused: usize,
    committed: u64,
    lost: u64,
    clients_lossy: usize,
    cut: usize,
    drain_secs: f64,
    out_of_sequence: u64,
    lat: Dist,
    cpu: f64,
    bench_cpu: f64,
    idle_rss: u64,
    peak: procfs::Sample,
    healthz_ms: Option<f64>,
    alive: bool,
    shutdown_ms: Option<f64>,
    warnings: Vec<String>,
    verdict: String,
}

/// Runs the scenario and returns its Markdown block.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<String, String> {
    let steps: Vec<usize> = if !o.max {
        vec![o.clients]
    } else if !o.steps.is_empty() {
        o.steps.clone()
    } else if ctx.quick {
        MAX_STEPS_QUICK.to_vec()
    } else {
        MAX_STEPS.to_vec()
    };
    let mut s = report::block_head(&format!(
        "fanout: {} events/s for {} s to K idle clients",
        o.rate, o.secs
    ));
    s.push_str(&format!(
        "Each step starts a fresh daemon (`--max-clients` K+16), connects K SSE clients from {CONNECTORS} \
         connector threads and waits until each has its `ready` frame, then commits one usage event every \
         {:.0} ms for {} s. Clients are read by {READERS} epoll threads in the bench process. Latency is \
         COMMIT returned → frame read, per frame per client. A step FAILs on the first of: clients not \
         subscribed, daemon gone, clients cut off, frames lost; it is SLOW when only p99 > \
         {LATENCY_LIMIT_MS:.0} ms (stepping up continues past SLOW, stops at FAIL). After the last \
         commit the bench keeps reading while frames arrive (at most {} s); a frame counts as lost \
         only when nothing arrived for {} s.\n\n",
        1000.0 / o.rate as f64,
        o.secs,
        DRAIN_MAX.as_secs(),
        DRAIN_STALL.as_secs()
    ));
    let mut t = Table::new(&[
        "clients",
        "subscribed (time)",
        "frames lost",
        "clients cut",
        "p50 ms",
        "p99 ms",
        "max ms",
        "daemon CPU %",
        "bench CPU %",
        "RSS MiB idle → peak",
        "threads",
        "fds",
        "/healthz ms",
        "result",
    ]);
    let mut notes = Vec::new();
    for k in steps {
        eprintln!(
            "fanout: {k} clients at {} events/s for {} s",
            o.rate, o.secs
        );
        let r = step(ctx, o, k)?;
        let [p50, p99, max] = r.lat.cells();
        t.row(vec![
            r.clients.to_string(),
            format!("{} ({:.1} s)", r.subscribed, r.connect_secs),
            format!("{} of {}", r.lost, r.committed * r.subscribed as u64),
            r.cut.to_string(),
            p50,
            p99,
            max,
            format!("{:.0}", r.cpu),
            format!("{:.0}", r.bench_cpu),
            format!("{} → {}", mib(r.idle_rss), mib(r.peak.rss_kib)),
            r.peak.threads.to_string(),
            r.peak.fds.to_string(),
            r.healthz_ms.map_or("no answer".into(), report::ms),
            r.verdict.clone(),
        ]);
        if r.connect_errors != "none" || r.refused > 0 {
            notes.push(format!(
                "K={}: connect errors: {}; refused (non-200): {}.",
                k, r.connect_errors, r.refused
            ));
        }
        if r.out_of_sequence > 0 || r.clients_lossy > 0 {
            notes.push(format!(
                "K={}: {} clients missed frames; {} frames arrived out of sequence.",
                k, r.clients_lossy, r.out_of_sequence
            ));
        }
        if !r.warnings.is_empty() {
            notes.push(format!(
                "K={}: daemon log, {} WARN/ERROR lines; first: `{}`",
                k,
                r.warnings.len(),
                r.warnings[0]
            ));
        }
        notes.push(format!(
            "K={}: last frame read {:.1} s after the last commit; daemon {} after the run; SIGTERM → exit {}.",
            k,
            r.drain_secs,
            if r.alive { "alive" } else { "DEAD" },
            r.shutdown_ms
                .map_or("did not happen within 10 s (killed)".into(), |m| format!(
                    "{m:.0} ms"
                ))
        ));
        if o.max && r.verdict.starts_with("FAIL") {
            notes.push(format!("Stopped stepping up at K={k}."));
            break;
        }
    }
    s.push_str(&t.render());
    s.push('\n');
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str(&format!(
        "\nCPU is % of one core over the commit phase (the machine has 2 cores: 200 % is all of it); \
         the bench's readers share those cores. {}\n",
        crate::sched::summary()
    ));
    Ok(s)
}

fn step(ctx: &Ctx, o: &Opts, k: usize) -> Result<Step, String> {
    let scratch = Scratch::new(&format!("fanout-{k}"))?;
    let store = writer::new_store(&scratch.0)?;
    let mut w = Writer::open(&store, ctx.seed).map_err(|e| e.to_string())?;
    let mut d = Daemon::start(
        &ctx.daemon,
        &store,
        k + 16,
        &scratch.join("daemon.log"),
        Duration::from_secs(30),
    )?;
    let expected = o.rate as u64 * o.secs;
    let base = Instant::now();
    let log = Arc::new(CommitLog::new(base, 1, expected as usize + 16));
    let pool = Pool::new(READERS, Some(log.clone()), base);
    // Bounded: a minute plus 30 ms per client (the daemon takes a while
    // per connection at high K; see the report).
    let deadline = Duration::from_secs(60) + Duration::from_millis(30 * k as u64);
    let t0 = Instant::now();
    let c = connect_many(&pool, d.addr, k, CONNECTORS, deadline);
    pool.wait_progress(
        deadline.saturating_sub(t0.elapsed()),
        CONNECT_STALL,
        |p| p.ready() + p.refused() + p.closed(),
        |p| p.ready() + p.refused() + p.closed() >= c.ok,
    );
    let connect_secs = t0.elapsed().as_secs_f64();
    let subscribed = pool.progress().ready();
    let idle = procfs::sample(d.pid).unwrap_or_default();

    crate::sched::boost_current_thread();
    let cpu = CpuMeter::start(d.pid);
    let bench_cpu = CpuMeter::start(std::process::id());
    let sampler = Sampler::start(d.pid);
    let period = Duration::from_secs_f64(1.0 / o.rate.max(1) as f64);
    let budget = Duration::from_secs(o.secs + 5);
    let tw = Instant::now();
    let mut committed = 0u64;
    for i in 0..expected {
        let due = tw + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        if tw.elapsed() > budget || !d.alive() {
            break;
        }
        let id = w.commit_one().map_err(|e| e.to_string())?;
        log.record(id, Instant::now());
        committed += 1;
    }
    let want = committed * subscribed as u64;
    let td = Instant::now();
    pool.wait_progress(
        DRAIN_MAX,
        DRAIN_STALL,
        |p| p.events() as usize,
        |p| p.events() >= want || p.closed() >= subscribed,
    );
    let drain_secs = td.elapsed().as_secs_f64();
    let cpu = cpu.percent();
    let bench_cpu = bench_cpu.percent();
    let peak = sampler.stop();
    let th = Instant::now();
    let healthz_ms = http_get::get(d.addr, "/healthz", Duration::from_secs(5))
        .ok()
        .filter(|(s, _)| *s == 200)
        .map(|_| th.elapsed().as_secs_f64() * 1000.0);
    let alive = d.alive();
    let refused = pool.progress().refused();
    let out = pool.finish();
    let shutdown_ms = if alive {
        d.stop().map(|t| t.as_secs_f64() * 1000.0)
    } else {
        None
    };
    let warnings: Vec<String> = d
        .log_lines("WARN")
        .into_iter()
        .chain(d.log_lines("ERROR"))
        .collect();
    drop(d);

    let mut lost = 0u64;
    let mut lossy = 0usize;
    let mut cut = 0usize;
    let mut oos = 0u64;
    for conn in out.conns.iter().filter(|c| c.t_ready > 0) {
        let missing = committed.saturating_sub(conn.events);
        lost += missing;
        lossy += usize::from(missing > 0);
        cut += usize::from(conn.closed);
        oos += conn.out_of_sequence;
    }
    if let Some(path) = std::env::var_os("SUL_BENCH_DUMP") {
        // Raw samples for a closer look: one "id latency_us" per line.
        let text: String = out
            .samples
            .iter()
            .map(|(off, us)| format!("{} {us}\n", *off as i64 + 1))
            .collect();
        let _ = std::fs::write(path, text);
    }
    let lat = Dist::new(
        out.samples
            .iter()
            .map(|(_, us)| *us as f64 / 1000.0)
            .collect(),
    );
    let unanswered = c.ok.saturating_sub(subscribed + refused);
    let verdict = if subscribed < k {
        format!(
            "FAIL: {} of {k} subscribed ({} refused, {} connected but never answered{}, connect errors: {})",
            subscribed,
            refused,
            unanswered,
            if healthz_ms.is_none() { "; /healthz no longer answers" } else { "" },
            c.errors_text()
        )
    } else if !alive {
        format!(
            "FAIL: daemon died; log: {}",
            daemon::tail(&scratch.join("daemon.log"), 1)
        )
    } else if cut > 0 {
        format!("FAIL: {cut} clients cut off")
    } else if lost > 0 {
        format!("FAIL: {lost} frames lost")
    } else if lat.p99() > LATENCY_LIMIT_MS {
        format!("{SLOW}: p99 {} ms", report::ms(lat.p99()))
    } else {
        "ok".into()
    };
    Ok(Step {
        clients: k,
        subscribed,
        connect_secs,
        connect_errors: c.errors_text(),
        refused,
        committed,
        lost,
        clients_lossy: lossy,
        cut,
        drain_secs,
        out_of_sequence: oos,
        lat,
        cpu,
        bench_cpu,
        idle_rss: idle.rss_kib,
        peak,
        healthz_ms,
        alive,
        shutdown_ms,
        warnings,
        verdict,
    })
}
