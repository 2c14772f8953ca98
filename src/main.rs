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
use tether_proxy::config::Settings;

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
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if cli.print_default_config {
        print!("{}", tether_proxy::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Check { config }) = cli.command {
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
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: &Settings) -> std::io::Result<()> {
    let mut core = Core::new()?;
    let bound = tether_proxy::server::install(&mut core, settings)?;
    for (spec, addr) in settings.listeners.iter().zip(&bound) {
        log::info!("listening on {addr}: {:?}", spec.target);
    }
    log::info!("tether {VERSION} running (pid {})", std::process::id());
    core.run()
}
