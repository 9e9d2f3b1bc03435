//! jsonl-output through the SDK harness.
#![allow(clippy::unwrap_used, missing_docs)]

use switchyard_plugin_sdk::testing::TestHarness;
use switchyard_plugin_sdk::{EventKind, Record, RecordEvent};

fn event(delivery_id: u64, id: &str) -> RecordEvent {
    let kind = if delivery_id & 1 == 0 {
        EventKind::Created
    } else {
        EventKind::Updated
    };
    let record = Record::new(id, "order")
        .with_payload(&serde_json::json!({"total": delivery_id}))
        .unwrap()
        .with_metadata("k", "v")
        .with_occurred_at(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
    RecordEvent::new(delivery_id, kind, record)
}

/// The plugin, started in the harness and configured with `config`.
async fn configured(config: serde_json::Value) -> TestHarness {
    let harness = TestHarness::start(jsonl_output::plugin()).await.unwrap();
    harness.configure(config).await.unwrap().unwrap();
    harness
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn appends_one_line_per_event_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    std::fs::write(&path, "{\"existing\":true}\n").unwrap();
    let harness = configured(serde_json::json!({"path": path})).await;
    let outcomes = harness
        .handle_events((1..=5).map(|n| event(n, &format!("r{n}"))).collect())
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    let written = lines(&path);
    assert_eq!(written.len(), 6, "appended after the existing line");
    let first = &written[1];
    assert_eq!(first["delivery_id"], 1);
    assert_eq!(first["kind"], "updated");
    assert_eq!(first["record"]["id"], "r1");
    assert_eq!(first["record"]["type"], "order");
    assert_eq!(first["record"]["payload"], serde_json::json!({"total": 1}));
    assert_eq!(first["record"]["metadata"]["k"], "v");
    assert_eq!(first["record"]["occurred_at"], "2023-11-14T22:13:20Z");
    assert_eq!(written[2]["kind"], "created");
}

#[tokio::test]
async fn a_line_cut_short_by_a_crash_is_dropped_before_appending() {
    // A write cut short (the plugin SIGKILLed mid-write) leaves the start
    // of a line that was never acknowledged; the restarted plugin cuts it
    // off, and the hub's redelivery appends it whole.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    std::fs::write(
        &path,
        "{\"existing\":true}\n{\"delivery_id\":7,\"kind\":\"crea",
    )
    .unwrap();
    let harness = configured(serde_json::json!({"path": path})).await;
    let outcomes = harness.handle_events(vec![event(7, "r7")]).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    let written = lines(&path);
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(written[0]["existing"], true);
    assert_eq!(written[1]["record"]["id"], "r7");
}

#[tokio::test]
async fn an_event_with_a_broken_payload_is_nacked_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let harness = configured(serde_json::json!({"path": path, "fsync": false})).await;
    let mut broken = event(2, "broken");
    broken.record.payload = b"{nope".to_vec();
    let outcomes = harness
        .handle_events(vec![event(1, "a"), broken, event(3, "c")])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok());
    assert!(!outcomes[1].as_ref().unwrap_err().is_retryable());
    assert!(outcomes[2].is_ok());
    let ids: Vec<String> = lines(&path)
        .iter()
        .map(|l| l["record"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a", "c"]);
}

#[tokio::test]
async fn write_errors_are_retryable_nacks() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let harness = configured(serde_json::json!({"path": "/dev/full", "fsync": false})).await;
    let outcomes = harness
        .handle_events(vec![event(1, "a"), event(2, "b")])
        .await
        .unwrap();
    for outcome in outcomes {
        let error = outcome.unwrap_err();
        assert!(error.is_retryable());
        assert!(error.message().contains("/dev/full"), "{error}");
    }
}

#[tokio::test]
async fn the_path_is_required_and_must_be_openable() {
    let harness = TestHarness::start(jsonl_output::plugin()).await.unwrap();
    let errors = harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors[0].field, "path");
    assert_eq!(errors[0].message, "is required");
    let errors = harness
        .configure(serde_json::json!({"path": "/nonexistent-dir/x/out.jsonl"}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors[0].field, "path");
    assert!(
        errors[0].message.contains("cannot open"),
        "{}",
        errors[0].message
    );
}
