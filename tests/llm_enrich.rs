//! `llm-enrich` under a real hub: records come in through `webhook-json`,
//! pass through `llm-enrich` against a fake Chat Completions server that
//! speaks OpenAI's wire format (`hub/tests/fakes/openai.rs`, shared with
//! the hub's tests), and are read back from the records and dead-letters API.

#![allow(clippy::unwrap_used)]

#[path = "../hub/tests/fakes/openai.rs"]
mod fake_openai;

use std::time::{Duration, Instant};

use fake_openai::FakeOpenAi;
use serde_json::{Value, json};
use switchyard_e2e::{Hub, assert_contains, wait_for};

/// Generous bound for work on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(60);
/// The key the fake accepts.
const GOOD_KEY: &str = "sk-test-0123456789";
/// The model the plugin is configured with.
const MODEL: &str = "gpt-4o-mini-test";

/// A hub with `hook` (webhook-json) feeding `llm` (llm-enrich), with the
/// API key `key` in `LLM_API_KEY`, or with no `api_key_env` at all.
fn hub(base_url: &str, key: Option<&str>) -> Hub {
    hub_with(base_url, key, "")
}

/// `hub` with extra lines at the end of `[plugins.llm.config]` and, for
/// `[plugins.llm.restart]`, an extra table.
fn hub_with(base_url: &str, key: Option<&str>, extra: &str) -> Hub {
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
{extra}

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
    let openai = FakeOpenAi::start(GOOD_KEY, MODEL);
    let hub = hub(&openai.base, Some(GOOD_KEY));
    hub.wait_for_state("llm", "running", LIMIT);
    assert_eq!(
        openai.seen().models_listed,
        1,
        "the key was checked at start"
    );
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

    let seen = openai.seen();
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
    let openai = FakeOpenAi::start(GOOD_KEY, MODEL);
    // Without the start check, so that the key is refused per record.
    let hub = hub_with(&openai.base, Some("sk-wrong"), "check_on_start = false");
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
    assert_eq!(openai.seen().unauthorized, 1, "a 401 is not retried");
}

#[test]
fn a_server_that_wants_a_key_when_none_is_configured_says_so() {
    let openai = FakeOpenAi::start(GOOD_KEY, MODEL);
    let hub = hub_with(&openai.base, None, "check_on_start = false");
    hub.wait_for_state("llm", "running", LIMIT);
    let accepted = hub.post("/webhooks/hook", &json!({"id": "r-1", "text": "hello"}));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let (_, dead) = settle(&hub, 0, 1);
    let message = dead[0]["error"].as_str().unwrap_or_default();
    assert_contains(message, "wants an API key (401 Unauthorized)", "the error");
    assert_contains(message, "set `api_key_env`", "the error");
    assert_eq!(openai.seen().unauthorized, 1);
}

#[test]
fn a_key_refused_at_start_fails_the_plugin_only_after_its_restart_policy() {
    let openai = FakeOpenAi::start(GOOD_KEY, MODEL);
    let restart = "\n[plugins.llm.restart]\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\"\nmax_restarts = 2";
    let hub = hub_with(&openai.base, Some("sk-wrong"), restart);
    let failed = hub.wait_for_state("llm", "failed", LIMIT);
    assert_eq!(
        failed["restarts"], 2,
        "failed only after the restart policy: {failed:#}"
    );
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert_contains(error, "api_key_env", "last_error");
    assert_contains(error, "refused the API key in `LLM_API_KEY`", "last_error");
    assert_contains(error, "401", "last_error");
    assert!(!error.contains("sk-wrong"), "the key never shows: {error}");
    assert!(
        !hub.log().contains("sk-wrong"),
        "the key never reaches the log"
    );
    let seen = openai.seen();
    assert_eq!(
        seen.models_unauthorized, 3,
        "one check per start: the first and two restarts"
    );
    assert_eq!(
        seen.calls.len() + seen.unauthorized,
        0,
        "no record was sent to the model"
    );
}

#[test]
fn concurrency_bounds_the_calls_in_flight() {
    let openai = FakeOpenAi::start(GOOD_KEY, MODEL);
    let hub = hub(&openai.base, Some(GOOD_KEY)); // concurrency = 2
    hub.wait_for_state("llm", "running", LIMIT);
    let items: Vec<Value> = (0..8)
        .map(|n| json!({"id": format!("r-{n}"), "text": format!("slow text {n}")}))
        .collect();
    let accepted = hub.post("/webhooks/hook", &Value::Array(items));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let (records, _) = settle(&hub, 8, 0);
    assert_eq!(records.len(), 8);
    let seen = openai.seen();
    assert!(
        (1..=2).contains(&seen.max_in_flight),
        "at most `concurrency` calls at once, saw {}",
        seen.max_in_flight
    );
}
