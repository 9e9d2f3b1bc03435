//! Adopted orphans: the descendants of plugins that left their process
//! group and were orphaned (a daemon's `setsid` and double fork), which the
//! orphan guard's group kill would miss.
//!
//! With the guard on, the hub is a child subreaper (`PR_SET_CHILD_SUBREAPER`),
//! so such a process is reparented to the hub instead of init. The spawner
//! thread sweeps the hub's children every [`SWEEP_INTERVAL`] (and after each
//! start): a child that is neither a plugin nor the guard is adopted. Each
//! adopted process is announced to the guard (which kills it and its group
//! if the hub dies), reaped when it exits (no zombies), and killed when the
//! spawner stops, after every plugin has been stopped. A plugin's clean stop
//! does not reach it (it left the group); the hub's stop does.
//!
//! The sweep runs on the spawner thread, which also starts the plugins, so a
//! plugin just started is always known before a sweep can see it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid};

use super::guard::GuardLink;

/// How often the spawner thread looks for adopted orphans: the longest a
/// fresh one goes unannounced to the guard, and a zombie unreaped.
pub(super) const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// The hub's adopted orphans, kept by the spawner thread.
#[derive(Debug)]
pub(super) struct Adopted {
    guard: Arc<GuardLink>,
    guard_pid: libc::pid_t,
    /// Each adopted pid, with the process group it was in when adopted
    /// when that group is not a plugin's (a plugin's is watched already).
    pids: BTreeMap<libc::pid_t, Option<libc::pid_t>>,
}

impl Adopted {
    /// Makes the hub a child subreaper. Without it (an old kernel) orphans
    /// go to init as before and only the guard's group kill applies.
    pub(super) fn start(guard: Arc<GuardLink>, guard_pid: libc::pid_t) -> Self {
        if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(
                error = %error,
                "Cannot make the hub a child subreaper; a plugin's descendant that leaves its process group will outlive a hub that is killed."
            );
        }
        Adopted {
            guard,
            guard_pid,
            pids: BTreeMap::new(),
        }
    }

    /// Adopts the hub's new orphans and reaps the adopted that exited.
    pub(super) fn sweep(&mut self) {
        for pid in hub_children() {
            if pid == self.guard_pid || self.guard.is_plugin(pid) || self.pids.contains_key(&pid) {
                continue;
            }
            // Its group, unless it is a plugin's (watched already) or its
            // own (the pid covers it).
            let group = getpgid(Some(Pid::from_raw(pid)))
                .ok()
                .map(Pid::as_raw)
                .filter(|&group| group != pid && group > 1 && !self.guard.is_plugin(group));
            tracing::debug!(
                pid,
                group,
                "Adopted an orphan of a plugin; it will be killed with the hub."
            );
            self.guard.watch(pid);
            if let Some(group) = group {
                self.guard.watch(group);
            }
            self.pids.insert(pid, group);
        }
        let guard = &self.guard;
        self.pids.retain(|&pid, group| match super::try_reap(pid) {
            Ok(None) => true,
            // Reaped, or not our child any more: forget it.
            Ok(Some(_)) | Err(_) => {
                guard.release(pid);
                if let Some(group) = group {
                    guard.release(*group);
                }
                false
            }
        });
    }

    /// Kills every adopted orphan and its group, and reaps them (the hub is
    /// stopping; its plugins are already stopped).
    pub(super) fn kill_all(&mut self) {
        self.sweep();
        for (&pid, group) in &self.pids {
            for target in std::iter::once(pid).chain(*group) {
                let _ = killpg(Pid::from_raw(target), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for (pid, group) in std::mem::take(&mut self.pids) {
            super::reap_blocking(pid);
            self.guard.release(pid);
            if let Some(group) = group {
                self.guard.release(group);
            }
        }
    }
}

/// The hub's children: every thread's `children` file, or, on kernels
/// without it, a scan of `/proc` for the hub as parent.
fn hub_children() -> Vec<libc::pid_t> {
    let mut children = Vec::new();
    let mut complete = true;
    match std::fs::read_dir("/proc/self/task") {
        Ok(tasks) => {
            for task in tasks.flatten() {
                match std::fs::read_to_string(task.path().join("children")) {
                    Ok(text) => children.extend(
                        text.split_whitespace()
                            .filter_map(|pid| pid.parse::<libc::pid_t>().ok()),
                    ),
                    Err(_) => complete = false,
                }
            }
        }
        Err(_) => complete = false,
    }
    if complete {
        return children;
    }
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<libc::pid_t>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .nth(1)?;
            (parent == me).then_some(pid)
        })
        .collect()
}
