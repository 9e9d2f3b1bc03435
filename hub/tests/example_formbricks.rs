//! `examples/formbricks.toml`, run as written by the real `switchyard`
//! binary with the real plugin binaries, against local fakes: Formbricks
//! (`fakes/formbricks.rs`), an OpenAI Chat Completions server
//! (`fakes/openai.rs`) and a Standard Webhooks receiver verifying every
//! signature with the `standardwebhooks` crate (`fakes/receiver.rs`).
//!
//! The test parses the example and rewrites only what must point at its own
//! world, asserting that each key is there: `[hub] listen` and `database`,
//! the upstream URLs (`base_url`, `url`) and every plugin's `command`. The
//! secrets' variable names are read from the file's `*_env` keys.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "fakes/formbricks.rs"]
mod fake_formbricks;
#[path = "fakes/openai.rs"]
mod fake_openai;
#[path = "fakes/receiver.rs"]
mod fake_receiver;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fake_formbricks::FakeFormbricks;
use fake_openai::FakeOpenAi;
use fake_receiver::Receiver;
use serde_json::{Value, json};

const FORMBRICKS_KEY: &str = "fb-example-key-0123";
const FORMBRICKS_WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OPENAI_KEY: &str = "sk-example-0123456789";
const RECEIVER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long to wait for a condition on a busy machine.
const WAIT: Duration = Duration::from_secs(90);

/// The example, parsed.
fn example() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/formbricks.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value at `path` (table keys), which must exist.
fn get<'a>(table: &'a toml::Table, path: &[&str]) -> &'a toml::Value {
    let (last, parents) = path.split_last().unwrap();
    let mut current = table;
    for key in parents {
        current = current
            .get(*key)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("the example has no table {path:?} (at `{key}`)"));
    }
    current
        .get(*last)
        .unwrap_or_else(|| panic!("the example has no key {path:?}"))
}

/// The string at `path`, which must exist.
fn get_str<'a>(table: &'a toml::Table, path: &[&str]) -> &'a str {
    get(table, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} in the example is not a string"))
}

/// Replaces the string at `path`, which must exist.
fn set(table: &mut toml::Table, path: &[&str], value: &str) {
    get_str(table, path);
    let (last, parents) = path.split_last().unwrap();
    let mut current = table;
    for key in parents {
        current = current.get_mut(*key).unwrap().as_table_mut().unwrap();
    }
    current.insert((*last).to_owned(), toml::Value::String(value.to_owned()));
}

/// The one plugin of the example whose command runs `binary`.
fn plugin_running(example: &toml::Table, binary: &str) -> String {
    let plugins = get(example, &["plugins"]).as_table().unwrap();
    let names: Vec<&String> = plugins
        .iter()
        .filter(|(_, plugin)| {
            plugin
                .get("command")
                .and_then(toml::Value::as_str)
                .is_some_and(|command| {
                    Path::new(command).file_name() == Some(std::ffi::OsStr::new(binary))
                })
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names.len(), 1, "plugins running `{binary}`: {names:?}");
    names[0].clone()
}

/// The value at a dotted path in a JSON payload.
fn at<'a>(payload: &'a Value, dotted: &str) -> &'a Value {
    dotted
        .split('.')
        .fold(payload, |value, key| value.get(key).unwrap_or(&Value::Null))
}

/// A running `switchyard run` (child process), stopped on drop.
type Hub = common::HubProcess;

impl Hub {
    /// Writes `config` as `plugins.toml` in `dir`, runs the hub on it with
    /// `env` as its whole environment (besides `PATH`), waits for `/readyz`.
    async fn start(dir: tempfile::TempDir, config: &str, port: u16, env: &[(&str, &str)]) -> Hub {
        Hub::spawn(dir, config, port, env, "/readyz", WAIT).await
    }

    /// Every record stored from `source`, by source id (latest version).
    async fn records(&self, source: &str) -> BTreeMap<String, Value> {
        let mut records = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("{}/api/v1/records?source={source}&limit=1000", self.base);
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let response = self.http.get(&path).send().await.unwrap();
            assert_eq!(response.status(), 200, "GET {path}");
            let page: Value = response.json().await.unwrap();
            for record in page["records"].as_array().unwrap() {
                let id = record["source_id"].as_str().unwrap().to_owned();
                records.insert(id, record.clone());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return records,
            }
        }
    }
}

/// A Formbricks response answering `question` with `text`.
fn response(id: &str, question: &str, text: &str, minute: u32) -> Value {
    let mut response =
        fake_formbricks::response("s1", id, &format!("2026-12-03T08:{minute:02}:00.000Z"), "");
    let mut data = serde_json::Map::new();
    data.insert(question.to_owned(), Value::String(text.to_owned()));
    response["data"] = Value::Object(data);
    response
}

/// Standard Webhooks headers for `body`, signed with `secret`.
fn signed(id: &str, body: &[u8], secret: &str) -> Vec<(String, String)> {
    let webhook = standardwebhooks::Webhook::new(secret).unwrap();
    let timestamp = chrono::Utc::now().timestamp();
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            webhook.sign(id, timestamp, body).unwrap(),
        ),
    ]
}

/// The `payload.id`s of the events in the receiver's verified bodies, with
/// each event's record payload.
fn delivered(receiver: &Receiver) -> BTreeMap<String, Value> {
    let bodies = receiver.bodies.lock().unwrap();
    let mut events = BTreeMap::new();
    for body in bodies.iter() {
        assert_eq!(body["type"], "switchyard.events", "{body}");
        for event in body["data"].as_array().unwrap() {
            let payload = &event["record"]["payload"];
            events.insert(payload["id"].as_str().unwrap().to_owned(), payload.clone());
        }
    }
    events
}

/// The `payload.id`s of the events in the JSON-lines file, with their
/// payloads (no file yet: none).
fn archived(path: &Path) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|line| line.ends_with('}'))
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            let payload = event["record"]["payload"].clone();
            (payload["id"].as_str().unwrap().to_owned(), payload)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_formbricks_example_polls_takes_webhooks_enriches_and_delivers_to_both_outputs() {
    let mut config = example();

    // The plugins, found by the binary they run.
    let input = plugin_running(&config, "formbricks");
    let enricher = plugin_running(&config, "llm-enrich");
    let http = plugin_running(&config, "http-output");
    let archive = plugin_running(&config, "jsonl-output");
    let pipeline = get(&config, &["pipeline", "enrich"]).as_array().unwrap();
    assert_eq!(pipeline, &[toml::Value::String(enricher.clone())]);

    // What the example configures, as written.
    let model = get_str(&config, &["plugins", &enricher, "config", "model"]).to_owned();
    let output_field =
        get_str(&config, &["plugins", &enricher, "config", "output_field"]).to_owned();
    let text_field = get(&config, &["plugins", &enricher, "config", "text_fields"])
        .as_array()
        .and_then(|fields| fields.first())
        .and_then(toml::Value::as_str)
        .unwrap()
        .to_owned();
    let question = text_field
        .strip_prefix("data.")
        .unwrap_or_else(|| panic!("text_fields[0] {text_field:?} is not a `data.QUESTION` path"))
        .to_owned();
    let jsonl = get_str(&config, &["plugins", &archive, "config", "path"]).to_owned();
    let env: [(&str, &str); 4] = [
        (
            get_str(&config, &["plugins", &input, "config", "api_key_env"]),
            FORMBRICKS_KEY,
        ),
        (
            get_str(&config, &["plugins", &input, "webhook", "secret_env"]),
            FORMBRICKS_WEBHOOK_SECRET,
        ),
        (
            get_str(&config, &["plugins", &enricher, "config", "api_key_env"]),
            OPENAI_KEY,
        ),
        (
            get_str(&config, &["plugins", &http, "config", "secret_env"]),
            RECEIVER_SECRET,
        ),
    ];
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();

    // The fakes: three responses (newest first, as the API lists them).
    let formbricks = FakeFormbricks::start(FORMBRICKS_KEY);
    formbricks.set_survey(
        "s1",
        vec![
            response("r3", &question, "It does what it says.", 3),
            response("r2", &question, "I hate the new export screen.", 2),
            response("r1", &question, "I love how quick this was!", 1),
        ],
    );
    let openai = FakeOpenAi::start(OPENAI_KEY, &model);
    let receiver = Receiver::start(RECEIVER_SECRET);

    // Rewrite what points at the test's world, and nothing else.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    set(
        &mut config,
        &["hub", "listen"],
        &format!("127.0.0.1:{port}"),
    );
    let database = format!("sqlite://{}", dir.path().join("example.db").display());
    set(&mut config, &["hub", "database"], &database);
    set(
        &mut config,
        &["plugins", &input, "config", "base_url"],
        &formbricks.base,
    );
    set(
        &mut config,
        &["plugins", &enricher, "config", "base_url"],
        &format!("{}/v1", openai.base),
    );
    set(
        &mut config,
        &["plugins", &http, "config", "url"],
        &receiver.url,
    );
    let names: Vec<String> = get(&config, &["plugins"])
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for name in &names {
        let command = get_str(&config, &["plugins", name, "command"]);
        let binary = Path::new(command).file_name().unwrap().to_str().unwrap();
        let binary = common::built(binary);
        set(
            &mut config,
            &["plugins", name, "command"],
            binary.to_str().unwrap(),
        );
    }
    // The JSON-lines file is relative to the config file's directory.
    let jsonl = dir.path().join(jsonl);

    let env_refs: Vec<(&str, &str)> = env
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let hub = Hub::start(dir, &toml::to_string(&config).unwrap(), port, &env_refs).await;

    let expected: BTreeMap<&str, &str> = [
        ("r1", "positive"),
        ("r2", "negative"),
        ("r3", "neutral"),
        ("w1", "positive"),
    ]
    .into_iter()
    .collect();
    let check = |id: &str, payload: &Value, what: &str| {
        assert_eq!(
            at(payload, &output_field)["label"],
            expected[id],
            "{what}: {id}'s `{output_field}` in {payload}"
        );
        assert!(at(payload, &output_field)["score"].is_number(), "{payload}");
    };

    // Polled: stored, enriched, delivered (signature verified) and archived.
    let records = hub
        .wait("the three polled responses stored", || async {
            let records = hub.records(&input).await;
            (records.len() == 3).then_some(records)
        })
        .await;
    for (id, record) in &records {
        assert_eq!(record["type"], "formbricks.response");
        check(id, &record["payload"], "stored");
        assert_eq!(
            at(&record["payload"], &text_field),
            &formbricks_text(id),
            "the response is stored as Formbricks gave it"
        );
    }
    let events = hub
        .wait("the polled responses at the receiver", || async {
            let events = delivered(&receiver);
            (events.len() >= 3).then_some(events)
        })
        .await;
    let lines = hub
        .wait("the polled responses in the JSON-lines file", || async {
            let lines = archived(&jsonl);
            (lines.len() >= 3).then_some(lines)
        })
        .await;
    for id in ["r1", "r2", "r3"] {
        check(id, &events[id], "delivered");
        check(id, &lines[id], "archived");
    }

    // Pushed: a signed webhook through the hub's real endpoint.
    let body = json!({
        "webhookId": "clwebhook0001",
        "event": "responseCreated",
        "data": response("w1", &question, "We love the webhook, it is instant.", 10),
    })
    .to_string();
    let mut request = hub
        .http
        .post(format!("{}/webhooks/{input}", hub.base))
        .header("content-type", "application/json")
        .body(body.clone());
    for (name, value) in signed("msg_example_1", body.as_bytes(), FORMBRICKS_WEBHOOK_SECRET) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202, "{}", hub.log());
    let record = hub
        .wait("the webhook's response stored", || async {
            hub.records(&input).await.remove("w1")
        })
        .await;
    check("w1", &record["payload"], "stored");
    let event = hub
        .wait("the webhook's response at the receiver", || async {
            delivered(&receiver).remove("w1")
        })
        .await;
    check("w1", &event, "delivered");
    let line = hub
        .wait("the webhook's response in the JSON-lines file", || async {
            archived(&jsonl).remove("w1")
        })
        .await;
    check("w1", &line, "archived");

    // The model was asked as OpenAI's reference says, with the key.
    {
        let seen = openai.seen();
        assert!(seen.malformed.is_empty(), "{:?}", seen.malformed);
        assert_eq!(seen.unauthorized, 0);
        let texts: Vec<&str> = seen.calls.iter().map(|(text, _)| text.as_str()).collect();
        assert!(
            texts.contains(&"We love the webhook, it is instant."),
            "{texts:?}"
        );
    }
    assert_eq!(hub.records(&input).await.len(), 4);

    // No secret reaches the log.
    let log = hub.log();
    for (name, secret) in &env {
        assert!(
            !log.contains(secret.as_str()),
            "{name}'s value is in the log"
        );
    }
}

/// The text the fake's response `id` answers.
fn formbricks_text(id: &str) -> Value {
    Value::String(
        match id {
            "r1" => "I love how quick this was!",
            "r2" => "I hate the new export screen.",
            _ => "It does what it says.",
        }
        .to_owned(),
    )
}
