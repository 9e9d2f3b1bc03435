//! webhook-json through the SDK harness.
#![allow(clippy::unwrap_used, missing_docs)]

use switchyard_plugin_sdk::WebhookRequest;
use switchyard_plugin_sdk::testing::{Code, TestHarness};

async fn configured(config: serde_json::Value) -> TestHarness {
    let harness = TestHarness::start(webhook_json::plugin()).await.unwrap();
    harness.configure(config).await.unwrap().unwrap();
    harness
}

fn request(body: serde_json::Value) -> WebhookRequest {
    let mut request = WebhookRequest::json(&body);
    request
        .headers
        .push(("User-Agent".into(), "GitHub-Hookshot/1".into()));
    request.headers.push(("X-Other".into(), "no".into()));
    request
}

#[tokio::test]
async fn maps_one_object_with_defaults() {
    let harness = configured(serde_json::json!({})).await;
    let response = harness
        .handle_webhook(request(serde_json::json!({"id": 42, "x": true})))
        .await
        .unwrap();
    assert_eq!(response.records.len(), 1);
    let record = &response.records[0];
    assert_eq!(record.id, "42");
    assert_eq!(record.record_type, "webhook");
    assert_eq!(record.occurred_at, None);
    assert_eq!(
        record.payload_json().unwrap(),
        serde_json::json!({"id": 42, "x": true})
    );
    assert_eq!(record.metadata["content-type"], "application/json");
    assert_eq!(record.metadata["user-agent"], "GitHub-Hookshot/1");
    assert!(!record.metadata.contains_key("x-other"));
    assert!(response.reply.is_none());
}

#[tokio::test]
async fn uses_dotted_paths_for_id_type_time_and_items() {
    let harness = configured(serde_json::json!({
        "id_field": "data.id",
        "type_field": "event.kind",
        "time_field": "data.at",
        "items_field": "batch.items",
        "header_metadata": ["X-Other"],
    }))
    .await;
    let body = serde_json::json!({"batch": {"items": [
        {"data": {"id": "a", "at": "2026-11-23T10:00:00+02:00"}, "event": {"kind": "order.paid"}},
        {"data": {"id": 7, "at": 1700000000.5}},
        {"data": {"id": "c", "at": 1700000000}, "event": {"kind": null}},
    ]}});
    let response = harness.handle_webhook(request(body)).await.unwrap();
    let records = &response.records;
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].id, "a");
    assert_eq!(records[0].record_type, "order.paid");
    assert_eq!(
        records[0].occurred_at.unwrap().to_rfc3339(),
        "2026-11-23T08:00:00+00:00"
    );
    assert_eq!(records[1].id, "7");
    assert_eq!(records[1].record_type, "webhook");
    assert_eq!(
        records[1].occurred_at.unwrap().timestamp_millis(),
        1_700_000_000_500
    );
    assert_eq!(records[2].occurred_at.unwrap().timestamp(), 1_700_000_000);
    assert_eq!(records[0].metadata["x-other"], "no");
    assert!(!records[0].metadata.contains_key("user-agent"));
}

#[tokio::test]
async fn a_top_level_array_is_a_list_of_items() {
    let harness = configured(serde_json::json!({"default_type": "ping"})).await;
    let response = harness
        .handle_webhook(request(serde_json::json!([{"id": "1"}, {"id": "2"}])))
        .await
        .unwrap();
    let ids: Vec<&str> = response.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(response.records[1].record_type, "ping");
}

#[tokio::test]
async fn malformed_bodies_are_invalid_argument_naming_the_field() {
    let harness = configured(serde_json::json!({"id_field": "data.id", "time_field": "at"})).await;
    let mut not_json = request(serde_json::json!({}));
    not_json.body = b"id=1&x=2".to_vec();
    let status = harness.handle_webhook(not_json).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("not valid JSON"),
        "{}",
        status.message()
    );

    let status = harness
        .handle_webhook(request(serde_json::json!({"data": {}})))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("`data.id`"),
        "{}",
        status.message()
    );

    let status = harness
        .handle_webhook(request(
            serde_json::json!([{"data": {"id": "ok"}}, {"data": {"id": true}}]),
        ))
        .await
        .unwrap_err();
    assert!(status.message().contains("item 1"), "{}", status.message());
    assert!(status.message().contains("boolean"), "{}", status.message());

    let status = harness
        .handle_webhook(request(
            serde_json::json!({"data": {"id": 1}, "at": "yesterday"}),
        ))
        .await
        .unwrap_err();
    assert!(status.message().contains("`at`"), "{}", status.message());
}

#[tokio::test]
async fn a_missing_items_array_is_invalid_argument() {
    let harness = configured(serde_json::json!({"items_field": "items"})).await;
    let status = harness
        .handle_webhook(request(serde_json::json!({"items": {}})))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("not an array"),
        "{}",
        status.message()
    );
    let status = harness
        .handle_webhook(request(serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("no items field `items`"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn rejects_malformed_paths_in_the_config() {
    let harness = TestHarness::start(webhook_json::plugin()).await.unwrap();
    let errors = harness
        .configure(
            serde_json::json!({"id_field": "data..id", "items_field": ".x", "default_type": ""}),
        )
        .await
        .unwrap()
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["id_field", "items_field", "default_type"]);
}
