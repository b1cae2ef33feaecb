//! Scenario `idle`: connected clients and no writes. What does the daemon
//! cost at rest? Its own timers are the follower's 500 ms safety poll, the
//! hub's 5 s `burn_tick` to every client, and a 15 s heartbeat to a client
//! that got nothing else (never, while burn ticks flow).

use std::thread;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Scratch};
use crate::procfs::{self, clk_tck, cpu_ticks, task_totals};
use crate::report::{self, mib, Table};
use crate::sse_pool::{connect_many, Pool};
use crate::writer;
use crate::Ctx;

/// What to run.
pub struct Opts {
    /// Clients.
    pub clients: usize,
    /// Seconds to watch.
    pub secs: u64,
}

/// Let connection set-up (and tiny_http's short-lived pool threads, which
/// linger 5 s) finish before measuring.
const SETTLE: Duration = Duration::from_secs(6);

/// Runs the scenario and returns its Markdown block.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<String, String> {
    let scratch = Scratch::new("idle")?;
    let store = writer::new_store(&scratch.0)?;
    let d = Daemon::start(
        &ctx.daemon,
        &store,
        o.clients + 16,
        &scratch.join("daemon.log"),
        Duration::from_secs(30),
    )?;
    let base = Instant::now();
    let pool = Pool::new(1, None, base);
    let c = connect_many(&pool, d.addr, o.clients, 2, Duration::from_secs(60));
    if !pool.wait_until(Duration::from_secs(60), |p| p.ready() >= c.ok) || c.ok < o.clients {
        return Err(format!(
            "only {} of {} clients subscribed ({})",
            pool.progress().ready(),
            o.clients,
            c.errors_text()
        ));
    }
    eprintln!("idle: {} clients, watching {} s", o.clients, o.secs);
    thread::sleep(SETTLE);
    let t0 = Instant::now();
    let ticks0 = cpu_ticks(d.pid).unwrap_or(0);
    let (ns0, sw0) = task_totals(d.pid);
    let my0 = cpu_ticks(std::process::id()).unwrap_or(0);
    thread::sleep(Duration::from_secs(o.secs));
    let secs = t0.elapsed().as_secs_f64();
    let ticks1 = cpu_ticks(d.pid).unwrap_or(0);
    let (ns1, sw1) = task_totals(d.pid);
    let my1 = cpu_ticks(std::process::id()).unwrap_or(0);
    let after = procfs::sample(d.pid).unwrap_or_default();
    let out = pool.finish();
    drop(d);

    let by_ticks = (ticks1 - ticks0) as f64 / clk_tck() / secs * 100.0;
    let by_ns = ns1.saturating_sub(ns0) as f64 / 1e9 / secs * 100.0;
    let wakeups = sw1.saturating_sub(sw0) as f64 / secs;
    let ticks: u64 = out.conns.iter().map(|c| c.burn_ticks).sum();
    let beats: u64 = out.conns.iter().map(|c| c.heartbeats).sum();

    let mut s = report::block_head(&format!(
        "idle: {} clients, no writes, {} s",
        o.clients, o.secs
    ));
    s.push_str(&format!(
        "Measured after a {} s settle. CPU two ways: process ticks (utime+stime, {} Hz, so ±{:.3} % \
         over this interval) and the sum of the threads' schedstat run time (ns).\n\n",
        SETTLE.as_secs(),
        clk_tck(),
        100.0 / clk_tck() / secs
    ));
    let mut t = Table::new(&[
        "clients",
        "seconds",
        "CPU % of a core (ticks)",
        "CPU % (schedstat)",
        "context switches/s",
        "RSS MiB",
        "threads",
        "fds",
        "burn_ticks received",
        "heartbeats received",
    ]);
    t.row(vec![
        o.clients.to_string(),
        format!("{secs:.0}"),
        format!("{by_ticks:.3}"),
        format!("{by_ns:.4}"),
        format!("{wakeups:.0}"),
        mib(after.rss_kib),
        after.threads.to_string(),
        after.fds.to_string(),
        ticks.to_string(),
        beats.to_string(),
    ]);
    s.push_str(&t.render());
    s.push_str(&format!(
        "\nThe bench process itself used {:.3} % of a core meanwhile. Burn ticks count from connect \
         (one on subscribe, then every 5 s); a heartbeat is due only after 15 s without any write, \
         which the 5 s burn ticks prevent.\n",
        (my1 - my0) as f64 / clk_tck() / secs * 100.0
    ));
    Ok(s)
}
