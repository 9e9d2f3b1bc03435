//! `plugins.toml` -> a typed, fully validated [`Config`] (see
//! `docs/configuration.md`, which this module implements exactly).
//!
//! Architecture invariant: the config is validated completely here, at load;
//! `switchyard check` and `switchyard run` run the same [`load`]. Code
//! downstream receives typed values (absolute paths, durations, socket
//! addresses) and never re-validates.
//!
//! The file is parsed into a spanned TOML tree and read section by section
//! through [`reader::Section`], rather than with `#[derive(Deserialize)]`, so
//! that every error names the file, line, column, key and table in the words
//! the documentation promises (serde's messages know neither the table nor the
//! position of a missing key). Unknown keys are errors everywhere except
//! inside a plugin's `config` table, which belongs to the plugin.

pub mod access;
pub mod cluster;
mod error;
pub mod pipeline;
mod reader;
pub mod spans;
pub mod supervision;
pub mod webhook;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

pub use access::AccessConfig;
pub use cluster::ClusterConfig;

pub use error::{ConfigError, ConfigErrors, ConfigLocation, Position};
pub use pipeline::{OnError, OutputConfig, PipelineConfig, PollConfig};
use reader::{Context, Section};
pub use supervision::{
    BackoffConfig, HealthConfig, LimitsConfig, RestartConfig, RestartMode, RetryConfig,
    SupervisionConfig,
};
pub use webhook::{Secret, WebhookAuth, WebhookConfig};

/// The default `[hub] listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7300";
/// The default `[hub] database` URL (relative to the config file's directory).
pub const DEFAULT_DATABASE: &str = "sqlite://switchyard.db";
/// The default `stop_grace`: how long a plugin has to exit after Shutdown.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// The default `kill_grace`: how long after SIGTERM before SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);
/// The default `start_timeout` of a plugin.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `socket_dir` accepted, in bytes: a Unix socket path is limited
/// to 107 bytes and the plugin needs room for its socket's file name.
pub const MAX_SOCKET_DIR_BYTES: usize = 80;

const TOP_LEVEL_KEYS: &[&str] = &["hub", "defaults", "plugins", "pipeline"];
const HUB_KEYS: &[&str] = &[
    "listen",
    "database",
    "socket_dir",
    "stop_grace",
    "kill_grace",
    "webhook_listen",
    "admin_token_env",
    "id",
    "lease_ttl",
];
const PLUGIN_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "env_passthrough",
    "start_timeout",
    "stop_grace",
    "tls",
    "config",
    "webhook",
    "poll",
    "output",
    "restart",
    "health",
    "retry",
    "limits",
];

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file as the operator named it (used in messages).
    pub path: PathBuf,
    /// The absolute directory containing the config file: relative paths in
    /// the file are resolved against it, and plugins run in it.
    pub base_dir: PathBuf,
    /// The `[hub]` table.
    pub hub: HubConfig,
    /// Every `[plugins.NAME]` table, in the order they appear in the file.
    pub plugins: Vec<PluginConfig>,
    /// The `[pipeline]` table (enrichment chains).
    pub pipeline: PipelineConfig,
}

/// Where records are stored, with a relative SQLite path already resolved
/// against the config file's directory.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite database file.
    Sqlite {
        /// The file, absolute.
        path: PathBuf,
        /// The URL's query string without `?` (for example `mode=rwc`), or empty.
        options: String,
    },
    /// A PostgreSQL URL exactly as written. It may hold a password: never log it.
    Postgres(String),
}

impl Database {
    /// The URL to connect with (`sqlite:///abs/path?options` or the
    /// PostgreSQL URL).
    pub fn url(&self) -> String {
        match self {
            Database::Sqlite { path, options } if options.is_empty() => {
                format!("sqlite://{}", path.display())
            }
            Database::Sqlite { path, options } => {
                format!("sqlite://{}?{options}", path.display())
            }
            Database::Postgres(url) => url.clone(),
        }
    }
}

impl std::fmt::Debug for Database {
    /// Never shows a PostgreSQL URL, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite { .. } => write!(f, "Database({})", self.url()),
            Database::Postgres(_) => f.write_str("Database(postgres://…)"),
        }
    }
}

/// Parses `[hub] database`; relative SQLite paths are resolved against
/// `base_dir`.
fn parse_database(text: &str, base_dir: &Path) -> Option<Database> {
    if let Some(rest) = text.strip_prefix("sqlite://") {
        let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return None;
        }
        return Some(Database::Sqlite {
            path: base_dir.join(path),
            options: options.to_owned(),
        });
    }
    ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| text.starts_with(scheme) && text.len() > scheme.len())
        .then(|| Database::Postgres(text.to_owned()))
}

/// The `[hub]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Where records are stored.
    pub database: Database,
    /// The directory for plugin sockets, absolute; `None` means a private
    /// temporary directory created (and removed) by the hub.
    pub socket_dir: Option<PathBuf>,
    /// The default grace period between `Shutdown` and SIGTERM.
    pub stop_grace: Duration,
    /// The grace period between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// `webhook_listen` and `admin_token_env`: the webhook-only listener
    /// and the admin API's bearer token.
    pub access: AccessConfig,
    /// `id` and `lease_ttl`: this hub among the hubs sharing a PostgreSQL
    /// database.
    pub cluster: ClusterConfig,
}

impl HubConfig {
    /// The `[hub]` defaults for a config file in `base_dir`.
    pub fn with_defaults(base_dir: &Path) -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7300)),
            database: Database::Sqlite {
                path: base_dir.join("switchyard.db"),
                options: String::new(),
            },
            socket_dir: None,
            stop_grace: DEFAULT_STOP_GRACE,
            kill_grace: DEFAULT_KILL_GRACE,
            access: AccessConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

/// One `[plugins.NAME]` table, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The instance name (`NAME`): letters, digits, `-` and `_`.
    pub name: String,
    /// The plugin executable, absolute, checked to exist and be executable.
    pub command: PathBuf,
    /// Arguments passed to the plugin.
    pub args: Vec<String>,
    /// Environment variables set for the plugin.
    pub env: BTreeMap<String, String>,
    /// Names of the hub's environment variables the plugin may see.
    pub env_passthrough: Vec<String>,
    /// How long the plugin has to complete its handshake.
    pub start_timeout: Duration,
    /// How long the plugin has to exit after `Shutdown` before SIGTERM.
    pub stop_grace: Duration,
    /// How long after SIGTERM before SIGKILL (from `[hub] kill_grace`).
    pub kill_grace: Duration,
    /// The plugin's `config` table as a JSON object, for `Configure`.
    pub config: serde_json::Value,
    /// Where the `config` table is in the file (the plugin's own table when
    /// it has none), so that a rejected `Configure` points the operator at it.
    pub config_at: ConfigLocation,
    /// The directory the plugin runs in (the config file's directory).
    pub working_dir: PathBuf,
    /// `[plugins.NAME.webhook]`: serve `POST /webhooks/NAME`, or `None`.
    pub webhook: Option<WebhookConfig>,
    /// `[plugins.NAME.poll]`: poll this plugin on a schedule, or `None`.
    pub poll: Option<PollConfig>,
    /// `[plugins.NAME.output]`: deliver record events to it, or `None`.
    pub output: Option<OutputConfig>,
    /// `[plugins.NAME.restart|health|retry|limits]` over `[defaults.*]`.
    pub supervision: SupervisionConfig,
    /// `tls`: whether the connection to the plugin uses AutoMTLS.
    pub tls: TlsMode,
}

/// How the hub secures its connection to a plugin (`tls` in `[plugins.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// `"off"` (the default): plain gRPC over the plugin's Unix socket, which
    /// only the hub's user can reach.
    #[default]
    Off,
    /// `"auto"`: go-plugin's AutoMTLS. The hub sends a fresh certificate in
    /// `PLUGIN_CLIENT_CERT`, the plugin answers with its own in the handshake
    /// line, and each side accepts only the other's.
    Auto,
}

/// Reads and validates the config file at `path`.
///
/// Returns every problem found (not just the first), each naming the file,
/// line, column and key.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![ConfigError::whole_file(
            path,
            format!("cannot read the config file: {err}"),
        )])
    })?;
    let base_dir = std::path::absolute(path)
        .ok()
        .and_then(|absolute| absolute.parent().map(Path::to_path_buf))
        .ok_or_else(|| {
            ConfigErrors(vec![ConfigError::whole_file(
                path,
                "cannot determine the config file's directory",
            )])
        })?;
    parse(path, &source, &base_dir)
}

/// Validates config text as if read from `path`, resolving relative paths
/// against `base_dir`. [`load`] is this plus reading the file.
pub fn parse(path: &Path, source: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let document = DeTable::parse(source).map_err(|err| {
        let message = err.message().trim_end().replace('\n', "; ");
        let error = match err.span() {
            Some(span) => ConfigError::at(path, source, span, message),
            None => ConfigError::whole_file(path, message),
        };
        ConfigErrors(vec![error])
    })?;
    let mut context = Context {
        path,
        source,
        errors: Vec::new(),
    };
    let top = Section {
        label: "the top level".to_owned(),
        table: document.get_ref(),
        span: document.span(),
    };
    top.deny_unknown_keys(&mut context, TOP_LEVEL_KEYS);

    let hub = match top.table(&mut context, "hub") {
        Some(section) => read_hub(&mut context, &section, base_dir),
        None => HubConfig::with_defaults(base_dir),
    };
    let defaults_section = top.table(&mut context, "defaults");
    let defaults = supervision::read_defaults(&mut context, defaults_section.as_ref());
    let mut plugins = Vec::new();
    let mut plugin_names = Vec::new();
    if let Some(section) = top.table(&mut context, "plugins") {
        for (key, plugin) in section.child_tables(&mut context) {
            let name = key.get_ref().as_ref();
            plugin_names.push(name.to_owned());
            // A bad name is reported, and the table is still checked so
            // every problem shows up at once.
            let name_ok = match validate_plugin_name(name) {
                Ok(()) => true,
                Err(reason) => {
                    context.error(
                        key.span(),
                        format!("invalid plugin name {name:?}: {reason}"),
                    );
                    false
                }
            };
            let supervision = supervision::read_plugin(&mut context, &plugin, &defaults);
            let plugin =
                read_plugin(&mut context, &plugin, name, &hub, base_dir).map(|mut plugin| {
                    plugin.supervision = supervision;
                    plugin
                });
            if let (Some(plugin), true) = (plugin, name_ok) {
                plugins.push(plugin);
            }
        }
    }

    let pipeline = match top.table(&mut context, "pipeline") {
        Some(section) => pipeline::read_pipeline(&mut context, &section, &plugin_names),
        None => PipelineConfig::default(),
    };

    if context.errors.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            hub,
            plugins,
            pipeline,
        })
    } else {
        context.errors.sort_by_key(|error| {
            error
                .position
                .map(|position| (position.line, position.column))
        });
        Err(ConfigErrors(context.errors))
    }
}

fn read_hub(context: &mut Context<'_>, section: &Section<'_, '_>, base_dir: &Path) -> HubConfig {
    section.deny_unknown_keys(context, HUB_KEYS);
    let mut hub = HubConfig::with_defaults(base_dir);
    if let Some((text, span)) = section.string(context, "listen") {
        match text.parse::<SocketAddr>() {
            Ok(address) => hub.listen = address,
            Err(_) => context.error(
                span,
                format!(
                    "invalid listen address {text:?} for `listen` in [hub]: expected IP:PORT, for example \"{DEFAULT_LISTEN}\""
                ),
            ),
        }
    }
    if let Some((text, span)) = section.string(context, "database") {
        if let Some(database) = parse_database(&text, base_dir) {
            hub.database = database;
        } else {
            context.error(
                span,
                format!(
                    "invalid database URL {text:?} for `database` in [hub]: expected sqlite://PATH or postgres://…"
                ),
            );
        }
    }
    if let Some((text, span)) = section.string(context, "socket_dir") {
        let dir = base_dir.join(&text);
        if text.is_empty() {
            context.error(span, "`socket_dir` in [hub] must not be empty");
        } else if dir.as_os_str().len() > MAX_SOCKET_DIR_BYTES {
            context.error(
                span,
                format!(
                    "`socket_dir` in [hub] resolves to {}, which is {} bytes long; keep it under {MAX_SOCKET_DIR_BYTES} bytes because Unix socket paths are limited to 107",
                    dir.display(),
                    dir.as_os_str().len()
                ),
            );
        } else {
            hub.socket_dir = Some(dir);
        }
    }
    if let Some(duration) = section.duration(context, "stop_grace") {
        hub.stop_grace = duration;
    }
    if let Some(duration) = section.duration(context, "kill_grace") {
        hub.kill_grace = duration;
    }
    hub.access = access::read(context, section, hub.listen);
    hub.cluster = cluster::read(context, section);
    hub
}

fn read_plugin(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    name: &str,
    hub: &HubConfig,
    base_dir: &Path,
) -> Option<PluginConfig> {
    let errors_before = context.errors.len();
    section.deny_unknown_keys(context, PLUGIN_KEYS);

    let command = match section.string(context, "command") {
        Some((text, span)) if text.trim().is_empty() => {
            context.error(
                span,
                format!("`command` in [plugins.{name}] must not be empty"),
            );
            None
        }
        Some((text, span)) => {
            let resolved = base_dir.join(&text);
            match check_executable(&resolved) {
                Ok(()) => Some(resolved),
                Err(reason) => {
                    context.error(
                        span,
                        format!(
                            "the command of plugin `{name}` ({text:?}, resolved to {}) {reason}",
                            resolved.display()
                        ),
                    );
                    None
                }
            }
        }
        None => {
            if section.get("command").is_none() {
                section.missing(context, "command", "");
            }
            None
        }
    };

    let args = section
        .string_array(context, "args")
        .unwrap_or_default()
        .into_iter()
        .map(|(arg, _)| arg)
        .collect();

    let mut env = BTreeMap::new();
    if let Some(table) = section.table(context, "env") {
        for (key, value) in table.table.iter() {
            let variable = key.get_ref().to_string();
            if let Err(reason) = validate_env_name(&variable) {
                context.error(
                    key.span(),
                    format!(
                        "invalid environment variable name {variable:?} in {}: {reason}",
                        table.label
                    ),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::String(text) if text.contains('\0') => context.error(
                    value.span(),
                    format!(
                        "the value of `{variable}` in {} contains a NUL byte",
                        table.label
                    ),
                ),
                DeValue::String(text) => {
                    env.insert(variable, text.to_string());
                }
                other => context.error(
                    value.span(),
                    format!(
                        "`{variable}` in {} must be a string, found {}",
                        table.label,
                        other.type_str()
                    ),
                ),
            }
        }
    }

    let mut env_passthrough = Vec::new();
    for (variable, span) in section
        .string_array(context, "env_passthrough")
        .unwrap_or_default()
    {
        match validate_env_name(&variable) {
            Ok(()) => env_passthrough.push(variable),
            Err(reason) => context.error(
                span,
                format!(
                    "invalid environment variable name {variable:?} in `env_passthrough` of [plugins.{name}]: {reason}"
                ),
            ),
        }
    }

    let start_timeout = section
        .duration(context, "start_timeout")
        .unwrap_or(DEFAULT_START_TIMEOUT);
    let stop_grace = section
        .duration(context, "stop_grace")
        .unwrap_or(hub.stop_grace);
    let tls = match section.string(context, "tls") {
        None => TlsMode::Off,
        Some((text, _)) if text == "off" => TlsMode::Off,
        Some((text, _)) if text == "auto" => TlsMode::Auto,
        Some((text, span)) => {
            context.error(
                span,
                format!(
                    "invalid value {text:?} for `tls` in [plugins.{name}]: expected \"auto\" (go-plugin's AutoMTLS) or \"off\""
                ),
            );
            TlsMode::Off
        }
    };

    let webhook = section
        .table(context, "webhook")
        .and_then(|table| webhook::read(context, &table, name));
    let poll = section
        .table(context, "poll")
        .and_then(|table| pipeline::read_poll(context, &table));
    let output = section
        .table(context, "output")
        .and_then(|table| pipeline::read_output(context, &table));

    let config_at = ConfigLocation::at(
        context.path,
        context.source,
        section
            .get("config")
            .map_or(section.span.start, |value| value.span().start),
    );
    let config = match section.get("config") {
        None => serde_json::Value::Object(serde_json::Map::new()),
        Some(value) if value.get_ref().is_table() => {
            reader::to_json(context, value, &format!("plugins.{name}.config"))
        }
        Some(value) => {
            context.error(
                value.span(),
                format!(
                    "`config` in [plugins.{name}] must be a table, found {}",
                    value.get_ref().type_str()
                ),
            );
            serde_json::Value::Null
        }
    };

    if context.errors.len() > errors_before {
        return None;
    }
    Some(PluginConfig {
        name: name.to_owned(),
        command: command?,
        args,
        env,
        env_passthrough,
        start_timeout,
        stop_grace,
        kill_grace: hub.kill_grace,
        config,
        config_at,
        working_dir: base_dir.to_path_buf(),
        webhook,
        poll,
        output,
        supervision: SupervisionConfig::default(),
        tls,
    })
}

/// Checks an instance name: non-empty, letters, digits, `-` and `_` only.
pub fn validate_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a plugin name must not be empty".to_owned());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(bad) => Err(format!(
            "{bad:?} is not allowed; use letters, digits, `-` and `_`"
        )),
        None => Ok(()),
    }
}

fn validate_env_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.contains('=') || name.contains('\0') {
        Err("it must not contain `=` or a NUL byte")
    } else {
        Ok(())
    }
}

/// Checks that `path` is an existing regular file with an execute bit set.
fn check_executable(path: &Path) -> Result<(), String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err("does not exist".to_owned());
        }
        Err(err) => return Err(format!("cannot be inspected: {err}")),
    };
    if !metadata.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err("is not executable".to_owned());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
