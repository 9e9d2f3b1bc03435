//! Start failures with real child processes (shell scripts as plugins): each
//! must give an error naming the plugin and what went wrong, with the
//! plugin's last stderr lines, and must leave no process behind. (Restart
//! policy `never`, so each failed start ends `stopped`.)

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{assert_group_gone, load_config, read_pid, start, wait_for_status, write_script};
use switchyard_hub::supervisor::PluginState;

const LIMIT: Duration = Duration::from_secs(20);

/// Runs one plugin script to a failed start; returns its last_error and
/// checks its whole process group (including a background grandchild) died.
async fn failed_start(name: &str, script: &str, extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "plugin.sh", script);
    let config = load_config(
        dir.path(),
        &format!(
            "[plugins.{name}]\ncommand = \"plugin.sh\"\n{extra}\n[plugins.{name}.restart]\npolicy = \"never\"\n"
        ),
    );
    let sockets = tempfile::tempdir().unwrap();
    let supervisor = start(&config, sockets.path());
    let plugin = supervisor.plugin(name).unwrap().clone();
    let pgid = read_pid(&dir.path().join("pid")).await;
    let status = wait_for_status(&plugin, LIMIT, |status| {
        status.state == PluginState::Stopped && status.last_error.is_some()
    })
    .await;
    assert_eq!(status.pid, None);
    assert_group_gone(pgid).await;
    supervisor.stop_all().await;
    status.last_error.unwrap()
}

#[tokio::test]
async fn garbage_on_stdout_is_an_invalid_handshake_line() {
    let error = failed_start(
        "bad",
        "echo $$ > pid\nsleep 30 &\necho 'about to misbehave' >&2\necho garbage\nsleep 30",
        "",
    )
    .await;
    assert!(
        error.starts_with(
            "plugin `bad` printed an invalid handshake line: unrecognized handshake line \"garbage\""
        ),
        "{error}"
    );
    assert!(
        error.contains("its last stderr lines were:\n  about to misbehave"),
        "{error}"
    );
}

#[tokio::test]
async fn an_early_exit_names_the_status_and_keeps_stderr() {
    let error = failed_start(
        "echo",
        "echo $$ > pid\necho 'cannot open config' >&2\nexit 3",
        "",
    )
    .await;
    assert!(
        error.starts_with("plugin `echo` exited with status 3 before completing the handshake"),
        "{error}"
    );
    assert!(error.contains("cannot open config"), "{error}");
}

#[tokio::test]
async fn a_plugin_killed_by_a_signal_says_so() {
    let error = failed_start("crash", "echo $$ > pid\nkill -SEGV $$", "").await;
    assert!(
        error.starts_with("plugin `crash` killed by signal SIGSEGV"),
        "{error}"
    );
}

#[tokio::test]
async fn a_silent_plugin_times_out() {
    let error = failed_start(
        "slow",
        "echo $$ > pid\nsleep 30 &\nsleep 30",
        "start_timeout = \"1s\"",
    )
    .await;
    assert_eq!(
        error,
        "plugin `slow` did not print its handshake line within 1s"
    );
}

#[tokio::test]
async fn an_unoffered_version_is_refused() {
    let error = failed_start(
        "bad",
        "echo $$ > pid\necho '1|99|unix|/tmp/nowhere|grpc|'\nsleep 30",
        "",
    )
    .await;
    assert!(
        error.starts_with(
            "plugin `bad` printed an invalid handshake line: incompatible app protocol version 99: the hub offered [1]"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn an_over_long_handshake_line_is_refused_without_buffering_it() {
    // 100 KiB without a newline, then a pause.
    let error = failed_start(
        "long",
        "echo $$ > pid\nhead -c 102400 /dev/zero | tr '\\0' 'x'\nsleep 30",
        "",
    )
    .await;
    assert!(
        error.starts_with("plugin `long` printed a handshake line longer than 65536 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_socket_is_reported() {
    let error = failed_start(
        "lost",
        "echo $$ > pid\necho \"1|1|unix|$PLUGIN_UNIX_SOCKET_DIR/missing|grpc|\"\nsleep 30",
        "start_timeout = \"10s\"",
    )
    .await;
    assert!(
        error.starts_with("plugin `lost` could not be reached: cannot connect to /"),
        "{error}"
    );
}

#[tokio::test]
async fn the_plugin_sees_only_its_own_environment_and_runs_in_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    write_script(
        dir.path(),
        "plugin.sh",
        "echo $$ > pid\nenv > env.txt\npwd > pwd.txt\nexit 0",
    );
    let config = load_config(
        dir.path(),
        "[plugins.envy]\ncommand = \"plugin.sh\"\nenv = { GREETING = \"hello\" }\nenv_passthrough = [\"PATH\", \"NOT_SET_ANYWHERE_42\"]\n[plugins.envy.restart]\npolicy = \"never\"\n",
    );
    let sockets = tempfile::tempdir().unwrap();
    let supervisor = start(&config, sockets.path());
    let plugin = supervisor.plugin("envy").unwrap().clone();
    let status = wait_for_status(&plugin, LIMIT, |status| status.last_error.is_some()).await;
    assert!(
        status
            .last_error
            .unwrap()
            .starts_with("plugin `envy` exited with status 0 before completing the handshake")
    );
    supervisor.stop_all().await;

    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    let names: std::collections::BTreeSet<&str> = env
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    for expected in [
        "GREETING",
        "PATH",
        "SWITCHYARD_PLUGIN_MAGIC_COOKIE",
        "PLUGIN_PROTOCOL_VERSIONS",
        "PLUGIN_UNIX_SOCKET_DIR",
        "PLUGIN_MIN_PORT",
        "PLUGIN_MAX_PORT",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(env.contains("GREETING=hello\n"));
    assert!(env.contains("PLUGIN_PROTOCOL_VERSIONS=1\n"));
    assert!(env.contains(&format!(
        "PLUGIN_UNIX_SOCKET_DIR={}\n",
        sockets.path().display()
    )));
    // The hub's own environment (cargo sets these for tests) does not leak.
    let shell_own = ["PWD", "SHLVL", "_", "OLDPWD"];
    let allowed = [
        "GREETING",
        "PATH",
        "SWITCHYARD_PLUGIN_MAGIC_COOKIE",
        "PLUGIN_PROTOCOL_VERSIONS",
        "PLUGIN_UNIX_SOCKET_DIR",
        "PLUGIN_MIN_PORT",
        "PLUGIN_MAX_PORT",
    ];
    for name in &names {
        assert!(
            allowed.contains(name) || shell_own.contains(name),
            "unexpected variable {name} in the plugin's environment"
        );
    }
    let pwd = std::fs::read_to_string(dir.path().join("pwd.txt")).unwrap();
    assert_eq!(
        std::fs::canonicalize(pwd.trim()).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
}

#[tokio::test]
async fn one_failing_plugin_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "fails.sh", "exit 7");
    write_script(dir.path(), "waits.sh", "echo $$ > pid\nsleep 30");
    let config = load_config(
        dir.path(),
        "[plugins.fails]\ncommand = \"fails.sh\"\n[plugins.waits]\ncommand = \"waits.sh\"\nstart_timeout = \"30s\"\nstop_grace = \"200ms\"\n",
    );
    let sockets = tempfile::tempdir().unwrap();
    let supervisor = start(&config, sockets.path());
    let fails = supervisor.plugin("fails").unwrap().clone();
    let waits = supervisor.plugin("waits").unwrap().clone();
    wait_for_status(&fails, LIMIT, |status| status.last_error.is_some()).await;
    let pgid = read_pid(&dir.path().join("pid")).await;
    // The script may write its pid before the supervisor has published it.
    let status = wait_for_status(&waits, LIMIT, |status| status.pid.is_some()).await;
    assert_eq!(status.state, PluginState::Starting);
    assert_eq!(status.pid, Some(pgid as u32));
    // Stopping during the handshake kills it at once.
    supervisor.stop_all().await;
    assert_eq!(waits.status().state, PluginState::Stopped);
    assert_group_gone(pgid).await;
}
