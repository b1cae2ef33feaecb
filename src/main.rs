//! The `stackunderflow-live` binary: parses flags, opens the store, starts
//! the threads, waits for SIGTERM/SIGINT, and stops them in order.
//!
//! Glue only; every concern lives in a library module. Errors have one exit
//! point: `run` returns them, `main` prints one line and exits 2.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use crossbeam_channel::bounded;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use stackunderflow_live::http::{self, HttpConfig, HttpServer};
use stackunderflow_live::hub::{self, HubMsg, HUB_QUEUE};
use stackunderflow_live::logging::{self, parse_level};
use stackunderflow_live::state::{Mode, Shared};
use stackunderflow_live::{devtools, follow, info};

/// How long shutdown waits for client threads to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Default SSE client cap: well below the ~8,000 threads at which the
/// kernel's map limit stops thread creation on this class of machine
/// (docs/BENCHMARKS.md), leaving room for tiny_http's own threads.
const DEFAULT_MAX_CLIENTS: usize = 4000;

#[derive(Parser, Debug)]
#[command(
    name = "stackunderflow-live",
    version,
    about = "Streams coding-agent activity (Claude Code, Codex) live over Server-Sent Events.",
    long_about = "Streams coding-agent activity (Claude Code, Codex) live over Server-Sent Events.\n\n\
        Follow mode (--follow) reads a store written by upstream StackUnderflow, read-only, and \
        pushes every new usage event and tool call to browsers the moment it is committed.\n\n\
        Endpoints: GET /api/live/stream (SSE), GET /api/live/stats, GET /healthz, GET /metrics."
)]
struct Cli {
    /// Follow a StackUnderflow store written by another process, read-only.
    /// STORE defaults to $STACKUNDERFLOW_HOME/store.db, else ~/.stackunderflow/store.db.
    #[arg(long, value_name = "STORE", num_args = 0..=1, default_missing_value = "")]
    follow: Option<PathBuf>,

    /// Address to listen on. Non-loopback addresses require --token.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8095",
        env = "STACKUNDERFLOW_LIVE_LISTEN"
    )]
    listen: String,

    /// Extra origin allowed to read the API from a browser (repeatable;
    /// http://localhost:*, http://127.0.0.1:* and http://[::1]:* always are).
    #[arg(
        long = "allow-origin",
        value_name = "ORIGIN",
        env = "STACKUNDERFLOW_LIVE_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    allow_origin: Vec<String>,

    /// Bearer token required on the API (header `Authorization: Bearer T` or `?token=T`).
    /// Required when listening beyond loopback. Never logged.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STACKUNDERFLOW_LIVE_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Most SSE clients at once; more get 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CLIENTS, env = "STACKUNDERFLOW_LIVE_MAX_CLIENTS")]
    max_clients: usize,

    /// error, warn, info or debug.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        env = "STACKUNDERFLOW_LIVE_LOG_LEVEL"
    )]
    log_level: String,

    /// Print the bound URL (http://IP:PORT) on stdout once listening; useful with port 0.
    #[arg(long)]
    print_addr: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an empty store with the upstream schema (tests and demos).
    #[command(hide = true)]
    DevStore {
        /// Path of the new store.
        path: PathBuf,
    },
    /// Append synthetic rows to a store in one transaction (tests and demos).
    #[command(hide = true)]
    DevInsert {
        /// The store.
        path: PathBuf,
        /// Usage events to add.
        #[arg(long, default_value_t = 1)]
        events: usize,
        /// Tool-call rows to add.
        #[arg(long, default_value_t = 0)]
        tools: usize,
        /// Cost of each event in USD.
        #[arg(long, default_value_t = 0.01)]
        cost_usd: f64,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stackunderflow-live: {e}");
            ExitCode::from(2)
        }
    }
}

fn default_upstream_store() -> PathBuf {
    match std::env::var_os("STACKUNDERFLOW_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join("store.db"),
        _ => home_dir().join(".stackunderflow").join("store.db"),
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn resolve_listen(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("--listen {s}: {e}"))?
        .next()
        .ok_or_else(|| format!("--listen {s}: no address"))
}

fn run() -> Result<ExitCode, String> {
    let cli = Cli::parse();
    let level = parse_level(&cli.log_level).ok_or_else(|| {
        format!(
            "--log-level {}: expected error, warn, info or debug",
            cli.log_level
        )
    })?;
    logging::set_level(level);

    match &cli.command {
        Some(Command::DevStore { path }) => {
            devtools::create_upstream_store(path).map_err(|e| e.to_string())?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::DevInsert {
            path,
            events,
            tools,
            cost_usd,
        }) => {
            devtools::insert_rows(path, *events, *tools, *cost_usd)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }

    if let Err(e) = stackunderflow_live::sys::raise_fd_limit() {
        stackunderflow_live::warn!("cannot raise the open-file limit: {e}");
    }
    let addr = resolve_listen(&cli.listen)?;
    let token = cli.token.clone().filter(|t| !t.is_empty());
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "refusing to listen on {addr} without a token: anyone on the network could read your activity; \
             pass --token (or STACKUNDERFLOW_LIVE_TOKEN), or listen on 127.0.0.1"
        ));
    }

    let Some(follow_arg) = &cli.follow else {
        return Err(
            "ingest mode is not available in this build yet; run with --follow [STORE]".into(),
        );
    };
    let store_path = if follow_arg.as_os_str().is_empty() {
        default_upstream_store()
    } else {
        follow_arg.clone()
    };
    let follower = follow::Follower::open(&store_path).map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared::new(Mode::Follow, store_path.clone()));
    follower
        .seed(&shared)
        .map_err(|e| format!("{}: {e}", store_path.display()))?;

    let listener = http::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("cannot listen on {addr}: address already in use (is another stackunderflow-live running?)"),
        _ => format!("cannot listen on {addr}: {e}"),
    })?;

    let (hub_tx, hub_rx) = bounded(HUB_QUEUE);
    let hub_thread = hub::spawn(shared.clone(), hub_rx).map_err(|e| e.to_string())?;
    let feed_thread =
        follow::spawn(follower, shared.clone(), hub_tx.clone()).map_err(|e| e.to_string())?;
    let cfg = HttpConfig {
        allow_origins: cli.allow_origin.clone(),
        token,
        max_clients: cli.max_clients,
    };
    let server = HttpServer::start(listener, cfg, shared.clone(), hub_tx.clone())
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}", server.addr);
    if cli.print_addr {
        println!("{url}");
    }
    info!(
        "stackunderflow-live {} listening on {url} (mode {}, store {})",
        env!("CARGO_PKG_VERSION"),
        shared.mode.as_str(),
        store_path.display()
    );

    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let sig = signals.forever().next().unwrap_or(SIGTERM);
    info!("signal {sig}: shutting down");
    let started = Instant::now();
    shared.stop.store(true, Ordering::SeqCst);
    let _ = hub_tx.send(HubMsg::Shutdown);
    server.stop();
    let _ = hub_thread.join();
    while shared.clients.load(Ordering::SeqCst) > 0 && started.elapsed() < SHUTDOWN_GRACE {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The feed thread notices `stop` within one safety poll; the process
    // exits now rather than wait for it.
    drop(feed_thread);
    info!("stopped in {} ms", started.elapsed().as_millis());
    Ok(ExitCode::SUCCESS)
}
