//! Supervision end to end, with real processes (`examples/fake_plugin.rs` and
//! shell scripts) and a real hub: restarts after a crash, the intensity cap
//! (`failed`), the liveness probe (SIGSTOP), NOT_SERVING, backoff growth and
//! reset, resource limits, progress deadlines, retries of calls in flight,
//! permanent errors, the stop/start/restart endpoints and `/metrics`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::DateTime;
use common::{
    Hub, assert_group_gone, fake_plugin, load_config, poll_until, start, wait_for_status,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use switchyard_hub::supervisor::PluginState;

fn pid_of(plugin: &Value) -> i32 {
    plugin["pid"].as_i64().unwrap() as i32
}

fn signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).unwrap();
}

/// The value of one sample line of `/metrics` (`name{labels} value`).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_plugin_comes_back_with_a_new_pid_and_one_more_restart() {
    let hub = Hub::start(
        "[plugins.victim]\ncommand = \"@FAKE@\"\nenv = { FAKE_CHILD = \"1\" }\n[plugins.victim.restart]\ninitial_backoff = \"10ms\"\n",
    )
    .await;
    let before = hub.wait_plugin("victim", |p| p["state"] == "running").await;
    assert_eq!(before["restarts"], 0);
    assert_eq!(before["healthy"], true);
    assert_eq!(before["last_exit"], Value::Null);
    let old_pid = pid_of(&before);

    signal(old_pid, Signal::SIGKILL);
    let after = hub
        .wait_plugin("victim", |p| {
            p["state"] == "running" && p["pid"].as_i64().is_some_and(|pid| pid as i32 != old_pid)
        })
        .await;
    assert_eq!(after["restarts"], 1);
    assert_eq!(after["last_exit"]["reason"], "killed by signal SIGKILL");
    assert!(
        DateTime::parse_from_rfc3339(after["last_exit"]["at"].as_str().unwrap()).is_ok(),
        "{after}"
    );
    assert_eq!(
        after["last_error"],
        "plugin `victim` killed by signal SIGKILL"
    );
    assert_eq!(after["next_restart_at"], Value::Null);
    // The old process group (with its grandchild) is gone.
    assert_group_gone(old_pid).await;
    // And the new process serves calls.
    let (status, body) = hub
        .post("/api/v1/plugins/victim/call/poll", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    let metrics = hub.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_restarts_total{plugin="victim"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_state{plugin="victim",state="running"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, r#"switchyard_plugin_healthy{plugin="victim"}"#),
        Some(1.0)
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_crashes_on_every_start_fails_after_the_cap_and_an_operator_restart_clears_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let script = common::write_script(
        dir.path(),
        "crashy.sh",
        &format!(
            "echo 'cannot start today' >&2\nif [ -f \"$(dirname \"$0\")/fixed\" ]; then exec {}; fi\nexit 3",
            fake_plugin().display()
        ),
    );
    let hub = Hub::start(&format!(
        "[plugins.crashy]\ncommand = \"{}\"\n[plugins.crashy.restart]\ninitial_backoff = \"10ms\"\nmax_backoff = \"40ms\"\nmax_restarts = 3\nwindow = \"1h\"\n\n[plugins.steady]\ncommand = \"@FAKE@\"\n",
        script.display()
    ))
    .await;
    let failed = hub.wait_plugin("crashy", |p| p["state"] == "failed").await;
    assert_eq!(failed["restarts"], 3, "{failed}");
    assert_eq!(failed["pid"], Value::Null);
    assert_eq!(failed["next_restart_at"], Value::Null);
    assert_eq!(
        failed["last_exit"]["reason"],
        "failed to start: exited with status 3 before completing the handshake"
    );
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("cannot start today"), "{error}");

    // The other plugin keeps working, and so does the hub.
    hub.wait_plugin("steady", |p| p["state"] == "running").await;
    let (status, body) = hub
        .post("/api/v1/plugins/steady/call/poll", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // Calls to the failed plugin are refused at once, not retried.
    let (status, body) = hub
        .post("/api/v1/plugins/crashy/call/poll", json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "plugin `crashy` is not running (it is failed)"
    );
    let metrics = hub.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_give_ups_total{plugin="crashy"}"#
        ),
        Some(1.0)
    );

    // The operator fixes the cause and restarts it: `failed` is cleared.
    std::fs::write(dir.path().join("fixed"), "").unwrap();
    let (status, body) = hub.post("/api/v1/plugins/crashy/restart", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["state"], "failed", "{body}");
    let running = hub.wait_plugin("crashy", |p| p["state"] == "running").await;
    assert_eq!(running["restarts"], 4);
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_plugin_is_caught_by_the_liveness_probe_and_restarted() {
    let hub = Hub::start(
        "[plugins.frozen]\ncommand = \"@FAKE@\"\n[plugins.frozen.health]\ninterval = \"100ms\"\ntimeout = \"200ms\"\nfailure_threshold = 3\n[plugins.frozen.restart]\ninitial_backoff = \"10ms\"\n",
    )
    .await;
    let before = hub.wait_plugin("frozen", |p| p["state"] == "running").await;
    let old_pid = pid_of(&before);
    signal(old_pid, Signal::SIGSTOP);
    let after = hub
        .wait_plugin("frozen", |p| {
            p["state"] == "running" && p["pid"].as_i64().is_some_and(|pid| pid as i32 != old_pid)
        })
        .await;
    assert_eq!(after["restarts"], 1);
    let reason = after["last_exit"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("unhealthy: 3 consecutive health checks failed (last: the health check did not answer within 200ms)"),
        "{reason}"
    );
    // The frozen process was killed (SIGKILL works on a stopped process).
    assert_group_gone(old_pid).await;
    let metrics = hub.metrics().await;
    assert!(
        sample(
            &metrics,
            r#"switchyard_plugin_health_check_failures_total{plugin="frozen"}"#
        )
        .is_some_and(|count| count >= 3.0),
        "{metrics}"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_serving_plugin_gets_no_work_and_is_not_killed() {
    let hub = Hub::start(
        "[plugins.shy]\ncommand = \"@FAKE@\"\nenv = { FAKE_NOT_SERVING_FILE = \"@DIR@/down\" }\n[plugins.shy.health]\ninterval = \"50ms\"\n[plugins.shy.retry]\nmax_attempts = 2\ninitial_backoff = \"10ms\"\n",
    )
    .await;
    let before = hub.wait_plugin("shy", |p| p["healthy"] == true).await;
    std::fs::write(hub.dir().join("down"), "").unwrap();
    let down = hub.wait_plugin("shy", |p| p["healthy"] == false).await;
    assert_eq!(down["state"], "running");
    assert_eq!(
        down["pid"], before["pid"],
        "a NOT_SERVING plugin is not killed"
    );
    assert_eq!(down["restarts"], 0);
    let (status, body) = hub.post("/api/v1/plugins/shy/call/poll", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"],
        "plugin `shy`: gave up after 2 attempts; the last one failed: it reports that it is not serving"
    );
    std::fs::remove_file(hub.dir().join("down")).unwrap();
    hub.wait_plugin("shy", |p| p["healthy"] == true).await;
    let (status, body) = hub.post("/api/v1/plugins/shy/call/poll", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let after = hub.wait_plugin("shy", |p| p["healthy"] == true).await;
    assert_eq!(after["pid"], before["pid"]);
    hub.shut_down().await;
}

/// The hub sends Configure together with the first health check; a plugin
/// that is not serving yet may refuse it as UNAVAILABLE, and is configured
/// again once it says SERVING, in the same start (no restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_not_ready_for_configure_at_start_is_configured_once_it_serves() {
    let outside = tempfile::tempdir().unwrap();
    let down = outside.path().join("down");
    std::fs::write(&down, "").unwrap();
    let hub = Hub::start(&format!(
        "[plugins.late]\ncommand = \"@FAKE@\"\nenv = {{ FAKE_NOT_SERVING_FILE = \"{}\" }}\n",
        down.display()
    ))
    .await;
    let refused = outside.path().join("down.refused");
    poll_until(Duration::from_secs(30), || refused.exists().then_some(())).await;
    let starting = hub.wait_plugin("late", |p| p["state"] == "starting").await;
    std::fs::remove_file(&down).unwrap();
    let running = hub
        .wait_plugin("late", |p| p["state"] == "running" && p["healthy"] == true)
        .await;
    assert_eq!(running["restarts"], 0, "{running:#}");
    assert_eq!(running["pid"], starting["pid"], "{running:#}");
    let (status, body) = hub.post("/api/v1/plugins/late/call/poll", json!({})).await;
    assert_eq!(status, 200, "{body}");
    hub.shut_down().await;
}

/// Waits for the next `backoff` state after `restarts` restarts and returns
/// the planned delay in milliseconds (`next_restart_at - last_exit.at`).
async fn next_backoff(plugin: &switchyard_hub::supervisor::PluginHandle, restarts: u32) -> i64 {
    let status = wait_for_status(plugin, Duration::from_secs(20), |status| {
        status.state == PluginState::Backoff && status.restarts == restarts
    })
    .await;
    let due = status.next_restart_at.unwrap();
    let ended = status.last_exit.unwrap().at;
    (due - ended).num_milliseconds()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_grows_while_a_plugin_keeps_crashing_and_resets_after_a_healthy_run() {
    let dir = tempfile::tempdir().unwrap();
    let lifetime = dir.path().join("lifetime");
    std::fs::write(&lifetime, "1").unwrap();
    let config = load_config(
        dir.path(),
        &format!(
            "[plugins.flappy]\ncommand = \"{}\"\nenv = {{ FAKE_EXIT_AFTER_FILE = \"{}\" }}\n[plugins.flappy.restart]\ninitial_backoff = \"100ms\"\nmultiplier = 2\njitter = false\nmax_backoff = \"10s\"\nreset_after = \"700ms\"\nmax_restarts = 100\n",
            fake_plugin().display(),
            lifetime.display()
        ),
    );
    let sockets = tempfile::tempdir().unwrap();
    let supervisor = start(&config, sockets.path());
    let plugin = supervisor.plugin("flappy").unwrap().clone();
    // Quick crashes: 100ms, 200ms, 400ms.
    let mut delays = Vec::new();
    for restarts in 0..3 {
        delays.push(next_backoff(&plugin, restarts).await);
    }
    // Now it runs well past reset_after before exiting.
    std::fs::write(&lifetime, "1500").unwrap();
    let status = wait_for_status(&plugin, Duration::from_secs(20), |status| {
        status.state == PluginState::Running && status.restarts == 3
    })
    .await;
    assert!(status.healthy);
    delays.push(next_backoff(&plugin, 3).await);
    supervisor.stop_all().await;
    // The planned delays (clock skew between the two timestamps is a few ms).
    let expected = [100, 200, 400, 100];
    for (delay, expected) in delays.iter().zip(expected) {
        assert!(
            (expected..expected + 50).contains(delay),
            "delays {delays:?}, expected about {:?}",
            [100, 200, 400, 100]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_over_its_memory_limit_dies_and_is_restarted() {
    let hub = Hub::start(
        "[plugins.hungry]\ncommand = \"@FAKE@\"\nenv = { FAKE_POLL_ALLOC_MB = \"2048\" }\n[plugins.hungry.limits]\nmemory = \"1GiB\"\n[plugins.hungry.restart]\ninitial_backoff = \"10ms\"\n[plugins.hungry.retry]\nmax_attempts = 1\n",
    )
    .await;
    let before = hub.wait_plugin("hungry", |p| p["state"] == "running").await;
    let old_pid = pid_of(&before);
    let limit = std::fs::read_to_string(format!("/proc/{old_pid}/limits")).unwrap();
    let address_space = limit
        .lines()
        .find(|line| line.starts_with("Max address space"))
        .unwrap();
    assert!(address_space.contains("1073741824"), "{address_space}");

    let (status, body) = hub
        .post("/api/v1/plugins/hungry/call/poll", json!({}))
        .await;
    assert_eq!(status, 502, "{body}");
    let after = hub
        .wait_plugin("hungry", |p| {
            p["state"] == "running" && p["pid"].as_i64().is_some_and(|pid| pid as i32 != old_pid)
        })
        .await;
    assert_eq!(after["restarts"], 1);
    // Rust aborts when an allocation fails.
    let reason = after["last_exit"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("killed by signal SIGABRT"), "{reason}");
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_when_a_plugin_dies_are_retried_and_succeed_after_the_restart() {
    let hub = Hub::start(
        "[plugins.fragile]\ncommand = \"@FAKE@\"\nenv = { FAKE_CRASH_MARKER = \"@DIR@/crashed\", FAKE_SLOW_POLL_MS = \"300\" }\n[plugins.fragile.restart]\ninitial_backoff = \"10ms\"\n[plugins.fragile.retry]\ninitial_backoff = \"50ms\"\n",
    )
    .await;
    let before = hub
        .wait_plugin("fragile", |p| p["state"] == "running")
        .await;
    // Several polls at once: one crashes the plugin, the others are in flight
    // (each takes 300ms) when it dies.
    let calls: Vec<_> = (0..4)
        .map(|n| {
            let http = reqwest::Client::new();
            let url = format!("{}/api/v1/plugins/fragile/call/poll", hub.base);
            tokio::spawn(async move {
                let checkpoint = base64_of(&n.to_string());
                let response = http
                    .post(url)
                    .json(&json!({"checkpoint": checkpoint}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (n, status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for call in calls {
        let (n, status, body) = call.await.unwrap();
        assert_eq!(status, 200, "call {n}: {body}");
        assert_eq!(
            body["batches"][0]["records"][0]["id"],
            (n + 1).to_string(),
            "{body}"
        );
    }
    assert!(
        hub.dir().join("crashed").exists(),
        "the plugin never crashed"
    );
    let after = hub
        .wait_plugin("fragile", |p| p["state"] == "running")
        .await;
    assert_eq!(after["restarts"], 1);
    assert_ne!(after["pid"], before["pid"]);
    assert!(
        after["last_exit"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("killed by signal SIGABRT"),
        "{after}"
    );
    let metrics = hub.metrics().await;
    assert!(
        sample(
            &metrics,
            r#"switchyard_plugin_call_retries_total{plugin="fragile",rpc="poll"}"#
        )
        .is_some_and(|count| count >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_calls_total{plugin="fragile",rpc="poll",outcome="ok"}"#
        ),
        Some(4.0),
        "{metrics}"
    );
    hub.shut_down().await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_not_retried_and_a_transient_one_is() {
    let hub = Hub::start(
        "[plugins.strict]\ncommand = \"@FAKE@\"\n[plugins.strict.retry]\nmax_attempts = 3\ninitial_backoff = \"10ms\"\nbreaker_failures = 100\n",
    )
    .await;
    hub.wait_plugin("strict", |p| p["state"] == "running").await;
    let (status, body) = hub
        .post(
            "/api/v1/plugins/strict/call/webhook",
            json!({"body": "bad"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let metrics = hub.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_calls_total{plugin="strict",rpc="webhook",outcome="rejected"}"#
        ),
        Some(1.0),
        "exactly one attempt: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_call_retries_total{plugin="strict",rpc="webhook"}"#
        ),
        None,
        "{metrics}"
    );

    // UNAVAILABLE is retried up to max_attempts, then reported.
    let (status, body) = hub
        .post(
            "/api/v1/plugins/strict/call/webhook",
            json!({"body": "flaky"}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"],
        "plugin `strict`: gave up after 3 attempts; the last one failed: the call failed: UNAVAILABLE: the upstream is down"
    );
    let metrics = hub.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_calls_total{plugin="strict",rpc="webhook",outcome="failed"}"#
        ),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_call_retries_total{plugin="strict",rpc="webhook"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_call_give_ups_total{plugin="strict",rpc="webhook"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_opens_after_repeated_failures_and_shows_in_the_status() {
    let hub = Hub::start(
        "[plugins.breaky]\ncommand = \"@FAKE@\"\n[plugins.breaky.retry]\nmax_attempts = 2\ninitial_backoff = \"10ms\"\nbreaker_failures = 2\nbreaker_cooldown = \"1h\"\n",
    )
    .await;
    let plugin = hub.wait_plugin("breaky", |p| p["state"] == "running").await;
    assert_eq!(plugin["circuit_breaker"], "closed");
    let (status, _) = hub
        .post(
            "/api/v1/plugins/breaky/call/webhook",
            json!({"body": "flaky"}),
        )
        .await;
    assert_eq!(status, 502);
    let plugin = hub.wait_plugin("breaky", |p| p["state"] == "running").await;
    assert_eq!(plugin["circuit_breaker"], "open");
    // While open, calls are refused without reaching the plugin.
    let (status, body) = hub
        .post("/api/v1/plugins/breaky/call/poll", json!({}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .ends_with("its circuit breaker is open (after repeated failures)"),
        "{body}"
    );
    let metrics = hub.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_plugin_circuit_breaker_state{plugin="breaky",state="open"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_run_past_their_deadline_count_as_plugin_failures() {
    let hub = Hub::start(
        "[plugins.slow]\ncommand = \"@FAKE@\"\nenv = { FAKE_SLOW_POLL_MS = \"60000\" }\n[plugins.slow.retry]\nmax_attempts = 2\ntimeout = \"200ms\"\ninitial_backoff = \"10ms\"\nbreaker_failures = 100\n[plugins.slow.health]\ninterval = \"100ms\"\nfailure_threshold = 2\n[plugins.slow.restart]\ninitial_backoff = \"10ms\"\n",
    )
    .await;
    let before = hub.wait_plugin("slow", |p| p["state"] == "running").await;
    let (status, body) = hub.post("/api/v1/plugins/slow/call/poll", json!({})).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        body["error"],
        "plugin `slow`: gave up after 2 attempts; the last one failed: the call did not finish within 200ms"
    );
    let after = hub
        .wait_plugin("slow", |p| p["restarts"] == 1 && p["state"] == "running")
        .await;
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(
        after["last_exit"]["reason"],
        "unhealthy: 2 consecutive calls ran past their deadline"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_stop_start_and_restart_plugins_through_the_api() {
    let hub = Hub::start("[plugins.ctl]\ncommand = \"@FAKE@\"\n").await;
    let first = hub.wait_plugin("ctl", |p| p["state"] == "running").await;
    let first_pid = pid_of(&first);

    let (status, stopped) = hub.post("/api/v1/plugins/ctl/stop", json!({})).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(stopped["pid"], Value::Null);
    assert_eq!(stopped["last_exit"]["reason"], "stopped on request");
    assert_group_gone(first_pid).await;
    // Stopped means stopped: calls are refused, nothing restarts it.
    let (status, body) = hub.post("/api/v1/plugins/ctl/call/poll", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(hub.get("/api/v1/plugins/ctl").await.1["state"], "stopped");

    let (status, body) = hub.post("/api/v1/plugins/ctl/start", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let second = hub.wait_plugin("ctl", |p| p["state"] == "running").await;
    assert_eq!(second["restarts"], 0, "a start is not a restart");
    let second_pid = pid_of(&second);
    assert_ne!(second_pid, first_pid);
    // Starting a running plugin changes nothing.
    let (status, body) = hub.post("/api/v1/plugins/ctl/start", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pid"], second["pid"]);

    let (status, body) = hub.post("/api/v1/plugins/ctl/restart", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let third = hub
        .wait_plugin("ctl", |p| {
            p["state"] == "running"
                && p["pid"]
                    .as_i64()
                    .is_some_and(|pid| pid as i32 != second_pid)
        })
        .await;
    assert_eq!(third["restarts"], 1);
    assert_group_gone(second_pid).await;

    let (status, body) = hub.post("/api/v1/plugins/nope/restart", json!({})).await;
    assert_eq!(status, 404, "{body}");
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_backoff_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let script = common::write_script(dir.path(), "dies.sh", "exit 1");
    let hub = Hub::start(&format!(
        "[plugins.sleepy]\ncommand = \"{}\"\n[plugins.sleepy.restart]\ninitial_backoff = \"1h\"\nmax_backoff = \"1h\"\n",
        script.display()
    ))
    .await;
    let waiting = hub.wait_plugin("sleepy", |p| p["state"] == "backoff").await;
    let due = DateTime::parse_from_rfc3339(waiting["next_restart_at"].as_str().unwrap()).unwrap();
    assert!(
        due > chrono::Utc::now() + chrono::Duration::minutes(20),
        "{waiting}"
    );
    // The HTTP client would give up long before the hour is over.
    let stopped = tokio::time::timeout(
        Duration::from_secs(10),
        hub.post("/api/v1/plugins/sleepy/stop", json!({})),
    )
    .await
    .expect("a stop during backoff must not wait for the backoff");
    assert_eq!(stopped.0, 200);
    assert_eq!(stopped.1["state"], "stopped");
    assert_eq!(stopped.1["next_restart_at"], Value::Null);
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_plugin_dies_is_retried_even_when_its_code_is_not_listed() {
    let hub = Hub::start(
        "[plugins.narrow]\ncommand = \"@FAKE@\"\nenv = { FAKE_CRASH_MARKER = \"@DIR@/crashed\" }\n[plugins.narrow.restart]\ninitial_backoff = \"10ms\"\n[plugins.narrow.retry]\ninitial_backoff = \"50ms\"\nretryable_codes = [\"ABORTED\"]\n",
    )
    .await;
    hub.wait_plugin("narrow", |p| p["state"] == "running").await;
    let (status, body) = hub
        .post("/api/v1/plugins/narrow/call/poll", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["batches"][0]["records"][0]["id"], "1");
    let after = hub.wait_plugin("narrow", |p| p["state"] == "running").await;
    assert_eq!(after["restarts"], 1);
    hub.shut_down().await;
}
