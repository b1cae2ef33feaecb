//! `bench`: the load generator and measuring instrument for
//! stackunderflow-live (issue "Prove it").
//!
//! Starts the real daemon binary as a child process (`--follow STORE
//! --listen 127.0.0.1:0 --print-addr`) and drives it from this process:
//! a writer connection commits rows into the followed store, SSE clients on
//! raw sockets (a few epoll threads, see `sse_pool`) read the stream, and
//! `/proc` tells what the daemon costs. The ingest-mode scenarios start it
//! on transcript roots instead (`--store --claude-dir --codex-dir`) and
//! write real transcript lines (`corpus`). Each scenario prints one Markdown
//! block with the exact command; `scripts/bench.sh` runs them all and writes
//! `docs/BENCHMARKS.md`.
//!
//! Every loop is bounded in count and in time, and all traffic goes to
//! 127.0.0.1. Nothing here asserts a timing: the machine is shared, so the
//! numbers are distributions to read, not pass/fail thresholds.
//!
//! Scenarios: `commit-to-client`, `fanout`, `idle`, `stats`, `storm`
//! (follow mode); `append-to-client`, `backfill` (ingest mode).

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod append;
mod backfill;
mod commit;
mod corpus;
mod daemon;
mod fanout;
mod generator;
mod http_get;
mod idle;
mod procfs;
mod prom;
mod report;
mod rng;
mod sched;
mod sse_pool;
mod stats;
mod storm;
mod upstream;
mod writer;

/// What every scenario needs.
pub struct Ctx {
    /// The daemon binary.
    pub daemon: PathBuf,
    /// Smaller, faster variant.
    pub quick: bool,
    /// Seed of every random choice.
    pub seed: u64,
}

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Benchmarks for stackunderflow-live: starts the daemon and drives it over 127.0.0.1."
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,

    /// The smaller, faster variant of the scenario.
    #[arg(long, global = true)]
    quick: bool,

    /// The daemon binary (default: stackunderflow-live next to this executable).
    #[arg(long, global = true, value_name = "PATH")]
    daemon: Option<PathBuf>,

    /// Seed for every random choice (commit gaps, generated stores).
    #[arg(long, global = true, default_value_t = 42)]
    seed: u64,

    /// Keep the bench's reader and writer threads at normal priority
    /// (by default they ask for SCHED_FIFO; see src/bin/bench/sched.rs).
    #[arg(long, global = true)]
    no_rt: bool,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Ingest mode: transcript line write() → SSE frame latency.
    AppendToClient {
        /// Lines to append, one write() each (default 1000, --quick 200).
        #[arg(long)]
        lines: Option<usize>,
        /// Gap between lines in ms, drawn uniformly from MIN-MAX.
        #[arg(long, default_value = "20-60", value_parser = parse_gap)]
        gap: (u64, u64),
    },
    /// Ingest mode: first start on a large transcript corpus (lines/s, MiB/s, RSS).
    Backfill {
        /// Corpus size in MiB (default 1024, --quick 100).
        #[arg(long)]
        size_mb: Option<u64>,
        /// Where the corpus is cached.
        #[arg(long, default_value = "target/bench-data")]
        data_dir: PathBuf,
        /// Most seconds to wait for the backfill to end.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// COMMIT → SSE frame latency, against upstream's 2 s newest-100 poller.
    CommitToClient {
        /// Commits of one row each (default 2000, --quick 300).
        #[arg(long)]
        commits: Option<usize>,
        /// Rows of the final one-transaction burst (default 1000, --quick 500).
        #[arg(long)]
        burst: Option<usize>,
        /// Gap between commits in ms, drawn uniformly from MIN-MAX.
        #[arg(long, default_value = "2-5", value_parser = parse_gap)]
        gap: (u64, u64),
    },
    /// K idle SSE clients, then R events/s: loss, latency, CPU, memory.
    Fanout {
        /// SSE clients (default 1000, --quick 200).
        #[arg(long)]
        clients: Option<usize>,
        /// Events committed per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Seconds of commits (default 10, --quick 5).
        #[arg(long)]
        secs: Option<u64>,
        /// Step the client count up (1000, 2000, 4000, … 10000) until something breaks.
        #[arg(long)]
        max: bool,
        /// Client counts to try with --max, comma-separated.
        #[arg(long, value_delimiter = ',')]
        steps: Vec<usize>,
    },
    /// Connected clients, no writes: CPU and memory at rest.
    Idle {
        /// SSE clients.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Seconds to watch (default 60, --quick 10).
        #[arg(long)]
        secs: Option<u64>,
    },
    /// `/api/live/stats` on a large generated store, against upstream's SQL per request.
    Stats {
        /// Usage events and tool calls to generate (default 1,000,000 each, --quick 100,000).
        #[arg(long)]
        rows: Option<usize>,
        /// Requests to time (default 2000, --quick 500).
        #[arg(long)]
        requests: Option<usize>,
        /// Most seconds spent on the upstream SQL loop (default 60, --quick 15).
        #[arg(long)]
        upstream_secs: Option<u64>,
        /// Where generated stores are cached.
        #[arg(long, default_value = "target/bench-data")]
        data_dir: PathBuf,
    },
    /// N simultaneous connects: all answered? how fast? threads after.
    Storm {
        /// Simultaneous connections (default 1000, --quick 300).
        #[arg(long)]
        clients: Option<usize>,
        /// Also try 2000 and 4000.
        #[arg(long)]
        max: bool,
    },
}

/// Parses `MIN-MAX` (or a single number) in milliseconds.
fn parse_gap(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u64 = a.trim().parse().map_err(|_| format!("bad gap {s:?}"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("bad gap {s:?}"))?;
    if a > b {
        return Err(format!("gap {s:?}: MIN is above MAX"));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = stackunderflow_live::sys::raise_fd_limit() {
        eprintln!("bench: cannot raise the open-file limit: {e}");
    }
    if cli.no_rt {
        sched::disable();
    }
    let ctx = Ctx {
        daemon: cli.daemon.clone().unwrap_or_else(daemon::default_binary),
        quick: cli.quick,
        seed: cli.seed,
    };
    let q = ctx.quick;
    let result = match cli.scenario {
        Scenario::AppendToClient { lines, gap } => append::run(
            &ctx,
            &append::Opts {
                lines: lines.unwrap_or(if q { 200 } else { 1000 }),
                min_gap_ms: gap.0,
                max_gap_ms: gap.1,
            },
        ),
        Scenario::Backfill {
            size_mb,
            data_dir,
            timeout,
        } => backfill::run(
            &ctx,
            &backfill::Opts {
                size_mib: size_mb.unwrap_or(if q { 100 } else { 1024 }),
                data_dir,
                timeout_secs: timeout,
            },
        ),
        Scenario::CommitToClient {
            commits,
            burst,
            gap,
        } => commit::run(
            &ctx,
            &commit::Opts {
                commits: commits.unwrap_or(if q { 300 } else { 2000 }),
                burst: burst.unwrap_or(if q { 500 } else { 1000 }),
                min_gap_ms: gap.0,
                max_gap_ms: gap.1,
            },
        ),
        Scenario::Fanout {
            clients,
            rate,
            secs,
            max,
            steps,
        } => fanout::run(
            &ctx,
            &fanout::Opts {
                clients: clients.unwrap_or(if q { 200 } else { 1000 }),
                rate,
                secs: secs.unwrap_or(if q { 5 } else { 10 }),
                max,
                steps,
            },
        ),
        Scenario::Idle { clients, secs } => idle::run(
            &ctx,
            &idle::Opts {
                clients,
                secs: secs.unwrap_or(if q { 10 } else { 60 }),
            },
        ),
        Scenario::Stats {
            rows,
            requests,
            upstream_secs,
            data_dir,
        } => stats::run(
            &ctx,
            &stats::Opts {
                rows: rows.unwrap_or(if q { 100_000 } else { 1_000_000 }),
                requests: requests.unwrap_or(if q { 500 } else { 2000 }),
                upstream_secs: upstream_secs.unwrap_or(if q { 15 } else { 60 }),
                data_dir,
            },
        ),
        Scenario::Storm { clients, max } => storm::run(
            &ctx,
            &storm::Opts {
                clients: clients.unwrap_or(if q { 300 } else { 1000 }),
                max,
            },
        ),
    };
    match result {
        Ok(markdown) => {
            println!("{markdown}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}
