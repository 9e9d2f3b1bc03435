//! A connector's own word on its upstream, end to end: a plugin that reports
//! NOT_SERVING (the SDK's `Health`) gets no work until it serves again, and a
//! plugin whose upstream is unreachable at start (Configure answers
//! UNAVAILABLE) is restarted with backoff instead of being marked `failed`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use switchyard_e2e::{Hub, wait_for};

/// Generous bound for a plugin to start or change state on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(60);

/// A testkit instance `kit` with fast health checks and restarts, and `extra`
/// appended to its `config` table.
fn kit(extra: &str) -> String {
    format!(
        r#"
[plugins.kit]
command = "{{bin:testkit}}"
args = ["--e2e-marker", "{{marker}}.kit"]

[plugins.kit.health]
interval = "100ms"

[plugins.kit.restart]
initial_backoff = "50ms"
max_backoff = "200ms"
max_restarts = 1000

[plugins.kit.retry]
max_attempts = 2
initial_backoff = "10ms"
max_backoff = "20ms"

[plugins.kit.config]
{extra}
"#
    )
}

#[test]
fn a_plugin_reporting_not_serving_gets_no_work_until_it_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("upstream-down");
    let hub = Hub::start(&kit(&format!(
        "not_serving_while_exists = {:?}",
        down.display().to_string()
    )));
    hub.wait_for_state("kit", "running", LIMIT);
    let poll = json!({ "checkpoint": null });
    assert_eq!(hub.call("kit", "poll", &poll).status, 200);

    std::fs::write(&down, b"").unwrap();
    let unhealthy = wait_for(LIMIT, || {
        let plugin = hub.plugin("kit");
        (plugin["healthy"] == false).then_some(plugin)
    })
    .expect("the hub saw NOT_SERVING");
    assert_eq!(
        unhealthy["state"], "running",
        "NOT_SERVING is not a crash: {unhealthy:#}"
    );
    let refused = hub.call("kit", "poll", &poll);
    assert_eq!(
        refused.status, 503,
        "no work while NOT_SERVING: {}",
        refused.text
    );
    assert!(
        refused.text.contains("not serving") || refused.text.contains("NOT_SERVING"),
        "the refusal says why: {}",
        refused.text
    );
    assert_eq!(
        hub.plugin("kit")["restarts"],
        0,
        "not restarted for NOT_SERVING"
    );

    std::fs::remove_file(&down).unwrap();
    wait_for(LIMIT, || {
        (hub.plugin("kit")["healthy"] == true).then_some(())
    })
    .expect("the hub saw SERVING again");
    assert_eq!(hub.call("kit", "poll", &poll).status, 200);
}

#[test]
fn an_upstream_unreachable_at_start_is_retried_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = dir.path().join("upstream-unreachable");
    std::fs::write(&unreachable, b"").unwrap();
    let hub = Hub::start(&kit(&format!(
        "unavailable_while_exists = {:?}",
        unreachable.display().to_string()
    )));
    let retried = wait_for(LIMIT, || {
        let plugin = hub.plugin("kit");
        assert_ne!(
            plugin["state"], "failed",
            "a retryable start failure is not `failed`: {plugin:#}"
        );
        (plugin["restarts"].as_u64().unwrap_or(0) >= 2).then_some(plugin)
    })
    .expect("the hub restarted the plugin");
    let error = retried["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("upstream is unreachable"),
        "the start failure names its cause: {retried:#}"
    );

    std::fs::remove_file(&unreachable).unwrap();
    hub.wait_for_state("kit", "running", LIMIT);
    assert_eq!(
        hub.call("kit", "poll", &json!({ "checkpoint": null }))
            .status,
        200
    );
}
