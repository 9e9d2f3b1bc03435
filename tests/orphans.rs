//! No orphans, even of a plugin's own children: a plugin that forks a child,
//! a double-forked grandchild (orphaned at once, still in the plugin's
//! process group), a daemon (`setsid` and a double fork: its own session
//! and group) and a detached child (`setsid`, still its child), then the
//! hub is SIGKILLed. The parent-death signal kills
//! the plugin; the hub's orphan guard must kill the rest. A clean stop must
//! leave nothing either.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use switchyard_e2e::{Hub, is_alive, process_group, process_state, wait_for, wait_until};

/// Generous bound for a plugin to reach a state on a busy 2-core machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the plugin's descendants may survive the hub's SIGKILL: the
/// guard acts as soon as the kernel closes the dead hub's pipe.
const KILL_BOUND: Duration = Duration::from_secs(10);
/// A clean stop: default `stop_grace` and `kill_grace` plus a wide margin.
const STOP_BOUND: Duration = Duration::from_secs(20);

/// A shell that starts `sleep` three times before it becomes the testkit
/// plugin: once as its child; once from a subshell that exits at once (a
/// double fork: that `sleep` is orphaned from the start, but stays in the
/// plugin's process group); and once as a daemon does it, in a new session
/// (`setsid`) from a shell that exits at once, so it leaves the plugin's
/// group and is orphaned; and once in a new session but still its child.
/// All inherit the plugin's marker in their environment.
const FAMILY: &str = r#"
[plugins.family]
command = "/bin/sh"
args = [
  "-c",
  'sleep 3600 & echo $! > {dir}/child.pid; (sleep 3600 & echo $! > {dir}/grandchild.pid); setsid sh -c "sleep 3600 & echo \$! > {dir}/daemon.pid" < /dev/null > /dev/null 2>&1; setsid sleep 3600 & echo $! > {dir}/detached.pid; exec "$0" --e2e-marker {marker}.family',
  "{bin:testkit}",
]
env = { E2E_MARKER = "{marker}.family", PATH = "/usr/bin:/bin" }
"#;

/// The pid written to `file` by the plugin's shell.
fn pid_in(file: &Path) -> i32 {
    wait_for(STATE_TIMEOUT, || {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
    .unwrap_or_else(|| panic!("the plugin never wrote {}", file.display()))
}

/// Starts the hub with the family plugin running; returns the hub and the
/// pids of the plugin, its child, its double-forked grandchild, the daemon
/// and the detached child, once the hub has told the guard about the last
/// two.
fn family() -> (Hub, [i32; 5]) {
    let hub = Hub::builder(FAMILY)
        .rust_log("info,switchyard_hub::supervisor::spawn=debug")
        .start();
    let plugin = hub.wait_for_state("family", "running", STATE_TIMEOUT);
    let plugin = plugin["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("the running plugin has no pid: {plugin:#}"))
        as i32;
    let child = pid_in(&hub.dir().join("child.pid"));
    let grandchild = pid_in(&hub.dir().join("grandchild.pid"));
    for pid in [plugin, child, grandchild] {
        assert!(is_alive(pid), "{pid} should be running");
        assert_eq!(
            process_group(pid),
            Some(plugin),
            "{pid} is in the plugin's group"
        );
    }
    assert_ne!(
        switchyard_e2e::parent_pid(grandchild),
        Some(plugin),
        "the grandchild was orphaned by its subshell"
    );
    let daemon = pid_in(&hub.dir().join("daemon.pid"));
    assert!(is_alive(daemon), "the daemon {daemon} should be running");
    assert_ne!(
        process_group(daemon),
        Some(plugin),
        "the daemon left the plugin's group"
    );
    let detached = pid_in(&hub.dir().join("detached.pid"));
    assert_eq!(process_group(detached), Some(detached), "its own group");
    assert_eq!(switchyard_e2e::parent_pid(detached), Some(plugin));
    // Orphaned, the daemon is reparented to the hub (a child subreaper);
    // the hub tells the guard about both.
    for pid in [daemon, detached] {
        let field = format!("pid={pid}");
        let announced = wait_until(STATE_TIMEOUT, || {
            hub.log().lines().any(|line| {
                line.contains("Watching a process")
                    && line.split_whitespace().any(|word| word == field)
            })
        });
        assert!(
            announced,
            "the hub did not tell the guard about {pid} (parent {:?}):\n{}",
            switchyard_e2e::parent_pid(pid),
            hub.log()
        );
    }
    assert_eq!(switchyard_e2e::parent_pid(daemon), Some(hub.pid()));
    (hub, [plugin, child, grandchild, daemon, detached])
}

/// The orphan guard the hub started: its child running `__orphan-guard`.
fn guard_of(hub: &Hub) -> i32 {
    let hub_pid = hub.pid();
    wait_for(STATE_TIMEOUT, || {
        std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .find(|&pid| {
                switchyard_e2e::parent_pid(pid) == Some(hub_pid)
                    && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                        cmdline
                            .split(|&b| b == 0)
                            .any(|arg| arg == b"__orphan-guard")
                    })
            })
    })
    .unwrap_or_else(|| panic!("the hub has no orphan guard:\n{}", hub.log()))
}

#[test]
fn a_sigkilled_hub_leaves_no_process_its_plugins_started() {
    let (mut hub, pids) = family();
    let guard = guard_of(&hub);

    hub.signal(Signal::SIGKILL);
    assert!(
        hub.wait_exit(Duration::from_secs(5)).is_some(),
        "SIGKILL did not end the hub"
    );
    // Orphans are reparented to init, which may never reap them in a
    // container, so "dead" (gone or zombie) is the guarantee.
    let gone = wait_until(KILL_BOUND, || {
        pids.iter().all(|&pid| !is_alive(pid)) && hub.marked_processes().is_empty()
    });
    assert!(
        gone,
        "still alive {KILL_BOUND:?} after the hub was SIGKILLed: {:?} (plugin, child, grandchild, daemon, detached: {pids:?}); guard {guard} {:?}\n{}",
        hub.marked_processes(),
        process_state(guard),
        hub.log()
    );
    assert!(
        wait_until(KILL_BOUND, || !is_alive(guard)),
        "the orphan guard {guard} outlived its work ({:?})",
        process_state(guard)
    );
}

#[test]
fn a_clean_stop_leaves_nothing_either() {
    let (mut hub, pids) = family();
    let guard = guard_of(&hub);

    hub.signal(Signal::SIGTERM);
    let status = hub
        .wait_exit(STOP_BOUND)
        .unwrap_or_else(|| panic!("the hub did not exit within {STOP_BOUND:?}"));
    assert_eq!(
        status.code(),
        Some(0),
        "the hub's exit: {status}\n{}",
        hub.log()
    );
    assert_eq!(
        process_state(pids[0]),
        None,
        "the hub reaped its plugin before exiting"
    );
    let gone = wait_until(KILL_BOUND, || {
        pids.iter().all(|&pid| !is_alive(pid))
            && hub.marked_processes().is_empty()
            && !is_alive(guard)
    });
    assert!(
        gone,
        "left behind by a clean stop: {:?}, guard {guard} {:?}\n{}",
        hub.marked_processes(),
        process_state(guard),
        hub.log()
    );
}
