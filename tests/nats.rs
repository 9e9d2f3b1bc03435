//! `nats-output` and `nats-input` under a real hub against a real
//! `nats-server -js` (Debian's package, started by the test on a free port
//! with its store in a temp dir): every event is published with
//! `Nats-Msg-Id` = its delivery id, and every message is stored exactly
//! once, across a SIGKILL of the hub and a restart of the server; and both
//! pass `switchyard conformance` against the server.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use switchyard_e2e::{Hub, NatsServer, wait_for};

/// Generous bound for work on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// A JetStream client for the test's own checks, on its own runtime.
struct Js {
    runtime: tokio::runtime::Runtime,
    context: jetstream::Context,
}

/// One message as the stream stores it.
#[derive(Debug)]
struct Stored {
    subject: String,
    msg_id: Option<String>,
    body: Value,
}

impl Js {
    fn connect(url: &str) -> Js {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime
            .block_on(async_nats::connect(url))
            .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"));
        // The context spawns its acker task: inside the runtime.
        let context = {
            let _inside = runtime.enter();
            jetstream::new(client)
        };
        Js { runtime, context }
    }

    /// A file-backed stream with a 10-minute duplicate window.
    fn create_stream(&self, name: &str, subjects: &[&str]) {
        let config = stream::Config {
            name: name.to_owned(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(600),
            ..stream::Config::default()
        };
        self.runtime
            .block_on(self.context.create_stream(config))
            .unwrap_or_else(|err| panic!("cannot create stream {name}: {err}"));
    }

    /// Publishes and waits for the PubAck, retrying while the server restarts.
    fn publish(&self, subject: &str, msg_id: &str, body: &Value) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let result = self.runtime.block_on(async {
                let message = jetstream::message::PublishMessage::build()
                    .payload(serde_json::to_vec(body).unwrap().into())
                    .message_id(msg_id);
                let ack = self
                    .context
                    .send_publish(subject.to_owned(), message)
                    .await?;
                tokio::time::timeout(Duration::from_secs(5), ack)
                    .await
                    .map_err(|_| "no PubAck within 5s".to_owned())??;
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            });
            match result {
                Ok(()) => return,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("publish {msg_id} failed, retrying: {err}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("cannot publish {msg_id}: {err}"),
            }
        }
    }

    /// Every message in `name`, in stream order (none while the server is away).
    fn messages(&self, name: &str) -> Option<Vec<Stored>> {
        self.runtime.block_on(async {
            let mut stream = self.context.get_stream(name).await.ok()?;
            let info = stream.info().await.ok()?;
            let (first, last) = (info.state.first_sequence, info.state.last_sequence);
            let mut messages = Vec::new();
            if info.state.messages == 0 {
                return Some(messages);
            }
            for sequence in first..=last {
                let message = stream.get_raw_message(sequence).await.ok()?;
                let msg_id = message
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|value| value.as_str().to_owned());
                messages.push(Stored {
                    subject: message.subject.to_string(),
                    msg_id,
                    body: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
                });
            }
            Some(messages)
        })
    }

    /// `(num_ack_pending, num_pending)` of a consumer.
    fn consumer_backlog(&self, stream: &str, name: &str) -> Option<(usize, u64)> {
        self.runtime.block_on(async {
            let stream = self.context.get_stream(stream).await.ok()?;
            let mut consumer: consumer::PullConsumer = stream.get_consumer(name).await.ok()?;
            let info = consumer.info().await.ok()?;
            Some((info.num_ack_pending, info.num_pending))
        })
    }
}

/// Every stored record (up to 1000).
fn stored(hub: &Hub) -> Vec<Value> {
    hub.get("/api/v1/records?limit=1000").body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!(
        "database = \"sqlite://{}\"",
        dir.path().join("switchyard.db").display()
    )
}

#[test]
fn nats_output_publishes_every_event_with_its_delivery_id_across_a_hub_kill_and_a_server_restart() {
    const TOTAL: usize = 400;
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let js = Js::connect(&server.url());
    js.create_stream("EVENTS", &["switchyard.>"]);
    // The generator's `records_per_poll` and poll `interval` pace it at
    // about 40 records a second, so each step below catches it mid-way.
    let config = format!(
        r#"
[plugins.gen]
command = "{{bin:generator}}"
env = {{ E2E_MARKER = "{{marker}}.gen" }}
[plugins.gen.poll]
interval = "100ms"
[plugins.gen.config]
records_per_poll = 4
batch_size = 2
total = {TOTAL}
record_type = "reading.taken"
source = "shop floor"

[plugins.nats]
command = "{{bin:nats-output}}"
env = {{ E2E_MARKER = "{{marker}}.nats" }}
[plugins.nats.config]
url = "{url}"
timeout = "2s"
[plugins.nats.output]
batch = 10
[plugins.nats.retry]
max_attempts = 1000
initial_backoff = "50ms"
max_backoff = "500ms"
"#,
        url = server.url()
    );
    let db = tempfile::tempdir().unwrap();

    // First hub: killed with about a quarter published.
    let mut first = Hub::builder(&config).hub_setting(&sqlite(&db)).start();
    wait_for(LIMIT, || {
        js.messages("EVENTS")
            .filter(|messages| messages.len() >= TOTAL / 4)
            .map(|_| ())
    })
    .unwrap_or_else(|| panic!("nothing reached JetStream:\n{}", first.log()));
    first.signal(Signal::SIGKILL);
    assert!(first.wait_exit(LIMIT).is_some(), "the hub died");
    let at_kill = js.messages("EVENTS").unwrap().len();
    assert!(at_kill < TOTAL, "killed mid-way ({at_kill} of {TOTAL})");

    // Second hub: the server stops under it half-way; records keep coming
    // in, their events wait (the output says NOT_SERVING), and all go out
    // once the server is back.
    let second = Hub::builder(&config).hub_setting(&sqlite(&db)).start();
    wait_for(LIMIT, || {
        js.messages("EVENTS")
            .filter(|messages| messages.len() >= at_kill + TOTAL / 8)
            .map(|_| ())
    })
    .unwrap_or_else(|| panic!("the second hub published nothing:\n{}", second.log()));
    let before_stop = js.messages("EVENTS").unwrap().len();
    server.stop();
    wait_for(LIMIT, || {
        (stored(&second).len() >= before_stop + 20).then_some(())
    })
    .unwrap_or_else(|| panic!("no records came in while NATS was down:\n{}", second.log()));
    server.start_again();
    let messages = wait_for(LIMIT, || {
        js.messages("EVENTS")
            .filter(|messages| messages.len() >= TOTAL)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every event reached JetStream:\n{}\nnats-server:\n{}",
            second.log(),
            server.log()
        )
    });

    // Every event once (JetStream dropped redeliveries by Nats-Msg-Id),
    // its Nats-Msg-Id its delivery id, on the sanitized subject.
    assert_eq!(messages.len(), TOTAL, "one message per event");
    let mut ids = BTreeSet::new();
    let mut records = BTreeSet::new();
    for message in &messages {
        let delivery_id = message.body["delivery_id"].as_u64().unwrap();
        assert_eq!(
            message.msg_id.as_deref(),
            Some(delivery_id.to_string().as_str()),
            "Nats-Msg-Id is the delivery id: {message:?}"
        );
        assert_eq!(message.subject, "switchyard.shop_floor.reading.taken");
        assert_eq!(message.body["kind"], "created");
        assert_eq!(message.body["record"]["source"], "shop floor");
        ids.insert(delivery_id);
        records.insert(message.body["record"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), TOTAL, "every delivery id once");
    assert_eq!(records.len(), TOTAL, "every record once");
    let status = second.plugin("nats");
    assert_eq!(status["state"], "running", "{status}");
    let dead = second.get("/api/v1/dead-letters");
    assert_eq!(
        dead.body["dead_letters"].as_array().map_or(0, Vec::len),
        0,
        "nothing dead-lettered: {}",
        dead.body
    );
}

#[test]
fn nats_input_stores_every_message_once_across_a_hub_kill_and_a_server_restart() {
    const TOTAL: usize = 300;
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let js = Js::connect(&server.url());
    js.create_stream("ORDERS", &["orders.>"]);
    // At least once: every tenth message is published twice (a publisher
    // retry), which the stream drops by its Nats-Msg-Id.
    let publish = |range: std::ops::Range<usize>| {
        for n in range {
            let body = json!({"n": n});
            js.publish(&format!("orders.eu.{n}"), &format!("order-{n}"), &body);
            if n % 10 == 0 {
                js.publish(&format!("orders.eu.{n}"), &format!("order-{n}"), &body);
            }
        }
    };
    publish(0..TOTAL / 2);
    let config = format!(
        r#"
[plugins.orders]
command = "{{bin:nats-input}}"
env = {{ E2E_MARKER = "{{marker}}.orders" }}
[plugins.orders.poll]
interval = "100ms"
[plugins.orders.retry]
max_attempts = 1000
initial_backoff = "50ms"
max_backoff = "500ms"
[plugins.orders.config]
url = "{url}"
stream = "ORDERS"
consumer = "switchyard"
filter_subject = "orders.>"
batch = 7
fetch_wait = "200ms"
ack_wait = "3s"
record_type = "order"
"#,
        url = server.url()
    );
    let db = tempfile::tempdir().unwrap();

    let mut first = Hub::builder(&config).hub_setting(&sqlite(&db)).start();
    wait_for(LIMIT, || (stored(&first).len() >= TOTAL / 6).then_some(()))
        .unwrap_or_else(|| panic!("nothing was stored:\n{}", first.log()));
    first.signal(Signal::SIGKILL);
    assert!(first.wait_exit(LIMIT).is_some(), "the hub died");
    let marker = first.plugin_marker("orders");
    wait_for(LIMIT, || {
        switchyard_e2e::processes_with_marker(&marker)
            .is_empty()
            .then_some(())
    })
    .expect("the plugin died with its hub");
    // Messages the killed hub held unacked are redelivered after ack_wait,
    // also across a server restart (the consumer is durable, file-backed).
    server.restart();
    publish(TOTAL / 2..TOTAL * 3 / 4);
    let second = Hub::builder(&config).hub_setting(&sqlite(&db)).start();
    wait_for(LIMIT, || (stored(&second).len() >= TOTAL / 2).then_some(()))
        .unwrap_or_else(|| panic!("the second hub stored nothing new:\n{}", second.log()));
    // And a restart under the running hub: polls fail until it is back.
    server.restart();
    publish(TOTAL * 3 / 4..TOTAL);
    let records = wait_for(LIMIT, || {
        let records = stored(&second);
        (records.len() >= TOTAL).then_some(records)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every message was stored:\n{}\nnats-server:\n{}",
            second.log(),
            server.log()
        )
    });
    assert_eq!(records.len(), TOTAL, "every message once");
    let mut by_msg_id: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        assert_eq!(record["type"], "order", "{record}");
        let msg_id = record["metadata"]["nats.msg_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let n = record["payload"]["n"].as_u64().unwrap();
        assert_eq!(msg_id, format!("order-{n}"), "{record}");
        assert_eq!(
            record["metadata"]["nats.subject"],
            format!("orders.eu.{n}"),
            "{record}"
        );
        *by_msg_id.entry(msg_id).or_default() += 1;
    }
    assert_eq!(by_msg_id.len(), TOTAL, "each message under one record");
    assert!(by_msg_id.values().all(|count| *count == 1));

    // Everything committed gets acked: the consumer has nothing left.
    wait_for(LIMIT, || {
        (js.consumer_backlog("ORDERS", "switchyard") == Some((0, 0))).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the consumer still has messages pending: {:?}\n{}",
            js.consumer_backlog("ORDERS", "switchyard"),
            second.log()
        )
    });
    assert_eq!(stored(&second).len(), TOTAL, "no record after the last ack");
}

/// `switchyard conformance --format json` on `plugin` with `config`; the
/// checks as `(name, status, detail)`.
fn conformance(plugin: &str, config: &str) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let run = switchyard_e2e::run_to_completion(
        std::process::Command::new(switchyard_e2e::bin_path("switchyard"))
            .args(["conformance", "--format", "json", "--config"])
            .arg(&path)
            .arg("--")
            .arg(switchyard_e2e::bin_path(plugin)),
        LIMIT,
    );
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("no JSON report ({err}):\n{}\n{}", run.stdout, run.stderr));
    assert!(
        run.status.success(),
        "{plugin} failed conformance:\n{report:#}\n{}",
        run.stderr
    );
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            let field = |name: &str| check[name].as_str().unwrap().to_owned();
            (field("check"), field("status"), field("detail"))
        })
        .collect()
}

#[test]
fn both_connectors_pass_switchyard_conformance_against_a_real_server() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let js = Js::connect(&server.url());
    js.create_stream("EVENTS", &["switchyard.>"]);
    js.create_stream("CONF", &["conf.>"]);
    for n in 0..5 {
        js.publish(&format!("conf.{n}"), &format!("conf-{n}"), &json!({"n": n}));
    }

    let output = conformance("nats-output", &format!("url = \"{}\"\n", server.url()));
    let acks = output
        .iter()
        .find(|(check, _, _)| check == "output-acks")
        .unwrap();
    assert_eq!(acks.1, "PASS", "{output:?}");
    assert!(
        acks.2.ends_with(", 0 nacked)"),
        "every event stored: {acks:?}"
    );
    assert!(
        js.messages("EVENTS")
            .is_some_and(|messages| !messages.is_empty()),
        "conformance events reached the stream"
    );

    let input = conformance(
        "nats-input",
        &format!(
            "url = \"{}\"\nstream = \"CONF\"\nconsumer = \"conformance\"\nfetch_wait = \"200ms\"\n",
            server.url()
        ),
    );
    let determinism = input
        .iter()
        .find(|(check, _, _)| check == "poll-determinism")
        .unwrap();
    assert_eq!(determinism.1, "PASS", "{input:?}");
    assert!(
        input.iter().all(|(_, status, _)| status != "FAIL"),
        "{input:?}"
    );
}
