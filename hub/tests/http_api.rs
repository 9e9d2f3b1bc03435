//! The HTTP API's interfaces over real HTTP against a real hub (the
//! library's `app::run_with_listener`, a fake gRPC plugin, SQLite): every
//! error answers `{"error", "code"}` (fallbacks, rejections, plugin errors),
//! store errors do not leak SQL, and `/metrics` negotiates its format, lists
//! every family from the start and passes `promtool check metrics`.
//!
//! The promtool test needs Debian's `prometheus` package (`promtool` on
//! `PATH`); without it the test is skipped, unless `SWITCHYARD_REQUIRE_ALL`
//! is set, where it fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::Hub;
use serde_json::{Value, json};

const FAKE: &str = "[plugins.fake]\ncommand = \"@FAKE@\"\n";

/// The fake plugin in every role: input (polled and webhooks), enricher and
/// output, so every per-plugin family has series.
const FAKE_EVERY_ROLE: &str = "[plugins.fake]\ncommand = \"@FAKE@\"\n\
    [plugins.fake.poll]\ninterval = \"1h\"\n\
    [plugins.fake.webhook]\nauth = \"none\"\n\
    [plugins.fake.output]\n\
    [pipeline]\nenrich = [\"fake\"]\n";

/// Sends a request and returns the status, the headers and the body as JSON
/// (`Value::Null` when it is not JSON).
async fn send(
    hub: &Hub,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", hub.base));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Asserts the error shape: exactly `error` (a sentence) and `code`.
fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not JSON: {body}"));
    assert_eq!(object.len(), 2, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answers_the_one_shape_with_a_stable_code() {
    let hub = Hub::start(FAKE).await;
    hub.wait_plugin("fake", |p| p["state"] == "running").await;
    use reqwest::Method;

    let (status, _, body) = send(&hub, Method::GET, "/no/such/route", None).await;
    assert_error(status, &body, 404, "route_not_found");
    assert!(body["error"].as_str().unwrap().contains("/no/such/route"));

    let (status, headers, body) = send(&hub, Method::DELETE, "/api/v1/plugins", None).await;
    assert_error(status, &body, 405, "method_not_allowed");
    assert_eq!(headers["allow"], "GET,HEAD", "{headers:?}");
    assert_eq!(headers["content-type"], "application/json");

    let (status, _, body) = send(&hub, Method::GET, "/api/v1/plugins/nope", None).await;
    assert_error(status, &body, 404, "unknown_plugin");
    assert_eq!(body["error"], "there is no plugin named `nope`");

    // A path parameter that is not UTF-8: axum's own rejection, reshaped.
    let (status, _, body) = send(&hub, Method::GET, "/api/v1/plugins/%FF", None).await;
    assert_error(status, &body, 400, "bad_request");

    let (status, _, body) = send(
        &hub,
        Method::POST,
        "/api/v1/plugins/fake/call/enrich",
        Some(r#"{"records": [{"id": "1", "bogus": true}]}"#),
    )
    .await;
    assert_error(status, &body, 400, "bad_request");
    assert!(body["error"].as_str().unwrap().contains("bogus"), "{body}");

    // The plugin's INVALID_ARGUMENT.
    let (status, _, body) = send(
        &hub,
        Method::POST,
        "/api/v1/plugins/fake/call/webhook",
        Some(r#"{"body": "bad"}"#),
    )
    .await;
    assert_error(status, &body, 400, "rejected");

    let (status, _, body) = send(&hub, Method::GET, "/api/v1/records?limit=0", None).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, _, body) = send(&hub, Method::GET, "/api/v1/records?bogus=1", None).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, _, body) = send(&hub, Method::GET, "/api/v1/records/12345", None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, _, body) = send(&hub, Method::GET, "/api/v1/dead-letters/x", None).await;
    assert_error(status, &body, 404, "not_found");

    let (status, _, body) = send(&hub, Method::POST, "/webhooks/nope", Some("{}")).await;
    assert_error(status, &body, 404, "unknown_plugin");

    // After a stop, calls answer 409 not_running.
    let (status, _, _) = send(&hub, Method::POST, "/api/v1/plugins/fake/stop", None).await;
    assert_eq!(status, 200);
    let (status, _, body) = send(
        &hub,
        Method::POST,
        "/api/v1/plugins/fake/call/poll",
        Some("{}"),
    )
    .await;
    assert_error(status, &body, 409, "not_running");

    // Success answers are untouched.
    let (status, _, body) = send(&hub, Method::GET, "/healthz", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_is_logged_but_answered_without_its_sql() {
    let hub = Hub::start("").await;
    let (status, _, body) = send(&hub, reqwest::Method::GET, "/api/v1/records", None).await;
    assert_eq!(status, 200, "{body}");

    // Break the store under the hub's feet.
    let url = format!("sqlite://{}", hub.dir().join("switchyard.db").display());
    let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE records RENAME TO records_gone")
        .execute(&mut connection)
        .await
        .unwrap();

    for path in ["/api/v1/records", "/api/v1/records/1"] {
        let (status, _, body) = send(&hub, reqwest::Method::GET, path, None).await;
        assert_error(status, &body, 500, "internal");
        assert_eq!(body["error"], "internal error, see the hub's log");
        let text = body.to_string();
        assert!(
            !text.contains("records") && !text.contains("table"),
            "{text}"
        );
    }
    hub.shut_down().await;
}

/// Every family of the data path, webhooks and store: listed from the start
/// (with a series at zero for every configured plugin of the right role).
const FAMILIES: &[(&str, &str)] = &[
    ("switchyard_records_in_total", "counter"),
    ("switchyard_records_enriched_total", "counter"),
    ("switchyard_records_enrich_failures_total", "counter"),
    ("switchyard_records_stored_total", "counter"),
    ("switchyard_events_delivered_total", "counter"),
    ("switchyard_output_lag_seconds", "gauge"),
    ("switchyard_output_lag_alert", "gauge"),
    ("switchyard_build_info", "gauge"),
    ("switchyard_dead_letters_total", "counter"),
    ("switchyard_webhook_requests_total", "counter"),
    ("switchyard_webhook_inbox_pending", "gauge"),
    ("switchyard_webhook_deliveries_total", "counter"),
    ("switchyard_store_group_commits_total", "counter"),
    ("switchyard_store_group_commit_jobs", "histogram"),
    ("switchyard_store_group_commit_rows", "histogram"),
    (
        "switchyard_store_group_commit_duration_seconds",
        "histogram",
    ),
    ("switchyard_store_available", "gauge"),
    ("switchyard_store_outages_total", "counter"),
];

async fn scrape(hub: &Hub, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", hub.base));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_negotiate_their_format_and_list_every_family_from_the_start() {
    let hub = Hub::start(FAKE_EVERY_ROLE).await;

    for accept in [None, Some("*/*"), Some("text/plain")] {
        let (content_type, text) = scrape(&hub, accept).await;
        assert_eq!(
            content_type, "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        for (name, kind) in FAMILIES {
            assert!(
                text.contains(&format!("\n# TYPE {name} {kind}\n")),
                "{name} {kind} missing:\n{text}"
            );
            assert!(
                text.contains(&format!("\n# HELP {name} ")),
                "{name}:\n{text}"
            );
        }
    }

    let (content_type, text) = scrape(
        &hub,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    )
    .await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE switchyard_records_stored counter\n"));
    assert!(text.contains("# UNIT switchyard_store_group_commit_duration_seconds seconds\n"));
    hub.shut_down().await;
}

/// `promtool`, or `None` (with the reason printed) when it is missing and
/// `SWITCHYARD_REQUIRE_ALL` is unset.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
        "promtool is missing: install Debian's `prometheus` package (SWITCHYARD_REQUIRE_ALL is set)"
    );
    eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_no_problem_in_the_classic_answer() {
    let Some(promtool) = promtool() else {
        return;
    };
    // A plugin with calls, so plugin series (labels, histograms) are there too.
    let hub = Hub::start(FAKE_EVERY_ROLE).await;
    hub.wait_plugin("fake", |p| p["state"] == "running").await;
    let (status, body) = hub
        .post(
            "/api/v1/plugins/fake/call/enrich",
            json!({"records": [{"id": "1", "payload": {}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (content_type, text) = scrape(&hub, None).await;
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    hub.shut_down().await;
    // The build info: one series, 1, its version that of the crate.
    let build_info: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("switchyard_build_info{"))
        .collect();
    assert_eq!(build_info.len(), 1, "{text}");
    assert!(
        build_info[0].starts_with(&format!(
            "switchyard_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )) && build_info[0].ends_with("} 1"),
        "{}",
        build_info[0]
    );

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics found problems:\n{report}\nin:\n{text}"
    );
}

/// Error bodies are built in one place: no other source file writes one.
#[test]
fn only_http_error_rs_builds_error_bodies() {
    fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let compact: String = text.split_whitespace().collect();
        if compact.contains(r#"json!({"error":"#) {
            assert!(
                path.ends_with("http/error.rs"),
                "{} builds an error body; use http::error::error_response",
                path.display()
            );
        }
    }
}
