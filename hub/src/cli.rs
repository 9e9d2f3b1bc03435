//! The command line: `switchyard run`, `switchyard check`, `switchyard new` and
//! `switchyard conformance`.

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
        /// Also launch each plugin once and validate its `config` table against the JSON Schema it publishes.
        #[arg(long)]
        plugins: bool,
    },
    /// Write a new plugin project (code, a test, a README, a plugins.toml) that builds and runs as is.
    New(NewArgs),
    /// Launch a plugin binary (any language) as the hub would and check it against the protocol,
    /// role by role; print a pass/fail table and exit 1 if any check fails.
    Conformance(ConformanceArgs),
    /// Internal: the orphan guard a running hub starts (see
    /// `supervisor/spawn/guard.rs`); not for operators.
    #[command(name = "__orphan-guard", hide = true)]
    OrphanGuard,
}

/// How `switchyard conformance` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A table: check, PASS/FAIL/SKIP, one line of detail.
    Table,
    /// One JSON document (`{"command", "checks": [{"check", "status", "detail"}]}`).
    Json,
}

/// The arguments of `switchyard conformance`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  switchyard conformance --config generator.toml -- target/debug/generator"
)]
pub struct ConformanceArgs {
    /// The plugin's config: a TOML file holding what its `config` table in plugins.toml would (default: an empty table).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not run CHECK (repeatable); it is reported as SKIP.
    #[arg(long, value_name = "CHECK", value_parser = clap::builder::PossibleValuesParser::new(crate::conformance::CHECKS.iter().copied()))]
    pub skip: Vec<String>,
    /// Records for the enrich and output-acks checks: JSON lines, `{"id": "...", "payload": {...}}` (default: a built-in sample of three).
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
    /// The body of the webhook for the webhook check, sent as application/json (default: a small JSON object).
    #[arg(long, value_name = "FILE")]
    pub webhook_body: Option<PathBuf>,
    /// The bound on the plugin's start and on each call, for example `30s` or `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// An environment variable for the plugin, KEY=VALUE (repeatable); it sees no other variable of yours, as under the hub.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Connect with go-plugin's AutoMTLS, as `tls = "auto"` does.
    #[arg(long)]
    pub tls: bool,
    /// The plugin command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Parses `KEY=VALUE`.
fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
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
    if let Command::OrphanGuard = cli.command {
        // No logging setup and no runtime: it only reads a pipe.
        return crate::supervisor::spawn::guard::run();
    }
    telemetry::init(cli.log_format);
    match cli.command {
        Command::New(args) => new_plugin(args),
        Command::Conformance(args) => conformance(args),
        Command::Check { config, plugins } => match config::load(&config) {
            Ok(loaded) => {
                println!(
                    "{}: OK ({} plugin{})",
                    config.display(),
                    loaded.plugins.len(),
                    if loaded.plugins.len() == 1 { "" } else { "s" }
                );
                if plugins {
                    check_plugins(&loaded)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::OrphanGuard => crate::supervisor::spawn::guard::run(),
        Command::Run { config } => {
            let loaded = match config::load(&config) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            // The guard is this very binary (even if it has been replaced on
            // disk since it started).
            crate::supervisor::spawn::enable_orphan_guard(PathBuf::from("/proc/self/exe"));
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("error: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            // The signal handlers are installed now, before anything starts:
            // a SIGTERM that arrives while plugins are still starting is a
            // clean shutdown, not the default action (death).
            let shutdown = {
                let _inside = runtime.enter();
                shutdown_signal()
            };
            match runtime.block_on(crate::app::run(loaded, shutdown)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "The hub failed.");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `switchyard check --plugins`: launches each plugin, validates its
/// `config` table against its schema, prints one line per plugin (problems
/// on stderr); exits 1 on any problem.
fn check_plugins(config: &crate::config::Config) -> ExitCode {
    use crate::check::PluginVerdict;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let reports = match runtime.block_on(crate::check::check_plugins(config)) {
        Ok(reports) => reports,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for report in reports {
        match report.verdict {
            PluginVerdict::Valid => {
                println!("plugin `{}`: config OK against its schema", report.name);
            }
            PluginVerdict::NoSchema => println!(
                "plugin `{}`: publishes no config schema; its config was not checked",
                report.name
            ),
            PluginVerdict::Invalid(problems) => {
                failed = true;
                for problem in problems {
                    eprintln!("error: {problem}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `switchyard conformance`: reads the inputs, runs every check and prints
/// the report; exits 0 when nothing failed, 1 when a check failed, 2 when
/// the checks could not run.
fn conformance(args: ConformanceArgs) -> ExitCode {
    use crate::conformance::{Options, inputs};
    let Some((program, plugin_args)) = args.command.split_first() else {
        eprintln!("error: give the plugin command after `--`");
        return ExitCode::from(2);
    };
    let mut options = Options::new(PathBuf::from(program));
    options.args = plugin_args.to_vec();
    options.env = args.env;
    options.skip = args.skip;
    options.timeout = args.timeout;
    options.tls = args.tls;
    let loaded = (|| -> Result<(), String> {
        if let Some(path) = &args.config {
            options.config = inputs::read_config(path)?;
        }
        if let Some(path) = &args.sample {
            options.sample = inputs::read_sample(path)?;
        }
        if let Some(path) = &args.webhook_body {
            options.webhook_body = inputs::read_webhook_body(path)?;
        }
        Ok(())
    })();
    if let Err(err) = loaded {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(crate::conformance::run(&options)) {
        Ok(report) => {
            match args.format {
                ReportFormat::Table => print!("{}", report.table()),
                ReportFormat::Json => println!("{}", report.json()),
            }
            if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
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

/// Installs the SIGTERM and SIGINT handlers at once (inside the runtime)
/// and returns a future that completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("Received SIGTERM."),
                    _ = interrupt.recv() => tracing::info!("Received SIGINT."),
                }
            }
            (terminate, interrupt) => {
                if let Err(err) = &terminate {
                    tracing::error!(error = %err, "Cannot listen for SIGTERM.");
                }
                if let Err(err) = &interrupt {
                    tracing::error!(error = %err, "Cannot listen for SIGINT.");
                }
                match (terminate, interrupt) {
                    (Ok(mut stream), Err(_)) | (Err(_), Ok(mut stream)) => {
                        stream.recv().await;
                    }
                    _ => std::future::pending::<()>().await,
                }
            }
        }
    }
}
