//! The `http-output` plugin end to end: the hub (as a library, on real
//! sockets) with the real `webhook-json` input and `http-output` binaries,
//! POSTing to a receiver that verifies every signature with the official
//! Standard Webhooks library (`standardwebhooks` from PyPI, run by
//! plugins/python/.venv: `fakes/standard_webhooks_receiver.py`).
//!
//! Skipped with a NOTICE when the venv is missing (run
//! plugins/python/build.sh), unless `CI` is set, where that fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// plugins/python/.venv/bin/python, or `None` with a notice.
fn venv_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/python/.venv/bin/python");
    if python.is_file() {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing under CI: run plugins/python/build.sh",
        python.display()
    );
    eprintln!(
        "NOTICE: skipping: the Python venv ({}) is missing; run plugins/python/build.sh",
        python.display()
    );
    None
}

/// The Python receiver, killed on drop.
struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    /// Starts the receiver on `port` (0: any) and waits until it listens.
    fn start(python: &Path, port: u16) -> Receiver {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/standard_webhooks_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .env("RECEIVER_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the receiver said {line:?}"))
            .parse()
            .unwrap();
        Receiver { child, port }
    }

    /// Every POST it answered.
    async fn log(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/log", self.port);
        let body: Value = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body.as_array().unwrap().clone()
    }

    /// The log entries whose records include `id`.
    async fn entries_for(&self, id: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|entry| {
                entry["record_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|x| x == id))
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(hub: &common::Hub, id: &str, behaviour: &str) {
    let (status, body) = hub
        .post("/webhooks/in", json!({"id": id, "behaviour": behaviour}))
        .await;
    assert_eq!(status, 202, "{body}");
}

async fn acked(receiver: &Receiver, id: &str) -> Option<Value> {
    receiver
        .entries_for(id)
        .await
        .into_iter()
        .find(|entry| entry["status"] == 204)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_batches_are_verified_acked_retried_and_dead_lettered() {
    let Some(python) = venv_python() else {
        return;
    };
    let receiver = Receiver::start(&python, 0);
    let hub = common::Hub::start(&format!(
        r#"
[plugins.in]
command = "{input}"
[plugins.in.webhook]
auth = "none"

[plugins.out]
command = "{output}"
env = {{ HOOK_SECRET = "{SECRET}" }}
[plugins.out.config]
url = "http://127.0.0.1:{port}/hook"
secret_env = "HOOK_SECRET"
batch = 10
timeout = "2s"
headers = {{ x-tenant = "e2e" }}
[plugins.out.output]
batch = 10
[plugins.out.retry]
max_attempts = 60
initial_backoff = "100ms"
max_backoff = "1s"
"#,
        input = common::built("webhook-json").display(),
        output = common::built("http-output").display(),
        port = receiver.port,
    ))
    .await;
    let wait = Duration::from_secs(30);

    // Verified and acked; webhook-id is the batch's delivery ids joined with '-'.
    for id in ["a1", "a2", "a3"] {
        send(&hub, id, "ok").await;
    }
    for id in ["a1", "a2", "a3"] {
        let entry = common::wait_for(wait, id, || async { acked(&receiver, id).await }).await;
        let ids: Vec<String> = entry["delivery_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.to_string())
            .collect();
        assert_eq!(entry["webhook_id"], ids.join("-"));
        assert_eq!(entry["tenant"], "e2e", "the configured static header");
    }
    assert!(
        receiver
            .log()
            .await
            .iter()
            .all(|entry| entry["status"] != 401),
        "every signature verified"
    );

    // A 503 with Retry-After is retried, no sooner than it asked.
    send(&hub, "b1", "busy_once").await;
    let ok = common::wait_for(wait, "b1 acked", || async { acked(&receiver, "b1").await }).await;
    let entries = receiver.entries_for("b1").await;
    assert_eq!(entries[0]["status"], 503);
    let waited = ok["at"].as_f64().unwrap() - entries[0]["at"].as_f64().unwrap();
    assert!(
        waited >= 0.9,
        "retried after {waited}s, before Retry-After: 1"
    );

    // A 400 is permanent: dead-lettered after one POST.
    send(&hub, "c1", "reject").await;
    let dead = common::wait_for(wait, "c1 dead-lettered", || async {
        let (_, body) = hub
            .get("/api/v1/dead-letters?plugin=out&stage=output")
            .await;
        body["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|letter| letter["record"]["id"] == "c1")
            .cloned()
    })
    .await;
    assert!(dead["error"].as_str().unwrap().contains("400"), "{dead}");
    let posts = receiver.entries_for("c1").await;
    assert_eq!(posts.len(), 1, "a 400 is not retried: {posts:?}");
    assert_eq!(posts[0]["status"], 400);

    // The receiver is down for 10 s: nothing is lost.
    let port = receiver.port;
    drop(receiver);
    for id in ["d1", "d2", "d3", "d4", "d5"] {
        send(&hub, id, "ok").await;
    }
    // The outage itself (not a wait for a condition).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let receiver = Receiver::start(&python, port);
    for id in ["d1", "d2", "d3", "d4", "d5"] {
        common::wait_for(wait, id, || async { acked(&receiver, id).await }).await;
    }
    let (_, body) = hub
        .get("/api/v1/dead-letters?plugin=out&stage=output")
        .await;
    let dead: Vec<&Value> = body["dead_letters"].as_array().unwrap().iter().collect();
    assert_eq!(dead.len(), 1, "only c1 is a dead letter: {dead:?}");
    hub.shut_down().await;
}
