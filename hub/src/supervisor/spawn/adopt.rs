//! Strays: the descendants of plugins that the orphan guard's kill of the
//! plugins' process groups would miss, because they left their plugin's
//! group (`setsid`, `setpgid`), whether or not they were orphaned. The
//! sweep walks down the hub's process tree through `/proc`'s `children`
//! files (a full scan of `/proc` where the kernel lacks them).
//!
//! With the guard on, the hub is a child subreaper (`PR_SET_CHILD_SUBREAPER`),
//! so a plugin's orphaned descendant (a daemon's double fork) is reparented
//! to the hub instead of init: the hub *adopts* it. The spawner thread
//! sweeps `/proc` every [`SWEEP_INTERVAL`] (and after each start): the
//! descendants of the plugins and of the adopted processes that are not in a
//! plugin's group, and the adopted processes themselves, are announced to
//! the guard (the process and the group it is in), which kills them if the
//! hub dies; numbers that no longer name any of them are withdrawn. Adopted
//! processes are reaped when they exit (no zombies), and everything is
//! killed when the spawner stops, after every plugin has been stopped. A
//! plugin's own clean stop does not reach them (they left its group); the
//! hub's stop does.
//!
//! The sweep runs on the spawner thread, which also starts the plugins, so a
//! plugin just started is always known before a sweep can see it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::guard::GuardLink;

/// How often the spawner thread sweeps: the longest a fresh stray goes
/// unannounced to the guard, and an adopted zombie unreaped.
pub(super) const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// How many rounds of kill and sweep the final cleanup makes at most (each
/// round catches what the previous one's kills orphaned).
const FINAL_ROUNDS: usize = 10;

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: libc::pid_t,
    parent: libc::pid_t,
    group: libc::pid_t,
}

/// The strays the spawner thread keeps track of.
#[derive(Debug)]
pub(super) struct Strays {
    guard: Arc<GuardLink>,
    guard_pid: libc::pid_t,
    hub_pid: libc::pid_t,
    /// The hub's children that are neither a plugin nor the guard.
    adopted: BTreeSet<libc::pid_t>,
    /// The numbers (pids and groups) announced to the guard.
    announced: BTreeSet<libc::pid_t>,
}

impl Strays {
    /// Makes the hub a child subreaper. Without it (an old kernel) orphans
    /// go to init as before; strays still attached are tracked all the same.
    pub(super) fn start(guard: Arc<GuardLink>, guard_pid: libc::pid_t) -> Self {
        if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(
                error = %error,
                "Cannot make the hub a child subreaper; a plugin's orphaned daemon will outlive a hub that is killed."
            );
        }
        Strays {
            guard,
            guard_pid,
            hub_pid: libc::pid_t::try_from(std::process::id()).unwrap_or(0),
            adopted: BTreeSet::new(),
            announced: BTreeSet::new(),
        }
    }

    /// Reaps the adopted that exited, then brings the guard's list up to
    /// date with what runs now. Returns the numbers announced.
    pub(super) fn sweep(&mut self) -> &BTreeSet<libc::pid_t> {
        self.adopted
            .retain(|&pid| matches!(super::try_reap(pid), Ok(None)));
        let processes = subtree(self.hub_pid).unwrap_or_else(scan);
        let is_plugin = |pid| self.guard.is_plugin(pid);
        let (adopted, wanted) = strays(&processes, self.hub_pid, self.guard_pid, is_plugin);
        for &pid in adopted.difference(&self.adopted) {
            tracing::debug!(
                pid,
                "Adopted an orphan of a plugin; it will be killed with the hub."
            );
        }
        self.adopted = adopted;
        for &number in wanted.difference(&self.announced) {
            tracing::debug!(
                pid = number,
                "Watching a process (or group) a plugin started outside its process group; it will be killed with the hub."
            );
            self.guard.watch(number);
        }
        for &number in self.announced.difference(&wanted) {
            self.guard.release(number);
        }
        self.announced = wanted;
        &self.announced
    }

    /// Kills every stray and the groups they are in, reaps the adopted, and
    /// repeats for what those kills orphaned (the hub is stopping; its
    /// plugins are already stopped).
    pub(super) fn kill_all(&mut self) {
        for _ in 0..FINAL_ROUNDS {
            let targets = self.sweep().clone();
            if targets.is_empty() {
                break;
            }
            for number in targets {
                let _ = killpg(Pid::from_raw(number), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(number), Signal::SIGKILL);
            }
            for &pid in &self.adopted {
                super::reap_blocking(pid);
            }
        }
        self.sweep();
    }
}

/// From a snapshot of every process: the hub's adopted children (neither a
/// plugin nor the guard), and the numbers the guard must kill if the hub
/// dies: each adopted process and each descendant of a plugin or of an
/// adopted process that is outside every plugin's group, with the group it
/// is in (unless that is a plugin's, killed already).
fn strays(
    processes: &[Process],
    hub: libc::pid_t,
    guard: libc::pid_t,
    is_plugin: impl Fn(libc::pid_t) -> bool,
) -> (BTreeSet<libc::pid_t>, BTreeSet<libc::pid_t>) {
    let mut children: BTreeMap<libc::pid_t, Vec<&Process>> = BTreeMap::new();
    for process in processes {
        children.entry(process.parent).or_default().push(process);
    }
    let adopted: BTreeSet<libc::pid_t> = children
        .get(&hub)
        .into_iter()
        .flatten()
        .map(|process| process.pid)
        .filter(|&pid| pid != guard && !is_plugin(pid))
        .collect();
    let mut wanted = BTreeSet::new();
    let mut mark = |process: &Process| {
        wanted.insert(process.pid);
        if process.group > 1 && !is_plugin(process.group) {
            wanted.insert(process.group);
        }
    };
    // Walk down from the plugins and the adopted.
    let mut stack: Vec<libc::pid_t> = children
        .get(&hub)
        .into_iter()
        .flatten()
        .map(|process| process.pid)
        .filter(|&pid| pid != guard)
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        for child in children.get(&pid).into_iter().flatten() {
            if !is_plugin(child.group) {
                mark(child);
            }
            stack.push(child.pid);
        }
    }
    for process in processes {
        if adopted.contains(&process.pid) {
            mark(process);
        }
    }
    (adopted, wanted)
}

/// The hub's descendants, walked down through each thread's `children`
/// file (a few reads per descendant, where a full [`scan`] reads every
/// process on the machine); `None` when the kernel has no such files.
fn subtree(hub: libc::pid_t) -> Option<Vec<Process>> {
    let mut found = Vec::new();
    let mut stack = vec![hub];
    let mut seen = BTreeSet::new();
    while let Some(parent) = stack.pop() {
        if !seen.insert(parent) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            // It exited meanwhile (or /proc is missing: then the scan).
            if parent == hub {
                return None;
            }
            continue;
        };
        for task in tasks.flatten() {
            let text = match std::fs::read_to_string(task.path().join("children")) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
                // The task exited meanwhile.
                Err(_) => continue,
            };
            for pid in text.split_whitespace().filter_map(|pid| pid.parse().ok()) {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
                if let Some(process) = stat.ok().and_then(|stat| parse_stat(pid, &stat)) {
                    found.push(process);
                    stack.push(pid);
                }
            }
        }
    }
    Some(found)
}

/// Every process now, from `/proc/PID/stat`.
fn scan() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<libc::pid_t>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .collect()
}

/// The parent and group in a `/proc/PID/stat` line (after the command name,
/// which may contain anything: state, parent, group).
fn parse_stat(pid: libc::pid_t, stat: &str) -> Option<Process> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let _state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some(Process { pid, parent, group })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: libc::pid_t, parent: libc::pid_t, group: libc::pid_t) -> Process {
        Process { pid, parent, group }
    }

    #[test]
    fn stat_lines_are_read_past_any_command_name() {
        assert_eq!(
            parse_stat(42, "42 (a) b (c)) S 7 9 9 0 -1"),
            Some(process(42, 7, 9))
        );
        assert_eq!(parse_stat(42, "42 (broken"), None);
    }

    #[test]
    fn strays_are_what_left_the_plugins_groups_or_was_adopted() {
        let hub = 100;
        let guard = 101;
        let plugins = [200, 300];
        let processes = [
            process(1, 0, 1),
            process(hub, 1, hub),
            process(guard, hub, guard),
            // Plugin 200: a child in its group, one that did setsid, and
            // that one's child.
            process(200, hub, 200),
            process(201, 200, 200),
            process(202, 200, 202),
            process(203, 202, 202),
            // Plugin 300: nothing of its own.
            process(300, hub, 300),
            // Adopted: a double-forked process still in plugin 200's group,
            // and a daemon in a group led by a process that exited, with a
            // child of its own.
            process(400, hub, 200),
            process(500, hub, 499),
            process(501, 500, 499),
            // Not the hub's.
            process(600, 1, 600),
        ];
        let (adopted, wanted) = strays(&processes, hub, guard, |pid| plugins.contains(&pid));
        assert_eq!(adopted.into_iter().collect::<Vec<_>>(), [400, 500]);
        assert_eq!(
            wanted.into_iter().collect::<Vec<_>>(),
            [202, 203, 400, 499, 500, 501]
        );
    }
}
