//! Logging setup: `tracing` events to stderr, filtered by `SWITCHYARD_LOG`
//! (default `info`), as text or JSON lines.
//!
//! The same variable filters the plugins' logs: the Rust SDK reads it, and
//! the hub hands its own value to every plugin it starts (see
//! [`crate::supervisor::spawn::SpawnSpec::for_plugin`]), unless the plugin's
//! `env` sets its own.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter, in `tracing`'s
/// `EnvFilter` syntax (`info`, `switchyard=debug,info`). The Rust SDK's
/// `switchyard_plugin_sdk::log::LOG_FILTER_ENV` is the same name.
pub const LOG_FILTER_ENV: &str = "SWITCHYARD_LOG";

/// The filter used when [`LOG_FILTER_ENV`] is unset or invalid.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Calling it twice is harmless (the second
/// call does nothing), so tests may call it freely.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal (and never with NO_COLOR), so log files
        // and test captures stay greppable.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
