//! The supervisor: one actor task per plugin ([`actor`]), each owning its
//! process and publishing its [`PluginStatus`]; the [`Supervisor`] holds the
//! handles and stops everything in parallel.
//!
//! * [`spawn`]: the only place that starts processes (dedicated thread,
//!   PDEATHSIG, process group, environment allow-list).
//! * [`handshake`]: handshake line, connect, health, metadata, Configure.
//! * [`stdio`]: plugin stdout/stderr -> hub log events.
//! * [`stop`]: Shutdown -> grace -> SIGTERM -> SIGKILL, exit descriptions.
//! * [`state`]: the status snapshot.
//! * [`restart`]: the restart policy (backoff and intensity cap), pure.
//! * [`liveness`]: the periodic health probe.
//! * [`socket_dir`]: the private directory for plugin sockets.
//! * [`metrics`]: the supervisor's Prometheus metrics.
//! * [`registry`]: the set of plugins running now, which a reload changes.
//!
//! Architecture invariants: only this module spawns, signals or kills
//! processes; a plugin's actor is the only writer of its status; a plugin's
//! death is learned from its wait status, never from an RPC error.

pub mod actor;
pub mod handshake;
pub mod liveness;
pub mod metrics;
pub mod registry;
pub mod restart;
pub mod socket_dir;
pub mod spawn;
pub mod state;
pub mod stdio;
pub mod stop;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::breaker::{Breaker, BreakerState};
use crate::config::{PluginConfig, RetryConfig};
use crate::domain::PluginMetadata;
use crate::rpc::plugin::PluginClient;
use crate::rpc::roles::RoleClient;
pub use registry::Registry;
pub use spawn::Spawner;
pub use state::{LastExit, PluginState, PluginStatus};

/// A running plugin's clients and what it said it is, published while (and
/// only while) it is running.
#[derive(Debug, Clone)]
pub struct RunningPlugin {
    /// Plugin-wide services (health, metadata, Shutdown).
    pub client: PluginClient,
    /// The role calls.
    pub roles: RoleClient,
    /// What the plugin said it is.
    pub metadata: PluginMetadata,
    /// Which process this is (1 for the first launch, then one more per
    /// launch): a call that failed on generation N while the plugin now runs
    /// N+1 failed because the plugin died under it.
    pub generation: u64,
}

/// A handle on one plugin, for the API: read its status, reach its
/// connection, ask it to stop.
#[derive(Debug, Clone)]
pub struct PluginHandle {
    name: Arc<str>,
    status: watch::Receiver<PluginStatus>,
    running: watch::Receiver<Option<RunningPlugin>>,
    commands: mpsc::Sender<actor::Command>,
    retry: Arc<RetryConfig>,
    breaker: Arc<Mutex<Breaker>>,
    call_timeouts: Arc<AtomicU32>,
}

impl PluginHandle {
    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current status snapshot.
    pub fn status(&self) -> PluginStatus {
        self.status.borrow().clone()
    }

    /// A receiver of status changes from now on, to wait for a condition:
    /// its `changed()` waits for the next change (the current status counts
    /// as seen), as a receiver from `watch::Sender::subscribe` would. A bare
    /// clone of the handle's receiver would report every change since the
    /// handle was made at once, and a caller waiting for "a change, or a
    /// timer" would never wait.
    pub fn subscribe(&self) -> watch::Receiver<PluginStatus> {
        let mut receiver = self.status.clone();
        receiver.mark_unchanged();
        receiver
    }

    /// The instance name, shared (for metric labels: cloning it does not
    /// allocate).
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The plugin's clients if it is running.
    pub fn running(&self) -> Option<RunningPlugin> {
        self.running.borrow().clone()
    }

    /// A receiver of [`PluginHandle::running`] changes, to wait for the
    /// plugin to be back.
    pub fn subscribe_running(&self) -> watch::Receiver<Option<RunningPlugin>> {
        self.running.clone()
    }

    /// The retry policy for calls to this plugin (`[plugins.NAME.retry]`).
    pub fn retry_config(&self) -> &RetryConfig {
        &self.retry
    }

    /// The plugin's circuit breaker, shared by every caller.
    pub fn breaker(&self) -> &Mutex<Breaker> {
        &self.breaker
    }

    /// The circuit breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        match self.breaker.lock() {
            Ok(breaker) => breaker.state(Instant::now()),
            Err(poisoned) => poisoned.into_inner().state(Instant::now()),
        }
    }

    /// Records a call that ran past its deadline (a progress-deadline
    /// failure); the actor treats `failure_threshold` of them in a row like
    /// failed health checks.
    pub fn record_call_timeout(&self) {
        self.call_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a call that finished in time: the count of consecutive
    /// progress-deadline failures starts again.
    pub fn record_call_progress(&self) {
        self.call_timeouts.store(0, Ordering::Relaxed);
    }

    async fn command(&self, make: impl FnOnce(oneshot::Sender<()>) -> actor::Command) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(make(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Stops the plugin (full escalation) and waits until its process is
    /// gone; it stays `stopped` (no restart) until [`PluginHandle::start`]
    /// or [`PluginHandle::restart`].
    pub async fn stop(&self) {
        self.command(|done| actor::Command::Stop { done }).await;
    }

    /// Starts a plugin that is stopped, failed or in backoff (at once);
    /// does nothing to a plugin that is starting or running. Returns once
    /// the start is under way.
    pub async fn start(&self) {
        self.command(|done| actor::Command::Start { done }).await;
    }

    /// Stops the plugin if it runs and starts it again at once, clearing
    /// `failed` and the restart history. Returns once the new start is under
    /// way.
    pub async fn restart(&self) {
        self.command(|done| actor::Command::Restart { done }).await;
    }

    /// Stops the plugin for good (the hub is shutting down) and waits until
    /// its process is gone and its actor has ended.
    pub async fn shutdown(&self) {
        self.command(|done| actor::Command::Shutdown { done }).await;
    }
}

/// Owns every plugin's actor.
#[derive(Debug)]
pub struct Supervisor {
    /// The handles, in launch order; `actors[i]` runs `plugins[i]`.
    plugins: Vec<PluginHandle>,
    actors: Vec<JoinHandle<()>>,
    // Kept alive until every plugin is stopped: its thread spawned them, and
    // PDEATHSIG fires when that thread ends.
    spawner: Arc<Spawner>,
    socket_dir: PathBuf,
    /// The plugins [`Supervisor::launch`] starts stopped.
    standby: BTreeSet<String>,
}

impl Supervisor {
    /// Replaces the set of plugins [`Supervisor::launch`] starts stopped
    /// (a reload).
    pub fn set_standby(&mut self, standby: BTreeSet<String>) {
        self.standby = standby;
    }

    /// Starts every configured plugin, each in its own actor task (in
    /// parallel). Failures are reported through each plugin's status.
    pub fn start(plugins: &[PluginConfig], spawner: Arc<Spawner>, socket_dir: PathBuf) -> Self {
        Self::start_with_standby(plugins, spawner, socket_dir, BTreeSet::new())
    }

    /// [`Supervisor::start`], except that the plugins named in `standby`
    /// start stopped, until something starts them (on-demand plugins of a
    /// hub sharing its database, `crate::cluster::demand`).
    pub fn start_with_standby(
        plugins: &[PluginConfig],
        spawner: Arc<Spawner>,
        socket_dir: PathBuf,
        standby: BTreeSet<String>,
    ) -> Self {
        let mut supervisor = Supervisor {
            plugins: Vec::with_capacity(plugins.len()),
            actors: Vec::with_capacity(plugins.len()),
            spawner,
            socket_dir,
            standby,
        };
        for plugin in plugins {
            supervisor.launch(plugin);
        }
        supervisor
    }

    /// Starts one more plugin in its own actor task and returns its handle
    /// (a reload adding or restarting a plugin; stop one of the same name
    /// first with [`Supervisor::remove`]).
    pub fn launch(&mut self, plugin: &PluginConfig) -> PluginHandle {
        let standby = self.standby.contains(&plugin.name);
        let mut status = PluginStatus::new(&plugin.name);
        if standby {
            status.state = PluginState::Stopped;
            status.on_demand = true;
        }
        let (status_tx, status_rx) = watch::channel(status);
        let (running_tx, running_rx) = watch::channel(None);
        let (commands_tx, commands_rx) = mpsc::channel(8);
        let retry = Arc::new(plugin.supervision.retry.clone());
        let breaker = Arc::new(Mutex::new(Breaker::new(
            retry.breaker_failures,
            retry.breaker_cooldown,
        )));
        let call_timeouts = Arc::new(AtomicU32::new(0));
        let actor = actor::PluginActor {
            config: plugin.clone(),
            spawner: self.spawner.clone(),
            socket_dir: self.socket_dir.clone(),
            status: status_tx,
            running: running_tx,
            commands: commands_rx,
            call_timeouts: call_timeouts.clone(),
            standby,
        };
        self.actors.push(tokio::spawn(actor.run()));
        let handle = PluginHandle {
            name: Arc::from(plugin.name.as_str()),
            status: status_rx,
            running: running_rx,
            commands: commands_tx,
            retry,
            breaker,
            call_timeouts,
        };
        self.plugins.push(handle.clone());
        handle
    }

    /// Stops plugin `name` for good (full escalation) and waits until its
    /// process is gone and its actor has ended. Returns false when no such
    /// plugin runs.
    pub async fn remove(&mut self, name: &str) -> bool {
        let Some(index) = self.plugins.iter().position(|plugin| plugin.name() == name) else {
            return false;
        };
        let plugin = self.plugins.remove(index);
        let actor = self.actors.remove(index);
        plugin.shutdown().await;
        if let Err(err) = actor.await {
            tracing::error!(plugin = %name, error = %err, "A plugin actor ended abnormally.");
        }
        true
    }

    /// Every plugin, in launch order.
    pub fn plugins(&self) -> &[PluginHandle] {
        &self.plugins
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginHandle> {
        self.plugins.iter().find(|plugin| plugin.name() == name)
    }

    /// Stops every plugin in parallel and waits until all are gone.
    pub async fn stop_all(self) {
        let stops: Vec<_> = self
            .plugins
            .iter()
            .cloned()
            .map(|plugin| tokio::spawn(async move { plugin.shutdown().await }))
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
        for actor in self.actors {
            if let Err(err) = actor.await {
                tracing::error!(error = %err, "A plugin actor ended abnormally.");
            }
        }
        drop(self.spawner);
    }
}
