//! Stopping a plugin, always the same way: `GRPCController/Shutdown`, wait
//! `stop_grace`, SIGTERM to the process group, wait `kill_grace`, SIGKILL to
//! the process group. The leader is always reaped, and once it has exited
//! whatever is left in its group is killed too: no orphans, no zombies.
//!
//! Also here: how an exit is described ([`describe_exit`]). A plugin's death
//! is learned from its wait status, never from RPC errors.

use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::spawn::Child;
use crate::rpc::plugin::PluginClient;

/// Describes an exit status as a phrase: "exited with status 3", "killed by
/// signal SIGKILL", "killed by signal SIGSEGV (core dumped)".
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(number) => {
            let name = Signal::try_from(number)
                .map(|signal| signal.as_str().to_owned())
                .unwrap_or_else(|_| format!("{number}"));
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            format!("killed by signal {name}{core}")
        }
        None => format!("ended with an unknown wait status ({})", status.into_raw()),
    }
}

/// Sends `signal` to the process group led by `pgid`. A group that no longer
/// exists is not an error.
pub fn signal_group(pgid: Pid, signal: Signal) {
    // killpg(0) would signal the hub's own group, and 1 is init: never.
    if pgid.as_raw() <= 1 {
        tracing::error!(pgid = pgid.as_raw(), signal = %signal, "Refusing to signal an invalid process group.");
        return;
    }
    match killpg(pgid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(err) => {
            tracing::warn!(pgid = pgid.as_raw(), signal = %signal, error = %err, "Cannot signal a plugin's process group.");
        }
    }
}

/// Waits for the leader; on a wait error (which should never happen) falls
/// back to SIGKILL and tries again, so the child is always reaped.
async fn reap(child: &mut Child, pgid: Pid) -> Option<ExitStatus> {
    match child.wait().await {
        Ok(status) => Some(status),
        Err(err) => {
            tracing::error!(error = %err, "Waiting for a plugin process failed; killing it.");
            signal_group(pgid, Signal::SIGKILL);
            child.wait().await.ok()
        }
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The plugin exited within `stop_grace` after Shutdown.
    Graceful,
    /// It needed SIGTERM.
    Terminated,
    /// It needed SIGKILL.
    Killed,
}

/// Stops a plugin with the full escalation and reaps it. Returns the
/// leader's exit status (`None` only if waiting on it failed twice) and how
/// far the escalation went. Without a `client` (the plugin is still in its
/// handshake) the escalation starts at SIGTERM.
pub async fn stop(
    child: &mut Child,
    pgid: Pid,
    client: Option<&PluginClient>,
    stop_grace: Duration,
    kill_grace: Duration,
) -> (Option<ExitStatus>, StopOutcome) {
    // The reply to Shutdown may never come; do not let it hold up the wait.
    let shutdown = client.cloned().map(|client| {
        tokio::spawn(async move {
            if let Err(status) = client.shutdown().await {
                tracing::debug!(error = %status, "Shutdown call ended with an error (ignored).");
            }
        })
    });
    let mut outcome = StopOutcome::Graceful;
    // Without a connection (a stop during the handshake) there is no one to
    // ask politely: go straight to SIGTERM.
    let grace = if shutdown.is_some() {
        stop_grace
    } else {
        Duration::ZERO
    };
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            outcome = StopOutcome::Terminated;
            signal_group(pgid, Signal::SIGTERM);
            match tokio::time::timeout(kill_grace, child.wait()).await {
                Ok(Ok(status)) => Some(status),
                _ => {
                    outcome = StopOutcome::Killed;
                    signal_group(pgid, Signal::SIGKILL);
                    reap(child, pgid).await
                }
            }
        }
    };
    if let Some(task) = shutdown {
        task.abort();
    }
    // Whatever the leader left behind in its group goes too.
    signal_group(pgid, Signal::SIGKILL);
    (status, outcome)
}

/// Kills a plugin's whole process group at once and reaps the leader: used
/// when a start fails, where there is nothing to shut down gracefully.
pub async fn kill_now(child: &mut Child, pgid: Pid) -> Option<ExitStatus> {
    signal_group(pgid, Signal::SIGKILL);
    let status = reap(child, pgid).await;
    signal_group(pgid, Signal::SIGKILL);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_exit_codes() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(0)),
            "exited with status 0"
        );
    }

    #[test]
    fn describes_signals() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "killed by signal SIGKILL"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(15)),
            "killed by signal SIGTERM"
        );
    }

    #[test]
    fn describes_core_dumps() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(11 | 0x80)),
            "killed by signal SIGSEGV (core dumped)"
        );
    }
}
