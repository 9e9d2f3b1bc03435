//! Stopping, end to end: SIGTERM or SIGINT stops the hub cleanly (exit 0, every
//! plugin process gone and reaped), stubborn plugins are killed with their
//! whole process group, and plugins die with the hub even when it is SIGKILLed.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use switchyard_e2e::{
    Hub, is_alive, process_group, process_state, processes_with_marker, wait_for, wait_until,
    zombies_left,
};

/// Generous bound for a plugin to reach a state on a busy 2-core machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean stop may take: the default `stop_grace` (5 s) plus the
/// default `kill_grace` (2 s) plus a wide margin for a loaded machine.
const STOP_BOUND: Duration = Duration::from_secs(20);

const TWO_PLUGINS: &str = r#"
[plugins.kit]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.kit"]
env = { E2E_MARKER = "{marker}.kit" }

[plugins.mood]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.mood"]
env = { E2E_MARKER = "{marker}.mood" }

[plugins.mood.config]
tag = "mood"
"#;

/// A plugin that only reports its environment (and thereby the socket dir).
const ENV_PROBE: &str = r#"
[plugins.probe]
command = "{bin:misbehave}"
args = ["print-env", "{dir}/probe.env", "--e2e-marker", "{marker}.probe"]
env = { E2E_MARKER = "{marker}.probe" }

[plugins.probe.restart]
policy = "never"
"#;

/// The pids of plugins `names`, from the API, once they are running.
fn running_pids(hub: &Hub, names: &[&str]) -> Vec<i32> {
    names
        .iter()
        .map(|name| {
            let plugin = hub.wait_for_state(name, "running", STATE_TIMEOUT);
            plugin["pid"]
                .as_i64()
                .unwrap_or_else(|| panic!("running plugin {name} has no pid: {plugin:#}"))
                as i32
        })
        .collect()
}

/// The socket dir the probe plugin was given.
fn probed_socket_dir(hub: &Hub) -> PathBuf {
    let file = hub.dir().join("probe.env");
    let text = wait_for(STATE_TIMEOUT, || std::fs::read(&file).ok())
        .unwrap_or_else(|| panic!("the probe plugin never wrote {}", file.display()));
    text.split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(b"PLUGIN_UNIX_SOCKET_DIR="))
        .map(|dir| PathBuf::from(String::from_utf8_lossy(dir).into_owned()))
        .expect("the probe saw no PLUGIN_UNIX_SOCKET_DIR")
}

/// Stops the hub with `signal` and checks the clean stop.
fn clean_stop_with(signal: Signal) {
    let mut hub = Hub::start(&format!("{TWO_PLUGINS}{ENV_PROBE}"));
    let pids = running_pids(&hub, &["kit", "mood"]);
    let socket_dir = probed_socket_dir(&hub);
    assert!(socket_dir.is_dir(), "{} should exist", socket_dir.display());
    assert_eq!(hub.marked_processes(), {
        let mut sorted = pids.clone();
        sorted.sort_unstable();
        sorted
    });

    hub.signal(signal);
    let status = hub.wait_exit(STOP_BOUND);
    let status = status.unwrap_or_else(|| panic!("the hub did not exit within {STOP_BOUND:?}"));
    assert_eq!(
        status.code(),
        Some(0),
        "the hub's exit after {signal}: {status}"
    );
    for pid in &pids {
        assert_eq!(
            process_state(*pid),
            None,
            "plugin process {pid} should be gone and reaped after the hub exits (state {:?})",
            process_state(*pid)
        );
    }
    assert_eq!(hub.marked_processes(), Vec::<i32>::new());
    assert!(
        !socket_dir.exists(),
        "the hub's private socket dir {} should be removed on exit",
        socket_dir.display()
    );
}

#[test]
fn sigterm_stops_every_plugin_and_exits_zero() {
    clean_stop_with(Signal::SIGTERM);
}

#[test]
fn sigint_stops_every_plugin_and_exits_zero() {
    clean_stop_with(Signal::SIGINT);
}

/// A plugin still in its handshake that ignores SIGTERM and has a child: the
/// stop must escalate to SIGKILL on the whole process group.
const STUBBORN: &str = r#"
[plugins.stubborn]
command = "{bin:misbehave}"
args = ["spawn-grandchild", "--ignore-sigterm", "--e2e-marker", "{marker}.stubborn"]
env = { E2E_MARKER = "{marker}.stubborn" }
start_timeout = "START_TIMEOUT"

[plugins.stubborn.restart]
policy = "never"
"#;

/// Waits for the stubborn plugin and its grandchild; returns (plugin, grandchild).
fn stubborn_pair(hub: &Hub) -> (i32, i32) {
    let marker = hub.plugin_marker("stubborn");
    let pids = wait_for(STATE_TIMEOUT, || {
        let pids = processes_with_marker(&marker);
        (pids.len() == 2).then_some(pids)
    })
    .unwrap_or_else(|| {
        panic!(
            "expected the stubborn plugin and its grandchild, found {:?}",
            processes_with_marker(&marker)
        )
    });
    // The plugin leads its own process group. (Read from the processes, not
    // only the API: under load a short start timeout may already have
    // stopped the plugin, and cleared its pid, by the time the API answers.)
    let plugin = pids
        .iter()
        .copied()
        .find(|&pid| process_group(pid) == Some(pid))
        .unwrap_or_else(|| panic!("no process group leader among {pids:?}"));
    if let Some(api_pid) = hub
        .plugin("stubborn")
        .get("pid")
        .and_then(serde_json::Value::as_i64)
    {
        assert_eq!(api_pid, i64::from(plugin), "the API's pid is the plugin's");
    }
    let grandchild = pids.into_iter().find(|&pid| pid != plugin).unwrap();
    assert_eq!(
        process_group(grandchild),
        Some(plugin),
        "the grandchild is in the plugin's process group"
    );
    (plugin, grandchild)
}

#[test]
fn stopping_escalates_to_sigkill_for_the_whole_process_group() {
    let mut hub = Hub::builder(&STUBBORN.replace("START_TIMEOUT", "120s"))
        .hub_setting(r#"stop_grace = "1s""#)
        .hub_setting(r#"kill_grace = "1s""#)
        .start();
    let (plugin, grandchild) = stubborn_pair(&hub);
    assert_eq!(hub.plugin("stubborn")["state"], "starting");

    hub.signal(Signal::SIGTERM);
    let status = hub
        .wait_exit(STOP_BOUND)
        .unwrap_or_else(|| panic!("the hub did not exit within {STOP_BOUND:?}"));
    assert_eq!(status.code(), Some(0), "the hub's exit: {status}");
    assert_eq!(
        process_state(plugin),
        None,
        "the stubborn plugin should be killed and reaped"
    );
    // The grandchild's parent died with it, so it is reparented to init; in
    // some containers init never reaps, so only "not alive" can be required.
    assert!(
        !is_alive(grandchild),
        "the grandchild {grandchild} survived the stop (state {:?})",
        process_state(grandchild)
    );
    assert_eq!(hub.marked_processes(), Vec::<i32>::new());
}

#[test]
fn a_start_timeout_kills_the_whole_process_group() {
    let hub = Hub::start(&STUBBORN.replace("START_TIMEOUT", "2s"));
    let (plugin, grandchild) = stubborn_pair(&hub);
    let stopped = hub.wait_for_state("stubborn", "stopped", STATE_TIMEOUT);
    assert!(
        stopped["last_error"].is_string(),
        "a timed-out plugin has a last_error: {stopped:#}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !is_alive(plugin)
            && !is_alive(grandchild)),
        "after the start timeout, plugin {plugin} ({:?}) and grandchild {grandchild} ({:?}) should be dead",
        process_state(plugin),
        process_state(grandchild)
    );
    assert_eq!(
        process_state(plugin),
        None,
        "the hub should have reaped the plugin"
    );
    assert_eq!(zombies_left(hub.pid()), Vec::<i32>::new());
    assert_eq!(hub.get("/healthz").status, 200);
}

#[test]
fn sigkill_to_the_hub_takes_every_plugin_down() {
    let slow = r#"
[plugins.slow]
command = "{bin:misbehave}"
args = ["never-print", "--e2e-marker", "{marker}.slow"]
env = { E2E_MARKER = "{marker}.slow" }
start_timeout = "120s"
"#;
    // A SIGKILLed hub cannot remove its socket dir: keep it in the temp dir.
    let mut hub = Hub::builder(&format!("{TWO_PLUGINS}{slow}"))
        .hub_setting(r#"socket_dir = "socks""#)
        .start();
    let mut pids = running_pids(&hub, &["kit", "mood"]);
    let slow_marker = hub.plugin_marker("slow");
    let slow_pid = wait_for(STATE_TIMEOUT, || {
        processes_with_marker(&slow_marker).first().copied()
    })
    .unwrap_or_else(|| panic!("the never-print plugin did not start"));
    pids.push(slow_pid);

    hub.signal(Signal::SIGKILL);
    assert!(
        hub.wait_exit(Duration::from_secs(5)).is_some(),
        "SIGKILL did not end the hub"
    );
    // Orphaned plugins are reparented to init, which may never reap them, so
    // "dead" (gone or zombie) is what the hub can guarantee.
    assert!(
        wait_until(Duration::from_secs(2), || pids
            .iter()
            .all(|&pid| !is_alive(pid))),
        "plugins still alive 2 s after the hub was SIGKILLed: {:?}",
        pids.iter()
            .filter(|&&pid| is_alive(pid))
            .collect::<Vec<_>>()
    );
    assert_eq!(hub.marked_processes(), Vec::<i32>::new());
}

#[test]
fn a_plugin_killed_from_outside_is_reaped_and_reported() {
    let mut hub = Hub::start(&format!("{TWO_PLUGINS}{ENV_PROBE}"));
    let socket_dir = probed_socket_dir(&hub);
    let pids = running_pids(&hub, &["kit", "mood"]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();
    let mut last = serde_json::Value::Null;
    let reported = wait_until(STATE_TIMEOUT, || {
        last = hub.plugin("kit");
        last["pid"] != pids[0] && last["last_error"].is_string()
    });
    assert!(reported, "the killed plugin is not reported: {last:#}");
    let error = last["last_error"].as_str().unwrap();
    assert!(
        error.contains("kit") && (error.contains("signal") || error.contains("SIGKILL")),
        "last_error should name the plugin and the signal: {error}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || process_state(pids[0]).is_none()),
        "the killed plugin {} was not reaped (state {:?})",
        pids[0],
        process_state(pids[0])
    );
    assert_eq!(zombies_left(hub.pid()), Vec::<i32>::new());
    // The other plugin is untouched.
    assert_eq!(hub.plugin("mood")["state"], "running");
    assert_eq!(hub.plugin("mood")["pid"], pids[1]);

    // The killed plugin could not remove its socket; the hub still removes
    // its private socket dir at exit.
    hub.signal(Signal::SIGTERM);
    let status = hub
        .wait_exit(STOP_BOUND)
        .unwrap_or_else(|| panic!("the hub did not exit within {STOP_BOUND:?}"));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        !socket_dir.exists(),
        "the hub's private socket dir {} should be removed on exit, even with a dead plugin's socket in it: {:?}",
        socket_dir.display(),
        std::fs::read_dir(&socket_dir)
            .map(|entries| entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
            .unwrap_or_default()
    );
}

#[test]
fn the_socket_dir_of_a_sigkilled_hub_is_removed_by_the_next_hub() {
    let mut first = Hub::start(ENV_PROBE);
    let socket_dir = probed_socket_dir(&first);
    assert!(socket_dir.is_dir(), "{} should exist", socket_dir.display());
    first.signal(Signal::SIGKILL);
    assert!(
        first.wait_exit(Duration::from_secs(5)).is_some(),
        "SIGKILL did not end the hub"
    );
    assert!(
        socket_dir.is_dir(),
        "a SIGKILLed hub cannot remove {}",
        socket_dir.display()
    );

    let second = Hub::start(ENV_PROBE);
    let second_dir = probed_socket_dir(&second);
    assert_ne!(second_dir, socket_dir);
    assert!(
        !socket_dir.exists(),
        "the next hub should remove the dead hub's socket dir {}",
        socket_dir.display()
    );
    assert!(second_dir.is_dir());
}
