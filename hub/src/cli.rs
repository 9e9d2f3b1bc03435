//! The command line: `switchyard run` and `switchyard check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::telemetry::{self, LogFormat};

/// Switchyard: an out-of-process gRPC plugin hub for data connectors.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// How log lines on stderr are formatted.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch every configured plugin and serve the HTTP API until SIGTERM or SIGINT.
    Run {
        /// The config file.
        #[arg(long, short, default_value = "plugins.toml")]
        config: PathBuf,
    },
    /// Validate the config file: exit 0 when valid, 1 (printing every error) otherwise.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "plugins.toml")]
        config: PathBuf,
    },
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(loaded) => {
                println!(
                    "{}: OK ({} plugin{})",
                    config.display(),
                    loaded.plugins.len(),
                    if loaded.plugins.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let loaded = match config::load(&config) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("error: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(crate::app::run(loaded, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "The hub failed.");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::error!(error = %err, "Cannot listen for SIGTERM; only SIGINT will stop the hub.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("Received SIGTERM."),
        _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT."),
    }
}
