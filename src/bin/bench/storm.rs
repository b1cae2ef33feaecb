//! Scenario `storm`: N clients connect at once, as browsers do when the
//! daemon restarts. Are all answered, how fast, and how many threads are
//! left once it settles?

use std::thread;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Scratch};
use crate::http_get;
use crate::procfs::{self, Sampler};
use crate::report::{self, mib, Dist, Table};
use crate::sse_pool::{connect_many, Pool};
use crate::writer;
use crate::Ctx;

/// What to run.
pub struct Opts {
    /// Simultaneous connections.
    pub clients: usize,
    /// Also try larger storms.
    pub max: bool,
}

/// Connector threads released together by a barrier; each opens its share
/// of sockets back to back, so the daemon sees them within milliseconds.
const CONNECTORS: usize = 32;

/// How long we wait for every answer.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// tiny_http's idle pool threads exit after 5 s; settle a little longer.
const SETTLE: Duration = Duration::from_secs(7);

/// Runs the scenario and returns its Markdown block.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<String, String> {
    let sizes: Vec<usize> = if o.max {
        [o.clients, 2 * o.clients, 4 * o.clients].to_vec()
    } else {
        vec![o.clients]
    };
    let mut s = report::block_head("storm: N simultaneous connects");
    s.push_str(&format!(
        "A fresh daemon per row (`--max-clients` N+16); {CONNECTORS} connector threads released at once \
         open N SSE connections. \"Headers\" is connect start → response headers; \"subscribed\" is \
         connect start → `ready` frame. Threads are counted at the peak and again {} s after the \
         last answer.\n\n",
        SETTLE.as_secs()
    ));
    let mut t = Table::new(&[
        "N",
        "answered 200",
        "refused",
        "unanswered",
        "all headers after s",
        "headers p50 / p99 / max ms",
        "subscribed p50 / p99 / max ms",
        "threads peak → settled",
        "RSS MiB settled",
        "/healthz after",
    ]);
    for n in sizes {
        eprintln!("storm: {n} simultaneous connects");
        let scratch = Scratch::new(&format!("storm-{n}"))?;
        let store = writer::new_store(&scratch.0)?;
        let d = Daemon::start(
            &ctx.daemon,
            &store,
            n + 16,
            &scratch.join("daemon.log"),
            Duration::from_secs(30),
        )?;
        let base = Instant::now();
        let pool = Pool::new(2, None, base);
        let sampler = Sampler::start(d.pid);
        let c = connect_many(&pool, d.addr, n, CONNECTORS, ANSWER_DEADLINE);
        pool.wait_until(ANSWER_DEADLINE, |p| {
            p.ready() + p.refused() + p.closed() >= c.ok
        });
        thread::sleep(SETTLE);
        let peak = sampler.stop();
        let settled = procfs::sample(d.pid).unwrap_or_default();
        let health = http_get::get(d.addr, "/healthz", Duration::from_secs(5))
            .map(|(st, _)| st.to_string())
            .unwrap_or_else(|e| format!("error: {e}"));
        let out = pool.finish();
        drop(d);
        let ok: Vec<_> = out.conns.iter().filter(|c| c.status == 200).collect();
        let refused = out
            .conns
            .iter()
            .filter(|c| c.status != 0 && c.status != 200)
            .count();
        let unanswered = n - ok.len() - refused;
        let t_first = out.conns.iter().map(|c| c.t_start).min().unwrap_or(0);
        let t_last = ok.iter().map(|c| c.t_headers).max().unwrap_or(0);
        let hdr = Dist::new(
            ok.iter()
                .map(|c| (c.t_headers - c.t_start) as f64 / 1e6)
                .collect(),
        );
        let rdy = Dist::new(
            ok.iter()
                .filter(|c| c.t_ready > 0)
                .map(|c| (c.t_ready - c.t_start) as f64 / 1e6)
                .collect(),
        );
        let three = |d: &Dist| {
            let [a, b, c] = d.cells();
            format!("{a} / {b} / {c}")
        };
        t.row(vec![
            n.to_string(),
            ok.len().to_string(),
            refused.to_string(),
            format!(
                "{unanswered}{}",
                if c.errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.errors_text())
                }
            ),
            format!("{:.2}", t_last.saturating_sub(t_first) as f64 / 1e9),
            three(&hdr),
            three(&rdy),
            format!("{} → {}", peak.threads, settled.threads),
            mib(settled.rss_kib),
            health,
        ]);
    }
    s.push_str(&t.render());
    s.push_str(&format!("\n{}\n", crate::sched::summary()));
    Ok(s)
}
