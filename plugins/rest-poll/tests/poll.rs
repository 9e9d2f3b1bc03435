//! rest-poll through the SDK's in-process harness against a local fake API:
//! a `POST` search with a JSON body, cursor pagination, ids by JSON Pointer,
//! the top-level `records_path`, checkpoints and bad items.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use switchyard_plugin_sdk::testing::TestHarness;

/// The bodies the fake received.
type Bodies = Arc<Mutex<Vec<Value>>>;

/// `POST /search?cursor=C`: five items in pages of two; the cursor is the
/// next index; `{"results": [...], "next": "2" | null}`. An item with
/// `"broken": true` in the body's filter comes without an id.
async fn search(
    State(bodies): State<Bodies>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    bodies.lock().unwrap().push(body.clone());
    let start: usize = query
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let results: Vec<Value> = (start..(start + 2).min(5))
        .map(|n| {
            if body["broken"] == true {
                json!({"meta": {}, "n": n})
            } else {
                json!({"meta": {"uuid": format!("u-{n}")}, "n": n})
            }
        })
        .collect();
    let next = (start + 2 < 5).then(|| (start + 2).to_string());
    Json(json!({"results": results, "next": next}))
}

async fn fake() -> (String, Bodies) {
    let bodies = Bodies::default();
    let router = axum::Router::new()
        .route("/search", axum::routing::post(search))
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    (url, bodies)
}

fn config(url: &str, body: Value) -> Value {
    json!({
        "url": format!("{url}/search"),
        "method": "POST",
        "body": body,
        "type": "hit",
        "id_field": "/meta/uuid",
        "records_path": "/results",
        "pagination": {"kind": "cursor", "cursor_param": "cursor", "cursor_path": "/next"},
    })
}

#[tokio::test]
async fn a_post_search_is_paged_by_cursor_with_ids_by_pointer() {
    let (url, bodies) = fake().await;
    let harness = TestHarness::start(rest_poll::plugin()).await.unwrap();
    harness
        .configure(config(&url, json!({"query": "open"})))
        .await
        .unwrap()
        .unwrap();
    let output = harness.poll(None).await.unwrap();
    let ids: Vec<&str> = output.records().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["u-0", "u-1", "u-2", "u-3", "u-4"]);
    assert!(output.records().iter().all(|r| r.record_type == "hit"));
    assert_eq!(output.batches.len(), 3, "one batch per page");
    assert!(
        bodies
            .lock()
            .unwrap()
            .iter()
            .all(|b| *b == json!({"query": "open"})),
        "every page carries the body"
    );
    let checkpoint: Value = serde_json::from_slice(output.last_checkpoint().unwrap()).unwrap();
    assert_eq!(checkpoint["position"], Value::Null, "the walk completed");

    // Resuming from the first page's checkpoint reads only the rest.
    let first: Value =
        serde_json::from_slice(output.batches[0].checkpoint.as_deref().unwrap()).unwrap();
    assert_eq!(first["position"], json!({"kind": "cursor", "cursor": "2"}));
    let resumed = harness
        .poll(output.batches[0].checkpoint.as_deref())
        .await
        .unwrap();
    let ids: Vec<&str> = resumed.records().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["u-2", "u-3", "u-4"]);
}

#[tokio::test]
async fn an_item_without_an_id_fails_the_poll_naming_the_field() {
    let (url, _) = fake().await;
    let harness = TestHarness::start(rest_poll::plugin()).await.unwrap();
    let mut config = config(&url, json!({"broken": true}));
    config["check_on_start"] = json!(false);
    harness.configure(config).await.unwrap().unwrap();
    let status = harness.poll(None).await.unwrap_err();
    assert!(
        status.message().contains("no usable id at `/meta/uuid`"),
        "{status:?}"
    );
}

#[tokio::test]
async fn bad_keys_are_named() {
    let harness = TestHarness::start(rest_poll::plugin()).await.unwrap();
    let errors = harness
        .configure(json!({
            "url": "not a url", "method": "PUT", "type": "", "records_path": "data",
            "updated_param": "since", "check_on_start": false,
            "pagination": {"kind": "offset", "page_size": 0},
            "auth": {"kind": "bearer", "token_env": "REST_POLL_TEST_SURELY_UNSET"},
        }))
        .await
        .unwrap()
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for field in [
        "url",
        "method",
        "type",
        "records_path",
        "updated_param",
        "auth.token_env",
    ] {
        assert!(fields.contains(&field), "{field} in {errors:?}");
    }
    assert!(
        fields.iter().any(|f| f.starts_with("pagination.")),
        "{errors:?}"
    );
}
