//! The generator through the SDK harness: batches, checkpoints, caps, determinism.
#![allow(clippy::unwrap_used, missing_docs)]

use switchyard_plugin_sdk::testing::{Code, TestHarness};

async fn configured(config: serde_json::Value) -> TestHarness {
    let harness = TestHarness::start(generator::plugin()).await.unwrap();
    harness.configure(config).await.unwrap().unwrap();
    harness
}

#[tokio::test]
async fn emits_batches_with_a_checkpoint_after_each() {
    let harness = configured(serde_json::json!({"records_per_poll": 10, "batch_size": 4, "payload_bytes": 16, "source": "gen", "record_type": "tick"})).await;
    let output = harness.poll(None).await.unwrap();
    let sizes: Vec<usize> = output.batches.iter().map(|b| b.records.len()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let checkpoints: Vec<&[u8]> = output
        .batches
        .iter()
        .map(|b| b.checkpoint.as_deref().unwrap())
        .collect();
    assert_eq!(checkpoints, [&b"4"[..], b"8", b"10"]);
    let records = output.records();
    assert_eq!(records[0].id, "0");
    assert_eq!(records[9].id, "9");
    assert_eq!(records[0].source, "gen");
    assert_eq!(records[0].record_type, "tick");
    let payload = records[3].payload_json().unwrap();
    assert_eq!(payload["seq"], 3);
    assert_eq!(payload["filler"].as_str().unwrap().len(), 16);
}

#[tokio::test]
async fn re_polls_from_a_checkpoint_are_deterministic() {
    let harness = configured(serde_json::json!({"records_per_poll": 5})).await;
    let first = harness.poll(Some(b"20")).await.unwrap();
    let second = harness.poll(Some(b"20")).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.records()[0].id, "20");
    assert_eq!(first.last_checkpoint(), Some(&b"25"[..]));
}

#[tokio::test]
async fn stops_at_the_total() {
    let harness =
        configured(serde_json::json!({"records_per_poll": 100, "batch_size": 30, "total": 130}))
            .await;
    let first = harness.poll(None).await.unwrap();
    assert_eq!(first.records().len(), 100);
    let second = harness.poll(first.last_checkpoint()).await.unwrap();
    assert_eq!(second.records().len(), 30);
    assert_eq!(second.last_checkpoint(), Some(&b"130"[..]));
    let third = harness.poll(second.last_checkpoint()).await.unwrap();
    assert!(third.records().is_empty());
    assert!(third.batches.is_empty());
}

#[tokio::test]
async fn defaults_emit_a_hundred_records_of_type_generated() {
    let harness = configured(serde_json::json!({})).await;
    let output = harness.poll(None).await.unwrap();
    assert_eq!(output.records().len(), 100);
    assert_eq!(output.batches.len(), 1);
    assert_eq!(output.records()[0].record_type, "generated");
    assert_eq!(output.records()[0].source, "");
}

#[tokio::test]
async fn rejects_bad_config_and_bad_checkpoints() {
    let harness = TestHarness::start(generator::plugin()).await.unwrap();
    let errors = harness
        .configure(serde_json::json!({"batch_size": 0, "record_type": ""}))
        .await
        .unwrap()
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["batch_size", "record_type"]);
    harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    let status = harness.poll(Some(b"abc")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("\"abc\""));
}
