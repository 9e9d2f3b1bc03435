//! The testkit's behaviour for every role, through the SDK's in-process harness.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use switchyard_plugin_sdk::testing::{Code, TestHarness};
use switchyard_plugin_sdk::{EventKind, Record, RecordEvent, RoleKind, WebhookRequest};

async fn configured(config: serde_json::Value) -> TestHarness {
    let harness = TestHarness::start(testkit::plugin()).await.unwrap();
    harness.configure(config).await.unwrap().unwrap();
    harness
}

fn event(id: &str, delivery_id: u64) -> RecordEvent {
    RecordEvent::new(delivery_id, EventKind::Updated, Record::new(id, "t")).with_attempt(2)
}

#[tokio::test]
async fn serves_all_four_roles() {
    let harness = TestHarness::start(testkit::plugin()).await.unwrap();
    let metadata = harness.metadata().await.unwrap();
    assert_eq!(metadata.name, "testkit");
    assert_eq!(metadata.roles.len(), 4);
    assert!(metadata.roles.contains(&RoleKind::Output));
    assert!(metadata.webhook_sync_reply);
}

#[tokio::test]
async fn rejects_unknown_and_mistyped_keys() {
    let harness = TestHarness::start(testkit::plugin()).await.unwrap();
    let errors = harness
        .configure(serde_json::json!({"tags": "x"}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors[0].field, "tags");
    let errors = harness
        .configure(serde_json::json!({"poll_batches": -1}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors[0].field, "poll_batches");
}

#[tokio::test]
async fn enrich_chains_tags_and_fails_configured_ids() {
    let first = configured(serde_json::json!({"tag": "a", "fail_ids": ["bad"]})).await;
    let second = configured(serde_json::json!({"tag": "b"})).await;
    let records = vec![
        Record::new("1", "t")
            .with_payload(&serde_json::json!({"x": 1}))
            .unwrap(),
        Record::new("bad", "t"),
    ];
    let after_first = first.enrich(records).await.unwrap();
    let record = after_first[0].clone().unwrap();
    assert_eq!(record.metadata["chain"], "a");
    let failure = after_first[1].as_ref().unwrap_err();
    assert!(!failure.is_retryable());
    assert!(failure.message().contains("\"bad\""));
    let after_second = second.enrich(vec![record.clone()]).await.unwrap();
    let chained = after_second[0].as_ref().unwrap();
    assert_eq!(chained.metadata["chain"], "a,b");
    assert_eq!(chained.payload, record.payload, "the payload is unchanged");
    assert_eq!(chained.id, "1");
}

#[tokio::test]
async fn enrich_defaults_to_the_testkit_tag_and_honours_the_delay() {
    let harness = configured(serde_json::json!({"enrich_delay_ms": 20})).await;
    let results = harness
        .enrich((0..50).map(|n| Record::new(n.to_string(), "t")).collect())
        .await
        .unwrap();
    assert!(
        results
            .iter()
            .all(|result| result.as_ref().unwrap().metadata["chain"] == "testkit")
    );
}

#[tokio::test]
async fn events_are_acked_nacked_or_retried_as_configured() {
    let harness =
        configured(serde_json::json!({"nack_ids": ["n"], "retry_ids": ["r"], "event_delay_ms": 1}))
            .await;
    let outcomes = harness
        .handle_events(vec![event("ok", 1), event("n", 2), event("r", 3)])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok());
    let nack = outcomes[1].as_ref().unwrap_err();
    assert!(!nack.is_retryable());
    let retry = outcomes[2].as_ref().unwrap_err();
    assert!(retry.is_retryable());
    assert_eq!(retry.retry_after(), Some(Duration::from_millis(100)));
}

#[tokio::test]
async fn polls_continue_from_the_checkpoint() {
    let harness = configured(serde_json::json!({})).await;
    let output = harness.poll(None).await.unwrap();
    let ids: Vec<&str> = output.records().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5"]);
    let checkpoints: Vec<Option<&[u8]>> = output
        .batches
        .iter()
        .map(|b| b.checkpoint.as_deref())
        .collect();
    assert_eq!(checkpoints, [Some(&b"3"[..]), Some(&b"6"[..])]);
    let again = harness.poll(output.last_checkpoint()).await.unwrap();
    assert_eq!(again.records()[0].id, "6");
    assert_eq!(again.last_checkpoint(), Some(&b"12"[..]));

    let harness = configured(serde_json::json!({"poll_batches": 1, "records_per_batch": 4})).await;
    let output = harness.poll(Some(b"10")).await.unwrap();
    assert_eq!(output.records().len(), 4);
    assert_eq!(output.last_checkpoint(), Some(&b"14"[..]));
    let status = harness.poll(Some(b"ten")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn webhooks_turn_objects_and_arrays_into_records() {
    let harness = configured(serde_json::json!({})).await;
    let response = harness
        .handle_webhook(WebhookRequest::json(
            &serde_json::json!({"id": "e1", "type": "push"}),
        ))
        .await
        .unwrap();
    assert_eq!(response.records.len(), 1);
    assert_eq!(response.records[0].id, "e1");
    assert_eq!(response.records[0].record_type, "push");
    assert!(response.reply.is_none());

    let response = harness
        .handle_webhook(WebhookRequest::json(
            &serde_json::json!([{"id": 1}, {"id": "2", "type": "x"}]),
        ))
        .await
        .unwrap();
    let ids: Vec<&str> = response.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(response.records[0].record_type, "webhook");

    let response = harness
        .handle_webhook(WebhookRequest::json(
            &serde_json::json!({"challenge": "abc123", "type": "url_verification"}),
        ))
        .await
        .unwrap();
    assert!(response.records.is_empty());
    let reply = response.reply.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"abc123");

    for bad in [
        serde_json::json!(42),
        serde_json::json!({"no_id": true}),
        serde_json::json!([{"id": 1}, "x"]),
    ] {
        let status = harness
            .handle_webhook(WebhookRequest::json(&bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
    }
    let mut request = WebhookRequest::json(&serde_json::json!({}));
    request.body = b"<xml/>".to_vec();
    let status = harness.handle_webhook(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
