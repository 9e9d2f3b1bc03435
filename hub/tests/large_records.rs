//! Large records through Go plugins. gRPC servers refuse a received
//! message over 4 MiB unless told otherwise, as every plugin written on
//! go-plugin alone does: the hub packs a streamed call's items into messages
//! below that (see `switchyard_wire::messages`), so 64 records of 100 KB
//! reach a Go enricher and a Go output instead of failing every attempt
//! with `RESOURCE_EXHAUSTED` and stopping the pipeline. A single record
//! larger than 4 MiB goes in a message of its own, which the Go SDK takes
//! (it raises the limit to 65 MiB, as the Rust and Python SDKs do), and a
//! webhook body at `max_body`'s largest (64 MiB) reaches a Rust webhook
//! input and a Go enricher and output with the rest of its request. A page
//! of the admin API's records stops at 16 MiB past its first record and
//! its cursor goes on (that test needs no Go plugin).
//!
//! echo-go is built by `plugins/go/build.sh`. When it is missing this test
//! is skipped (with a message), unless `SWITCHYARD_REQUIRE_ALL` is set.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Hub, wait_for};

/// Records in the one poll, each with a payload of about [`PAYLOAD_BYTES`].
const RECORDS: usize = 64;
/// 64 of these make a 6.4 MB batch, over the 4 MiB a Go plugin accepts in
/// one message.
const PAYLOAD_BYTES: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_reach_a_go_enricher_and_a_go_output() {
    let Some(echo_go) = common::echo_go() else {
        return;
    };
    let generator = common::built("generator");
    let hub = Hub::start(&format!(
        r#"
[plugins.gen]
command = "{generator}"
[plugins.gen.config]
records_per_poll = {RECORDS}
batch_size = {RECORDS}
total = {RECORDS}
payload_bytes = {PAYLOAD_BYTES}
[plugins.gen.poll]
interval = "1s"

[plugins.hooks]
command = "{webhook_json}"
[plugins.hooks.webhook]
auth = "none"
max_body = "8MiB"

[plugins.echo]
command = "{echo_go}"

[plugins.sink]
command = "{echo_go}"
[plugins.sink.output]

[pipeline]
enrich = ["echo"]
"#,
        generator = generator.display(),
        webhook_json = common::built("webhook-json").display(),
        echo_go = echo_go.display(),
    ))
    .await;

    wait_delivered(&hub, "sink", RECORDS, "every event acked by the Go output").await;

    let (status, page) = hub.get("/api/v1/records?limit=100").await;
    assert_eq!(status, 200);
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), RECORDS);
    for record in records {
        // Enriched by the Go plugin (its tag), payload whole.
        assert_eq!(record["metadata"]["chain"], "go", "{}", record["id"]);
        let payload = record["payload"].to_string();
        assert!(payload.len() >= PAYLOAD_BYTES, "{} bytes", payload.len());
    }

    // One record of 5 MB (a webhook body), alone in its messages to the
    // enricher and the output.
    let text = "x".repeat(5 * 1024 * 1024);
    let body = serde_json::json!({"id": "large", "text": text});
    let (status, answer) = hub.post("/webhooks/hooks", body).await;
    assert_eq!(status, 202, "{answer}");
    wait_delivered(
        &hub,
        "sink",
        RECORDS + 1,
        "the large record acked by the Go output",
    )
    .await;
    assert_webhook_record_whole(&hub, text.len()).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_body_at_max_body_s_largest_reaches_every_plugin() {
    let Some(echo_go) = common::echo_go() else {
        return;
    };
    let hub = Hub::start(&format!(
        r#"
[plugins.hooks]
command = "{webhook_json}"
[plugins.hooks.webhook]
auth = "none"
max_body = "64MiB"

[plugins.echo]
command = "{echo_go}"

[plugins.largest-sink]
command = "{echo_go}"
[plugins.largest-sink.output]

[pipeline]
enrich = ["echo"]
"#,
        webhook_json = common::built("webhook-json").display(),
        echo_go = echo_go.display(),
    ))
    .await;

    // A JSON body of exactly 64 MiB: with its method, path, headers and
    // delivery id the webhook request is larger than 64 MiB, and so is the
    // record made of it on its way to the enricher and the output.
    let frame = serde_json::json!({"id": "largest", "text": ""}).to_string();
    let text = "x".repeat(64 * 1024 * 1024 - frame.len());
    let body = serde_json::json!({"id": "largest", "text": text});
    assert_eq!(body.to_string().len(), 64 * 1024 * 1024);
    let (status, answer) = hub.post("/webhooks/hooks", body).await;
    assert_eq!(status, 202, "{answer}");
    wait_delivered(
        &hub,
        "largest-sink",
        1,
        "the 64 MiB record acked by the Go output",
    )
    .await;
    assert_webhook_record_whole(&hub, text.len()).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_large_records_is_cut_at_its_bytes_and_the_cursor_goes_on() {
    let hub = Hub::start(&format!(
        r#"
[plugins.pages]
command = "{webhook_json}"
[plugins.pages.webhook]
auth = "none"
max_body = "16MiB"
# Stored in arrival order, so that page-0 and page-1 share the first page
# (with more deliveries in hand at once, page-1 could be stored first).
concurrency = 1
"#,
        webhook_json = common::built("webhook-json").display(),
    ))
    .await;
    // Three records of 9 MiB: a page holds at most 16 MiB past its first
    // record, so the third starts past that and opens the next page.
    let text = "x".repeat(9 * 1024 * 1024);
    for n in 0..3 {
        let body = serde_json::json!({"id": format!("page-{n}"), "text": text});
        let (status, answer) = hub.post("/webhooks/pages", body).await;
        assert_eq!(status, 202, "{answer}");
    }
    wait_for(Duration::from_secs(60), "three records stored", || async {
        let (_, page) = hub.get("/api/v1/records?source=pages&limit=1").await;
        let first = page["records"]
            .as_array()
            .is_some_and(|records| !records.is_empty());
        let (_, last) = hub
            .get("/api/v1/records?source=pages&order=newest&limit=1")
            .await;
        let third = last["records"][0]["source_id"] == "page-2";
        (first && third).then_some(())
    })
    .await;
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| {
                assert_eq!(
                    record["payload"]["text"].as_str().map(str::len),
                    Some(text.len())
                );
                record["source_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let (status, page) = hub.get("/api/v1/records?source=pages&limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), ["page-0", "page-1"]);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a cut page has a cursor");
    let (_, page) = hub
        .get(&format!(
            "/api/v1/records?source=pages&limit=100&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(&page), ["page-2"]);
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
    hub.shut_down().await;
}

/// Checks the webhook input `hooks`' record: enriched by the Go plugin (its
/// tag), its `text` of `text_len` bytes whole, and no dead letters.
async fn assert_webhook_record_whole(hub: &Hub, text_len: usize) {
    let (_, page) = hub.get("/api/v1/records?source=hooks").await;
    let record = &page["records"][0];
    assert_eq!(record["metadata"]["chain"], "go");
    assert_eq!(
        record["payload"]["text"].as_str().map(str::len),
        Some(text_len)
    );
    let (_, letters) = hub.get("/api/v1/dead-letters").await;
    assert_eq!(letters["dead_letters"], serde_json::json!([]));
}

/// Waits until the output `output` has acked exactly `count` events in all
/// (its counter's line on `/metrics`; the counters are the test process's,
/// shared by its tests, so each test names its output differently).
async fn wait_delivered(hub: &Hub, output: &str, count: usize, what: &str) {
    let line = format!("switchyard_events_delivered_total{{plugin=\"{output}\"}} {count}");
    // Generous: a debug build takes seconds over each 64 MiB message, and
    // the tests of this file run side by side.
    wait_for(Duration::from_secs(180), what, || async {
        hub.metrics()
            .await
            .lines()
            .any(|metric| metric == line)
            .then_some(())
    })
    .await;
}
