//! The handshake, end to end: a plugin that fails it in any way ends up
//! `stopped` with a `last_error` that says what went wrong (and carries the
//! plugin's stderr), its process is gone, and the rest of the hub carries on.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_e2e::{
    Hub, assert_contains, assert_contains_any, bin_path, process_group, processes_with_marker,
    record, run_to_completion, wait_until, zombies_left,
};
use switchyard_wire::handshake::{MAGIC_COOKIE_KEY, NOT_LAUNCHED_BY_HUB_MESSAGE};

/// Generous bound for a plugin to reach a state on a busy 2-core machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The healthy plugin every failure test runs next to the broken one.
const GOOD_PLUGIN: &str = r#"
[plugins.good]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.good"]
env = { E2E_MARKER = "{marker}.good" }
"#;

/// Keeps a plugin that fails down after its first failure (the default policy
/// restarts it with backoff), so a failed start settles as `stopped`.
const NO_RESTART: &str = "policy = \"never\"";

/// A `misbehave` plugin block named `name`, run with `mode_args`, never
/// restarted.
fn misbehave_block(name: &str, mode_args: &str, start_timeout: &str) -> String {
    format!(
        r#"
[plugins.{name}]
command = "{{bin:misbehave}}"
args = [{mode_args}, "--e2e-marker", "{{marker}}.{name}"]
env = {{ E2E_MARKER = "{{marker}}.{name}" }}
start_timeout = "{start_timeout}"

[plugins.{name}.restart]
{NO_RESTART}
"#
    )
}

/// Checks everything a failed start must leave behind for plugin `name`:
/// state `stopped`, no pid, a `last_error` naming the plugin, containing one
/// of `expected` and the stderr line "misbehave: mode MODE", no process and
/// no zombie left; and returns the error.
#[track_caller]
fn assert_failed_start(hub: &Hub, name: &str, mode: &str, expected: &[&str]) -> String {
    let plugin = hub.wait_for_state(name, "stopped", STATE_TIMEOUT);
    let error = plugin["last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("plugin {name} is stopped without a last_error: {plugin:#}"))
        .to_owned();
    let what = format!("last_error of {name}");
    assert_contains(&error, name, &what);
    assert_contains_any(&error, expected, &what);
    assert_contains(&error, &format!("misbehave: mode {mode}"), &what);
    assert_eq!(plugin["pid"], Value::Null, "a stopped plugin has no pid");
    let marker = hub.plugin_marker(name);
    assert!(
        wait_until(Duration::from_secs(2), || processes_with_marker(&marker)
            .is_empty()),
        "plugin {name} is stopped but its processes are alive: {:?}",
        processes_with_marker(&marker)
    );
    assert_eq!(
        zombies_left(hub.pid()),
        Vec::<i32>::new(),
        "the hub left zombie children"
    );
    error
}

/// Checks that the healthy plugin runs, answers calls, and that the hub still
/// serves while `broken` never became ready.
#[track_caller]
fn assert_hub_carries_on(hub: &Hub, broken: &[&str]) {
    hub.wait_for_state("good", "running", STATE_TIMEOUT);
    let health = hub.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = hub.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.body["status"], "starting", "{}", ready.text);
    let waiting: BTreeSet<&str> = ready.body["waiting_for"]
        .as_array()
        .unwrap_or_else(|| panic!("waiting_for is not an array: {}", ready.text))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(waiting, broken.iter().copied().collect::<BTreeSet<_>>());
    let answer = hub.call(
        "good",
        "enrich",
        &json!({"records": [record("still-here", json!({"n": 1}))]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["results"][0]["record"]["id"], "still-here");
}

/// Runs one failure case: `good` plus `broken-MODE`, and checks both.
fn failure_case(mode: &str, mode_args: &str, start_timeout: &str, expected: &[&str]) -> String {
    let name = format!("broken-{mode}");
    let config = format!(
        "{GOOD_PLUGIN}{}",
        misbehave_block(&name, mode_args, start_timeout)
    );
    let hub = Hub::start(&config);
    let error = assert_failed_start(&hub, &name, mode, expected);
    assert_hub_carries_on(&hub, &[&name]);
    error
}

#[test]
fn a_plugin_that_exits_reports_its_exit_status() {
    let error = failure_case(
        "exit-now",
        r#""exit-now""#,
        "30s",
        &["status 3", "status: 3", "code 3", "code: 3"],
    );
    assert_contains(&error, "misbehave: exiting with status 3", "last_error");
}

#[test]
fn a_plugin_that_never_prints_times_out() {
    let error = failure_case(
        "never-print",
        r#""never-print""#,
        "1s",
        &["timed out", "timeout", "within"],
    );
    assert_contains(&error, "1s", "last_error of a start timeout");
}

#[test]
fn a_plugin_that_ignores_sigterm_is_still_killed_after_a_start_timeout() {
    let error = failure_case(
        "never-print",
        r#""never-print", "--ignore-sigterm""#,
        "1s",
        &["timed out", "timeout", "within"],
    );
    assert_contains(&error, "1s", "last_error of a start timeout");
}

#[test]
fn a_plugin_that_prints_garbage_is_quoted() {
    failure_case(
        "garbage",
        r#""garbage""#,
        "30s",
        &["hello from a confused plugin"],
    );
}

#[test]
fn a_plugin_with_an_unknown_app_version_is_rejected() {
    failure_case("unknown-version", r#""unknown-version""#, "30s", &["99"]);
}

#[test]
fn a_netrpc_plugin_is_rejected() {
    failure_case("netrpc", r#""netrpc""#, "30s", &["netrpc"]);
}

#[test]
fn an_over_long_handshake_line_is_rejected() {
    failure_case(
        "long-line",
        r#""long-line""#,
        "30s",
        &["too long", "over the limit", "65536", "64 KiB"],
    );
}

#[test]
fn a_plugin_whose_socket_does_not_exist_names_the_socket() {
    // The hub may retry dialing until start_timeout; the error must still say
    // which address it could not reach.
    failure_case(
        "bad-socket",
        r#""bad-socket""#,
        "5s",
        &["misbehave-no-such-socket"],
    );
}

#[test]
fn every_failure_at_once_leaves_the_healthy_plugin_running() {
    let cases = [
        ("exit-now", "status 3"),
        ("garbage", "hello from a confused plugin"),
        ("unknown-version", "99"),
        ("netrpc", "netrpc"),
        ("long-line", "misbehave: mode long-line"),
        ("bad-socket", "misbehave-no-such-socket"),
        ("never-print", "misbehave: mode never-print"),
    ];
    let names: Vec<String> = cases
        .iter()
        .map(|(mode, _)| format!("all-{mode}"))
        .collect();
    let mut config = GOOD_PLUGIN.to_owned();
    for ((mode, _), name) in cases.iter().zip(&names) {
        config.push_str(&misbehave_block(name, &format!("{mode:?}"), "3s"));
    }
    let hub = Hub::start(&config);
    for ((mode, expected), name) in cases.iter().zip(&names) {
        assert_failed_start(&hub, name, mode, &[expected]);
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_hub_carries_on(&hub, &names);
    let listed = hub.get("/api/v1/plugins");
    assert_eq!(listed.status, 200, "{}", listed.text);
    let listed: Vec<&str> = listed
        .body
        .as_array()
        .unwrap_or_else(|| panic!("GET /api/v1/plugins is not an array: {}", listed.text))
        .iter()
        .filter_map(|plugin| plugin["name"].as_str())
        .collect();
    let mut expected = vec!["good"];
    expected.extend(&names);
    assert_eq!(listed, expected, "plugins are listed in config order");
}

#[test]
fn a_healthy_plugin_is_described_by_the_api() {
    let hub = Hub::start(GOOD_PLUGIN);
    let plugin = hub.wait_for_state("good", "running", STATE_TIMEOUT);
    assert_eq!(plugin["name"], "good");
    assert_eq!(plugin["plugin_name"], "testkit");
    assert!(
        plugin["version"].as_str().is_some_and(|v| !v.is_empty()),
        "version: {plugin:#}"
    );
    assert_eq!(plugin["protocol_version"], 1);
    assert_eq!(plugin["restarts"], 0);
    assert_eq!(plugin["last_error"], Value::Null);
    let roles: BTreeSet<&str> = plugin["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("roles is not an array: {plugin:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["polling-input", "webhook-input", "enrichment", "output"])
    );
    let started_at = plugin["started_at"].as_str().unwrap_or_default();
    assert!(
        started_at.len() >= 20
            && started_at.as_bytes()[10] == b'T'
            && (started_at.ends_with('Z') || started_at.ends_with("+00:00")),
        "started_at is not RFC 3339 UTC: {started_at:?}"
    );
    let pid = plugin["pid"].as_i64().unwrap_or_default() as i32;
    assert_eq!(
        processes_with_marker(&hub.plugin_marker("good")),
        vec![pid],
        "the pid in the API is the plugin's process"
    );
    assert_eq!(
        process_group(pid),
        Some(pid),
        "the plugin leads its own process group, so the hub can kill the whole group"
    );
    let missing = hub.get("/api/v1/plugins/no-such-plugin");
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(
        missing.body["error"].is_string(),
        "errors are {{\"error\": ...}}: {}",
        missing.text
    );
}

#[test]
fn readyz_is_503_while_a_plugin_never_completes_its_handshake() {
    let config = format!(
        "{GOOD_PLUGIN}{}",
        misbehave_block("slow", r#""never-print""#, "120s")
    );
    let hub = Hub::start(&config);
    hub.wait_for_state("good", "running", STATE_TIMEOUT);
    let slow = hub.plugin("slow");
    assert_eq!(slow["state"], "starting", "{slow:#}");
    assert!(
        slow["pid"].is_i64(),
        "a starting plugin has a pid: {slow:#}"
    );
    assert_eq!(slow["roles"], json!([]), "{slow:#}");
    assert_eq!(slow["plugin_name"], Value::Null, "{slow:#}");
    let ready = hub.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(
        ready.body,
        json!({"status": "starting", "waiting_for": ["slow"]})
    );
}

#[test]
fn readyz_is_200_once_every_plugin_has_completed_its_handshake() {
    let config = format!(
        "{GOOD_PLUGIN}{}",
        GOOD_PLUGIN.replace("plugins.good", "plugins.good2")
    );
    let hub = Hub::start(&config);
    let mut last = None;
    let ready = wait_until(STATE_TIMEOUT, || {
        let response = hub.get("/readyz");
        let ok = response.status == 200;
        last = Some(response);
        ok
    });
    let last = last.unwrap();
    assert!(
        ready,
        "/readyz never became 200: {} {}",
        last.status, last.text
    );
    assert_eq!(last.body, json!({"status": "ready"}));
    for name in ["good", "good2"] {
        assert_eq!(hub.plugin(name)["state"], "running");
    }
}

/// Runs the SDK plugin `name` by hand, without the cookie and with a wrong
/// one: it must say it is a plugin, print no handshake line, and exit 1.
fn assert_refuses_to_run_by_hand(name: &str) {
    for cookie in [None, Some("not-the-cookie")] {
        let mut command = Command::new(bin_path(name));
        command.env_remove(MAGIC_COOKIE_KEY);
        if let Some(cookie) = cookie {
            command.env(MAGIC_COOKIE_KEY, cookie);
        }
        let outcome = run_to_completion(&mut command, Duration::from_secs(20));
        assert_eq!(
            outcome.status.code(),
            Some(1),
            "{name} run by hand (cookie {cookie:?}) should exit 1: {outcome:?}"
        );
        assert_contains(
            &outcome.stderr,
            NOT_LAUNCHED_BY_HUB_MESSAGE,
            &format!("stderr of {name} run by hand (cookie {cookie:?})"),
        );
        assert_eq!(
            outcome.stdout, "",
            "{name} run by hand must not print a handshake line"
        );
    }
}

#[test]
fn testkit_run_by_hand_says_it_is_a_plugin_and_exits_1() {
    assert_refuses_to_run_by_hand("testkit");
}

#[test]
fn generator_run_by_hand_says_it_is_a_plugin_and_exits_1() {
    assert_refuses_to_run_by_hand("generator");
}

#[test]
fn webhook_json_run_by_hand_says_it_is_a_plugin_and_exits_1() {
    assert_refuses_to_run_by_hand("webhook-json");
}

#[test]
fn sentiment_run_by_hand_says_it_is_a_plugin_and_exits_1() {
    assert_refuses_to_run_by_hand("sentiment");
}

#[test]
fn jsonl_output_run_by_hand_says_it_is_a_plugin_and_exits_1() {
    assert_refuses_to_run_by_hand("jsonl-output");
}

#[test]
fn a_plugin_that_dies_after_configure_is_reaped_and_reported() {
    let hub = Hub::start(
        r#"
[plugins.crashy]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.crashy"]
env = { E2E_MARKER = "{marker}.crashy" }

[plugins.crashy.config]
exit_on_configure = 7
"#,
    );
    let marker = hub.plugin_marker("crashy");
    let mut last = Value::Null;
    let reported = wait_until(STATE_TIMEOUT, || {
        last = hub.plugin("crashy");
        last["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("status 7") || error.contains("status: 7"))
    });
    assert!(reported, "the exit with status 7 is not reported: {last:#}");
    let error = last["last_error"].as_str().unwrap();
    assert_contains(error, "crashy", "last_error of a crashed plugin");
    assert_ne!(last["state"], "running", "{last:#}");
    assert!(
        wait_until(Duration::from_secs(2), || processes_with_marker(&marker)
            .is_empty()
            || hub.plugin("crashy")["state"] == "running"),
        "the crashed plugin's process is still alive"
    );
    assert_eq!(zombies_left(hub.pid()), Vec::<i32>::new());
    assert_eq!(hub.get("/healthz").status, 200);
}

#[test]
fn configure_errors_stop_the_plugin_and_name_every_problem() {
    let hub = Hub::start(&format!(
        "{GOOD_PLUGIN}{}",
        r#"
[plugins.misconfigured]
command = "{bin:generator}"
args = ["--e2e-marker", "{marker}.misconfigured"]
env = { E2E_MARKER = "{marker}.misconfigured" }

[plugins.misconfigured.config]
batch_size = 0
record_type = ""

[plugins.misconfigured.restart]
policy = "never"
"#
    ));
    let plugin = hub.wait_for_state("misconfigured", "stopped", STATE_TIMEOUT);
    let error = plugin["last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_error: {plugin:#}"));
    let what = "last_error of a plugin whose Configure failed";
    assert_contains(error, "misconfigured", what);
    assert_contains(error, "batch_size", what);
    assert_contains(error, "record_type", what);
    // It points at the `config` table, as config errors do, in the status
    // and in the hub's log.
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    let line = text
        .lines()
        .position(|line| line == "[plugins.misconfigured.config]")
        .unwrap()
        + 1;
    let place = format!(
        "{}:{line}: plugin `misconfigured` rejected its configuration: ",
        hub.config_path().display()
    );
    assert!(
        error.starts_with(&place),
        "{error:?} should start with {place:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || hub.log().contains(&place)),
        "the hub's log does not name the config table: {}",
        hub.log()
    );
    assert!(
        wait_until(Duration::from_secs(2), || processes_with_marker(
            &hub.plugin_marker("misconfigured")
        )
        .is_empty()),
        "a plugin refused at Configure must not keep running"
    );
    assert_hub_carries_on(&hub, &["misconfigured"]);
}

#[test]
fn an_unknown_key_in_a_plugins_config_is_reported_by_the_plugin() {
    let hub = Hub::start(
        r#"
[plugins.typo]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.typo"]
env = { E2E_MARKER = "{marker}.typo" }

[plugins.typo.config]
tga = "oops"

[plugins.typo.restart]
policy = "never"
"#,
    );
    let plugin = hub.wait_for_state("typo", "stopped", STATE_TIMEOUT);
    let error = plugin["last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_error: {plugin:#}"));
    assert_contains(error, "typo", "last_error");
    assert_contains(error, "tga", "last_error");
}

#[test]
fn a_plugin_that_keeps_failing_is_restarted_with_backoff_until_failed() {
    let hub = Hub::start(&format!(
        "{GOOD_PLUGIN}{}",
        r#"
[plugins.flappy]
command = "{bin:misbehave}"
args = ["exit-now", "--e2e-marker", "{marker}.flappy"]
env = { E2E_MARKER = "{marker}.flappy" }

[plugins.flappy.restart]
policy = "always"
initial_backoff = "50ms"
max_backoff = "200ms"
max_restarts = 3
window = "5m"
"#
    ));
    let plugin = hub.wait_for_state("flappy", "failed", STATE_TIMEOUT);
    assert_eq!(
        plugin["restarts"], 3,
        "max_restarts = 3 restarts, one more failure and it is failed: {plugin:#}"
    );
    let error = plugin["last_error"].as_str().unwrap_or_default();
    assert_contains(error, "flappy", "last_error of a failed plugin");
    assert_contains_any(
        error,
        &["status 3", "status: 3"],
        "last_error of a failed plugin",
    );
    assert_eq!(plugin["pid"], Value::Null);
    assert!(
        wait_until(Duration::from_secs(2), || processes_with_marker(
            &hub.plugin_marker("flappy")
        )
        .is_empty()),
        "a failed plugin has no process left"
    );
    assert_eq!(zombies_left(hub.pid()), Vec::<i32>::new());
    assert_hub_carries_on(&hub, &["flappy"]);
}
