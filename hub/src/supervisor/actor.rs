//! One task per plugin, owning its process: it starts the plugin, watches it
//! (wait status and liveness probe), restarts it under its restart policy,
//! obeys stop/start/restart commands, and is the only writer of the
//! plugin's status.
//!
//! The life of a plugin is a loop over three phases:
//! * *start*: [`PluginActor::run_once`] runs one process from launch to exit
//!   (a failed start included);
//! * *backoff*: the restart policy ([`super::restart`]) chose to start it
//!   again after a delay; a command cuts the wait short at once;
//! * *idle*: `stopped` or `failed`, waiting for an operator's command.
//!
//! What a command means in each phase is decided in one place, the pure
//! [`transition::transition`] function; the loop below only executes the
//! [`transition::Action`]s it returns (stopping the process is done by the
//! code that owns it, everything else by [`PluginActor::obey`]).

pub mod transition;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

use super::RunningPlugin;
use super::handshake::{self, Handshaken, Launched};
use super::liveness::{self, Probe};
use super::metrics;
use super::restart::{Decision, Ending, RestartTracker};
use super::spawn::Spawner;
use super::state::{LastExit, PluginState, PluginStatus};
use super::stdio;
use super::stop::{self, StopOutcome, describe_exit};
use crate::backoff;
use crate::config::PluginConfig;
use crate::rpc::roles::RoleClient;
use transition::{Action, CommandKind, Next as Go, Note, Phase, Transition, transition};

/// A request to a plugin's actor. Each is answered on `done`.
#[derive(Debug)]
pub enum Command {
    /// Stop the process (full escalation) and stay `stopped`; answered once
    /// the process is gone.
    Stop {
        /// Answered when stopped.
        done: oneshot::Sender<()>,
    },
    /// Start a plugin that is stopped, failed or in backoff; answered once
    /// the start is under way (at once when it is already starting or
    /// running).
    Start {
        /// Answered when the start is under way.
        done: oneshot::Sender<()>,
    },
    /// Stop the process if there is one, clear `failed` and the restart
    /// history, and start again at once; answered once the start is under way.
    Restart {
        /// Answered when the new start is under way.
        done: oneshot::Sender<()>,
    },
    /// Stop the process and end the actor (the hub is shutting down).
    Shutdown {
        /// Answered when stopped.
        done: oneshot::Sender<()>,
    },
}

impl Command {
    /// Which command this is.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Stop { .. } => CommandKind::Stop,
            Command::Start { .. } => CommandKind::Start,
            Command::Restart { .. } => CommandKind::Restart,
            Command::Shutdown { .. } => CommandKind::Shutdown,
        }
    }

    /// Answers the caller (who may have given up waiting).
    fn answer(self) {
        let (Command::Stop { done }
        | Command::Start { done }
        | Command::Restart { done }
        | Command::Shutdown { done }) = self;
        let _ = done.send(());
    }
}

/// What came out of the command channel: a command, or `None` once every
/// handle is gone.
fn kind_of(command: Option<&Command>) -> CommandKind {
    command.map_or(CommandKind::HandlesGone, Command::kind)
}

/// Where a transition that left its phase leads (`None`: the actor ends).
fn leave(next: Go) -> Option<Step> {
    match next {
        Go::Launch => Some(Step::Launch),
        Go::Idle | Go::Stay => Some(Step::Idle),
        Go::End => None,
    }
}

/// How one run of a process ended.
enum RunOutcome {
    /// A command (or the loss of every handle) ended the run; the process
    /// is gone and the transition's other actions are still to be done.
    Commanded {
        /// The command, `None` when every handle is gone.
        command: Option<Command>,
        /// What it means.
        transition: Transition,
    },
    /// The process ended on its own, failed to start, or was killed for
    /// failing its liveness probe.
    Ended(End),
}

/// A process that ended without being asked to.
struct End {
    ending: Ending,
    /// For `last_exit`: "killed by signal SIGKILL", "unhealthy: ...".
    reason: String,
    /// For `last_error`: a sentence naming the plugin.
    error: String,
    /// How long it served, if it got past its handshake.
    ran_for: Option<Duration>,
}

/// What the actor does next.
enum Step {
    Launch,
    Backoff(Duration),
    Idle,
}

/// The task owning one plugin.
pub struct PluginActor {
    pub(super) config: PluginConfig,
    pub(super) spawner: Arc<Spawner>,
    pub(super) socket_dir: PathBuf,
    pub(super) status: watch::Sender<PluginStatus>,
    pub(super) running: watch::Sender<Option<RunningPlugin>>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) call_timeouts: Arc<AtomicU32>,
    /// Start stopped, until a `Start` command (an on-demand plugin).
    pub(super) standby: bool,
}

impl PluginActor {
    /// Runs the plugin until it is shut down (or every handle is dropped).
    pub async fn run(mut self) {
        let span = tracing::info_span!("plugin", plugin = %self.config.name);
        async move {
            let mut tracker = RestartTracker::new(self.config.supervision.restart);
            let mut generation = 0u64;
            let mut step = if self.standby {
                Step::Idle
            } else {
                Step::Launch
            };
            loop {
                let next = match step {
                    Step::Launch => {
                        generation += 1;
                        match self.run_once(generation, &mut tracker).await {
                            RunOutcome::Commanded {
                                command,
                                transition,
                            } => {
                                self.obey(command, transition, &mut tracker);
                                leave(transition.next)
                            }
                            RunOutcome::Ended(end) => {
                                let decision = tracker.on_end(
                                    Instant::now(),
                                    end.ending,
                                    end.ran_for,
                                    backoff::random(),
                                );
                                Some(self.after_end(end, decision))
                            }
                        }
                    }
                    Step::Backoff(delay) => self.backoff(delay, &mut tracker).await,
                    Step::Idle => self.idle(&mut tracker).await,
                };
                match next {
                    Some(next) => step = next,
                    None => return,
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Executes a transition's actions, in order, except stopping the
    /// process: the code that owns the process did that already.
    fn obey(
        &self,
        mut command: Option<Command>,
        transition: Transition,
        tracker: &mut RestartTracker,
    ) {
        for action in transition.actions {
            match action {
                Action::StopProcess => {}
                Action::RecordStopOnRequest => self.update(|status| {
                    status.pid = None;
                    status.last_exit = Some(LastExit {
                        reason: "stopped on request".to_owned(),
                        at: Utc::now(),
                    });
                }),
                Action::EnterStopped => {
                    self.update(|status| {
                        status.pid = None;
                        status.next_restart_at = None;
                        status.state = PluginState::Stopped;
                    });
                    metrics::global().set_state(&self.config.name, PluginState::Stopped);
                }
                Action::Log(Note::StartOnRequest) => tracing::info!("Starting plugin on request."),
                Action::Log(Note::RestartOnRequest) => {
                    tracing::info!(reason = "an operator asked for it", "Restarting plugin.");
                }
                Action::Log(Note::StoppedDuringBackoff) => {
                    tracing::info!("Plugin stopped during its restart backoff.");
                }
                Action::ResetHistory => tracker.reset(),
                Action::CountRestart => self.count_restart(),
                Action::Answer => {
                    if let Some(command) = command.take() {
                        command.answer();
                    }
                }
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut PluginStatus)) {
        self.status.send_modify(change);
    }

    fn set_state(&self, state: PluginState) {
        self.update(|status| status.state = state);
        metrics::global().set_state(&self.config.name, state);
    }

    fn set_healthy(&self, healthy: bool) {
        self.update(|status| status.healthy = healthy);
        metrics::global().set_healthy(&self.config.name, healthy);
    }

    /// Counts a restart and moves to `starting` in one status change, so no
    /// one sees the new count with the old state.
    fn count_restart(&self) {
        self.update(|status| {
            status.restarts = status.restarts.saturating_add(1);
            status.state = PluginState::Starting;
            status.next_restart_at = None;
        });
        metrics::global().set_state(&self.config.name, PluginState::Starting);
        metrics::global().restarted(&self.config.name);
    }

    /// Records how a process ended and applies the restart decision.
    fn after_end(&mut self, end: End, decision: Decision) -> Step {
        // One status change, so no one sees a `running` plugin without a pid.
        let state = match decision {
            Decision::Restart { .. } => PluginState::Backoff,
            Decision::StayStopped => PluginState::Stopped,
            Decision::Unrecoverable | Decision::GiveUp { .. } => PluginState::Failed,
        };
        let now = Utc::now();
        self.update(|status| {
            status.state = state;
            status.pid = None;
            status.last_error = Some(end.error.clone());
            status.last_exit = Some(LastExit {
                reason: end.reason.clone(),
                at: now,
            });
            if let Decision::Restart { delay } = decision {
                status.next_restart_at = chrono::Duration::from_std(delay)
                    .ok()
                    .and_then(|delay| now.checked_add_signed(delay));
            }
        });
        metrics::global().set_state(&self.config.name, state);
        match decision {
            Decision::Restart { delay } => Step::Backoff(delay),
            Decision::StayStopped => {
                tracing::info!(
                    reason = %end.reason,
                    policy = self.config.supervision.restart.policy.as_str(),
                    "Plugin ended; its restart policy says not to restart it."
                );
                self.set_state(PluginState::Stopped);
                Step::Idle
            }
            Decision::Unrecoverable => {
                tracing::error!(
                    reason = %end.reason,
                    "Plugin failed in a way a restart cannot fix; it stays failed until an operator restarts it."
                );
                self.set_state(PluginState::Failed);
                metrics::global().gave_up(&self.config.name);
                Step::Idle
            }
            Decision::GiveUp { restarts, window } => {
                tracing::error!(
                    reason = %end.reason,
                    restarts,
                    window = %humantime::format_duration(window),
                    "Plugin restarted too often; giving up until an operator restarts it."
                );
                self.update(|status| status.next_restart_at = None);
                self.set_state(PluginState::Failed);
                metrics::global().gave_up(&self.config.name);
                Step::Idle
            }
        }
    }

    /// Waits out a restart delay; any command cuts it short at once.
    async fn backoff(&mut self, delay: Duration, tracker: &mut RestartTracker) -> Option<Step> {
        let reason = self
            .status
            .borrow()
            .last_exit
            .as_ref()
            .map(|exit| exit.reason.clone())
            .unwrap_or_default();
        tracing::warn!(
            reason = %reason,
            delay = %humantime::format_duration(delay),
            "Plugin will be restarted after a backoff."
        );
        // A zero delay restarts at once: tokio's timer would round even a
        // zero sleep up to its next millisecond tick. A waiting command
        // still comes first.
        let wait = async {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        };
        tokio::pin!(wait);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    let transition = transition(Phase::Backoff, kind_of(command.as_ref()));
                    self.obey(command, transition, tracker);
                    if transition.next != Go::Stay {
                        return leave(transition.next);
                    }
                }
                () = &mut wait => {
                    tracing::info!(reason = %reason, "Restarting plugin.");
                    self.count_restart();
                    return Some(Step::Launch);
                }
            }
        }
    }

    /// Stopped or failed: waits for an operator.
    async fn idle(&mut self, tracker: &mut RestartTracker) -> Option<Step> {
        loop {
            let command = self.commands.recv().await;
            let transition = transition(Phase::Idle, kind_of(command.as_ref()));
            self.obey(command, transition, tracker);
            if transition.next != Go::Stay {
                return leave(transition.next);
            }
        }
    }

    async fn run_once(&mut self, generation: u64, tracker: &mut RestartTracker) -> RunOutcome {
        self.update(|status| {
            status.started_at = Some(Utc::now());
            status.pid = None;
            status.next_restart_at = None;
            status.roles.clear();
            status.plugin_name = None;
            status.version = None;
            status.description = None;
            status.config_schema = None;
            status.protocol_version = None;
        });
        self.set_state(PluginState::Starting);
        self.set_healthy(false);
        self.call_timeouts.store(0, Ordering::Relaxed);
        let mut launched =
            match handshake::launch(&self.config, &self.spawner, &self.socket_dir).await {
                Ok(launched) => launched,
                Err(err) => return self.start_failed(&err),
            };
        let pid = launched.pid;
        self.update(|status| status.pid = Some(pid));
        tracing::debug!(pid, generation, "Plugin launched.");

        let result = {
            let handshake = handshake::handshake(&mut launched, &self.config);
            tokio::pin!(handshake);
            loop {
                tokio::select! {
                    result = &mut handshake => break Ok(result),
                    command = self.commands.recv() => {
                        let transition = transition(Phase::Starting, kind_of(command.as_ref()));
                        if transition.next == Go::Stay {
                            self.obey(command, transition, tracker);
                            continue;
                        }
                        break Err((command, transition));
                    }
                }
            }
        };
        let result = match result {
            Ok(result) => result,
            Err((command, transition)) => {
                // Action::StopProcess, before the plugin has a connection.
                self.set_state(PluginState::Stopping);
                stop::stop(
                    &mut launched.child,
                    launched.pgid,
                    None,
                    self.config.stop_grace,
                    self.config.kill_grace,
                )
                .await;
                tracing::info!("Plugin stopped during its start.");
                return RunOutcome::Commanded {
                    command,
                    transition,
                };
            }
        };
        let handshaken = match result {
            Ok(handshaken) => handshaken,
            Err(failure) => {
                let err = handshake::abort(&mut launched, &self.config.name, failure).await;
                return self.start_failed(&err);
            }
        };
        self.running(launched, handshaken, generation, tracker)
            .await
    }

    fn start_failed(&self, err: &handshake::StartError) -> RunOutcome {
        let error = err.to_string();
        tracing::error!(error = %error, "Plugin failed to start.");
        // A configuration the plugin rejected will be rejected again.
        let ending = if matches!(err.failure, handshake::StartFailure::Rejected(_)) {
            Ending::Unrecoverable
        } else {
            Ending::Failure
        };
        RunOutcome::Ended(End {
            ending,
            reason: format!("failed to start: {}", err.failure),
            error,
            ran_for: None,
        })
    }

    async fn running(
        &mut self,
        launched: Launched,
        handshaken: Handshaken,
        generation: u64,
        tracker: &mut RestartTracker,
    ) -> RunOutcome {
        let Launched {
            mut child,
            pid,
            pgid,
            stdout,
            mut stderr_task,
            tail: _,
            tls: _,
        } = launched;
        let Handshaken {
            line,
            client,
            metadata,
            stdio_task,
        } = handshaken;
        tracing::info!(
            pid,
            plugin_name = %metadata.name,
            version = %metadata.version,
            roles = ?metadata.roles.iter().map(|role| role.as_str()).collect::<Vec<_>>(),
            protocol_version = line.app_version,
            "Plugin started."
        );
        let running_since = Instant::now();
        self.update(|status| {
            status.roles = metadata.roles.clone();
            status.plugin_name = Some(metadata.name.clone());
            status.version = Some(metadata.version.clone());
            status.description = Some(metadata.description.clone());
            status.config_schema = Some(metadata.config_schema.clone());
            status.protocol_version = Some(line.app_version);
            status.ever_ready = true;
        });
        self.set_healthy(true);
        self.set_state(PluginState::Running);
        self.running.send_replace(Some(RunningPlugin {
            roles: RoleClient::new(client.channel().clone()),
            client: client.clone(),
            metadata,
            generation,
        }));
        let stdout_task =
            tokio::spawn(stdio::drain_stdout(self.config.name.clone(), stdout).in_current_span());
        let health = self.config.supervision.health;
        let (probe_task, mut probes) = liveness::start(client.clone(), health);
        let mut failed_checks = 0u32;

        let outcome = loop {
            tokio::select! {
                status = child.wait() => {
                    self.running.send_replace(None);
                    // The leader is gone; nothing it left in its group may stay.
                    stop::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                    let (reason, ending) = match status {
                        Ok(status) if status.success() => (describe_exit(status), Ending::CleanExit),
                        Ok(status) => (describe_exit(status), Ending::Failure),
                        Err(err) => (format!("could not be waited for: {err}"), Ending::Failure),
                    };
                    let error = format!("plugin `{}` {reason}", self.config.name);
                    tracing::error!(error = %error, "Plugin exited.");
                    break RunOutcome::Ended(End {
                        ending,
                        reason,
                        error,
                        ran_for: Some(running_since.elapsed()),
                    });
                }
                probe = probes.recv() => {
                    let Some(probe) = probe else { continue };
                    let verdict = match probe {
                        Probe::Serving => {
                            failed_checks = 0;
                            if !self.status.borrow().healthy {
                                tracing::info!("Plugin reports SERVING again.");
                                self.set_healthy(true);
                            }
                            None
                        }
                        Probe::NotServing(status) => {
                            failed_checks = 0;
                            if self.status.borrow().healthy {
                                tracing::warn!(status = %status, "Plugin reports it is not serving; no work is sent to it until it recovers.");
                                self.set_healthy(false);
                            }
                            None
                        }
                        Probe::Failed(detail) => {
                            failed_checks += 1;
                            metrics::global().health_check_failed(&self.config.name);
                            tracing::warn!(
                                error = %detail,
                                consecutive = failed_checks,
                                threshold = health.failure_threshold,
                                "Plugin failed a health check."
                            );
                            (failed_checks >= health.failure_threshold).then(|| {
                                format!(
                                    "unhealthy: {failed_checks} consecutive health checks failed (last: {detail})"
                                )
                            })
                        }
                    };
                    let timeouts = self.call_timeouts.load(Ordering::Relaxed);
                    let verdict = verdict.or_else(|| {
                        (timeouts >= health.failure_threshold).then(|| {
                            format!("unhealthy: {timeouts} consecutive calls ran past their deadline")
                        })
                    });
                    if let Some(reason) = verdict {
                        self.running.send_replace(None);
                        tracing::error!(reason = %reason, "Killing an unresponsive plugin.");
                        stop::kill_now(&mut child, pgid).await;
                        break RunOutcome::Ended(End {
                            ending: Ending::Failure,
                            error: format!("plugin `{}` was killed as {reason}", self.config.name),
                            reason,
                            ran_for: Some(running_since.elapsed()),
                        });
                    }
                }
                command = self.commands.recv() => {
                    let transition = transition(Phase::Running, kind_of(command.as_ref()));
                    if transition.next == Go::Stay {
                        self.obey(command, transition, tracker);
                        continue;
                    }
                    // Action::StopProcess, with the plugin's connection.
                    self.running.send_replace(None);
                    self.set_state(PluginState::Stopping);
                    tracing::info!("Stopping plugin.");
                    let (status, outcome) = stop::stop(
                        &mut child,
                        pgid,
                        Some(&client),
                        self.config.stop_grace,
                        self.config.kill_grace,
                    )
                    .await;
                    let description = status.map_or_else(|| "is gone".to_owned(), describe_exit);
                    match outcome {
                        StopOutcome::Graceful => tracing::info!(exit = %description, "Plugin stopped."),
                        StopOutcome::Terminated => tracing::warn!(exit = %description, "Plugin stopped only after SIGTERM."),
                        StopOutcome::Killed => tracing::warn!(exit = %description, "Plugin stopped only after SIGKILL."),
                    }
                    break RunOutcome::Commanded { command, transition };
                }
            }
        };
        probe_task.abort();
        self.set_healthy(false);
        stdio_task.abort();
        // Output still in the pipes is worth logging, but not worth waiting for
        // if a leftover grandchild holds them.
        let drain_grace = Duration::from_millis(500);
        let _ = tokio::time::timeout(drain_grace, stdout_task).await;
        let _ = tokio::time::timeout(drain_grace, &mut stderr_task).await;
        outcome
    }
}
