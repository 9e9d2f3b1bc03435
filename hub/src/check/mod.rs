//! `switchyard check --plugins`: after the config file itself checked out,
//! launch each configured plugin once (all at once) as the hub would (the supervisor's
//! spawn and handshake, through [`crate::conformance::launch::Session`]),
//! read the JSON Schema its metadata publishes for its `config` table, stop
//! it (the hub's stop escalation, always reaped), and validate the table
//! against the schema ([`instance`]).
//!
//! Every problem is one line naming the file and line of the offending key
//! ([`crate::config::spans`]): `plugins.toml:14: [plugins.formbricks.config]
//! page_size: "ten" is not of type "integer"`; a missing required key
//! points at the `config` table (or the plugin's own table when it has
//! none). A plugin that cannot be launched is reported with its name.

pub mod instance;

use std::path::Path;

use crate::config::spans::ConfigSpans;
use crate::config::{Config, ConfigLocation, PluginConfig};
use crate::conformance::launch::Session;
use crate::supervisor::socket_dir::SocketDir;
use crate::supervisor::spawn::Spawner;

/// What checking one plugin found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginVerdict {
    /// Its table matches its schema.
    Valid,
    /// It publishes no schema: nothing to check.
    NoSchema,
    /// The problems, one line each (`PATH:LINE: [plugins.NAME...] ...`).
    Invalid(Vec<String>),
}

/// One plugin's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReport {
    /// The instance name.
    pub name: String,
    /// What was found.
    pub verdict: PluginVerdict,
}

/// Launches every plugin of `config` (in parallel) and checks its `config` table
/// against its schema. `Err` only when plugins cannot be launched at all
/// (no socket directory, no spawner).
pub async fn check_plugins(config: &Config) -> Result<Vec<PluginReport>, String> {
    let source = std::fs::read_to_string(&config.path)
        .map_err(|err| format!("cannot read {}: {err}", config.path.display()))?;
    let spans = ConfigSpans::parse(&config.path, &source);
    // A private directory, even when `[hub] socket_dir` names one: a hub
    // running on the same file keeps its own sockets to itself.
    let socket_dir = SocketDir::create(None)
        .map_err(|err| format!("cannot create the plugin socket directory: {err}"))?;
    let spawner = Spawner::start(tokio::runtime::Handle::current())
        .map_err(|err| format!("cannot start the spawner: {err}"))?;
    // All at once, as the hub starts them: a slow starter does not hold
    // up the others.
    let verdicts = futures_util::future::join_all(
        config
            .plugins
            .iter()
            .map(|plugin| check_one(plugin, &spawner, socket_dir.path(), spans.as_ref())),
    )
    .await;
    let reports = config
        .plugins
        .iter()
        .zip(verdicts)
        .map(|(plugin, verdict)| PluginReport {
            name: plugin.name.clone(),
            verdict,
        })
        .collect();
    // Every plugin is stopped and reaped by now; the spawner's thread (their
    // parent-death signal's thread) may end.
    drop(spawner);
    drop(socket_dir);
    Ok(reports)
}

/// Launches `plugin`, reads its schema, stops it, and judges its table.
async fn check_one(
    plugin: &PluginConfig,
    spawner: &Spawner,
    socket_dir: &Path,
    spans: Option<&ConfigSpans<'_>>,
) -> PluginVerdict {
    let name = &plugin.name;
    let header = || {
        spans
            .and_then(|spans| spans.plugin(name))
            .unwrap_or_else(|| plugin.config_at.clone())
    };
    let session = match Session::start(plugin, spawner, socket_dir).await {
        Ok(session) => session,
        Err(err) => {
            return PluginVerdict::Invalid(vec![format!(
                "{}: [plugins.{name}] plugin `{name}` could not be launched to read its config schema: {err}",
                header()
            )]);
        }
    };
    let metadata = tokio::time::timeout(plugin.start_timeout, session.client.metadata()).await;
    let (outcome, exit) = session.stop(plugin).await;
    tracing::debug!(plugin = %name, stop = ?outcome, exit = %exit, "Plugin stopped after reading its metadata.");
    let metadata = match metadata {
        Ok(Ok(metadata)) => metadata,
        Ok(Err(err)) => {
            return PluginVerdict::Invalid(vec![format!(
                "{}: [plugins.{name}] plugin `{name}` did not answer GetMetadata: {err}",
                header()
            )]);
        }
        Err(_) => {
            return PluginVerdict::Invalid(vec![format!(
                "{}: [plugins.{name}] plugin `{name}` did not answer GetMetadata within {}",
                header(),
                humantime::format_duration(plugin.start_timeout)
            )]);
        }
    };
    if metadata.config_schema.trim().is_empty() {
        return PluginVerdict::NoSchema;
    }
    let schema: serde_json::Value = match serde_json::from_str(&metadata.config_schema) {
        Ok(schema) => schema,
        Err(err) => {
            return PluginVerdict::Invalid(vec![format!(
                "{}: [plugins.{name}] plugin `{name}` publishes a config schema that is not JSON ({err}); run `switchyard conformance` on it",
                header()
            )]);
        }
    };
    let violations = instance::validate(&schema, &plugin.config);
    if violations.is_empty() {
        return PluginVerdict::Valid;
    }
    let mut lines: Vec<(usize, String)> = violations
        .into_iter()
        .map(|violation| {
            let location: ConfigLocation = spans
                .and_then(|spans| spans.config_value(name, &violation.path.0))
                .unwrap_or_else(|| plugin.config_at.clone());
            let what = if violation.path.0.is_empty() {
                violation.message
            } else {
                format!("{}: {}", violation.path, violation.message)
            };
            (
                location.line,
                format!("{location}: [plugins.{name}.config] {what}"),
            )
        })
        .collect();
    lines.sort();
    lines.dedup();
    PluginVerdict::Invalid(lines.into_iter().map(|(_, line)| line).collect())
}
