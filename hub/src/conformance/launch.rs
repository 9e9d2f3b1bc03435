//! Starting the plugin under test exactly as the hub does: the same
//! [`SpawnSpec`] (environment allow-list, handshake variables, process
//! group, parent-death signal), the same [`Spawner`], the same handshake code
//! ([`handshake::launch`], [`handshake::connect_only`]) and the same stop
//! escalation. Only the steps after connecting (health, metadata,
//! Configure) are left to the checks, so each is judged on its own.

use std::path::Path;
use std::time::Duration;

use switchyard_wire::handshake::{HandshakeLine, MAGIC_COOKIE_KEY};

use crate::config::PluginConfig;
use crate::rpc::plugin::PluginClient;
use crate::rpc::roles::RoleClient;
use crate::supervisor::handshake::{self, Launched, StartFailure};
use crate::supervisor::spawn::{Child, SpawnError, SpawnSpec, Spawner};
use crate::supervisor::stop::{self, StopOutcome};

/// A launched plugin that printed its handshake line and is connected.
#[derive(Debug)]
pub struct Session {
    /// The process and its stderr tail.
    pub launched: Launched,
    /// The parsed handshake line.
    pub line: HandshakeLine,
    /// Health, metadata, Configure and Shutdown.
    pub client: PluginClient,
    /// The role calls.
    pub roles: RoleClient,
}

/// Why a session could not be started.
#[derive(Debug)]
pub struct SessionError {
    /// What went wrong.
    pub failure: StartFailure,
    /// The plugin's last stderr lines.
    pub stderr_tail: Vec<String>,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the plugin {}", self.failure)?;
        if let Some(last) = self.stderr_tail.last() {
            write!(f, " (last stderr line: {last})")?;
        }
        Ok(())
    }
}

impl Session {
    /// Launches the plugin and reads its handshake line and connects; a
    /// plugin that fails to is killed (its whole group) and reaped.
    pub async fn start(
        plugin: &PluginConfig,
        spawner: &Spawner,
        socket_dir: &Path,
    ) -> Result<Session, SessionError> {
        let mut launched = handshake::launch(plugin, spawner, socket_dir)
            .await
            .map_err(|err| SessionError {
                failure: err.failure,
                stderr_tail: err.stderr_tail,
            })?;
        match handshake::connect_only(&mut launched, plugin).await {
            Ok((line, connection)) => {
                let client = PluginClient::new(connection.channel.clone());
                let roles = RoleClient::new(connection.channel);
                Ok(Session {
                    launched,
                    line,
                    client,
                    roles,
                })
            }
            Err(failure) => {
                let err = handshake::abort(&mut launched, &plugin.name, failure).await;
                Err(SessionError {
                    failure: err.failure,
                    stderr_tail: err.stderr_tail,
                })
            }
        }
    }

    /// Stops the plugin with the hub's escalation (Shutdown, `stop_grace`,
    /// SIGTERM, `kill_grace`, SIGKILL of the group) and says how far it went
    /// and how the process ended.
    pub async fn stop(mut self, plugin: &PluginConfig) -> (StopOutcome, String) {
        let (status, outcome) = stop::stop(
            &mut self.launched.child,
            self.launched.pgid,
            Some(&self.client),
            plugin.stop_grace,
            plugin.kill_grace,
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.launched.stderr_task).await;
        let exit = status.map_or_else(|| "an unknown exit".to_owned(), stop::describe_exit);
        (outcome, exit)
    }

    /// Kills the plugin's group at once and reaps it (after a failed check
    /// that leaves nothing to shut down politely).
    pub async fn kill(mut self) {
        stop::kill_now(&mut self.launched.child, self.launched.pgid).await;
    }
}

/// A plugin process started without the magic cookie, as a person running
/// it by hand would (everything else as the hub sets it).
#[derive(Debug)]
pub struct Cookieless {
    /// The process (its own process group leader).
    pub child: Child,
}

impl Cookieless {
    /// Starts the plugin with the hub's environment for it, minus the
    /// magic cookie.
    pub async fn start(
        plugin: &PluginConfig,
        spawner: &Spawner,
        socket_dir: &Path,
    ) -> Result<Cookieless, SpawnError> {
        let mut spec = SpawnSpec::for_plugin(plugin, socket_dir);
        spec.env.retain(|(name, _)| name != MAGIC_COOKIE_KEY);
        let child = spawner.spawn(spec).await?;
        Ok(Cookieless { child })
    }

    /// Its process group (equal to its pid).
    pub fn pgid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(
            self.child
                .id()
                .and_then(|pid| i32::try_from(pid).ok())
                .unwrap_or(0),
        )
    }
}
