//! A plugin's state and the status snapshot its actor publishes (over a
//! `tokio::sync::watch` channel) for the API and for readiness.
//!
//! Architecture invariant: a plugin's actor is the only writer of its status.

use chrono::{DateTime, Utc};

use crate::domain::Role;

/// Where a plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    /// Launched; the handshake is under way.
    Starting,
    /// Handshake, health, metadata and Configure done; serving calls.
    Running,
    /// Being stopped (Shutdown, grace, signals).
    Stopping,
    /// Not running: stopped by the operator or the hub, or exited or failed
    /// to start when its restart policy says not to restart (`last_error`
    /// says why).
    Stopped,
    /// Waiting to be restarted (`next_restart_at` says when).
    Backoff,
    /// Restarted too often within the window: the hub gave up until an
    /// operator restarts it.
    Failed,
}

impl PluginState {
    /// The API's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Starting => "starting",
            PluginState::Running => "running",
            PluginState::Stopping => "stopping",
            PluginState::Stopped => "stopped",
            PluginState::Backoff => "backoff",
            PluginState::Failed => "failed",
        }
    }

    /// Every state, for metrics.
    pub const ALL: [PluginState; 6] = [
        PluginState::Starting,
        PluginState::Running,
        PluginState::Stopping,
        PluginState::Stopped,
        PluginState::Backoff,
        PluginState::Failed,
    ];
}

/// How and when a plugin's last process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastExit {
    /// Why: "exited with status 3", "killed by signal SIGKILL", "failed to
    /// start: ...", "unhealthy: ...", "stopped by the hub".
    pub reason: String,
    /// When the hub learned of it.
    pub at: DateTime<Utc>,
}

/// A snapshot of one plugin instance, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStatus {
    /// The instance name from `[plugins.NAME]`.
    pub name: String,
    /// The current state.
    pub state: PluginState,
    /// The process id while there is a process.
    pub pid: Option<u32>,
    /// The roles from the plugin's metadata; empty until known.
    pub roles: Vec<Role>,
    /// The plugin's own name from its metadata.
    pub plugin_name: Option<String>,
    /// The plugin's version from its metadata.
    pub version: Option<String>,
    /// What the plugin does, from its metadata (may be empty).
    pub description: Option<String>,
    /// The JSON Schema of its `config` table, from its metadata, as text
    /// (may be empty).
    pub config_schema: Option<String>,
    /// The negotiated app protocol version.
    pub protocol_version: Option<u32>,
    /// How many times the hub restarted the plugin (automatic restarts and
    /// operator restarts).
    pub restarts: u32,
    /// How the last process ended, if one did.
    pub last_exit: Option<LastExit>,
    /// While in `Backoff`: when the next start is due.
    pub next_restart_at: Option<DateTime<Utc>>,
    /// Whether the plugin is running and its last health check said SERVING.
    pub healthy: bool,
    /// When the current (or last) process was launched.
    pub started_at: Option<DateTime<Utc>>,
    /// The last start failure or exit, as a sentence naming the plugin.
    pub last_error: Option<String>,
    /// Whether the plugin has completed its handshake at least once (for
    /// `/readyz`).
    pub ever_ready: bool,
    /// Whether it runs only while this hub holds its leased work (a hub
    /// sharing its database, `crate::cluster::demand`): `stopped` then
    /// means another hub does its work.
    pub on_demand: bool,
}

impl PluginStatus {
    /// The status of a plugin about to be launched.
    pub fn new(name: &str) -> Self {
        PluginStatus {
            name: name.to_owned(),
            state: PluginState::Starting,
            pid: None,
            roles: Vec::new(),
            plugin_name: None,
            version: None,
            description: None,
            config_schema: None,
            protocol_version: None,
            restarts: 0,
            last_exit: None,
            next_restart_at: None,
            healthy: false,
            started_at: None,
            last_error: None,
            ever_ready: false,
            on_demand: false,
        }
    }
}
