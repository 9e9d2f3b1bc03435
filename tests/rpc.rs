//! The four role RPCs, end to end through the hub's call endpoints: polling
//! with checkpoints, webhooks, pipelined enrichment and output events, using
//! the `testkit` plugin and the real `sentiment` and `jsonl-output` plugins.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use switchyard_e2e::{Hub, JsonResponse, record};

/// Generous bound for a plugin to start on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A testkit instance called `name` with the given `config` table body.
fn testkit(name: &str, config: &str) -> String {
    format!(
        r#"
[plugins.{name}]
command = "{{bin:testkit}}"
args = ["--e2e-marker", "{{marker}}.{name}"]
env = {{ E2E_MARKER = "{{marker}}.{name}" }}

[plugins.{name}.config]
{config}
"#
    )
}

/// Starts a hub and waits until every plugin in `names` is running.
fn start(config: &str, names: &[&str]) -> Hub {
    let hub = Hub::start(config);
    for name in names {
        hub.wait_for_state(name, "running", START_TIMEOUT);
    }
    hub
}

/// Asserts a 200 answer and returns its body.
#[track_caller]
fn ok(response: JsonResponse) -> Value {
    assert_eq!(
        response.status, 200,
        "expected 200, got {}: {}",
        response.status, response.text
    );
    response.body
}

/// Asserts an error answer with `status` and an `{"error": "..."}` body.
#[track_caller]
fn error(response: JsonResponse, status: u16) -> String {
    assert_eq!(
        response.status, status,
        "expected {status}, got {}: {}",
        response.status, response.text
    );
    let message = response.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body is {{\"error\": ...}}: {}", response.text));
    assert!(!message.is_empty(), "the error message is empty");
    message.to_owned()
}

/// Decodes a base64 checkpoint (padded or not) to text.
fn checkpoint_text(checkpoint: &Value) -> String {
    let encoded = checkpoint
        .as_str()
        .unwrap_or_else(|| panic!("checkpoint is not a base64 string: {checkpoint}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .unwrap_or_else(|err| panic!("checkpoint {encoded:?} is not base64: {err}"));
    String::from_utf8(bytes).unwrap()
}

/// The record ids of every batch, as integers, and each batch's checkpoint.
fn poll_summary(body: &Value) -> (Vec<Vec<u64>>, Vec<String>) {
    let batches = body["batches"]
        .as_array()
        .unwrap_or_else(|| panic!("no batches: {body:#}"));
    let ids = batches
        .iter()
        .map(|batch| {
            batch["records"]
                .as_array()
                .unwrap_or_else(|| panic!("batch without records: {batch:#}"))
                .iter()
                .map(|record| {
                    let id = record["id"].as_str().unwrap();
                    id.parse()
                        .unwrap_or_else(|_| panic!("testkit ids are numbers, got {id:?}"))
                })
                .collect()
        })
        .collect();
    let checkpoints = batches
        .iter()
        .map(|batch| checkpoint_text(&batch["checkpoint"]))
        .collect();
    (ids, checkpoints)
}

#[test]
fn poll_returns_batches_with_checkpoints_and_resumes_from_one() {
    let hub = start(&testkit("kit", "tag = \"kit\""), &["kit"]);
    let first = ok(hub.call(
        "kit",
        "poll",
        &json!({"checkpoint": null, "max_records": 0}),
    ));
    let (ids, checkpoints) = poll_summary(&first);
    assert_eq!(ids.len(), 2, "two batches by default: {first:#}");
    assert!(ids.iter().all(|batch| batch.len() == 3), "{first:#}");
    assert_eq!(checkpoints, vec!["3", "6"]);
    let flat: Vec<u64> = ids.concat();
    assert!(
        flat.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "ids are consecutive: {flat:?}"
    );

    // Polling again from the last checkpoint continues the ids.
    let last_checkpoint = first["batches"][1]["checkpoint"].clone();
    let second = ok(hub.call(
        "kit",
        "poll",
        &json!({"checkpoint": last_checkpoint, "max_records": 0}),
    ));
    let (ids, checkpoints) = poll_summary(&second);
    assert_eq!(checkpoints, vec!["9", "12"]);
    let next: Vec<u64> = ids.concat();
    assert_eq!(next.len(), 6);
    assert_eq!(next[0], flat[5] + 1, "the second poll continues the ids");
    assert_eq!(flat[0], 0, "testkit counts from 0 without a checkpoint");
    assert!(next.windows(2).all(|pair| pair[1] == pair[0] + 1));
}

#[test]
fn poll_follows_the_plugins_batch_configuration() {
    let hub = start(
        &testkit("kit", "poll_batches = 3\nrecords_per_batch = 2"),
        &["kit"],
    );
    let body = ok(hub.call(
        "kit",
        "poll",
        &json!({"checkpoint": null, "max_records": 0}),
    ));
    let (ids, checkpoints) = poll_summary(&body);
    assert_eq!(ids.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2]);
    assert_eq!(checkpoints, vec!["2", "4", "6"]);
}

fn webhook_request(body: &str) -> Value {
    json!({
        "method": "POST",
        "path": "/webhooks/kit",
        "query": "",
        "headers": [["content-type", "application/json"]],
        "body": body,
    })
}

fn record_ids(records: &Value) -> Vec<String> {
    records
        .as_array()
        .unwrap_or_else(|| panic!("records is not an array: {records:#}"))
        .iter()
        .map(|record| record["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn webhook_bodies_become_records_and_bad_bodies_are_400() {
    let hub = start(&testkit("kit", "tag = \"kit\""), &["kit"]);
    let one = ok(hub.call(
        "kit",
        "webhook",
        &webhook_request(r#"{"id": "w-1", "text": "hello"}"#),
    ));
    assert_eq!(record_ids(&one["records"]), vec!["w-1"]);
    assert_eq!(one["reply"], Value::Null, "no reply without a challenge");
    assert_eq!(
        one["records"][0]["payload"],
        json!({"id": "w-1", "text": "hello"}),
        "testkit keeps the object as the payload"
    );
    let delivery = one["records"][0]["metadata"]["delivery_id"]
        .as_str()
        .unwrap_or_default();
    assert!(
        delivery.starts_with("manual-"),
        "the hub assigns manual-<ms>-<n> delivery ids, testkit echoes it: {one:#}"
    );

    let many = ok(hub.call(
        "kit",
        "webhook",
        &webhook_request(r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#),
    ));
    assert_eq!(record_ids(&many["records"]), vec!["a", "b", "c"]);

    error(
        hub.call("kit", "webhook", &webhook_request("this is not JSON")),
        400,
    );
    // The hub still works after a plugin said INVALID_ARGUMENT.
    ok(hub.call("kit", "webhook", &webhook_request(r#"{"id": "w-2"}"#)));
}

#[test]
fn a_webhook_challenge_gets_the_plugins_reply() {
    let hub = start(&testkit("kit", "tag = \"kit\""), &["kit"]);
    let body = ok(hub.call(
        "kit",
        "webhook",
        &webhook_request(r#"{"challenge": "c-42"}"#),
    ));
    assert_eq!(body["records"], json!([]), "a challenge carries no records");
    let reply = &body["reply"];
    assert_eq!(reply["status"], 200, "{body:#}");
    assert_eq!(reply["body"], "c-42", "{body:#}");
    let headers = reply["headers"].as_array().unwrap();
    assert!(
        headers.iter().any(|header| header[0]
            .as_str()
            .is_some_and(|name| name.eq_ignore_ascii_case("content-type"))
            && header[1] == "text/plain"),
        "the reply keeps the plugin's content type: {body:#}"
    );
}

#[test]
fn enrich_answers_many_records_on_one_stream_in_input_order() {
    let hub = start(
        &testkit("kit", "tag = \"kit\"\nfail_ids = [\"r-7\", \"r-23\"]"),
        &["kit"],
    );
    let records: Vec<Value> = (0..40)
        .map(|i| record(&format!("r-{i}"), json!({"n": i})))
        .collect();
    let body = ok(hub.call("kit", "enrich", &json!({ "records": records })));
    let results = body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {body:#}"));
    assert_eq!(results.len(), 40, "one result per record");
    for (i, result) in results.iter().enumerate() {
        let id = format!("r-{i}");
        if id == "r-7" || id == "r-23" {
            let failure = &result["failure"];
            assert_eq!(failure["retryable"], false, "{id}: {result:#}");
            assert_eq!(failure["code"], "fail_ids", "{id}: {result:#}");
            assert!(
                failure["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{id}: {result:#}"
            );
            assert!(
                result.get("record").is_none_or(Value::is_null),
                "{result:#}"
            );
        } else {
            let enriched = &result["record"];
            assert_eq!(enriched["id"], id.as_str(), "results are in input order");
            assert_eq!(enriched["metadata"]["chain"], "kit", "{result:#}");
            assert_eq!(enriched["payload"], json!({"n": i}), "payload kept");
            assert_eq!(enriched["source"], "e2e", "source kept");
        }
    }
}

#[test]
fn enrich_chains_through_two_instances() {
    let config = format!(
        "{}{}",
        testkit("step-a", "tag = \"a\""),
        testkit("step-b", "tag = \"b\"")
    );
    let hub = start(&config, &["step-a", "step-b"]);
    let input = record("chained", json!({"text": "x"}));
    let after_a = ok(hub.call("step-a", "enrich", &json!({"records": [input]})));
    let record_a = after_a["results"][0]["record"].clone();
    assert_eq!(record_a["metadata"]["chain"], "a", "{after_a:#}");
    let after_b = ok(hub.call("step-b", "enrich", &json!({"records": [record_a]})));
    assert_eq!(
        after_b["results"][0]["record"]["metadata"]["chain"], "a,b",
        "{after_b:#}"
    );
}

#[test]
fn events_are_acked_and_nacked_in_order() {
    let hub = start(
        &testkit("kit", "nack_ids = [\"e-2\"]\nretry_ids = [\"e-4\"]"),
        &["kit"],
    );
    let events: Vec<Value> = (1..=5)
        .map(|i| {
            json!({
                "kind": if i % 2 == 0 { "updated" } else { "created" },
                "record": record(&format!("e-{i}"), json!({"n": i})),
            })
        })
        .collect();
    let body = ok(hub.call("kit", "events", &json!({ "events": events })));
    let acks = body["acks"]
        .as_array()
        .unwrap_or_else(|| panic!("no acks: {body:#}"));
    assert_eq!(acks.len(), 5);
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack["delivery_id"], i as u64 + 1, "acks in input order");
    }
    for i in [0, 2, 4] {
        assert_eq!(acks[i]["ok"], true, "{:#}", acks[i]);
    }
    assert_eq!(acks[1]["ok"], false);
    assert_eq!(acks[1]["failure"]["retryable"], false, "{:#}", acks[1]);
    assert_eq!(acks[3]["ok"], false);
    assert_eq!(acks[3]["failure"]["retryable"], true, "{:#}", acks[3]);
    assert_eq!(acks[3]["failure"]["retry_after_ms"], 100, "{:#}", acks[3]);
    assert_eq!(acks[3]["failure"]["code"], "retry_ids", "{:#}", acks[3]);
    assert_eq!(acks[1]["failure"]["code"], "nack_ids", "{:#}", acks[1]);
}

#[test]
fn calls_to_missing_stopped_or_malformed_targets_are_clean_errors() {
    let config = format!(
        "{}{}",
        testkit("kit", "tag = \"kit\""),
        r#"
[plugins.dead]
command = "{bin:misbehave}"
args = ["exit-now", "--e2e-marker", "{marker}.dead"]
env = { E2E_MARKER = "{marker}.dead" }

[plugins.dead.restart]
policy = "never"
"#
    );
    let hub = start(&config, &["kit"]);
    hub.wait_for_state("dead", "stopped", START_TIMEOUT);
    let one = json!({"records": [record("x", json!(null))]});
    error(hub.call("no-such-plugin", "enrich", &one), 404);
    error(hub.call("dead", "enrich", &one), 409);
    error(
        hub.post_raw(
            "/api/v1/plugins/kit/call/enrich",
            "application/json",
            "{not json",
        ),
        400,
    );
    error(
        hub.call("kit", "enrich", &json!({"records": [{"no_id": true}]})),
        400,
    );
    // The plugin keeps working after all that.
    let body = ok(hub.call("kit", "enrich", &one));
    assert_eq!(body["results"][0]["record"]["id"], "x");
}

#[test]
fn sentiment_scores_text_positive_or_negative() {
    let config = r#"
[plugins.mood]
command = "{bin:sentiment}"
args = ["--e2e-marker", "{marker}.mood"]
env = { E2E_MARKER = "{marker}.mood" }
"#;
    let hub = start(config, &["mood"]);
    let records = json!([
        record("happy", json!({"text": "I love this, it is great"})),
        record(
            "sad",
            json!({"text": "I hate this, it is terrible and awful"})
        ),
    ]);
    let body = ok(hub.call("mood", "enrich", &json!({ "records": records })));
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{body:#}");
    for (result, (id, text, label)) in results.iter().zip([
        ("happy", "I love this, it is great", "positive"),
        ("sad", "I hate this, it is terrible and awful", "negative"),
    ]) {
        let enriched = &result["record"];
        assert_eq!(enriched["id"], id, "{body:#}");
        let payload = &enriched["payload"];
        assert_eq!(payload["text"], text, "the text is kept: {body:#}");
        let sentiment = &payload["sentiment"];
        assert_eq!(sentiment["label"], label, "{id}: {body:#}");
        let score = sentiment["score"].as_f64().unwrap_or(0.0);
        let expected_sign = if label == "positive" { 1.0 } else { -1.0 };
        assert!(score * expected_sign > 0.0, "{id}: score {score}");
    }
}

#[test]
fn jsonl_output_appends_one_line_per_acked_event() {
    let config = r#"
[plugins.sink]
command = "{bin:jsonl-output}"
args = ["--e2e-marker", "{marker}.sink"]
env = { E2E_MARKER = "{marker}.sink" }

[plugins.sink.config]
path = "{dir}/out.jsonl"
"#;
    let hub = start(config, &["sink"]);
    let events: Vec<Value> = (1..=3)
        .map(|i| {
            json!({
                "kind": "created",
                "record": record(&format!("out-{i}"), json!({"n": i})),
            })
        })
        .collect();
    let body = ok(hub.call("sink", "events", &json!({ "events": events })));
    let acks = body["acks"].as_array().unwrap();
    assert_eq!(acks.len(), 3, "{body:#}");
    assert!(acks.iter().all(|ack| ack["ok"] == true), "{body:#}");

    // Acked means durable: the lines are in the file once the call returns.
    let path = hub.dir().join("out.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{} was not written before the ack: {err}", path.display()));
    let lines: Vec<Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("line is not JSON ({err}): {line}"))
        })
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(line["delivery_id"], n, "{line}");
        assert_eq!(line["kind"], "created", "{line}");
        assert_eq!(
            line["attempt"], 1,
            "the first delivery is attempt 1: {line}"
        );
        assert_eq!(line["record"]["id"], format!("out-{n}"), "{line}");
        assert_eq!(line["record"]["payload"], json!({"n": n}), "{line}");
    }
}

#[test]
fn a_call_the_plugin_does_not_answer_within_its_attempt_timeout_is_504() {
    // docs/admin-api.md: 504 when the plugin did not answer within the retry
    // policy's per-attempt `timeout`. One attempt of 2 s keeps the test short;
    // the default (5 attempts of 30 s) behaves the same, only slower.
    let config = format!(
        "{}\n[plugins.slowpoke.retry]\nmax_attempts = 1\ntimeout = \"2s\"\n",
        testkit("slowpoke", "event_delay_ms = 20000")
    );
    let hub = start(&config, &["slowpoke"]);
    let events = json!({"events": [{"kind": "created", "record": record("late", json!(1))}]});
    let message = error(hub.call("slowpoke", "events", &events), 504);
    assert!(message.contains("slowpoke"), "{message}");
    // The hub and the plugin still answer other calls.
    assert_eq!(hub.get("/healthz").status, 200);
    let body = ok(hub.call(
        "slowpoke",
        "enrich",
        &json!({"records": [record("on-time", json!(1))]}),
    ));
    assert_eq!(body["results"][0]["record"]["id"], "on-time");
}

#[test]
fn calling_a_role_the_plugin_does_not_serve_is_409() {
    let config = r#"
[plugins.mood]
command = "{bin:sentiment}"
args = ["--e2e-marker", "{marker}.mood"]
env = { E2E_MARKER = "{marker}.mood" }
"#;
    let hub = start(config, &["mood"]);
    // sentiment is an enricher only: it serves no Poll, webhook or output.
    error(hub.call("mood", "poll", &json!({"checkpoint": null})), 409);
    error(hub.call("mood", "webhook", &webhook_request("{}")), 409);
    error(hub.call("mood", "events", &json!({"events": []})), 409);
}

#[test]
fn generator_polls_deterministic_batches_up_to_its_total() {
    let config = r#"
[plugins.gen]
command = "{bin:generator}"
args = ["--e2e-marker", "{marker}.gen"]
env = { E2E_MARKER = "{marker}.gen" }

[plugins.gen.config]
records_per_poll = 5
batch_size = 2
total = 7
"#;
    let hub = start(config, &["gen"]);
    let first = ok(hub.call(
        "gen",
        "poll",
        &json!({"checkpoint": null, "max_records": 0}),
    ));
    let (ids, checkpoints) = poll_summary(&first);
    assert_eq!(ids, vec![vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(checkpoints, vec!["2", "4", "5"]);

    let resume = first["batches"][2]["checkpoint"].clone();
    let second = ok(hub.call(
        "gen",
        "poll",
        &json!({"checkpoint": resume, "max_records": 0}),
    ));
    let (ids, checkpoints) = poll_summary(&second);
    assert_eq!(ids, vec![vec![5, 6]], "the poll stops at total = 7");
    assert_eq!(checkpoints, vec!["7"]);

    let limited = ok(hub.call(
        "gen",
        "poll",
        &json!({"checkpoint": null, "max_records": 1}),
    ));
    assert_eq!(
        poll_summary(&limited).0,
        vec![vec![0]],
        "max_records is honoured"
    );

    // A checkpoint the plugin rejects (INVALID_ARGUMENT) is the caller's
    // mistake: 400, with the plugin's own message.
    let garbage = base64::engine::general_purpose::STANDARD.encode("not a number");
    let message = error(
        hub.call(
            "gen",
            "poll",
            &json!({"checkpoint": garbage, "max_records": 0}),
        ),
        400,
    );
    assert!(
        message.contains("gen") && message.contains("not a number"),
        "the error names the plugin and quotes its message: {message}"
    );
    // A checkpoint that is not base64 is the caller's mistake: 400.
    error(
        hub.call(
            "gen",
            "poll",
            &json!({"checkpoint": "*** not base64 ***", "max_records": 0}),
        ),
        400,
    );
}

#[test]
fn webhook_json_maps_configured_fields_to_records() {
    let config = r#"
[plugins.hooks]
command = "{bin:webhook-json}"
args = ["--e2e-marker", "{marker}.hooks"]
env = { E2E_MARKER = "{marker}.hooks" }

[plugins.hooks.config]
id_field = "data.id"
type_field = "kind"
time_field = "at"
items_field = "events"
"#;
    let hub = start(config, &["hooks"]);
    let body = json!({"events": [
        {"data": {"id": "x1"}, "kind": "push", "at": "2026-11-23T18:00:00Z"},
        {"data": {"id": 7}, "at": 1_700_000_000},
    ]});
    let request = json!({
        "method": "POST",
        "path": "/webhooks/hooks",
        "query": "",
        "headers": [["content-type", "application/json"], ["user-agent", "e2e-agent/1"]],
        "body": body.to_string(),
    });
    let answer = ok(hub.call("hooks", "webhook", &request));
    let records = &answer["records"];
    assert_eq!(record_ids(records), vec!["x1", "7"]);
    assert_eq!(records[0]["type"], "push");
    assert_eq!(records[1]["type"], "webhook", "the default type");
    let at = |i: usize| {
        records[i]["occurred_at"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(at(0).starts_with("2026-11-23T18:00:00"), "{answer:#}");
    assert!(at(1).starts_with("2023-11-14T22:13:20"), "{answer:#}");
    assert_eq!(records[0]["metadata"]["user-agent"], "e2e-agent/1");
    assert_eq!(records[0]["payload"], body["events"][0]);
    assert_eq!(
        answer["reply"],
        Value::Null,
        "webhook-json replies asynchronously"
    );

    let missing_id = json!({"events": [{"data": {}}]}).to_string();
    let message = error(
        hub.call("hooks", "webhook", &webhook_request(&missing_id)),
        400,
    );
    assert!(message.contains("data.id"), "{message}");
}
