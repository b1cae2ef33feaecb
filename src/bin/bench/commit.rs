//! Scenario `commit-to-client`: how long from a writer's COMMIT returning
//! to the `event` frame arriving at an SSE client, against upstream's 2 s
//! newest-100 poll measured on the same commits.
//!
//! A writer connection commits one usage event at a time, 2–5 ms apart
//! (random), recording when each COMMIT returned; one SSE client records
//! when each frame arrived. In the same run a simulated upstream poller
//! reads the same store. Then one transaction of `burst` rows is committed
//! (upstream ingests a transcript file per transaction) to show what each
//! design does with a backlog.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Scratch};
use crate::procfs::{self, CpuMeter};
use crate::report::{self, ms, ratio, Dist, Table};
use crate::rng::Rng;
use crate::sse_pool::{connect_many, Pool};
use crate::upstream::{Poller, POLL_INTERVAL};
use crate::writer::{self, CommitLog, Writer};
use crate::Ctx;

/// What to run.
pub struct Opts {
    /// Commits, one row each.
    pub commits: usize,
    /// Rows of the final one-transaction burst.
    pub burst: usize,
    /// Smallest gap between commits, ms.
    pub min_gap_ms: u64,
    /// Largest gap between commits, ms.
    pub max_gap_ms: u64,
}

fn db(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

/// Runs the scenario and returns its Markdown block.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<String, String> {
    let scratch = Scratch::new("commit")?;
    let store = writer::new_store(&scratch.0)?;
    let mut w = Writer::open(&store, ctx.seed).map_err(db)?;
    let mut daemon = Daemon::start(
        &ctx.daemon,
        &store,
        64,
        &scratch.join("daemon.log"),
        Duration::from_secs(30),
    )?;
    let base = Instant::now();
    let log = Arc::new(CommitLog::new(base, 1, o.commits + o.burst + 16));
    let pool = Pool::new(1, Some(log.clone()), base);
    let c = connect_many(&pool, daemon.addr, 1, 1, Duration::from_secs(10));
    if c.ok != 1 || !pool.wait_until(Duration::from_secs(10), |p| p.ready() >= 1) {
        return Err(format!(
            "the SSE client did not subscribe ({})",
            c.errors_text()
        ));
    }
    let poller = Poller::start(&store, base).map_err(db)?;
    eprintln!(
        "commit-to-client: {} commits, then a burst of {}",
        o.commits, o.burst
    );

    crate::sched::boost_current_thread();
    let cpu = CpuMeter::start(daemon.pid);
    let mut rng = Rng::new(ctx.seed ^ 0x00C0_FFEE);
    let t0 = Instant::now();
    let budget = Duration::from_millis(o.commits as u64 * o.max_gap_ms * 3 + 30_000);
    let mut last_steady = 0;
    for _ in 0..o.commits {
        if t0.elapsed() > budget {
            break;
        }
        thread::sleep(Duration::from_millis(
            rng.range(o.min_gap_ms, o.max_gap_ms + 1),
        ));
        let id = w.commit_one().map_err(db)?;
        log.record(id, Instant::now());
        last_steady = id;
    }
    let steady_secs = t0.elapsed().as_secs_f64();
    let steady_cpu = cpu.percent();
    pool.wait_until(Duration::from_secs(10), |p| {
        p.events() >= last_steady as u64
    });

    let (b0, b1) = w.commit_burst(o.burst).map_err(db)?;
    let tb = Instant::now();
    for id in b0..=b1 {
        log.record(id, tb);
    }
    pool.wait_until(Duration::from_secs(20), |p| p.events() >= b1 as u64);
    // Let upstream's next poll see the burst.
    thread::sleep(POLL_INTERVAL + Duration::from_millis(300));
    let up = poller.stop().map_err(db)?;
    let after = procfs::sample(daemon.pid).unwrap_or_default();
    let out = pool.finish();
    daemon.stop();

    let conn = out.conns.first().ok_or("no client")?;
    let lat = |lo: i64, hi: i64| {
        Dist::new(
            out.samples
                .iter()
                .filter(|(off, _)| {
                    let id = *off as i64 + 1;
                    id >= lo && id <= hi
                })
                .map(|(_, us)| *us as f64 / 1000.0)
                .collect(),
        )
    };
    let ours = lat(1, last_steady);
    if let Some(path) = std::env::var_os("SUL_BENCH_DUMP") {
        // Raw samples for a closer look: one "id latency_us" per line.
        let text: String = out
            .samples
            .iter()
            .map(|(off, us)| format!("{} {us}\n", *off as i64 + 1))
            .collect();
        let _ = std::fs::write(path, text);
    }
    let ours_burst = lat(b0, b1);
    let since_commit = |pairs: &[(i64, u64)], lo: i64, hi: i64| {
        Dist::new(
            pairs
                .iter()
                .filter(|(id, _)| *id >= lo && *id <= hi)
                .filter_map(|(id, at)| log.get(*id).map(|c| at.saturating_sub(c) as f64 / 1e6))
                .collect(),
        )
    };
    let up_emit = since_commit(&up.emitted, 1, last_steady);
    let up_seen = since_commit(&up.visible, 1, last_steady);
    let up_burst = since_commit(&up.emitted, b0, b1);
    let steady_rows = last_steady as usize;

    let mut s = report::block_head("commit-to-client: COMMIT → SSE frame");
    s.push_str(&format!(
        "{} commits of one usage event each, {}–{} ms apart ({:.0} commits/s over {:.1} s), one SSE \
         client. Upstream's design runs on the same commits: a poller every {} s taking the newest {} \
         rows above its watermark.\n\n",
        steady_rows,
        o.min_gap_ms,
        o.max_gap_ms,
        steady_rows as f64 / steady_secs,
        steady_secs,
        POLL_INTERVAL.as_secs(),
        crate::upstream::MAX_PER_CYCLE
    ));
    let mut t = Table::new(&[
        "feed",
        "rows committed",
        "rows delivered",
        "rows dropped",
        "p50 ms",
        "p99 ms",
        "max ms",
    ]);
    let [a, b, c2] = ours.cells();
    t.row(vec![
        "**stackunderflow-live** (follow → SSE client)".into(),
        steady_rows.to_string(),
        ours.n().to_string(),
        (steady_rows - ours.n().min(steady_rows)).to_string(),
        a,
        b,
        c2,
    ]);
    let [a, b, c2] = up_emit.cells();
    t.row(vec![
        "upstream poller: rows it emitted".into(),
        steady_rows.to_string(),
        up_emit.n().to_string(),
        (steady_rows - up_emit.n().min(steady_rows)).to_string(),
        a,
        b,
        c2,
    ]);
    let [a, b, c2] = up_seen.cells();
    t.row(vec![
        "upstream poller: every row, to the first poll that saw it".into(),
        steady_rows.to_string(),
        "–".into(),
        "–".into(),
        a,
        b,
        c2,
    ]);
    s.push_str(&t.render());
    s.push_str(&format!(
        "\nRatio upstream / ours: p50 {} and p99 {} (emitted rows; these are the newest of each poll, \
         so the luckiest); p50 {} and p99 {} counting every row. Ours above 2 ms: {:.2} % of rows; \
         above 5 ms: {:.2} %. Frames out of sequence: {}. Frames read before their COMMIT returned \
         to the writer (counted as 0 ms): {}.\n",
        ratio(up_emit.p50(), ours.p50()),
        ratio(up_emit.p99(), ours.p99()),
        ratio(up_seen.p50(), ours.p50()),
        ratio(up_seen.p99(), ours.p99()),
        ours.frac_above(2.0) * 100.0,
        ours.frac_above(5.0) * 100.0,
        conn.out_of_sequence,
        out.early,
    ));
    s.push_str(&format!(
        "\nDaemon during the commits: {:.1} % of one core; afterwards RSS {} MiB, {} threads.\n\n",
        steady_cpu,
        report::mib(after.rss_kib),
        after.threads
    ));
    let mut t = Table::new(&[
        "burst in one transaction",
        "rows",
        "delivered",
        "dropped",
        "first row ms",
        "last row ms",
    ]);
    t.row(vec![
        "**stackunderflow-live**".into(),
        o.burst.to_string(),
        ours_burst.n().to_string(),
        (o.burst - ours_burst.n().min(o.burst)).to_string(),
        ms(ours_burst.q(0.0)),
        ms(ours_burst.max()),
    ]);
    t.row(vec![
        "upstream poller".into(),
        o.burst.to_string(),
        up_burst.n().to_string(),
        (o.burst - up_burst.n().min(o.burst)).to_string(),
        ms(up_burst.q(0.0)),
        ms(up_burst.max()),
    ]);
    s.push_str(&t.render());
    s.push_str(&format!(
        "\nUpstream over the whole run: {} polls, {} rows skipped.\n\nLatencies are measured in the \
         bench process (one monotonic clock): COMMIT returned on the writer thread → the read that \
         brought the frame on the client thread; the client shares the 2 cores with the daemon and \
         the writer. Upstream's figures stop when its rows are in hand (before JSON and the socket), \
         so they flatter it slightly. {}\n\n",
        up.polls,
        up.skipped,
        crate::sched::summary()
    ));
    Ok(s)
}
