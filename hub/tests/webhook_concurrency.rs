//! The webhook inbox worker's concurrency (`[plugins.NAME.webhook]
//! concurrency`), with a real hub (in-process) and the fake plugin as a
//! real process: a delivery the plugin keeps failing with a retryable error
//! does not hold back the others when `concurrency` > 1, and with
//! `concurrency = 1` deliveries finish strictly in inbox order.
//!
//! Every scenario first stops the plugin and fills the inbox, so all
//! deliveries are waiting before the worker can hand any of them over; the
//! fake plugin answers a body of `flaky` with UNAVAILABLE (retryable) every
//! time.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Hub;
use serde_json::{Value, json};

/// How long to wait for a condition.
const WAIT: Duration = Duration::from_secs(30);

/// `[plugins.NAME]` for the fake plugin as a webhook input, with the given
/// worker concurrency and retry policy.
fn plugin(name: &str, concurrency: u32, retry: &str) -> String {
    format!(
        "[plugins.{name}]\ncommand = \"@FAKE@\"\n\
         [plugins.{name}.env]\nFAKE_ROLES = \"webhook-input\"\n\
         [plugins.{name}.webhook]\nauth = \"none\"\nconcurrency = {concurrency}\n\
         [plugins.{name}.retry]\n{retry}\n"
    )
}

/// POSTs `body` to `/webhooks/NAME` with delivery id `id`; expects 202.
async fn deliver(hub: &Hub, name: &str, id: &str, body: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/{name}", hub.base))
        .header("idempotency-key", id)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 202, "delivery {id}: {text}");
}

/// Waits until `probe` returns `Some`, for up to [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::wait_for(WAIT, what, probe).await
}

/// The records stored from `source`, in the order they were first stored
/// (record id order), as their `source_id`s.
async fn stored(hub: &Hub, source: &str) -> Vec<String> {
    let (status, page) = hub
        .get(&format!("/api/v1/records?source={source}&limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["source_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The webhook dead letters of `plugin`.
async fn dead_letters(hub: &Hub, plugin: &str) -> Vec<Value> {
    let (status, page) = hub
        .get(&format!(
            "/api/v1/dead-letters?plugin={plugin}&stage=webhook"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    page["dead_letters"].as_array().unwrap().clone()
}

/// The value of the metric line starting with `series`, if present.
async fn metric(hub: &Hub, series: &str) -> Option<f64> {
    hub.metrics().await.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// Stops `name`, posts every `(id, body)` while it is stopped, and starts it
/// again.
async fn fill_inbox_while_stopped(hub: &Hub, name: &str, deliveries: &[(&str, &str)]) {
    hub.wait_plugin(name, |status| status["state"] == "running")
        .await;
    let (status, body) = hub
        .post(&format!("/api/v1/plugins/{name}/stop"), json!({}))
        .await;
    assert!(status < 300, "stop: {status} {body}");
    hub.wait_plugin(name, |status| status["state"] == "stopped")
        .await;
    for (id, body) in deliveries {
        deliver(hub, name, id, body).await;
    }
    let (status, body) = hub
        .post(&format!("/api/v1/plugins/{name}/start"), json!({}))
        .await;
    assert!(status < 300, "start: {status} {body}");
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_does_not_hold_back_the_others() {
    // The failing delivery would be retried for minutes (1000 attempts,
    // up to 500 ms apart), and the breaker never opens.
    let retry = "max_attempts = 1000\ninitial_backoff = \"50ms\"\nmax_backoff = \"500ms\"\nbreaker_failures = 1000000";
    let hub = Hub::start(&plugin("wide", 3, retry)).await;
    let ok: Vec<String> = (1..=6).map(|n| format!("ok-{n}")).collect();
    let mut deliveries = vec![("flaky-1", "flaky")];
    deliveries.extend(ok.iter().map(|id| (id.as_str(), "{\"fine\":true}")));
    fill_inbox_while_stopped(&hub, "wide", &deliveries).await;

    // The flaky delivery is first in the inbox, so it is claimed first and
    // keeps one slot busy; every other delivery goes through the other two.
    let records = wait_for("every good delivery to be stored", || async {
        let records = stored(&hub, "wide").await;
        (records.len() == ok.len()).then_some(records)
    })
    .await;
    let mut sorted = records.clone();
    sorted.sort();
    assert_eq!(sorted, ok);

    // ... while the flaky one is still being retried: once it has been
    // retried after the plugin came back, it is still pending, not
    // dead-lettered, and not stored.
    wait_for("the flaky delivery to be retried", || async {
        metric(
            &hub,
            "switchyard_plugin_call_retries_total{plugin=\"wide\",rpc=\"webhook\"}",
        )
        .await
        .filter(|retries| *retries >= 1.0)
    })
    .await;
    assert_eq!(
        metric(&hub, "switchyard_webhook_inbox_pending{plugin=\"wide\"}").await,
        Some(1.0)
    );
    assert!(dead_letters(&hub, "wide").await.is_empty());
    assert_eq!(stored(&hub, "wide").await.len(), ok.len());
    hub.shut_down().await;
}

#[tokio::test]
async fn with_a_concurrency_of_one_deliveries_finish_in_inbox_order() {
    let retry = "max_attempts = 3\ninitial_backoff = \"20ms\"\nmax_backoff = \"20ms\"\nbreaker_failures = 1000000";
    let hub = Hub::start(&plugin("narrow", 1, retry)).await;
    let deliveries = [
        ("first", "{\"n\":1}"),
        ("flaky-2", "flaky"),
        ("third", "{\"n\":3}"),
        ("fourth", "{\"n\":4}"),
        ("fifth", "{\"n\":5}"),
    ];
    fill_inbox_while_stopped(&hub, "narrow", &deliveries).await;

    // The moment `third` is stored, the delivery before it is already
    // finished (dead-lettered after its three attempts): nothing overtakes
    // a delivery that is being retried.
    let records = wait_for("`third` to be stored", || async {
        let records = stored(&hub, "narrow").await;
        records.iter().any(|id| id == "third").then_some(records)
    })
    .await;
    let letters = dead_letters(&hub, "narrow").await;
    assert_eq!(letters.len(), 1, "{letters:?} (stored: {records:?})");
    assert_eq!(letters[0]["record"]["id"], "flaky-2");
    assert_eq!(letters[0]["attempts"], 3);

    // And the records were stored in inbox order.
    let records = wait_for("every good delivery to be stored", || async {
        let records = stored(&hub, "narrow").await;
        (records.len() == 4).then_some(records)
    })
    .await;
    assert_eq!(records, ["first", "third", "fourth", "fifth"]);
    assert_eq!(
        metric(&hub, "switchyard_webhook_inbox_pending{plugin=\"narrow\"}").await,
        Some(0.0)
    );
    hub.shut_down().await;
}

/// A `switchyard run` process on `database`, SIGKILLed on drop.
struct HubProcess {
    child: std::process::Child,
    base: String,
}

impl HubProcess {
    /// Starts the real binary with `plugins` (after `[hub]`, `@FAKE@`
    /// replaced) and waits until it is ready.
    async fn start(dir: &std::path::Path, database: &str, plugins: &str) -> HubProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("plugins.toml");
        std::fs::write(
            &config,
            format!(
                "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"{database}\"\n\n{}",
                plugins.replace("@FAKE@", &common::fake_plugin().display().to_string())
            ),
        )
        .unwrap();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hub.stderr"))
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let hub = HubProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        wait_for("the hub to be ready", || async {
            let response = reqwest::get(format!("{}/readyz", hub.base)).await;
            response
                .is_ok_and(|response| response.status() == 200)
                .then_some(())
        })
        .await;
        hub
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A delivery in hand (being retried) when the hub is SIGKILLed was never
/// marked done: the next hub hands it to the plugin again. Deliveries that
/// were done are not handed over twice.
#[tokio::test]
async fn a_delivery_in_hand_when_the_hub_crashes_is_handed_over_again() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hub.db").display());
    let forever = "max_attempts = 1000\ninitial_backoff = \"50ms\"\nmax_backoff = \"500ms\"\nbreaker_failures = 1000000";
    let hub = HubProcess::start(dir.path(), &database, &plugin("crashy", 2, forever)).await;
    for (id, body) in [("flaky-c", "flaky"), ("good-1", "{}"), ("good-2", "{}")] {
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/crashy", hub.base))
            .header("idempotency-key", id)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
    wait_for("the good deliveries to be done", || async {
        let metrics = hub.metrics().await;
        metrics
            .contains("switchyard_webhook_deliveries_total{plugin=\"crashy\",outcome=\"done\"} 2")
            .then_some(())
    })
    .await;
    drop(hub);

    // The next hub gives up on it quickly, so the dead letter proves it was
    // handed over again.
    let quick = "max_attempts = 2\ninitial_backoff = \"10ms\"\nmax_backoff = \"10ms\"";
    let hub = HubProcess::start(dir.path(), &database, &plugin("crashy", 2, quick)).await;
    let letters = wait_for("the flaky delivery to be dead-lettered", || async {
        let page = hub
            .get("/api/v1/dead-letters?plugin=crashy&stage=webhook")
            .await;
        let letters = page["dead_letters"].as_array().unwrap().clone();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["record"]["id"], "flaky-c");
    // The done deliveries were not handed over again: this hub finished
    // one delivery, the dead one.
    let metrics = hub.metrics().await;
    assert!(
        metrics
            .contains("switchyard_webhook_deliveries_total{plugin=\"crashy\",outcome=\"dead\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("switchyard_webhook_deliveries_total{plugin=\"crashy\",outcome=\"done\"} 0"),
        "{metrics}"
    );
}
