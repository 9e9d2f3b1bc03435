//! The `formbricks` plugin end to end: the real `switchyard` binary, the
//! real plugin binary and a fake Formbricks Management API speaking the
//! real wire format (`fakes/formbricks.rs`). Covers paging, a 429 with
//! `Retry-After`, a response changed between polls (stored as an update),
//! a SIGKILL of the plugin mid-backfill (every response stored exactly
//! once, the backfill resumed at the page it reached), and signed webhooks
//! through the hub's real endpoint (valid: a record; wrongly signed: 401).

#![allow(clippy::unwrap_used)]

mod common;
#[path = "fakes/formbricks.rs"]
mod fake_formbricks;

use std::collections::BTreeMap;
use std::time::Duration;

use fake_formbricks::{FakeFormbricks, response};
use serde_json::Value;

const API_KEY: &str = "e2e-formbricks-key";
const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// How long to wait for a condition.
const WAIT: Duration = Duration::from_secs(60);

fn plugin_bin() -> std::path::PathBuf {
    common::built("formbricks")
}

/// A running `switchyard run` (child process), stopped on drop.
type Hub = common::HubProcess;

impl Hub {
    /// Starts the hub on `plugins` (`@FORMBRICKS@` replaced by the binary),
    /// with the webhook secret in its environment; waits for `/readyz`.
    async fn start(plugins: &str) -> Hub {
        Hub::start_with(plugins, "/readyz").await
    }

    /// [`Hub::start`], waiting for `ready_path` to answer 200 instead.
    async fn start_with(plugins: &str, ready_path: &str) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{}\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n\n{}",
            dir.path().join("hub.db").display(),
            plugins.replace("@FORMBRICKS@", &plugin_bin().display().to_string())
        );
        let env = [("FB_WEBHOOK_SECRET", WEBHOOK_SECRET)];
        Hub::spawn(dir, &config, port, &env, ready_path, WAIT).await
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Every record stored from `source`, by source id (all pages).
    async fn records(&self, source: &str) -> BTreeMap<String, Vec<Value>> {
        let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/records?source={source}&limit=1000");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.get(&path).await;
            for record in page["records"].as_array().unwrap() {
                records
                    .entry(record["source_id"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(record.clone());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return records,
            }
        }
    }

    async fn post_webhook(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request.send().await.unwrap().status().as_u16()
    }
}

fn plugins_toml(fake: &FakeFormbricks, page_size: u64, poll: &str) -> String {
    format!(
        r#"[plugins.fb]
command = "@FORMBRICKS@"
env = {{ FB_KEY = "{API_KEY}" }}

[plugins.fb.config]
base_url = "{base}"
api_key_env = "FB_KEY"
survey_ids = ["s1"]
page_size = {page_size}

[plugins.fb.poll]
{poll}

[plugins.fb.webhook]
auth = "standard_webhooks"
secret_env = "FB_WEBHOOK_SECRET"
"#,
        base = fake.base
    )
}

/// `updatedAt` for minute `n` (n < 60) of hour `h`.
fn at(h: u32, n: u32) -> String {
    format!("2024-04-23T{h:02}:{n:02}:00.000Z")
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_pages_through_a_429_stores_changes_as_updates_and_takes_signed_webhooks() {
    let fake = FakeFormbricks::start(API_KEY);
    // Newest first, as the API lists them.
    let responses: Vec<Value> = (0..7)
        .rev()
        .map(|n| response("s1", &format!("r{n}"), &at(8, n), "clicked"))
        .collect();
    fake.set_survey("s1", responses);
    fake.rate_limit_next(1);
    let hub = Hub::start(&plugins_toml(&fake, 3, "interval = \"300ms\"")).await;

    // Three pages (3 + 3 + 1), through one 429.
    hub.wait("7 responses stored", || async {
        (hub.records("fb").await.len() == 7).then_some(())
    })
    .await;
    let requests = fake.requests();
    let limited = requests
        .iter()
        .position(|r| r.2 == 429)
        .expect("no 429 was answered");
    assert_eq!(requests[limited].1, 0);
    assert_eq!(
        requests[limited + 1],
        ("s1".to_owned(), 0, 200),
        "the rate-limited page was asked again: {requests:?}"
    );
    let records = hub.records("fb").await;
    for (id, versions) in &records {
        assert_eq!(versions.len(), 1, "{id}");
        assert_eq!(versions[0]["type"], "formbricks.response");
        assert_eq!(versions[0]["version"], 1, "{id}");
        assert_eq!(versions[0]["payload"]["id"].as_str(), Some(id.as_str()));
    }

    // A response changed upstream between polls becomes an update.
    fake.replace("r3", response("s1", "r3", &at(9, 0), "changed"));
    let r3 = hub
        .wait("r3 updated", || async {
            let records = hub.records("fb").await;
            let r3 = records.get("r3")?[0].clone();
            (r3["version"] == 2).then_some(r3)
        })
        .await;
    assert_eq!(r3["payload"]["data"]["hs8yd14l9h8u353tjmv6rzaw"], "changed");
    // A few more polls change nothing else.
    let polls = fake.requests().len();
    hub.wait("two more poll cycles", || async {
        (fake.requests().len() >= polls + 6).then_some(())
    })
    .await;
    let records = hub.records("fb").await;
    assert_eq!(records.len(), 7);
    for (id, versions) in &records {
        let expected = if id == "r3" { 2 } else { 1 };
        assert_eq!(versions[0]["version"], expected, "{id}");
    }

    // Webhooks: a wrongly signed one is refused, a signed one stored.
    let body = |id: &str| {
        serde_json::json!({
            "webhookId": "clwebhook0001",
            "event": "responseCreated",
            "data": response("s1", id, &at(10, 0), "from a webhook"),
        })
        .to_string()
    };
    let bad = body("w-bad");
    let status = hub
        .post_webhook(
            "/webhooks/fb",
            &signed(
                "msg_bad",
                bad.as_bytes(),
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            bad.as_bytes(),
        )
        .await;
    assert_eq!(status, 401, "a wrong signature is refused");
    let good = body("w-good");
    let status = hub
        .post_webhook(
            "/webhooks/fb",
            &signed("msg_good", good.as_bytes(), WEBHOOK_SECRET),
            good.as_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{}", hub.log());
    let records = hub
        .wait("the webhook's record", || async {
            let records = hub.records("fb").await;
            records.contains_key("w-good").then_some(records)
        })
        .await;
    assert_eq!(
        records["w-good"][0]["payload"]["data"]["hs8yd14l9h8u353tjmv6rzaw"],
        "from a webhook"
    );
    assert!(!records.contains_key("w-bad"));

    // A responseUpdated webhook for it is stored as an update.
    let updated = serde_json::json!({
        "webhookId": "clwebhook0001",
        "event": "responseUpdated",
        "data": response("s1", "w-good", &at(10, 5), "edited in a webhook"),
    })
    .to_string();
    let status = hub
        .post_webhook(
            "/webhooks/fb",
            &signed("msg_updated", updated.as_bytes(), WEBHOOK_SECRET),
            updated.as_bytes(),
        )
        .await;
    assert_eq!(status, 202);
    let record = hub
        .wait("the webhook's update", || async {
            let records = hub.records("fb").await;
            let record = records.get("w-good")?[0].clone();
            (record["version"] == 2).then_some(record)
        })
        .await;
    assert_eq!(
        record["payload"]["data"]["hs8yd14l9h8u353tjmv6rzaw"],
        "edited in a webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_midway_resumes_and_stores_every_response_once() {
    const TOTAL: u32 = 1000;
    let fake = FakeFormbricks::start(API_KEY);
    let responses: Vec<Value> = (0..TOTAL)
        .rev()
        .map(|n| {
            response(
                "s1",
                &format!("r{n:04}"),
                &format!(
                    "2024-04-{:02}T{:02}:{:02}:00.000Z",
                    1 + n / 1440,
                    (n / 60) % 24,
                    n % 60
                ),
                "clicked",
            )
        })
        .collect();
    fake.set_survey("s1", responses);
    // 500 pages of 2, each a little slow.
    fake.set_delay(Duration::from_millis(10));
    // One poll only (the interval is long): after the kill, that poll is
    // retried and must resume at the page it reached.
    let hub = Hub::start(&plugins_toml(
        &fake,
        2,
        "interval = \"1h\"\ntimeout = \"5m\"",
    ))
    .await;

    let pid = hub
        .wait("the backfill under way", || async {
            let status = hub.get("/api/v1/plugins/fb").await;
            let pages = fake.requests().iter().filter(|r| r.2 == 200).count();
            (pages >= 100).then(|| status["pid"].as_i64()).flatten()
        })
        .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed_at = fake.requests().len();
    assert!(killed_at < 450, "the backfill ended before the kill");

    let records = hub
        .wait("every response stored", || async {
            let records = hub.records("fb").await;
            (records.len() == TOTAL as usize).then_some(records)
        })
        .await;
    for (id, versions) in &records {
        assert_eq!(versions.len(), 1, "{id} stored more than once");
        assert_eq!(versions[0]["version"], 1, "{id} was stored again");
    }
    let status = hub.get("/api/v1/plugins/fb").await;
    assert_ne!(
        status["pid"].as_i64(),
        Some(pid),
        "the plugin was restarted"
    );
    let requests = fake.requests();
    let first_pages = requests.iter().filter(|r| r.1 == 0 && r.2 == 200).count();
    assert_eq!(
        first_pages, 1,
        "the restarted plugin resumed at the page it reached instead of starting over"
    );
    let after_kill = &requests[killed_at..];
    assert!(
        after_kill.iter().all(|r| r.1 > 100),
        "every page after the kill is past the first 100 responses: {:?}",
        &after_kill[..after_kill.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_api_key_fails_the_plugin_after_its_restart_policy_naming_the_variable() {
    let fake = FakeFormbricks::start("the-right-key");
    fake.set_survey("s1", vec![response("s1", "r1", &at(8, 0), "clicked")]);
    let plugins = format!(
        "{}\n[plugins.fb.restart]\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\"\nmax_restarts = 2\n",
        plugins_toml(&fake, 3, "interval = \"300ms\"")
    );
    let hub = Hub::start_with(&plugins, "/healthz").await;
    let status = hub
        .wait("the plugin failed", || async {
            let status = hub.get("/api/v1/plugins/fb").await;
            (status["state"] == "failed").then_some(status)
        })
        .await;
    assert_eq!(status["restarts"], 2, "{status}");
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("the Management API refused the API key from the environment variable `FB_KEY` (api_key_env)"),
        "{error}"
    );
    assert!(fake.requests().is_empty(), "never polled");
    assert!(hub.records("fb").await.is_empty());
    assert!(!hub.log().contains(API_KEY), "the key never reaches a log");
}
