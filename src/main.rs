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
use parking_lot::RwLock;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use stackunderflow_live::http::{self, HttpConfig, HttpServer};
use stackunderflow_live::hub::{self, HubMsg, HUB_QUEUE};
use stackunderflow_live::ingest::demo::DemoDirs;
use stackunderflow_live::ingest::writer::Writer;
use stackunderflow_live::ingest::{self, Ingest};
use stackunderflow_live::logging::{self, parse_level};
use stackunderflow_live::pricing::PriceTable;
use stackunderflow_live::state::{Mode, Shared};
use stackunderflow_live::{devtools, follow, info, seed, service, store};

/// How long shutdown waits for client threads to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Default SSE client cap: the most clients that stayed live (p99 0.2 s) at
/// 100 events/s on 2 cores in docs/BENCHMARKS.md; at 4,000 the p99 passed
/// 20 s. Far below the ~8,000 threads at which this class of machine stops
/// creating threads. Lowered at start when the open-file limit is smaller
/// (see [`FDS_PER_CLIENT`]).
const DEFAULT_MAX_CLIENTS: usize = 2000;

/// Descriptors one stream holds: tiny_http's writer, our duplicate, and
/// one in flight while a new connection is read and detached.
const FDS_PER_CLIENT: u64 = 3;

/// Descriptors kept for everything else (store, WAL, watches, requests).
const FDS_RESERVED: u64 = 512;

#[derive(Parser, Debug)]
#[command(
    name = "stackunderflow-live",
    version,
    about = "Streams coding-agent activity (Claude Code, Codex) live over Server-Sent Events.",
    long_about = "Streams coding-agent activity (Claude Code, Codex) live over Server-Sent Events.\n\n\
        By default (ingest mode) it tails ~/.claude/projects and ~/.codex/sessions into its own \
        SQLite store and pushes each committed usage event and tool call to browsers at once. \
        Follow mode (--follow) instead reads a store written by upstream StackUnderflow, read-only. \
        --demo replays shipped real transcripts into a temporary store.\n\n\
        Endpoints: GET /api/live/stream (SSE), GET /api/live/stats, GET /healthz, GET /metrics."
)]
struct Cli {
    /// Follow a StackUnderflow store written by another process, read-only.
    /// STORE defaults to $STACKUNDERFLOW_HOME/store.db, else ~/.stackunderflow/store.db.
    #[arg(long, value_name = "STORE", num_args = 0..=1, default_missing_value = "", env = "STACKUNDERFLOW_LIVE_FOLLOW")]
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
    /// [default: 2000, or fewer if the open-file limit is low]
    #[arg(long, value_name = "N", env = "STACKUNDERFLOW_LIVE_MAX_CLIENTS")]
    max_clients: Option<usize>,

    /// error, warn, info or debug.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        env = "STACKUNDERFLOW_LIVE_LOG_LEVEL"
    )]
    log_level: String,

    /// Print the bound URL (http://IP:PORT) on stdout once listening; useful with port 0.
    #[arg(long, env = "STACKUNDERFLOW_LIVE_PRINT_ADDR")]
    print_addr: bool,

    /// Ingest mode: the store we write (default $XDG_DATA_HOME/stackunderflow-live/live.db,
    /// else ~/.local/share/stackunderflow-live/live.db). Never upstream's store.
    #[arg(long, value_name = "FILE", env = "STACKUNDERFLOW_LIVE_STORE")]
    store: Option<PathBuf>,

    /// Ingest mode: Claude Code projects directory (default $CLAUDE_CONFIG_DIR/projects,
    /// else ~/.claude/projects).
    #[arg(long, value_name = "DIR", env = "STACKUNDERFLOW_LIVE_CLAUDE_DIR")]
    claude_dir: Option<PathBuf>,

    /// Ingest mode: Codex sessions directory (default $CODEX_HOME/sessions, else ~/.codex/sessions).
    #[arg(long, value_name = "DIR", env = "STACKUNDERFLOW_LIVE_CODEX_DIR")]
    codex_dir: Option<PathBuf>,

    /// Ingest mode: prices to use over the built-in table: a LiteLLM
    /// model_prices_and_context_window.json, or our own prices.json format. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", env = "STACKUNDERFLOW_LIVE_PRICES")]
    prices: Option<PathBuf>,

    /// Ingest mode on a temporary store, replaying the shipped real transcripts as if
    /// they were being written now. Touches nothing of yours.
    #[arg(long, conflicts_with = "follow", env = "STACKUNDERFLOW_LIVE_DEMO")]
    demo: bool,

    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Install the daemon as a per-user service (systemd user unit on Linux,
    /// launchd agent on macOS). Writes the file and prints the commands that
    /// load and start it; never starts anything itself.
    InstallService {
        /// Replace an existing service file that differs from the one this build writes.
        #[arg(long)]
        force: bool,
        /// Show what would be written and the commands to run, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the service file(s) on stdout instead of installing.
        #[arg(long)]
        print: bool,
    },
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

fn default_own_store() -> PathBuf {
    let data = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => home_dir().join(".local").join("share"),
    };
    data.join("stackunderflow-live").join("live.db")
}

/// The change feed the daemon runs.
enum Source {
    Follow(follow::Follower),
    Ingest(Box<Ingest>),
}

/// The built-in price table, with a user's file merged over it.
fn load_prices(file: Option<&std::path::Path>) -> Result<PriceTable, String> {
    let builtin = PriceTable::builtin();
    let Some(file) = file else {
        return Ok(builtin);
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("--prices {}: {e}", file.display()))?;
    let user = PriceTable::from_json(&text)
        .or_else(|_| PriceTable::from_litellm_json(&text))
        .map_err(|e| format!("--prices {}: {e}", file.display()))?;
    Ok(user.merged_over(builtin))
}

fn print_config(
    cli: &Cli,
    max_clients: usize,
    mode: &Mode,
    store: &std::path::Path,
    roots: &[ingest::Root],
    addr: SocketAddr,
) {
    let cfg = serde_json::json!({
        "mode": mode.as_str(),
        "listen": addr.to_string(),
        "store": store.display().to_string(),
        "claude_dir": roots.first().map(|r| r.dir.display().to_string()),
        "codex_dir": roots.get(1).map(|r| r.dir.display().to_string()),
        "prices": cli.prices.as_ref().map(|p| p.display().to_string()),
        "demo": cli.demo,
        "allow_origin": cli.allow_origin,
        "token": if cli.token.is_some() { "(set)" } else { "(none)" },
        "max_clients": max_clients,
        "log_level": cli.log_level,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&cfg).expect("a Value serializes")
    );
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
        Some(Command::InstallService {
            force,
            dry_run,
            print,
        }) => {
            let mut opts = service::InstallOptions::from_env().map_err(|e| e.to_string())?;
            opts.force = *force;
            opts.dry_run = *dry_run;
            if *print {
                let files = service::plan(&opts).map_err(|e| e.to_string())?;
                for f in &files {
                    if files.len() > 1 {
                        println!("# {}", f.path.display());
                    }
                    print!("{}", f.contents);
                }
            } else {
                print!("{}", service::install(&opts).map_err(|e| e.to_string())?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }

    let fd_limit = match stackunderflow_live::sys::raise_fd_limit() {
        Ok(n) => n,
        Err(e) => {
            stackunderflow_live::warn!("cannot raise the open-file limit: {e}");
            1024
        }
    };
    // tiny_http stops accepting for good when accept() fails for want of a
    // descriptor, so the cap must keep us below the limit.
    let fd_budget = (fd_limit.saturating_sub(FDS_RESERVED) / FDS_PER_CLIENT).max(1) as usize;
    let max_clients = match cli.max_clients {
        Some(n) => {
            if n > fd_budget {
                stackunderflow_live::warn!(
                    "--max-clients {n} exceeds what {fd_limit} open files allow (~{fd_budget}); raise `ulimit -n`"
                );
            }
            n
        }
        None => DEFAULT_MAX_CLIENTS.min(fd_budget),
    };
    let addr = resolve_listen(&cli.listen)?;
    let token = cli.token.clone().filter(|t| !t.is_empty());
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "refusing to listen on {addr} without a token: anyone on the network could read your activity; \
             pass --token (or STACKUNDERFLOW_LIVE_TOKEN), or listen on 127.0.0.1"
        ));
    }

    // --print-config only describes: it creates nothing, not even the demo directory.
    let demo = match (cli.demo, cli.print_config) {
        (true, false) => {
            Some(DemoDirs::create().map_err(|e| format!("cannot create the demo directory: {e}"))?)
        }
        (true, true) => Some(DemoDirs::planned()),
        (false, _) => None,
    };
    let (mode, store_path) = match (&cli.follow, &demo) {
        (Some(f), _) if f.as_os_str().is_empty() => (Mode::Follow, default_upstream_store()),
        (Some(f), _) => (Mode::Follow, f.clone()),
        (None, Some(d)) => (Mode::Ingest, d.store.clone()),
        (None, None) => (
            Mode::Ingest,
            cli.store.clone().unwrap_or_else(default_own_store),
        ),
    };
    let roots = match &demo {
        Some(d) => {
            ingest::default_roots(Some(d.claude.clone()), Some(d.codex.clone()), &home_dir())
        }
        None => ingest::default_roots(cli.claude_dir.clone(), cli.codex_dir.clone(), &home_dir()),
    };
    if cli.print_config {
        print_config(&cli, max_clients, &mode, &store_path, &roots, addr);
        return Ok(ExitCode::SUCCESS);
    }
    let prices = Arc::new(RwLock::new(load_prices(cli.prices.as_deref())?));
    let shared = Arc::new(Shared::new(mode.clone(), store_path.clone()));
    let (hub_tx, hub_rx) = bounded(HUB_QUEUE);
    let at_store = |e: rusqlite::Error| format!("{}: {e}", store_path.display());
    let source = match mode {
        Mode::Follow => {
            let follower = follow::Follower::open(&store_path).map_err(|e| e.to_string())?;
            follower.seed(&shared).map_err(at_store)?;
            Source::Follow(follower)
        }
        Mode::Ingest => {
            let writer = Writer::open(&store_path, prices.clone()).map_err(|e| e.to_string())?;
            let (e, t, _) = store::watermarks(writer.conn()).map_err(at_store)?;
            seed::seed(writer.conn(), &shared, e, t, true).map_err(at_store)?;
            Source::Ingest(Box::new(
                Ingest::new(roots, writer, shared.clone(), hub_tx.clone()).map_err(at_store)?,
            ))
        }
    };

    let listener = http::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: address already in use (is another stackunderflow-live running?)"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    })?;

    let hub_thread = hub::spawn(shared.clone(), hub_rx).map_err(|e| e.to_string())?;
    let feed_thread = match source {
        Source::Follow(follower) => follow::spawn(follower, shared.clone(), hub_tx.clone()),
        Source::Ingest(ingest) => ingest::spawn(*ingest),
    }
    .map_err(|e| e.to_string())?;
    if let Some(d) = &demo {
        ingest::demo::spawn(d.clone(), shared.clone()).map_err(|e| e.to_string())?;
    }
    let cfg = HttpConfig {
        allow_origins: cli.allow_origin.clone(),
        token,
        max_clients,
    };
    let server = HttpServer::start(listener, cfg, shared.clone(), hub_tx.clone())
        .map_err(|e| e.to_string())?;
    stackunderflow_live::detach::spawn_reaper(server.addr.port(), shared.clone())
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}", server.addr);
    if cli.print_addr {
        println!("{url}");
    }
    info!(
        "stackunderflow-live {} listening on {url} (mode {}{}, store {})",
        env!("CARGO_PKG_VERSION"),
        shared.mode.as_str(),
        if demo.is_some() { ", demo" } else { "" },
        store_path.display()
    );
    if demo.is_some() {
        eprintln!("\n  Open {url}/ to watch the demo stream.\n");
    }

    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    for sig in signals.forever() {
        if sig != SIGHUP {
            info!("signal {sig}: shutting down");
            break;
        }
        match (&mode, &cli.prices) {
            (Mode::Ingest, Some(_)) => match load_prices(cli.prices.as_deref()) {
                Ok(table) => {
                    info!(
                        "SIGHUP: prices reloaded ({} models, version {})",
                        table.len(),
                        table.version()
                    );
                    *prices.write() = table;
                }
                Err(e) => stackunderflow_live::warn!("SIGHUP: keeping the current prices: {e}"),
            },
            _ => info!("SIGHUP: no price file to reload"),
        }
    }
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
    if let Some(d) = &demo {
        d.remove();
    }
    info!("stopped in {} ms", started.elapsed().as_millis());
    if shared.fatal.load(Ordering::SeqCst) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
