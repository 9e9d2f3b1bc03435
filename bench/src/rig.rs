//! Launching testkit the way the hub does: the hub library's [`Supervisor`]
//! (dedicated spawner thread, handshake, connect, health, metadata,
//! Configure), so the figures include what the hub does, not a shortcut.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use switchyard_hub::config::{self, PluginConfig};
use switchyard_hub::supervisor::{PluginState, RunningPlugin, Spawner, Supervisor};

/// The instance name testkit runs under.
pub const INSTANCE: &str = "bench";

/// What every launch shares: the spawner thread, the socket directory and the
/// parsed plugin configuration.
pub struct Rig {
    testkit: PathBuf,
    spawner: Arc<Spawner>,
    socket_dir: tempfile::TempDir,
    plugin: PluginConfig,
}

/// One launched testkit under the hub's supervisor.
pub struct Launched {
    /// The supervisor owning the plugin's actor.
    pub supervisor: Supervisor,
    /// The plugin's clients.
    pub connection: RunningPlugin,
}

impl Launched {
    /// Stops the plugin the hub's way and waits until its process is gone.
    pub async fn stop(self) {
        drop(self.connection);
        self.supervisor.stop_all().await;
    }
}

impl Rig {
    /// Prepares launches of `testkit` (a path to its release binary). Must be
    /// called inside the runtime that will drive the plugins.
    pub fn new(testkit: &Path) -> anyhow::Result<Self> {
        let testkit = std::fs::canonicalize(testkit)
            .with_context(|| format!("cannot find testkit at {}", testkit.display()))?;
        let socket_dir = tempfile::Builder::new()
            .prefix("sy-bench-")
            .tempdir_in("/tmp")
            .context("cannot create the socket directory")?;
        let config_path = socket_dir.path().join("plugins.toml");
        let source = plugins_toml(&testkit, 1);
        let parsed = config::parse(&config_path, &source, socket_dir.path())
            .map_err(|errors| anyhow::anyhow!("the generated config is invalid: {errors}"))?;
        let plugin = parsed
            .plugins
            .into_iter()
            .next()
            .context("the generated config has no plugin")?;
        let spawner = Spawner::start(tokio::runtime::Handle::current())
            .context("cannot start the hub's spawner thread")?;
        Ok(Rig {
            testkit,
            spawner: Arc::new(spawner),
            socket_dir,
            plugin,
        })
    }

    /// The testkit binary this rig launches (canonical path).
    pub fn testkit(&self) -> &Path {
        &self.testkit
    }

    /// Launches testkit and waits until the hub has a connection to it
    /// (handshake, health, metadata and Configure done).
    pub async fn launch(&self) -> anyhow::Result<Launched> {
        let supervisor = Supervisor::start(
            std::slice::from_ref(&self.plugin),
            self.spawner.clone(),
            self.socket_dir.path().to_path_buf(),
        );
        match wait_connected(&supervisor).await {
            Ok(connection) => Ok(Launched {
                supervisor,
                connection,
            }),
            Err(err) => {
                supervisor.stop_all().await;
                Err(err)
            }
        }
    }
}

/// Waits until the plugin is running and its connection is published.
async fn wait_connected(supervisor: &Supervisor) -> anyhow::Result<RunningPlugin> {
    let handle = supervisor
        .plugin(INSTANCE)
        .context("the supervisor does not know the plugin")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = handle.subscribe();
    loop {
        let current = status.borrow_and_update().clone();
        match current.state {
            PluginState::Running => break,
            PluginState::Stopped if current.last_error.is_some() => {
                bail!(
                    "testkit failed to start: {}",
                    current.last_error.unwrap_or_default()
                )
            }
            _ => {}
        }
        tokio::time::timeout_at(deadline.into(), status.changed())
            .await
            .context("testkit did not start within 30 s")?
            .context("the plugin's actor ended")?;
    }
    // The actor publishes the connection right after the Running status, and
    // PluginHandle offers no receiver for it: yield until it is there.
    loop {
        if let Some(connection) = handle.running() {
            return Ok(connection);
        }
        if Instant::now() > deadline {
            bail!("testkit is running but its connection was never published");
        }
        tokio::task::yield_now().await;
    }
}

/// A plugins.toml with `count` testkit instances (`bench`, `bench-2`, ...).
pub fn plugins_toml(testkit: &Path, count: usize) -> String {
    let mut source = String::new();
    for index in 1..=count {
        let name = if index == 1 {
            INSTANCE.to_owned()
        } else {
            format!("{INSTANCE}-{index}")
        };
        source.push_str(&format!(
            "[plugins.{name}]\ncommand = {}\n\n",
            toml_string(testkit)
        ));
    }
    source
}

/// A path as a TOML basic string.
pub fn toml_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The canonical path of a binary, with a hint naming the build that makes it.
pub fn binary(path: &Path, built_by: &str) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(path)
        .with_context(|| format!("cannot find {} (build it with {built_by})", path.display()))
}
