//! The one call path, seen from outside: scheduled polls and output events
//! go through it like every other call, so a plugin that reports
//! NOT_SERVING gets no work until it reports SERVING again, failing polls
//! open the plugin's circuit breaker (shown in its status), and polls and
//! events are counted in `switchyard_plugin_calls_total`.
//!
//! A real hub (the library's `app::run_with_listener`, SQLite) runs real
//! fake-plugin processes; each plugin appends a line to a call log for every
//! `Poll` and `HandleEvent` it is called with.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Hub, poll_until};

/// Lines in a plugin's call log.
fn calls(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// `switchyard_plugin_calls_total` for one plugin, RPC and outcome.
fn call_count(plugin: &str, rpc: &str, outcome: &str) -> u64 {
    let text = switchyard_hub::metrics::global().encode();
    let needle = format!(
        "switchyard_plugin_calls_total{{plugin=\"{plugin}\",rpc=\"{rpc}\",outcome=\"{outcome}\"}} "
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&needle))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_is_not_serving_gets_no_polls_and_no_events() {
    let hub = Hub::start(
        r#"database = "sqlite://@DIR@/hub.db"

[plugins.gated-src]
command = "@FAKE@"
env = { FAKE_ROLES = "polling-input", FAKE_CALL_LOG = "@DIR@/src.calls", FAKE_NOT_SERVING_FILE = "@DIR@/src.down" }
[plugins.gated-src.poll]
interval = "50ms"
[plugins.gated-src.health]
interval = "50ms"
[plugins.gated-src.retry]
timeout = "200ms"
max_attempts = 2
initial_backoff = "10ms"

[plugins.gated-out]
command = "@FAKE@"
env = { FAKE_ROLES = "output", FAKE_CALL_LOG = "@DIR@/out.calls", FAKE_NOT_SERVING_FILE = "@DIR@/out.down" }
[plugins.gated-out.output]
batch = 10
[plugins.gated-out.health]
interval = "50ms"
[plugins.gated-out.retry]
timeout = "200ms"
max_attempts = 2
initial_backoff = "10ms"
"#,
    )
    .await;
    let dir = hub.dir().to_path_buf();
    let (src_log, out_log) = (dir.join("src.calls"), dir.join("out.calls"));

    // Serving: polls and events flow, and both are counted.
    poll_until(LONG, || {
        (call_count("gated-src", "poll", "ok") >= 2 && call_count("gated-out", "events", "ok") >= 1)
            .then_some(())
    })
    .await;

    // The output reports NOT_SERVING: new events pile up, none is sent.
    std::fs::write(dir.join("out.down"), "").unwrap();
    hub.wait_plugin("gated-out", |status| status["healthy"] == false)
        .await;
    let refused = call_count("gated-out", "events", "not_serving");
    poll_until(LONG, || {
        (call_count("gated-out", "events", "not_serving") > refused).then_some(())
    })
    .await;
    let events_sent = calls(&out_log);
    let polls_before = calls(&src_log);
    let refused = call_count("gated-out", "events", "not_serving");
    poll_until(LONG, || {
        (calls(&src_log) >= polls_before + 3
            && call_count("gated-out", "events", "not_serving") >= refused + 2)
            .then_some(())
    })
    .await;
    assert_eq!(
        calls(&out_log),
        events_sent,
        "a NOT_SERVING output was sent events"
    );

    // SERVING again: the held-back events are delivered.
    std::fs::remove_file(dir.join("out.down")).unwrap();
    poll_until(LONG, || (calls(&out_log) > events_sent).then_some(())).await;

    // The input reports NOT_SERVING: its scheduled polls are not sent.
    std::fs::write(dir.join("src.down"), "").unwrap();
    hub.wait_plugin("gated-src", |status| status["healthy"] == false)
        .await;
    let refused = call_count("gated-src", "poll", "not_serving");
    poll_until(LONG, || {
        (call_count("gated-src", "poll", "not_serving") > refused).then_some(())
    })
    .await;
    let polls_sent = calls(&src_log);
    let refused = call_count("gated-src", "poll", "not_serving");
    poll_until(LONG, || {
        (call_count("gated-src", "poll", "not_serving") >= refused + 3).then_some(())
    })
    .await;
    assert_eq!(
        calls(&src_log),
        polls_sent,
        "a NOT_SERVING input was polled"
    );

    // SERVING again: polls resume.
    std::fs::remove_file(dir.join("src.down")).unwrap();
    poll_until(LONG, || (calls(&src_log) > polls_sent).then_some(())).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_polls_open_the_breaker_and_the_status_shows_it() {
    let hub = Hub::start(
        r#"database = "sqlite://@DIR@/hub.db"

[plugins.tripping]
command = "@FAKE@"
env = { FAKE_ROLES = "polling-input", FAKE_CALL_LOG = "@DIR@/calls", FAKE_POLL_FAIL_FILE = "@DIR@/fail" }
[plugins.tripping.poll]
interval = "50ms"
[plugins.tripping.retry]
max_attempts = 1
breaker_failures = 2
breaker_cooldown = "1h"
"#,
    )
    .await;
    let dir = hub.dir().to_path_buf();
    hub.wait_plugin("tripping", |status| status["state"] == "running")
        .await;
    assert_eq!(
        hub.get("/api/v1/plugins/tripping").await.1["circuit_breaker"],
        "closed"
    );
    std::fs::write(dir.join("fail"), "").unwrap();
    let status = hub
        .wait_plugin("tripping", |status| status["circuit_breaker"] == "open")
        .await;
    assert_eq!(status["state"], "running", "{status}");
    // Two failed polls opened it; the next scheduled poll is refused by the
    // breaker without reaching the plugin, and the poller then waits out
    // the breaker's cool-down (an hour) instead of polling every 50 ms.
    assert!(call_count("tripping", "poll", "failed") >= 2);
    poll_until(LONG, || {
        (call_count("tripping", "poll", "circuit_open") >= 1).then_some(())
    })
    .await;
    let reached = calls(&dir.join("calls"));
    // A negative check needs a window: ten poll intervals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls(&dir.join("calls")), reached);
    assert_eq!(call_count("tripping", "poll", "circuit_open"), 1);
    let metrics = switchyard_hub::metrics::global().encode();
    assert!(
        metrics.contains(
            "switchyard_plugin_circuit_breaker_state{plugin=\"tripping\",state=\"open\"} 1"
        ),
        "{metrics}"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_poll_honours_the_plugins_retry_after_hint() {
    // The hint (2 s) is longer than max_backoff, so the call gives up at
    // once and the poller waits the hint out instead of its 20 ms interval.
    let hub = Hub::start(
        r#"database = "sqlite://@DIR@/hub.db"

[plugins.pushback]
command = "@FAKE@"
env = { FAKE_ROLES = "polling-input", FAKE_CALL_LOG = "@DIR@/calls", FAKE_POLL_FAIL_FILE = "@DIR@/fail", FAKE_RETRY_AFTER_MS = "2000" }
[plugins.pushback.poll]
interval = "20ms"
[plugins.pushback.retry]
max_attempts = 3
initial_backoff = "10ms"
max_backoff = "100ms"
"#,
    )
    .await;
    let dir = hub.dir().to_path_buf();
    hub.wait_plugin("pushback", |status| status["state"] == "running")
        .await;
    std::fs::write(dir.join("fail"), "").unwrap();
    poll_until(LONG, || {
        (call_count("pushback", "poll", "failed") >= 1).then_some(())
    })
    .await;
    let started = tokio::time::Instant::now();
    let failed = call_count("pushback", "poll", "failed");
    poll_until(LONG, || {
        (call_count("pushback", "poll", "failed") > failed).then_some(())
    })
    .await;
    // Not a speed assertion: a lower bound the hub itself must respect
    // (without the hint the next poll would come 20 ms later).
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the next poll came {:?} after a failure that asked for 2 s",
        started.elapsed()
    );
    hub.shut_down().await;
}
