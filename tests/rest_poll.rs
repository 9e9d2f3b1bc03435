//! `rest-poll` under a real hub against a local fake paginated API: a
//! 500-page backfill survives a SIGKILL of the hub and resumes at its page,
//! incremental sync picks up an updated item, and a wrong API key fails the
//! start with a named error.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use switchyard_e2e::{Hub, assert_contains, serve_upstream, wait_for};

/// Generous bound for work on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);
/// The key the fake accepts in `x-api-key`.
const KEY: &str = "k-0123456789abcdef";

/// The fake API's state.
#[derive(Default)]
struct Api {
    /// Items in id order: `{"id", "updated", "name"}`.
    items: Vec<Value>,
    /// Every authorized request: (page, updated_since).
    requests: Vec<(u64, Option<i64>)>,
    /// Requests refused for their key.
    refused: usize,
    /// A pause before each answer, so a backfill can be caught mid-way.
    delay: Duration,
    /// Answer this many requests 503 first (an overloaded API).
    unavailable: usize,
}

type Shared = Arc<Mutex<Api>>;

/// `GET /v1/items?page=N&per_page=K[&updated_since=U]`: the items updated
/// after `updated_since`, in id order, one page of them; `{"data": [...]}`.
async fn items(
    State(api): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        api.lock().unwrap().refused += 1;
        let body = json!({"error": "invalid api key"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    {
        let mut api = api.lock().unwrap();
        if api.unavailable > 0 {
            api.unavailable -= 1;
            let body = json!({"error": "overloaded"});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    }
    let page: u64 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10);
    let since: Option<i64> = query.get("updated_since").and_then(|p| p.parse().ok());
    let delay = {
        let mut api = api.lock().unwrap();
        api.requests.push((page, since));
        api.delay
    };
    tokio::time::sleep(delay).await;
    let api = api.lock().unwrap();
    let start = (page.saturating_sub(1) as usize) * per_page;
    let data: Vec<Value> = api
        .items
        .iter()
        .filter(|item| since.is_none_or(|since| item["updated"].as_i64().unwrap_or(0) > since))
        .skip(start)
        .take(per_page)
        .cloned()
        .collect();
    Json(json!({"data": data, "page": page})).into_response()
}

/// A fake API holding `count` items, `item-00001`… with `updated` = their number.
fn fake_api(count: usize, delay: Duration) -> (String, Shared) {
    let api = Shared::default();
    {
        let mut state = api.lock().unwrap();
        state.delay = delay;
        state.items = (1..=count)
            .map(|n| json!({"id": format!("item-{n:05}"), "updated": n, "name": format!("n{n}")}))
            .collect();
    }
    let router = axum::Router::new()
        .route("/v1/items", get(items))
        .with_state(api.clone());
    (serve_upstream(router).url, api)
}

/// The `[plugins.api]` tables: rest-poll over the fake, pages of `page_size`.
fn plugins(url: &str, key: &str, page_size: usize, interval: &str) -> String {
    format!(
        r#"
[plugins.api]
command = "{{bin:rest-poll}}"
env = {{ API_KEY = "{key}", E2E_MARKER = "{{marker}}.api" }}
[plugins.api.poll]
interval = "{interval}"
[plugins.api.retry]
max_attempts = 5
initial_backoff = "50ms"
max_backoff = "200ms"
[plugins.api.config]
url = "{url}/v1/items"
type = "item"
records_path = "/data"
updated_field = "updated"
updated_param = "updated_since"
auth = {{ kind = "api_key", header = "x-api-key", key_env = "API_KEY" }}
pagination = {{ kind = "page", page_param = "page", size_param = "per_page", page_size = {page_size} }}
retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}
"#
    )
}

/// Every stored record (up to 1000).
fn stored(hub: &Hub) -> Vec<Value> {
    hub.get("/api/v1/records?limit=1000").body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_backfill_killed_mid_way_resumes_at_its_page_and_stores_every_item_once() {
    const ITEMS: usize = 1000; // 500 pages of 2
    let (url, api) = fake_api(ITEMS, Duration::from_millis(5));
    let db_dir = tempfile::tempdir().unwrap();
    let database = format!(
        "database = \"sqlite://{}\"",
        db_dir.path().join("switchyard.db").display()
    );
    let config = plugins(&url, KEY, 2, "1h");

    let mut first = Hub::builder(&config).hub_setting(&database).start();
    wait_for(LIMIT, || {
        (api.lock().unwrap().requests.len() >= 150).then_some(())
    })
    .unwrap_or_else(|| panic!("the backfill did not get going:\n{}", first.log()));
    first.signal(Signal::SIGKILL);
    assert!(first.wait_exit(LIMIT).is_some(), "the hub died");
    let marker = first.plugin_marker("api");
    wait_for(LIMIT, || {
        switchyard_e2e::processes_with_marker(&marker)
            .is_empty()
            .then_some(())
    })
    .expect("the plugin died with its hub");
    let before = api.lock().unwrap().requests.len();
    let reached = api
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(page, _)| *page)
        .max()
        .unwrap();
    assert!(reached < 500, "killed mid-way, at page {reached}");

    let second = Hub::builder(&config).hub_setting(&database).start();
    let records = wait_for(LIMIT, || {
        let records = stored(&second);
        (records.len() >= ITEMS).then_some(records)
    })
    .unwrap_or_else(|| panic!("the backfill did not finish:\n{}", second.log()));
    assert_eq!(records.len(), ITEMS);
    let ids: BTreeSet<&str> = records
        .iter()
        .map(|record| record["source_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), ITEMS, "every item once");
    assert!(ids.contains("item-00001") && ids.contains("item-01000"));
    assert!(
        records
            .iter()
            .all(|record| record["version"] == 1 && record["type"] == "item"),
        "no item was stored twice"
    );

    let requests = api.lock().unwrap().requests.clone();
    let after: Vec<u64> = requests[before..].iter().map(|(page, _)| *page).collect();
    assert_eq!(
        after[0], 1,
        "the start check reads the first page: {after:?}"
    );
    let resumed_at = after[1];
    assert!(
        resumed_at > 1 && resumed_at <= reached + 1,
        "the walk resumed at its page (reached {reached}), not at the start: {after:?}"
    );
    assert_eq!(
        after[1..].to_vec(),
        (resumed_at..=501).collect::<Vec<_>>(),
        "then every later page once, to the empty page 501"
    );
}

#[test]
fn incremental_sync_takes_only_newer_items() {
    let (url, api) = fake_api(5, Duration::ZERO);
    let hub = Hub::start(&plugins(&url, KEY, 2, "200ms"));
    wait_for(LIMIT, || (stored(&hub).len() == 5).then_some(()))
        .unwrap_or_else(|| panic!("the first sync did not finish:\n{}", hub.log()));
    wait_for(LIMIT, || {
        let api = api.lock().unwrap();
        api.requests
            .iter()
            .any(|(_, since)| *since == Some(5))
            .then_some(())
    })
    .expect("later polls send the high-water mark as updated_since");

    {
        let mut api = api.lock().unwrap();
        api.items[1] = json!({"id": "item-00002", "updated": 6, "name": "renamed"});
    }
    let updated = wait_for(LIMIT, || {
        stored(&hub)
            .into_iter()
            .find(|record| record["source_id"] == "item-00002" && record["version"] == 2)
    })
    .unwrap_or_else(|| panic!("the update was not picked up:\n{}", hub.log()));
    assert_eq!(updated["payload"]["name"], "renamed");
    wait_for(LIMIT, || {
        let api = api.lock().unwrap();
        api.requests
            .iter()
            .any(|(_, since)| *since == Some(6))
            .then_some(())
    })
    .expect("the mark moved to 6");
    let records = stored(&hub);
    assert_eq!(records.len(), 5, "no new record for an update");
    for record in &records {
        let expected = if record["source_id"] == "item-00002" {
            2
        } else {
            1
        };
        assert_eq!(record["version"], expected, "{record}");
    }
}

#[test]
fn a_wrong_api_key_fails_the_plugin_after_its_restart_policy_with_a_named_error() {
    let (url, api) = fake_api(3, Duration::ZERO);
    let config = plugins(&url, "k-wrong-key", 2, "1h").replace(
        "[plugins.api.poll]",
        "[plugins.api.restart]\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\"\nmax_restarts = 2\n[plugins.api.poll]",
    );
    let hub = Hub::start(&config);
    let failed = hub.wait_for_state("api", "failed", LIMIT);
    assert_eq!(
        failed["restarts"], 2,
        "failed only after the restart policy: {failed:#}"
    );
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert_contains(error, "auth", "last_error");
    assert_contains(
        error,
        "refused the credential (auth kind `api_key`)",
        "last_error",
    );
    assert_contains(error, "401", "last_error");
    assert!(
        !error.contains("k-wrong-key"),
        "no secret in the error: {error}"
    );
    assert!(!hub.log().contains("k-wrong-key"), "no secret in the log");
    let api = api.lock().unwrap();
    assert_eq!(
        api.refused, 3,
        "one start check per start: the first and two restarts (a 401 is not retried within a call)"
    );
    assert!(api.requests.is_empty());
}

#[test]
fn an_api_unavailable_at_start_is_retried_not_failed() {
    let (url, api) = fake_api(3, Duration::ZERO);
    // Three 503s: the start check's three attempts (retry.max_attempts = 3).
    api.lock().unwrap().unavailable = 3;
    let config = plugins(&url, KEY, 2, "1h").replace(
        "[plugins.api.poll]",
        "[plugins.api.restart]\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n[plugins.api.poll]",
    );
    let hub = Hub::start(&config);
    let records = wait_for(LIMIT, || {
        let plugin = hub.plugin("api");
        assert_ne!(
            plugin["state"], "failed",
            "a 503 at start is not `failed`: {plugin:#}"
        );
        let records = stored(&hub);
        (records.len() == 3).then_some(records)
    })
    .unwrap_or_else(|| panic!("the plugin never got going:\n{}", hub.log()));
    assert_eq!(records.len(), 3);
    let plugin = hub.plugin("api");
    assert_eq!(plugin["state"], "running");
    assert!(
        plugin["restarts"].as_u64().unwrap_or(0) >= 1,
        "restarted after the 503s: {plugin:#}"
    );
}
