//! `[plugins.NAME.output] lag_alert` end to end, on the real `switchyard`
//! binary (`common::HubProcess`) with the fake plugin: an output stopped by
//! hand while records arrive goes past its 1 s threshold, so its status says
//! `lagging: true` and `switchyard_output_lag_alert` is 1, with one warning
//! in the log; started again it delivers, catches up, and both go back
//! (one info line).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::HubProcess;
use serde_json::Value;

async fn get_json(hub: &HubProcess, path: &str) -> Value {
    hub.http
        .get(format!("{}{path}", hub.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(hub: &HubProcess, path: &str, body: &str) -> u16 {
    hub.http
        .post(format!("{}{path}", hub.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The value of `switchyard_output_lag_alert{plugin="out"}`.
async fn alert_gauge(hub: &HubProcess) -> Option<String> {
    let text = hub.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("switchyard_output_lag_alert{plugin=\"out\"} "))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_output_lags_past_its_alert_and_recovers_once_started() {
    let port = common::free_port();
    let fake = common::fake_plugin();
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://hub.db\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n\
         [plugins.src]\ncommand = \"{fake}\"\n[plugins.src.webhook]\nauth = \"none\"\n\
         [plugins.out]\ncommand = \"{fake}\"\n[plugins.out.output]\nlag_alert = \"1s\"\n\
         [plugins.out.retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n",
        fake = fake.display()
    );
    let hub = HubProcess::spawn(
        tempfile::tempdir().unwrap(),
        &config,
        port,
        &[],
        "/readyz",
        Duration::from_secs(20),
    )
    .await;

    let status = get_json(&hub, "/api/v1/plugins/out").await;
    assert_eq!(status["lagging"], false, "{status}");
    let status = get_json(&hub, "/api/v1/plugins/src").await;
    assert_eq!(status["lagging"], Value::Null, "not an output: {status}");
    assert_eq!(alert_gauge(&hub).await.as_deref(), Some("0"));

    assert_eq!(post(&hub, "/api/v1/plugins/out/stop", "").await, 200);
    hub.wait("`out` to stop", || async {
        (get_json(&hub, "/api/v1/plugins/out").await["state"] == "stopped").then_some(())
    })
    .await;
    let accepted = post(&hub, "/webhooks/src", r#"{"n": 1}"#).await;
    assert!((200..300).contains(&accepted), "{accepted}");

    hub.wait("`out` to be lagging", || async {
        (get_json(&hub, "/api/v1/plugins/out").await["lagging"] == true).then_some(())
    })
    .await;
    assert_eq!(alert_gauge(&hub).await.as_deref(), Some("1"));
    let lagging_line = "Output `out` is lagging";
    hub.wait("the lagging warning", || async {
        hub.log().contains(lagging_line).then_some(())
    })
    .await;

    assert_eq!(post(&hub, "/api/v1/plugins/out/start", "").await, 200);
    hub.wait("`out` to catch up", || async {
        (get_json(&hub, "/api/v1/plugins/out").await["lagging"] == false).then_some(())
    })
    .await;
    assert_eq!(alert_gauge(&hub).await.as_deref(), Some("0"));
    let delivered = get_json(&hub, "/api/v1/plugins/out").await;
    assert_eq!(delivered["state"], "running", "{delivered}");
    hub.wait("the recovery line", || async {
        hub.log().contains("Output `out` caught up").then_some(())
    })
    .await;

    // Once each way, however many times the lag was measured meanwhile.
    let log = hub.log();
    assert_eq!(log.matches(lagging_line).count(), 1, "{log}");
    assert_eq!(log.matches("Output `out` caught up").count(), 1, "{log}");
    let warning = log
        .lines()
        .find(|line| line.contains(lagging_line))
        .unwrap();
    assert!(warning.contains("WARN"), "{warning}");
}
