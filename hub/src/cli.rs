//! The command line: `switchyard run`, `switchyard check` and `switchyard new`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::telemetry::{self, LogFormat};

/// Switchyard: an out-of-process gRPC plugin hub for data connectors.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about,
    after_help = "Environment:\n  SWITCHYARD_LOG  The log filter (default `info`, for example `debug` or\n                  `info,switchyard_hub::supervisor=debug`), for the hub and\n                  for every plugin whose `env` does not set its own."
)]
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
    /// Write a new plugin project (code, a test, a README, a plugins.toml) that builds and runs as is.
    New(NewArgs),
}

/// Parses `--role` from the shared role names, listing them in `--help`.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = crate::scaffold::Role> {
    use clap::builder::TypedValueParser as _;
    let names: Vec<&'static str> = crate::scaffold::Role::ALL
        .iter()
        .map(|role| role.as_str())
        .collect();
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name| name.parse::<crate::scaffold::Role>())
}

/// The arguments of `switchyard new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name (letters, digits, '-', '_'): its directory, binary and instance name.
    pub name: String,
    /// The role the plugin serves.
    #[arg(long, value_parser = role_parser())]
    pub role: crate::scaffold::Role,
    /// The language to write it in.
    #[arg(long, value_enum)]
    pub lang: crate::scaffold::Lang,
    /// The directory to create (default: ./NAME); it must not exist.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rust: the Switchyard plugin SDK crate (default: plugin-sdk/ of the checkout this binary was built from).
    #[arg(long)]
    pub sdk_path: Option<PathBuf>,
    /// Python: the directory of the `switchyard_plugin` package and its .venv (default: plugins/python/ of that checkout).
    #[arg(long)]
    pub python_sdk_path: Option<PathBuf>,
    /// Go: the Switchyard Go SDK module (default: sdk/go/ of that checkout).
    #[arg(long, alias = "go-module-path")]
    pub go_sdk_path: Option<PathBuf>,
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::New(args) => new_plugin(args),
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

/// `switchyard new`: writes the project and prints the next steps.
fn new_plugin(args: NewArgs) -> ExitCode {
    let defaults = crate::scaffold::Paths::default();
    let options = crate::scaffold::Options {
        name: args.name,
        role: args.role,
        lang: args.lang,
        dir: args.dir,
        paths: crate::scaffold::Paths {
            rust_sdk: args.sdk_path.unwrap_or(defaults.rust_sdk),
            python_sdk: args.python_sdk_path.unwrap_or(defaults.python_sdk),
            go_sdk: args.go_sdk_path.unwrap_or(defaults.go_sdk),
        },
    };
    match crate::scaffold::generate(&options) {
        Ok(project) => {
            for warning in &project.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}", project.next_steps);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
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
