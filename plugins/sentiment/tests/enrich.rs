//! sentiment through the SDK harness.
#![allow(clippy::unwrap_used, missing_docs)]

use switchyard_plugin_sdk::Record;
use switchyard_plugin_sdk::testing::TestHarness;

fn record(id: &str, payload: serde_json::Value) -> Record {
    Record::new(id, "review").with_payload(&payload).unwrap()
}

#[tokio::test]
async fn writes_the_score_into_the_payload() {
    let harness = TestHarness::start(sentiment::plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    let results = harness
        .enrich(vec![
            record(
                "1",
                serde_json::json!({"text": "What a wonderful, amazing day", "n": 1}),
            ),
            record("2", serde_json::json!({"text": "This is not good at all"})),
            record("3", serde_json::json!({"other": "no text field"})),
        ])
        .await
        .unwrap();
    let first = results[0].as_ref().unwrap().payload_json().unwrap();
    assert_eq!(first["n"], 1);
    assert_eq!(first["sentiment"]["score"], 8);
    assert_eq!(first["sentiment"]["label"], "positive");
    assert!((first["sentiment"]["comparative"].as_f64().unwrap() - 1.6).abs() < 1e-9);
    let second = results[1].as_ref().unwrap().payload_json().unwrap();
    assert_eq!(second["sentiment"]["score"], -3);
    assert_eq!(second["sentiment"]["label"], "negative");
    let third = results[2].as_ref().unwrap().payload_json().unwrap();
    assert_eq!(third["sentiment"]["label"], "neutral");
    assert_eq!(results[0].as_ref().unwrap().id, "1");
}

#[tokio::test]
async fn reads_several_nested_fields_and_writes_a_nested_output() {
    let harness = TestHarness::start(sentiment::plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({"text_fields": ["title", "body.text"], "output_field": "analysis.sentiment"}))
        .await
        .unwrap()
        .unwrap();
    let results = harness
        .enrich(vec![record(
            "1",
            serde_json::json!({"title": "Great", "body": {"text": "but slow"}}),
        )])
        .await
        .unwrap();
    let payload = results[0].as_ref().unwrap().payload_json().unwrap();
    assert_eq!(payload["analysis"]["sentiment"]["score"], 1);
}

#[tokio::test]
async fn non_object_payloads_and_non_string_texts_fail_permanently() {
    let harness = TestHarness::start(sentiment::plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    let results = harness
        .enrich(vec![
            record("arr", serde_json::json!(["good"])),
            record("num", serde_json::json!({"text": 5})),
            Record::new("bad", "t").with_payload_bytes("{oops"),
        ])
        .await
        .unwrap();
    let array = results[0].as_ref().unwrap_err();
    assert!(!array.is_retryable());
    assert!(array.message().contains("not a JSON object"), "{array}");
    let number = results[1].as_ref().unwrap_err();
    assert!(number.message().contains("`text`"), "{number}");
    assert!(
        results[2]
            .as_ref()
            .unwrap_err()
            .message()
            .contains("\"bad\"")
    );
}

#[tokio::test]
async fn rejects_bad_paths() {
    let harness = TestHarness::start(sentiment::plugin()).await.unwrap();
    let errors = harness
        .configure(serde_json::json!({"text_fields": ["ok", "a..b"], "output_field": ""}))
        .await
        .unwrap()
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["text_fields.1", "output_field"]);
}
