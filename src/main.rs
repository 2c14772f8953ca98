//! The `tether` binary: command line, config loading, logging, and running the core.
//!
//! ```text
//! tether [CONFIG]                 run (the embedded default config without CONFIG)
//! tether check CONFIG             validate CONFIG; `path:line:col: message` on error
//! tether --print-default-config   print the embedded default config (TOML)
//! tether --version
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tether_core::Core;
use tether_proxy::config::{Settings, Target};

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("TETHER_GIT_HASH"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "tether",
    version = VERSION,
    about = "A reverse proxy that keeps sessions on the right server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (TOML). Without it tether runs its embedded default config.
    config: Option<PathBuf>,
    /// Print the embedded default config and exit.
    #[arg(long)]
    print_default_config: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and exit (non-zero with `path:line:col: message` on error).
    Check { config: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", tether_proxy::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Check { config }) = cli.command {
        init_logging(None);
        return match Settings::load(&config) {
            Ok(s) => {
                println!("{}: ok ({} listeners)", config.display(), s.listeners.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match &cli.config {
        Some(path) => Settings::load(path),
        None => Settings::default_config(),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(settings.session_log.as_ref());
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Bind every listener once per worker (so a bad address fails before anything runs), then
/// run one event loop per worker thread, each with its own `SO_REUSEPORT` sockets.
fn run(settings: &Settings) -> std::io::Result<()> {
    let workers = settings.workers.max(1);
    let shared = tether_proxy::server::Shared::open(settings)?;
    let mut per_worker = Vec::with_capacity(workers);
    for _ in 0..workers {
        per_worker.push(tether_proxy::server::bind_all(settings)?);
    }
    for spec in &settings.listeners {
        log::info!("listening on {}: {}", spec.listen, describe(&spec.target));
    }
    // Each worker reports once its loop owns its sockets; "running" is logged after all have.
    let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut threads = Vec::with_capacity(workers);
    for (w, sockets) in per_worker.into_iter().enumerate() {
        let settings = settings.clone();
        let shared = shared.clone();
        let ready_tx = ready_tx.clone();
        let t = std::thread::Builder::new()
            .name(format!("worker-{w}"))
            .spawn(move || {
                let started = Core::new().and_then(|mut core| {
                    tether_proxy::server::install_sockets(&mut core, &settings, sockets, &shared)?;
                    Ok(core)
                });
                match started {
                    Ok(mut core) => {
                        let _ = ready_tx.send(Ok(()));
                        core.run()
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("worker {w}: {e}")));
                        Err(e)
                    }
                }
            })?;
        threads.push(t);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(std::io::Error::other(e)),
            Err(_) => {
                return Err(std::io::Error::other(
                    "a worker stopped before it was ready",
                ))
            }
        }
    }
    log::info!(
        "tether {VERSION} running (pid {}, {workers} worker(s))",
        std::process::id()
    );
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::other("a worker thread panicked")),
        }
    }
    Ok(())
}

/// The log goes to stderr (`RUST_LOG`, default `info`), or, for Webots' `session.json`, to
/// `<logDir>/session/output.log` (rotated at 500 kB × 10) or stdout with `debug`.
fn init_logging(session_log: Option<&(PathBuf, bool)>) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let Some((dir, debug)) = session_log {
        match tether_broker::session_log_writer(dir, *debug) {
            Ok(w) => {
                b.target(env_logger::Target::Pipe(w));
            }
            Err(e) => eprintln!("log {}: {e} (logging to stderr)", dir.display()),
        }
    }
    b.init();
}

/// One line about what a listener serves, for the log.
fn describe(t: &Target) -> String {
    match t {
        Target::TcpUpstream(a) => format!("tcp tunnel to {a}"),
        Target::TcpFile(p) => format!("tcp file {}", p.display()),
        Target::Http(r) => {
            let routes: usize = r.hosts.iter().map(|h| h.routes.len()).sum();
            format!("http, {} virtual host(s), {routes} route(s)", r.hosts.len())
        }
    }
}
