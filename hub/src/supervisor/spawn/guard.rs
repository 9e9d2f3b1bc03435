//! The orphan guard: what kills a plugin's own children when the hub dies.
//!
//! The parent-death signal kills each plugin when the hub dies, but not the
//! processes the plugin started. So the spawner starts one guard per hub,
//! the `switchyard` binary run with the hidden subcommand
//! [`super::GUARD_SUBCOMMAND`] (no tokio, no logging setup: it only reads a
//! pipe and sends signals). Its stdin is the read end of a pipe whose write
//! end only the hub holds (close-on-exec, so no plugin inherits it). The hub
//! writes `+PGID` when it starts a plugin (every plugin leads its own
//! process group) and `-PGID` once it has reaped it and killed what was left
//! of its group. When the pipe reaches EOF, the hub is gone, whatever killed
//! it (SIGKILL, a crash, the OOM killer): the guard sends SIGKILL to every
//! process group still listed and exits.
//!
//! The guard leads its own process group, does not die with the hub, and
//! blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT, so a terminal's Ctrl-C or a
//! signal sent to every process of a service reaches the hub without
//! ending the guard first; it ends when the hub's end of the pipe closes.
//!
//! Its limit: it kills process groups, so a descendant that leaves its
//! plugin's group (`setsid`, `setpgid`) is not reached. Only a cgroup
//! (systemd's `KillMode=control-group`, a container's end) catches those;
//! see docs/configuration.md, "Plugin processes and their children".

use std::collections::BTreeSet;
use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal, kill, killpg};
use nix::unistd::Pid;

/// The hub's end of the pipe to its guard, shared by the spawner thread
/// (which announces each plugin) and each plugin's [`super::Child`] (which
/// withdraws it once reaped).
#[derive(Debug)]
pub(crate) struct GuardLink {
    /// `None` once closed.
    pipe: Mutex<Option<std::io::PipeWriter>>,
    /// The plugins' pids (their groups) now watched, so the adoption sweep
    /// can tell a plugin from an adopted orphan.
    plugins: Mutex<BTreeSet<libc::pid_t>>,
}

impl GuardLink {
    /// Wraps the write end of the guard's pipe.
    pub(super) fn new(pipe: std::io::PipeWriter) -> Self {
        GuardLink {
            pipe: Mutex::new(Some(pipe)),
            plugins: Mutex::new(BTreeSet::new()),
        }
    }

    /// Tells the guard to kill plugin process group `pgid` if the hub dies.
    pub(super) fn watch_plugin(&self, pgid: libc::pid_t) {
        lock(&self.plugins).insert(pgid);
        self.watch(pgid);
    }

    /// Tells the guard that plugin process group `pgid` is gone (its leader
    /// reaped, its group killed), so the number may be reused.
    pub(super) fn release_plugin(&self, pgid: libc::pid_t) {
        lock(&self.plugins).remove(&pgid);
        self.release(pgid);
    }

    /// Whether `pid` is a plugin the hub started (and has not yet released).
    pub(super) fn is_plugin(&self, pid: libc::pid_t) -> bool {
        lock(&self.plugins).contains(&pid)
    }

    /// Tells the guard to kill process `pid` and the group it leads, if the
    /// hub dies.
    pub(super) fn watch(&self, pid: libc::pid_t) {
        self.send(&Message::Watch(pid));
    }

    /// Tells the guard that `pid` is gone, so the number may be reused.
    pub(super) fn release(&self, pid: libc::pid_t) {
        self.send(&Message::Release(pid));
    }

    /// Closes the hub's end: the guard kills what is still watched and
    /// exits (what the hub's death does, done on purpose when the spawner
    /// stops).
    pub(super) fn close(&self) {
        lock(&self.pipe).take();
    }

    fn send(&self, message: &Message) {
        // One short write (under PIPE_BUF, so atomic); the guard reads all
        // the time, so it does not block.
        let line = format!("{message}\n");
        let mut pipe = lock(&self.pipe);
        let Some(pipe) = pipe.as_mut() else { return };
        if let Err(error) = pipe.write_all(line.as_bytes()) {
            tracing::error!(
                error = %error,
                "Cannot reach the orphan guard; a plugin's own children will outlive a hub that is killed."
            );
        }
    }
}

/// Locks `mutex`, poisoned or not (its data stays consistent: each update
/// is one call).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One line on the guard's pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// `+PGID`: a plugin's process group to kill if the hub dies.
    Watch(libc::pid_t),
    /// `-PGID`: that group is gone.
    Release(libc::pid_t),
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Watch(pgid) => write!(f, "+{pgid}"),
            Message::Release(pgid) => write!(f, "-{pgid}"),
        }
    }
}

/// Reads one line; `None` when it is not a message (never a valid group:
/// 0 and 1 would be the guard's own group and init's).
fn parse(line: &str) -> Option<Message> {
    let (sign, number) = line.split_at_checked(1)?;
    let pgid: libc::pid_t = number.parse().ok()?;
    if pgid <= 1 {
        return None;
    }
    match sign {
        "+" => Some(Message::Watch(pgid)),
        "-" => Some(Message::Release(pgid)),
        _ => None,
    }
}

/// Applies one line to the set of watched groups.
fn apply(groups: &mut BTreeSet<libc::pid_t>, line: &str) {
    match parse(line) {
        Some(Message::Watch(pgid)) => {
            groups.insert(pgid);
        }
        Some(Message::Release(pgid)) => {
            groups.remove(&pgid);
        }
        None => eprintln!("switchyard orphan guard: ignoring the unexpected line {line:?}"),
    }
}

/// The guard's whole life (`switchyard __orphan-guard`): watch the groups
/// the hub announces on stdin until EOF, then kill those still listed.
pub fn run() -> ExitCode {
    let mut blocked = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        blocked.add(signal);
    }
    if let Err(error) = blocked.thread_block() {
        eprintln!("switchyard orphan guard: cannot block signals: {error}");
    }
    let mut groups = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(line) => apply(&mut groups, &line),
            // Not a pipe the hub still writes to: treat as the hub's end.
            Err(_) => break,
        }
    }
    for pid in groups {
        // A plugin's group (its leader already died with the hub), or an
        // orphan the hub adopted and the group it may lead. ESRCH: gone.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_lines_are_refused() {
        for message in [Message::Watch(1234), Message::Release(99)] {
            assert_eq!(parse(&message.to_string()), Some(message));
        }
        for bad in ["", "+", "1234", "*12", "+0", "+1", "+-5", "-x", "+ 12"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn groups_are_watched_until_released() {
        let mut groups = BTreeSet::new();
        for line in ["+10", "+20", "+10", "-10", "+30", "nonsense", "-40"] {
            apply(&mut groups, line);
        }
        assert_eq!(groups.into_iter().collect::<Vec<_>>(), [20, 30]);
    }
}
