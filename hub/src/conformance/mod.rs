//! `switchyard conformance`: launches a plugin binary, in any language,
//! exactly as the hub does and checks it against the protocol, role by role.
//!
//! * [`launch`]: starting it with the supervisor's own spawn, handshake and
//!   stop code.
//! * [`lifecycle`]: the checks every plugin must pass (`cookie`, `handshake`,
//!   `health`, `metadata`, `configure-bad`, `configure`, `shutdown`);
//!   [`schema`] judges the config schema.
//! * [`roles`]: the checks of the declared roles (`poll-determinism`,
//!   `enrich`, `output-acks`, `webhook`).
//! * [`inputs`]: the config, sample records and webhook body they send.
//! * [`report`]: the pass/fail table and its JSON form.
//!
//! The plugin is started three times: once without the magic cookie; once
//! for the handshake, the metadata and the bad config; and once, configured
//! with the operator's config, for health, the role checks and `Shutdown`
//! (the hub configures a plugin once per start, so the two configs get a
//! process each).

pub mod inputs;
pub mod launch;
pub mod lifecycle;
pub mod report;
pub mod roles;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use switchyard_wire::Role;

use self::launch::Session;
use self::report::{CheckResult, Report};
use crate::config::{
    ConfigLocation, DEFAULT_KILL_GRACE, DEFAULT_STOP_GRACE, PluginConfig, TlsMode,
    supervision::SupervisionConfig,
};
use crate::domain::{PluginMetadata, Record};
use crate::supervisor::Spawner;
use crate::supervisor::socket_dir::SocketDir;

/// Every check, in the order they are reported.
pub const CHECKS: &[&str] = &[
    "cookie",
    "handshake",
    "health",
    "metadata",
    "configure-bad",
    "configure",
    "shutdown",
    "poll-determinism",
    "enrich",
    "output-acks",
    "webhook",
];

/// The instance name the plugin is configured as.
pub const INSTANCE_NAME: &str = "conformance";

/// What to check and how.
#[derive(Clone)]
pub struct Options {
    /// The plugin executable (absolute, or found on `PATH`).
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to give it (it sees nothing else of ours, as
    /// under the hub).
    pub env: Vec<(String, String)>,
    /// The config table sent with `Configure` (a JSON object).
    pub config: serde_json::Value,
    /// Checks not to run (reported as SKIP).
    pub skip: Vec<String>,
    /// The records sent to an enricher and an output.
    pub sample: Vec<Record>,
    /// The body of the webhook sent to a webhook input.
    pub webhook_body: Vec<u8>,
    /// The bound on starting the plugin and on each call.
    pub timeout: Duration,
    /// Whether the hub connects with AutoMTLS (`tls = "auto"`).
    pub tls: bool,
}

/// Names the environment variables and config keys but never their values,
/// which may be secrets.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        let config_keys: Vec<&str> = self
            .config
            .as_object()
            .map(|table| table.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("Options")
            .field("command", &self.command)
            .field("args", &self.args.len())
            .field("env", &env)
            .field("config_keys", &config_keys)
            .field("skip", &self.skip)
            .field("sample", &self.sample.len())
            .field("webhook_body_bytes", &self.webhook_body.len())
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Options {
    /// Options with the built-in defaults (empty config, default sample and
    /// webhook body, 30 s timeout) for `command`.
    pub fn new(command: PathBuf) -> Self {
        Options {
            command,
            args: Vec::new(),
            env: Vec::new(),
            config: serde_json::Value::Object(serde_json::Map::new()),
            skip: Vec::new(),
            sample: inputs::default_sample(),
            webhook_body: inputs::DEFAULT_WEBHOOK_BODY.as_bytes().to_vec(),
            timeout: Duration::from_secs(30),
            tls: false,
        }
    }

    /// The plugin's entry as the hub would hold it for a `[plugins.conformance]`
    /// table with this command, args, env and config, and default supervision.
    fn plugin_config(&self) -> Result<PluginConfig, String> {
        let command = resolve_command(&self.command)?;
        let working_dir = std::env::current_dir()
            .map_err(|err| format!("cannot read the current directory: {err}"))?;
        Ok(PluginConfig {
            name: INSTANCE_NAME.to_owned(),
            command,
            args: self.args.clone(),
            env: self.env.iter().cloned().collect(),
            env_passthrough: Vec::new(),
            start_timeout: self.timeout,
            stop_grace: DEFAULT_STOP_GRACE,
            kill_grace: DEFAULT_KILL_GRACE,
            config: self.config.clone(),
            config_at: ConfigLocation {
                path: PathBuf::from("--config"),
                line: 1,
            },
            working_dir,
            webhook: None,
            poll: None,
            output: None,
            supervision: SupervisionConfig::default(),
            tls: if self.tls {
                TlsMode::Auto
            } else {
                TlsMode::Off
            },
        })
    }
}

/// The command as an absolute, executable path: a name without `/` is looked
/// up on `PATH`, a relative path is taken from the current directory.
fn resolve_command(command: &std::path::Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let is_executable = |path: &std::path::Path| {
        path.metadata()
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    let candidate = if command.components().count() == 1 && !command.is_absolute() {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(command))
            .find(|path| is_executable(path))
            .ok_or_else(|| format!("{}: not found on PATH", command.display()))?
    } else {
        command.to_path_buf()
    };
    let absolute =
        std::path::absolute(&candidate).map_err(|err| format!("{}: {err}", candidate.display()))?;
    if !is_executable(&absolute) {
        return Err(format!("{}: not an executable file", absolute.display()));
    }
    Ok(absolute)
}

/// Runs every check against the plugin and returns the report; `Err` only
/// when the checks could not be run at all (bad command, no socket directory).
pub async fn run(options: &Options) -> Result<Report, String> {
    let plugin = options.plugin_config()?;
    let socket_dir = SocketDir::create(None)
        .map_err(|err| format!("cannot create the socket directory: {err}"))?;
    let spawner = Spawner::start(tokio::runtime::Handle::current())
        .map_err(|err| format!("cannot start the spawner: {err}"))?;
    let mut results = Vec::new();
    let skipped = |check: &str| options.skip.iter().any(|skip| skip == check);
    let timeout = options.timeout;

    if skipped("cookie") {
        results.push(CheckResult::skip("cookie", "skipped with --skip"));
    } else {
        results.push(lifecycle::cookie(&plugin, &spawner, socket_dir.path(), timeout).await);
    }

    // First start: the handshake, metadata and a bad config.
    let first = Session::start(&plugin, &spawner, socket_dir.path()).await;
    results.push(lifecycle::handshake(&first));
    let mut metadata: Option<PluginMetadata> = None;
    let session = match first {
        Err(_) => None,
        Ok(session) => {
            lifecycle::wait_until_serving(&session, timeout).await;
            let (result, found) = lifecycle::metadata(&session, timeout).await;
            results.push(result);
            let schema = found.as_ref().map(|found| found.config_schema.clone());
            metadata = found;
            results.push(
                lifecycle::configure_bad(
                    &session,
                    &plugin.config,
                    schema.as_deref(),
                    INSTANCE_NAME,
                    timeout,
                )
                .await,
            );
            session.kill().await;
            // Second start: configured as the operator would, then every role.
            Some(Session::start(&plugin, &spawner, socket_dir.path()).await)
        }
    };
    match session {
        None => {
            skip_the_rest(&mut results, "needs a completed handshake");
        }
        Some(Err(err)) => {
            results.push(CheckResult::fail(
                "configure",
                format!("the second start failed: {err}"),
            ));
            skip_the_rest(&mut results, "needs a started plugin");
        }
        Some(Ok(session)) => {
            lifecycle::wait_until_serving(&session, timeout).await;
            let configured =
                lifecycle::configure(&session, &plugin.config, INSTANCE_NAME, timeout).await;
            let ready = configured.status == report::Status::Pass;
            results.push(configured);
            results.push(lifecycle::health(&session, timeout).await);
            if metadata.is_none() {
                metadata = session.client.metadata().await.ok();
            }
            results.extend(role_checks(&session, options, metadata.as_ref(), ready).await);
            results.push(lifecycle::shutdown(session, &plugin).await);
        }
    }

    // Skips asked for on the command line win over whatever ran.
    for result in &mut results {
        if skipped(result.check) && result.status != report::Status::Skip {
            *result = CheckResult::skip(result.check, "skipped with --skip");
        }
    }
    results.sort_by_key(|result| CHECKS.iter().position(|check| *check == result.check));
    drop(spawner);
    Ok(Report {
        command: options.command.display().to_string(),
        checks: results,
    })
}

/// Reports every check that has no result yet as skipped, saying why.
fn skip_the_rest(results: &mut Vec<CheckResult>, why: &str) {
    let missing: Vec<&'static str> = CHECKS
        .iter()
        .copied()
        .filter(|check| results.iter().all(|result| result.check != *check))
        .collect();
    results.extend(
        missing
            .into_iter()
            .map(|check| CheckResult::skip(check, why)),
    );
}

/// The role checks, each skipped when the plugin does not declare its role,
/// when `--skip` names it, or when the plugin could not be configured.
async fn role_checks(
    session: &Session,
    options: &Options,
    metadata: Option<&PluginMetadata>,
    configured: bool,
) -> Vec<CheckResult> {
    let checks = [
        ("poll-determinism", Role::PollingInput),
        ("enrich", Role::Enrichment),
        ("output-acks", Role::Output),
        ("webhook", Role::WebhookInput),
    ];
    let mut results = Vec::new();
    for (check, role) in checks {
        let declared = metadata.is_some_and(|metadata| metadata.roles.contains(&role));
        let result = if options.skip.iter().any(|skip| skip == check) {
            CheckResult::skip(check, "skipped with --skip")
        } else if metadata.is_none() {
            CheckResult::skip(check, "the plugin's metadata could not be read")
        } else if !declared {
            CheckResult::skip(
                check,
                format!("the plugin does not declare the {} role", role.as_str()),
            )
        } else if !configured {
            CheckResult::skip(check, "needs a configured plugin")
        } else {
            let roles = &session.roles;
            match role {
                Role::PollingInput => roles::poll_determinism(roles, options.timeout).await,
                Role::Enrichment => roles::enrich(roles, &options.sample, options.timeout).await,
                Role::Output => roles::output_acks(roles, &options.sample, options.timeout).await,
                Role::WebhookInput => {
                    roles::webhook(roles, &options.webhook_body, options.timeout).await
                }
            }
        };
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_env_and_config_keys_but_not_their_values() {
        let mut options = Options::new(PathBuf::from("/bin/plugin"));
        options.env = vec![("API_TOKEN".to_owned(), "s3cr3t-token".to_owned())];
        options.config = serde_json::json!({"password": "hunter2"});
        let text = format!("{options:?}");
        assert!(
            text.contains("API_TOKEN") && text.contains("password"),
            "{text}"
        );
        assert!(
            !text.contains("s3cr3t-token") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn commands_resolve_to_absolute_executables() {
        assert_eq!(
            resolve_command(std::path::Path::new("/bin/sh")),
            Ok(PathBuf::from("/bin/sh"))
        );
        assert!(resolve_command(std::path::Path::new("sh")).is_ok_and(|path| path.is_absolute()));
        assert_eq!(
            resolve_command(std::path::Path::new("/nonexistent/plugin")),
            Err("/nonexistent/plugin: not an executable file".to_owned())
        );
        assert_eq!(
            resolve_command(std::path::Path::new("no-such-plugin-anywhere")),
            Err("no-such-plugin-anywhere: not found on PATH".to_owned())
        );
    }
}
