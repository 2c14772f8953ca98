//! The `tether` binary: command line, config loading, logging; then either the supervisor
//! (`supervisor/`: a master process that runs the worker and replaces it) or the worker
//! itself (`worker.rs`: the event loops).
//!
//! ```text
//! tether [CONFIG]                 run supervised (the embedded default config without CONFIG)
//! tether --no-supervise [CONFIG]  run the worker alone (systemd without the master, tests)
//! tether check CONFIG             validate CONFIG; `path:line:col: message` on error
//! tether -t CONFIG                the same (nginx's `-t`)
//! tether reload|reopen|quit|stop [CONFIG]
//!                                 signal the running master (its pid file): SIGHUP, SIGUSR1,
//!                                 SIGTERM (graceful), SIGQUIT (fast)
//! tether genkey                   print a fresh sealing key (32 random bytes, 64 hex digits)
//! tether completions SHELL        shell completions (bash, zsh, fish, elvish, powershell)
//! tether man                      the man page (roff)
//! tether --print-default-config   print the embedded default config (TOML)
//! tether --version
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tether_config::warnings::warnings;
use tether_config::Settings;

mod admin_key;
mod boot;
mod pidfile;
mod supervisor;
mod worker;

pub(crate) const VERSION: &str = concat!(
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
    /// Config file: tether's TOML, eXpServer's xps_config.json or Webots' session.json
    /// (JSON is told apart by its keys). Without it tether runs its embedded default config.
    config: Option<PathBuf>,
    /// Check CONFIG and exit, as `tether check CONFIG` (nginx's `-t`).
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Print the embedded default config and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Run the worker alone, without the master process (no respawn, heartbeat, reload).
    #[arg(long)]
    no_supervise: bool,
    /// Internal: run as the master's worker (reads its boot message on stdin).
    #[arg(long, hide = true)]
    worker: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and exit (non-zero with `path:line:col: message` on error).
    Check { config: PathBuf },
    /// Print a fresh sealing key for `keys` / `key_file` (32 random bytes as 64 hex digits).
    Genkey,
    /// Reload the running tether's config (SIGHUP to the master of CONFIG's `pid_file`).
    Reload { config: Option<PathBuf> },
    /// Reopen the running tether's log files, after logrotate moved them (SIGUSR1).
    Reopen { config: Option<PathBuf> },
    /// Stop the running tether gracefully: requests under way finish (SIGTERM).
    Quit { config: Option<PathBuf> },
    /// Stop the running tether fast: connections are closed now (SIGQUIT).
    Stop { config: Option<PathBuf> },
    /// Print shell completions for SHELL (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff; `tether man > tether.1`).
    Man,
}

/// `tether reload|reopen|quit|stop [CONFIG]`: the signal to send, by the pid file of
/// CONFIG (or of the embedded default config).
fn send_signal(config: Option<PathBuf>, sig: libc::c_int, name: &str) -> ExitCode {
    let source = supervisor::ConfigSource::new(config);
    let settings = match source.read() {
        Ok((_, s)) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match pidfile::signal(&settings, sig, name) {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // One crypto provider for the whole process: what builds tether's own TLS configs is
    // also the default for libraries that ask for one (the Redis store's `rediss://`).
    let _ = (*tether_config::certs::provider())
        .clone()
        .install_default();
    let mut cli = Cli::parse();
    if cli.test {
        let Some(config) = cli.config.take() else {
            eprintln!("tether -t: give the config file to check (tether -t CONFIG)");
            return ExitCode::FAILURE;
        };
        cli.command = Some(Command::Check { config });
    }
    match cli.command.take() {
        Some(Command::Reload { config }) => return send_signal(config, libc::SIGHUP, "SIGHUP"),
        Some(Command::Reopen { config }) => return send_signal(config, libc::SIGUSR1, "SIGUSR1"),
        Some(Command::Quit { config }) => return send_signal(config, libc::SIGTERM, "SIGTERM"),
        Some(Command::Stop { config }) => return send_signal(config, libc::SIGQUIT, "SIGQUIT"),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "tether", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        other => cli.command = other,
    }
    if cli.print_default_config {
        print!("{}", tether_proxy::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Genkey) = cli.command {
        return match admin_key::fresh() {
            Ok(key) => {
                println!("{key}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Check { config }) = cli.command {
        init_logging(None);
        return match Settings::load(&config) {
            Ok(s) => {
                // The file was just read whole; a second read failing only drops warnings.
                let text = std::fs::read_to_string(&config).unwrap_or_default();
                for w in warnings(&text, &config.display().to_string()) {
                    eprintln!("{w}");
                }
                println!("{}: ok ({} listeners)", config.display(), s.listeners.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.worker {
        return exit(worker::run_supervised());
    }
    let source = supervisor::ConfigSource::new(cli.config.clone());
    let (text, settings) = match source.read() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(settings.session_log.as_ref());
    if cli.no_supervise {
        // Supervised, the worker logs them (it checks the text again).
        for w in warnings(&text, &source.name()) {
            log::warn!("{w}");
        }
        exit(worker::run_alone(settings))
    } else {
        exit(supervisor::run(source, text, settings))
    }
}

fn exit(r: std::io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The log goes to stderr (`RUST_LOG`, default `info`), or, for Webots' `session.json`, to
/// `<logDir>/session/output.log` (rotated at 500 kB × 10) or stdout with `debug`.
pub(crate) fn init_logging(session_log: Option<&(PathBuf, bool)>) {
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
