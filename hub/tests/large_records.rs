//! Large records through plugins that keep gRPC's default 4 MiB limit on
//! received messages, as every go-plugin plugin does: the hub packs a
//! streamed call's items into messages below that limit (see
//! `hub/src/rpc/messages.rs`), so 64 records of 100 KB reach a Go enricher
//! and a Go output instead of failing every attempt with
//! `RESOURCE_EXHAUSTED` and stopping the pipeline.
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
async fn records_of_100_kb_reach_a_go_enricher_and_a_go_output() {
    let Some(echo_go) = common::echo_go() else {
        return;
    };
    let generator = common::data_path_plugin("generator");
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

[plugins.echo]
command = "{echo_go}"

[plugins.sink]
command = "{echo_go}"
[plugins.sink.output]

[pipeline]
enrich = ["echo"]
"#,
        generator = generator.display(),
        echo_go = echo_go.display(),
    ))
    .await;

    let delivered = format!("switchyard_events_delivered_total{{plugin=\"sink\"}} {RECORDS}");
    wait_for(
        Duration::from_secs(60),
        "every event acked by the Go output",
        || async { hub.metrics().await.contains(&delivered).then_some(()) },
    )
    .await;

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
    let (_, letters) = hub.get("/api/v1/dead-letters").await;
    assert_eq!(letters["dead_letters"], serde_json::json!([]));
    hub.shut_down().await;
}
