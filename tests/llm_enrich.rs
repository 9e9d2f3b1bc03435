//! `llm-enrich` under a real hub: records come in through `webhook-json`,
//! pass through `llm-enrich` against a fake Chat Completions server that
//! speaks OpenAI's wire format, and are read back from the records and
//! dead-letters API.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchyard_e2e::{Hub, assert_contains, serve_upstream, wait_for};

/// Generous bound for work on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(60);
/// The key the fake accepts.
const GOOD_KEY: &str = "sk-test-0123456789";
/// The model the plugin is configured with.
const MODEL: &str = "gpt-4o-mini-test";

/// What the fake saw.
#[derive(Default)]
struct Seen {
    /// (user text, when) of every well-formed, authorized request.
    calls: Vec<(String, Instant)>,
    /// Requests that did not match the wire format, with why.
    malformed: Vec<String>,
    /// Requests refused for their key.
    unauthorized: usize,
    /// Texts already answered 429 once.
    limited: Vec<String>,
    /// Calls being answered now, and the most at once.
    in_flight: usize,
    max_in_flight: usize,
}

type Shared = Arc<Mutex<Seen>>;

/// An OpenAI-style error body.
fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

/// What is wrong with a request body, if anything, per OpenAI's reference.
fn malformed(body: &Value) -> Option<String> {
    if body["model"] != MODEL {
        return Some(format!("model is {}", body["model"]));
    }
    let messages = body["messages"].as_array()?;
    if messages.len() != 2
        || messages[0]["role"] != "system"
        || messages[1]["role"] != "user"
        || !messages.iter().all(|m| m["content"].is_string())
    {
        return Some(format!("messages are {}", body["messages"]));
    }
    let format = &body["response_format"];
    let schema = &format["json_schema"];
    if format["type"] != "json_schema"
        || !schema["name"].is_string()
        || schema["strict"] != true
        || schema["schema"]["type"] != "object"
    {
        return Some(format!("response_format is {format}"));
    }
    None
}

/// `POST /v1/chat/completions`, answering like OpenAI.
async fn completions(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let expected = format!("Bearer {GOOD_KEY}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        seen.lock().unwrap().unauthorized += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    if let Some(why) = malformed(&body) {
        seen.lock().unwrap().malformed.push(why.clone());
        return error(StatusCode::BAD_REQUEST, &why, "invalid_request_error", "");
    }
    let text = body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    {
        let mut seen = seen.lock().unwrap();
        seen.calls.push((text.clone(), Instant::now()));
        if text.contains("rate-limit-once") && !seen.limited.contains(&text) {
            seen.limited.push(text);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                "requests",
                "rate_limit_exceeded",
            );
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            return response;
        }
    }
    if text.contains("slow") {
        {
            let mut seen = seen.lock().unwrap();
            seen.in_flight += 1;
            seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        seen.lock().unwrap().in_flight -= 1;
    }
    let content = if text.contains("garbage") {
        "Sure! I think this text is quite positive.".to_owned()
    } else if text.contains("love") {
        json!({"label": "positive", "score": 0.9}).to_string()
    } else {
        json!({"label": "neutral", "score": 0.0}).to_string()
    };
    Json(json!({
        "id": "chatcmpl-e2e", "object": "chat.completion", "created": 1_764_000_000,
        "model": MODEL, "system_fingerprint": "fp_e2e", "service_tier": "default",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": null,
                                 "annotations": []}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
    }))
    .into_response()
}

/// Starts the fake Chat Completions server.
fn fake_openai() -> (String, Shared) {
    let seen = Shared::default();
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen.clone());
    (serve_upstream(router).url, seen)
}

/// A hub with `hook` (webhook-json) feeding `llm` (llm-enrich), with the
/// API key `key` in `LLM_API_KEY`, or with no `api_key_env` at all.
fn hub(base_url: &str, key: Option<&str>) -> Hub {
    let (env, key_line) = match key {
        Some(key) => (
            format!("env = {{ LLM_API_KEY = \"{key}\" }}"),
            "api_key_env = \"LLM_API_KEY\"",
        ),
        None => (String::new(), ""),
    };
    Hub::start(&format!(
        r#"
[plugins.hook]
command = "{{bin:webhook-json}}"
[plugins.hook.webhook]
auth = "none"

[plugins.llm]
command = "{{bin:llm-enrich}}"
{env}
[plugins.llm.retry]
max_attempts = 2
initial_backoff = "10ms"
max_backoff = "50ms"
[plugins.llm.config]
base_url = "{base_url}/v1"
{key_line}
model = "{MODEL}"
concurrency = 2
retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}

[pipeline]
enrich = ["llm"]
"#
    ))
}

/// Waits until the store holds `records` records and `dead` dead letters.
fn settle(hub: &Hub, records: usize, dead: usize) -> (Vec<Value>, Vec<Value>) {
    wait_for(LIMIT, || {
        let stored = hub.get("/api/v1/records").body["records"]
            .as_array()
            .cloned()?;
        let parked = hub.get("/api/v1/dead-letters").body["dead_letters"]
            .as_array()
            .cloned()?;
        (stored.len() >= records && parked.len() >= dead).then_some((stored, parked))
    })
    .unwrap_or_else(|| panic!("the store did not settle; hub log:\n{}", hub.log()))
}

#[test]
fn records_are_enriched_a_garbage_answer_is_dead_lettered_and_a_429_is_retried() {
    let (url, seen) = fake_openai();
    let hub = hub(&url, Some(GOOD_KEY));
    hub.wait_for_state("llm", "running", LIMIT);
    let items = json!([
        {"id": "r-love", "text": "I love this product"},
        {"id": "r-garbage", "text": "garbage answer please"},
        {"id": "r-limited", "text": "rate-limit-once: it is fine"},
    ]);
    let accepted = hub.post("/webhooks/hook", &items);
    assert_eq!(accepted.status, 202, "{}", accepted.text);

    let (records, dead) = settle(&hub, 2, 1);
    let by_id = |id: &str| {
        records
            .iter()
            .find(|record| record["source_id"] == id)
            .unwrap_or_else(|| panic!("record {id} was not stored: {records:#?}"))
            .clone()
    };
    assert_eq!(
        by_id("r-love")["payload"],
        json!({"id": "r-love", "text": "I love this product",
               "llm": {"label": "positive", "score": 0.9}})
    );
    assert_eq!(
        by_id("r-limited")["payload"]["llm"],
        json!({"label": "neutral", "score": 0.0})
    );
    assert_eq!(
        records.len(),
        2,
        "the garbage record is not stored: {records:#?}"
    );

    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["stage"], "enrich");
    assert_eq!(dead[0]["record"]["id"], "r-garbage");
    let message = dead[0]["error"].as_str().unwrap_or_default();
    assert_contains(message, "\"r-garbage\"", "the dead letter's error");
    assert_contains(message, "is not JSON", "the dead letter's error");
    assert_eq!(
        dead[0]["attempts"], 1,
        "a malformed answer is permanent: {dead:#?}"
    );

    let seen = seen.lock().unwrap();
    assert!(
        seen.malformed.is_empty(),
        "requests off the wire format: {:?}",
        seen.malformed
    );
    assert_eq!(seen.unauthorized, 0);
    let limited: Vec<&Instant> = seen
        .calls
        .iter()
        .filter(|(text, _)| text.contains("rate-limit-once"))
        .map(|(_, at)| at)
        .collect();
    assert_eq!(
        limited.len(),
        2,
        "the 429 was retried once: {:?}",
        seen.calls
    );
    assert!(
        limited[1].duration_since(*limited[0]) >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    let garbage = seen
        .calls
        .iter()
        .filter(|(text, _)| text.contains("garbage"))
        .count();
    assert_eq!(garbage, 1, "a malformed answer is not asked again");
}

#[test]
fn a_wrong_api_key_is_a_clear_permanent_error() {
    let (url, seen) = fake_openai();
    let hub = hub(&url, Some("sk-wrong"));
    hub.wait_for_state("llm", "running", LIMIT);
    let accepted = hub.post("/webhooks/hook", &json!({"id": "r-1", "text": "hello"}));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let (_, dead) = settle(&hub, 0, 1);
    let message = dead[0]["error"].as_str().unwrap_or_default();
    assert_contains(message, "refused the API key in `LLM_API_KEY`", "the error");
    assert_contains(message, "401", "the error");
    assert_contains(message, "\"r-1\"", "the error");
    assert!(
        !message.contains("sk-wrong"),
        "the key never shows: {message}"
    );
    assert!(
        !hub.log().contains("sk-wrong"),
        "the key never reaches the log"
    );
    assert_eq!(seen.lock().unwrap().unauthorized, 1, "a 401 is not retried");
}

#[test]
fn a_server_that_wants_a_key_when_none_is_configured_says_so() {
    let (url, seen) = fake_openai();
    let hub = hub(&url, None);
    hub.wait_for_state("llm", "running", LIMIT);
    let accepted = hub.post("/webhooks/hook", &json!({"id": "r-1", "text": "hello"}));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let (_, dead) = settle(&hub, 0, 1);
    let message = dead[0]["error"].as_str().unwrap_or_default();
    assert_contains(message, "wants an API key (401 Unauthorized)", "the error");
    assert_contains(message, "set `api_key_env`", "the error");
    assert_eq!(seen.lock().unwrap().unauthorized, 1);
}

#[test]
fn concurrency_bounds_the_calls_in_flight() {
    let (url, seen) = fake_openai();
    let hub = hub(&url, Some(GOOD_KEY)); // concurrency = 2
    hub.wait_for_state("llm", "running", LIMIT);
    let items: Vec<Value> = (0..8)
        .map(|n| json!({"id": format!("r-{n}"), "text": format!("slow text {n}")}))
        .collect();
    let accepted = hub.post("/webhooks/hook", &Value::Array(items));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let (records, _) = settle(&hub, 8, 0);
    assert_eq!(records.len(), 8);
    let seen = seen.lock().unwrap();
    assert!(
        (1..=2).contains(&seen.max_in_flight),
        "at most `concurrency` calls at once, saw {}",
        seen.max_in_flight
    );
}
