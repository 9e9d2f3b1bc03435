//! `POST /webhooks/NAME` end to end: the real `switchyard` binary with the
//! real `webhook-json` and `testkit` plugins, on SQLite (and on PostgreSQL
//! too when `SWITCHYARD_TEST_POSTGRES_URL` is set).
//!
//! Requests are signed with independent code: GitHub and Stripe with the
//! `hmac` crate here, Standard Webhooks with the official `standardwebhooks`
//! library. Records are checked through `GET /api/v1/records`.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_e2e_stripe_secret";
const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const API_KEY: &str = "e2e key with spaces";
/// How long to wait for a condition (records stored, a plugin ready).
const WAIT: Duration = Duration::from_secs(30);

/// A running `switchyard run`, stopped (SIGTERM, then SIGKILL) on drop.
struct Hub {
    child: Child,
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Hub {
    /// Writes `plugins.toml` (`@WEBHOOK_JSON@` and `@TESTKIT@` replaced by
    /// the binaries) and starts the hub with `env`, on `database` (SQLite in
    /// the temp dir when `None`); waits until every plugin is ready.
    async fn start(plugins: &str, env: &[(&str, &str)], database: Option<&str>) -> Hub {
        Hub::start_with(plugins, env, database, "/readyz").await
    }

    /// [`Hub::start`], waiting for `ready_path` to answer 200.
    async fn start_with(
        plugins: &str,
        env: &[(&str, &str)],
        database: Option<&str>,
        ready_path: &str,
    ) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let database = database.map_or_else(
            || format!("sqlite://{}", dir.path().join("hub.db").display()),
            str::to_owned,
        );
        let config = format!(
            "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"{database}\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n\n{}",
            plugins
                .replace(
                    "@WEBHOOK_JSON@",
                    &common::built("webhook-json").display().to_string()
                )
                .replace("@TESTKIT@", &common::built("testkit").display().to_string())
        );
        std::fs::write(dir.path().join("plugins.toml"), &config).unwrap();
        let stderr = std::fs::File::create(dir.path().join("hub.stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("run")
            .arg("--config")
            .arg(dir.path().join("plugins.toml"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHYARD_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let hub = Hub {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            dir,
        };
        let ready = hub
            .wait_for(|| async {
                let response = hub
                    .http
                    .get(format!("{}{ready_path}", hub.base))
                    .send()
                    .await;
                response
                    .is_ok_and(|response| response.status() == 200)
                    .then_some(())
            })
            .await;
        assert!(
            ready.is_some(),
            "the hub did not become ready:\n{}",
            hub.log()
        );
        hub
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.stderr")).unwrap_or_default()
    }

    /// Polls `probe` every 20 ms until it returns `Some`, for up to [`WAIT`].
    async fn wait_for<T, F, Fut>(&self, mut probe: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = probe().await {
                return Some(value);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// POSTs `body` to `path` with `headers`; returns the status, the
    /// response (headers and text) and how long the answer took.
    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let took = started.elapsed();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let retry_after = response.headers().contains_key("retry-after");
        let text = response.text().await.unwrap();
        Reply {
            status,
            content_type,
            retry_after,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            took,
        }
    }

    /// Stops plugin `name` through the admin API and waits until it is
    /// stopped.
    async fn stop_plugin(&self, name: &str) {
        let stop = self
            .post(&format!("/api/v1/plugins/{name}/stop"), &[], b"")
            .await;
        assert!(stop.status < 300, "stop: {} {}", stop.status, stop.text);
        let path = format!("/api/v1/plugins/{name}");
        let stopped = self
            .wait_for(|| async { (self.get(&path).await["state"] == "stopped").then_some(()) })
            .await;
        assert!(
            stopped.is_some(),
            "the plugin did not stop:\n{}",
            self.log()
        );
    }

    /// `GET /metrics` as text.
    async fn metrics(&self) -> String {
        common::metrics_text(&self.http, &self.base).await
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

    /// The ids (`source_id`) of the records stored from `source`.
    async fn record_ids(&self, source: &str) -> Vec<String> {
        let page = self
            .get(&format!("/api/v1/records?source={source}&limit=1000"))
            .await;
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["source_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until record `id` from `source` is stored; returns every id.
    async fn wait_record(&self, source: &str, id: &str) -> Vec<String> {
        let found = self
            .wait_for(|| async {
                let ids = self.record_ids(source).await;
                ids.iter().any(|each| each == id).then_some(ids)
            })
            .await;
        match found {
            Some(ids) => ids,
            None => panic!(
                "record {id} from {source} was not stored within {WAIT:?}; stored: {:?}\n{}",
                self.record_ids(source).await,
                self.log()
            ),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    retry_after: bool,
    json: Value,
    text: String,
    took: Duration,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn github_signature(body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(GITHUB_SECRET.as_bytes(), &[body]))
    )
}

fn stripe_signature(body: &[u8], timestamp: i64) -> String {
    let t = timestamp.to_string();
    let signature = hmac_sha256(STRIPE_SECRET.as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(signature))
}

/// Standard Webhooks headers made by the official library.
fn standard_headers(id: &str, body: &[u8], timestamp: i64) -> [(String, String); 3] {
    let webhook = standardwebhooks::Webhook::new(STANDARD_SECRET).unwrap();
    [
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            webhook.sign(id, timestamp, body).unwrap(),
        ),
    ]
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One webhook-json instance per scheme, named with `suffix` so runs on a
/// shared PostgreSQL database do not see each other's records.
fn scheme_plugins(suffix: &str) -> String {
    let mut text = String::new();
    for (name, auth, secret) in [
        ("gh", "github", Some("E2E_GITHUB_SECRET")),
        ("stripe", "stripe", Some("E2E_STRIPE_SECRET")),
        ("sw", "standard_webhooks", Some("E2E_STANDARD_SECRET")),
        ("key", "api_key", Some("E2E_API_KEY")),
        ("open", "none", None),
    ] {
        text.push_str(&format!(
            "[plugins.{name}{suffix}]\ncommand = \"@WEBHOOK_JSON@\"\n[plugins.{name}{suffix}.webhook]\nauth = \"{auth}\"\n"
        ));
        if let Some(secret) = secret {
            text.push_str(&format!("secret_env = \"{secret}\"\n"));
        }
        text.push('\n');
    }
    text
}

const SECRETS: &[(&str, &str)] = &[
    ("E2E_GITHUB_SECRET", GITHUB_SECRET),
    ("E2E_STRIPE_SECRET", STRIPE_SECRET),
    ("E2E_STANDARD_SECRET", STANDARD_SECRET),
    ("E2E_API_KEY", API_KEY),
];

/// Every scheme: a genuine request is answered 202 and its record stored; a
/// wrong, stale or unsigned one is answered 401 and stores nothing.
async fn every_scheme(database: Option<&str>, suffix: &str) {
    let hub = Hub::start(&scheme_plugins(suffix), SECRETS, database).await;
    let accepted = |reply: &Reply, what: &str| {
        assert_eq!(reply.status, 202, "{what}: {}", reply.text);
        assert_eq!(reply.json["status"], "accepted", "{what}: {}", reply.text);
        println!("{what}: 202 in {:?}", reply.took);
    };
    let unauthorized = |reply: &Reply, what: &str| {
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert!(reply.json["error"].is_string(), "{what}: {}", reply.text);
    };

    // GitHub.
    let path = format!("/webhooks/gh{suffix}");
    let bad = br#"{"id":"gh-bad"}"#;
    unauthorized(
        &hub.post(
            &path,
            &[("X-Hub-Signature-256", &github_signature(b"other"))],
            bad,
        )
        .await,
        "github, signature of another body",
    );
    unauthorized(&hub.post(&path, &[], bad).await, "github, unsigned");
    let body = br#"{"id":"gh-1"}"#;
    let reply = hub
        .post(
            &path,
            &[
                ("X-Hub-Signature-256", &github_signature(body)),
                ("X-GitHub-Delivery", &format!("guid-1{suffix}")),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    accepted(&reply, "github");
    assert_eq!(
        hub.wait_record(&format!("gh{suffix}"), "gh-1").await,
        ["gh-1"]
    );

    // Stripe, including a stale signature and a rotated secret.
    let path = format!("/webhooks/stripe{suffix}");
    let stale = br#"{"id":"st-stale"}"#;
    unauthorized(
        &hub.post(
            &path,
            &[("Stripe-Signature", &stripe_signature(stale, now() - 600))],
            stale,
        )
        .await,
        "stripe, 10 minutes old",
    );
    let body = br#"{"id":"st-1","object":"event"}"#;
    let genuine = stripe_signature(body, now());
    let rotated = format!("{genuine},v1={}", "0".repeat(64));
    let reply = hub
        .post(&path, &[("Stripe-Signature", &rotated)], body)
        .await;
    accepted(&reply, "stripe");
    assert_eq!(reply.json["delivery_id"], "st-1");
    assert_eq!(
        hub.wait_record(&format!("stripe{suffix}"), "st-1").await,
        ["st-1"]
    );

    // Standard Webhooks, signed by the official library.
    let path = format!("/webhooks/sw{suffix}");
    let stale = br#"{"id":"sw-stale"}"#;
    let headers = standard_headers(&format!("msg_stale{suffix}"), stale, now() - 600);
    unauthorized(
        &hub.post(&path, &pairs(&headers), stale).await,
        "standard webhooks, 10 minutes old",
    );
    let mut wrong = standard_headers(&format!("msg_wrong{suffix}"), br#"{"id":"x"}"#, now());
    wrong[0].1 = format!("msg_other{suffix}");
    unauthorized(
        &hub.post(&path, &pairs(&wrong), br#"{"id":"x"}"#).await,
        "standard webhooks, id changed",
    );
    let body = br#"{"id":"sw-1"}"#;
    let headers = standard_headers(&format!("msg_1{suffix}"), body, now());
    let reply = hub.post(&path, &pairs(&headers), body).await;
    accepted(&reply, "standard webhooks");
    assert_eq!(
        hub.wait_record(&format!("sw{suffix}"), "sw-1").await,
        ["sw-1"]
    );

    // API key: header, then query parameter; both removed before the plugin.
    let path = format!("/webhooks/key{suffix}");
    unauthorized(
        &hub.post(&path, &[("X-API-Key", "wrong")], br#"{"id":"k-bad"}"#)
            .await,
        "api key, wrong",
    );
    unauthorized(
        &hub.post(&path, &[], br#"{"id":"k-bad"}"#).await,
        "api key, none",
    );
    accepted(
        &hub.post(&path, &[("X-API-Key", API_KEY)], br#"{"id":"k-1"}"#)
            .await,
        "api key header",
    );
    accepted(
        &hub.post(
            &format!("{path}?apiKey=e2e+key+with%20spaces"),
            &[],
            br#"{"id":"k-2"}"#,
        )
        .await,
        "api key parameter",
    );
    // Deliveries may be stored in any order (`concurrency`): wait for both.
    let source = format!("key{suffix}");
    hub.wait_record(&source, "k-2").await;
    let mut ids = hub.wait_record(&source, "k-1").await;
    ids.sort();
    assert_eq!(ids, ["k-1", "k-2"]);

    // none.
    accepted(
        &hub.post(&format!("/webhooks/open{suffix}"), &[], br#"{"id":"o-1"}"#)
            .await,
        "none",
    );
    hub.wait_record(&format!("open{suffix}"), "o-1").await;

    // The refused requests stored nothing.
    for source in ["gh", "stripe", "sw"] {
        let ids = hub.record_ids(&format!("{source}{suffix}")).await;
        assert_eq!(ids.len(), 1, "{source}: {ids:?}");
    }
    let log = hub.log();
    for (_, secret) in SECRETS {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}

/// The PostgreSQL server the tests may use (`SWITCHYARD_TEST_POSTGRES_URL`),
/// or `None` (and a line saying the test is skipped) when there is none.
fn test_postgres_url() -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!(
            "skipping: SWITCHYARD_TEST_POSTGRES_URL is not set (see scripts/start-test-postgres)"
        );
    }
    url
}

#[tokio::test]
async fn every_scheme_is_accepted_and_a_wrong_one_refused_on_sqlite() {
    every_scheme(None, "").await;
}

#[tokio::test]
async fn every_scheme_is_accepted_and_a_wrong_one_refused_on_postgres() {
    let Some(url) = test_postgres_url() else {
        return;
    };
    let suffix = format!("_{}_{}", std::process::id(), now());
    every_scheme(Some(&url), &suffix).await;
}

/// Deliveries held in the inbox while their plugin is stopped wait for it:
/// each is tried again when the plugin's status changes (or at the
/// worker's recheck, every few seconds), never in a loop; once the plugin is
/// started again they are stored.
#[tokio::test]
async fn held_deliveries_wait_quietly_for_a_stopped_plugin() {
    let plugins =
        "[plugins.held]\ncommand = \"@WEBHOOK_JSON@\"\n[plugins.held.webhook]\nauth = \"none\"\n";
    let hub = Hub::start(plugins, &[], None).await;
    hub.stop_plugin("held").await;

    for n in 0..3 {
        let body = format!(r#"{{"id":"h-{n}"}}"#);
        let reply = hub.post("/webhooks/held", &[], body.as_bytes()).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    // Each delivery's first attempt finds the plugin stopped and is held.
    let failed = |log: &str| log.matches("failed for good").count();
    let held = hub
        .wait_for(|| async { (failed(&hub.log()) >= 3).then_some(()) })
        .await;
    assert!(
        held.is_some(),
        "the deliveries were not tried:\n{}",
        hub.log()
    );
    // Nothing changes for a second: nothing should be tried again in it (a
    // worker that does not wait for a change tries thousands of times).
    let before = failed(&hub.log());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = failed(&hub.log()) - before;
    assert!(
        again <= 3,
        "held deliveries were tried {again} more times within a second of a stopped plugin"
    );

    let start = hub.post("/api/v1/plugins/held/start", &[], b"").await;
    assert!(start.status < 300, "start: {} {}", start.status, start.text);
    for n in 0..3 {
        hub.wait_record("held", &format!("h-{n}")).await;
    }
}

/// A delivery's records may wait a few milliseconds for another write
/// (the next webhook's accept) to share their commit (`WriteJob::patient`),
/// but only when no other delivery waits behind them: a backlog worked
/// through that way would wait at every delivery.
#[tokio::test]
async fn a_backlog_of_deliveries_commits_each_one_at_once() {
    const BACKLOG: usize = 40;
    let plugins = "[plugins.backlog]\ncommand = \"@WEBHOOK_JSON@\"\n[plugins.backlog.webhook]\nauth = \"none\"\nconcurrency = 1\n";
    let hub = Hub::start(plugins, &[], None).await;
    hub.stop_plugin("backlog").await;
    for n in 0..BACKLOG {
        let body = format!(r#"{{"id":"b-{n}"}}"#);
        let reply = hub.post("/webhooks/backlog", &[], body.as_bytes()).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let start = hub.post("/api/v1/plugins/backlog/start", &[], b"").await;
    assert!(start.status < 300, "start: {} {}", start.status, start.text);
    let all = hub
        .wait_for(|| async { (hub.record_ids("backlog").await.len() == BACKLOG).then_some(()) })
        .await;
    assert!(all.is_some(), "the backlog was not stored:\n{}", hub.log());
    let waits = common::metric_sum(&hub.metrics().await, "switchyard_store_patient_waits_total");
    // Only the last delivery, with nothing behind it, may have waited.
    assert!(
        waits <= 1.0,
        "{waits} commits waited for company while {BACKLOG} deliveries were worked through"
    );
}

#[tokio::test]
async fn limits_unknown_plugins_and_replays() {
    let plugins = "[plugins.small]\ncommand = \"@WEBHOOK_JSON@\"\n[plugins.small.webhook]\nauth = \"github\"\nsecret_env = \"E2E_GITHUB_SECRET\"\nmax_body = 64\nconcurrency = 1\n\n\
                   [plugins.plain]\ncommand = \"@WEBHOOK_JSON@\"\n";
    let hub = Hub::start(plugins, SECRETS, None).await;

    // 404: no such plugin, and a plugin without a webhook section.
    for path in ["/webhooks/nobody", "/webhooks/plain"] {
        let reply = hub.post(path, &[], b"{}").await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
    }

    // 413 past max_body, signed or not; nothing stored.
    let big = format!(r#"{{"id":"big","pad":"{}"}}"#, "x".repeat(100));
    let reply = hub
        .post(
            "/webhooks/small",
            &[("X-Hub-Signature-256", &github_signature(big.as_bytes()))],
            big.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text);

    // A replayed delivery (same X-GitHub-Delivery) is accepted once: the
    // copy with another body is answered 202 and never stored.
    let first = br#"{"id":"r-1"}"#;
    let copy = br#"{"id":"r-copy"}"#;
    let reply = hub
        .post(
            "/webhooks/small",
            &[
                ("X-Hub-Signature-256", &github_signature(first)),
                ("X-GitHub-Delivery", "delivery-r"),
            ],
            first,
        )
        .await;
    assert_eq!(
        (reply.status, reply.json["status"].as_str()),
        (202, Some("accepted"))
    );
    let reply = hub
        .post(
            "/webhooks/small",
            &[
                ("X-Hub-Signature-256", &github_signature(copy)),
                ("X-GitHub-Delivery", "delivery-r"),
            ],
            copy,
        )
        .await;
    assert_eq!(
        (reply.status, reply.json["status"].as_str()),
        (202, Some("duplicate")),
        "{}",
        reply.text
    );
    // With `concurrency = 1` the inbox is worked in order: once a later
    // delivery is stored, the copy would have been too.
    let last = br#"{"id":"r-2"}"#;
    hub.post(
        "/webhooks/small",
        &[("X-Hub-Signature-256", &github_signature(last))],
        last,
    )
    .await;
    let mut ids = hub.wait_record("small", "r-2").await;
    ids.sort();
    assert_eq!(ids, ["r-1", "r-2"]);
}

#[tokio::test]
async fn a_full_inbox_answers_429_and_a_rejected_delivery_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    // A plugin that never completes its handshake: deliveries wait.
    let stuck = dir.path().join("stuck.sh");
    std::fs::write(&stuck, "#!/bin/sh\nexec /bin/sleep 600\n").unwrap();
    let mut permissions = std::fs::metadata(&stuck).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&stuck, permissions).unwrap();
    let plugins = format!(
        "[plugins.json]\ncommand = \"@WEBHOOK_JSON@\"\n[plugins.json.webhook]\nauth = \"none\"\n\n\
         [plugins.stuck]\ncommand = \"{}\"\nstart_timeout = \"10m\"\n[plugins.stuck.webhook]\nauth = \"none\"\nmax_pending = 2\n",
        stuck.display()
    );
    // Not every plugin becomes ready here: start without waiting on /readyz.
    let hub = Hub::start_unready(&plugins).await;

    let send = |key: &'static str| {
        let hub = &hub;
        async move {
            hub.post(
                "/webhooks/stuck",
                &[("Idempotency-Key", key)],
                br#"{"id":"s"}"#,
            )
            .await
        }
    };
    assert_eq!(send("a").await.status, 202);
    assert_eq!(send("b").await.status, 202);
    let full = send("c").await;
    assert_eq!(full.status, 429, "{}", full.text);
    assert!(full.retry_after, "429 without Retry-After");
    // A flood of 429s: every one counted, the first one logged.
    for key in ["d", "e", "f", "g"] {
        assert_eq!(send(key).await.status, 429);
    }
    let metrics = hub.metrics().await;
    assert!(
        metrics.contains(
            r#"switchyard_webhook_requests_total{plugin="stuck",outcome="inbox_full"} 5"#
        ),
        "{metrics}"
    );
    let refusals = |log: &str| {
        log.lines()
            .filter(|line| line.contains("Webhook refused") && line.contains("inbox_full"))
            .count()
    };
    hub.wait_for(|| async { (refusals(&hub.log()) > 0).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("the full inbox's refusal was not logged:\n{}", hub.log()));
    let log = hub.log();
    assert_eq!(refusals(&log), 1, "one line for the flood:\n{log}");
    assert!(log.contains("refused_since_last_line=0"), "{log}");
    // A replay of a stored delivery is still accepted (it adds nothing).
    assert_eq!(send("a").await.json["status"], "duplicate");

    // webhook-json rejects a body that is not JSON: the 202 was sent, so
    // the delivery becomes a dead letter of the webhook stage.
    hub.wait_for(|| async {
        let status = hub.get("/api/v1/plugins/json").await;
        (status["state"] == "running").then_some(())
    })
    .await
    .unwrap();
    let reply = hub.post("/webhooks/json", &[], b"this is not json").await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let letter = hub
        .wait_for(|| async {
            let letters = hub
                .get("/api/v1/dead-letters?plugin=json&stage=webhook")
                .await;
            letters["dead_letters"]
                .as_array()
                .and_then(|letters| letters.first().cloned())
        })
        .await
        .unwrap_or_else(|| panic!("no dead letter:\n{}", hub.log()));
    assert!(
        letter["error"].as_str().unwrap().contains("not valid JSON"),
        "{letter:#}"
    );
}

impl Hub {
    /// [`Hub::start`] without waiting for `/readyz` (waits for `/healthz`).
    async fn start_unready(plugins: &str) -> Hub {
        // `start` waits for /readyz; a stuck plugin never gets there, so
        // build the hub the same way and wait for /healthz instead.
        Hub::start_with(plugins, SECRETS, None, "/healthz").await
    }
}

#[tokio::test]
async fn a_synchronous_plugin_replies_to_the_challenge_and_stores_before_answering() {
    let plugins =
        "[plugins.sync]\ncommand = \"@TESTKIT@\"\n[plugins.sync.webhook]\nauth = \"none\"\n";
    let hub = Hub::start(plugins, &[], None).await;

    let reply = hub
        .post(
            "/webhooks/sync",
            &[("Idempotency-Key", "challenge-1")],
            br#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "text/plain");
    assert_eq!(
        reply.text,
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    // A replay gets the same reply.
    let again = hub
        .post(
            "/webhooks/sync",
            &[("Idempotency-Key", "challenge-1")],
            b"{}",
        )
        .await;
    assert_eq!(
        (again.status, again.text.as_str()),
        (200, reply.text.as_str())
    );

    // The records are stored before the answer: visible at once.
    let reply = hub
        .post("/webhooks/sync", &[], br#"[{"id":"t-1"},{"id":"t-2"}]"#)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let mut ids = hub.record_ids("sync").await;
    ids.sort();
    assert_eq!(ids, ["t-1", "t-2"]);

    // The plugin's INVALID_ARGUMENT is the client's 400, and stores nothing.
    let reply = hub.post("/webhooks/sync", &[], b"[1, 2]").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.json["error"].as_str().unwrap().contains("sync"),
        "{}",
        reply.text
    );
    assert_eq!(hub.record_ids("sync").await.len(), 2);
}

/// Synchronous deliveries posted all at once, each twice: the hub's group
/// commit stores them together (one inbox insert, one upsert of all their
/// records), and each delivery must still be stored exactly once, with
/// every record it made.
async fn synchronous_burst(database: Option<&str>, suffix: &str) {
    const DELIVERIES: usize = 24;
    let name = format!("burst{suffix}");
    let plugins = format!(
        "[plugins.{name}]\ncommand = \"@TESTKIT@\"\n[plugins.{name}.webhook]\nauth = \"none\"\n"
    );
    let hub = Hub::start(&plugins, &[], database).await;
    let path = format!("/webhooks/{name}");
    let posts = (0..2 * DELIVERIES).map(|post| {
        let index = post % DELIVERIES;
        let key = format!("burst-{index}");
        let body = format!(r#"[{{"id":"shared","n":{index}}},{{"id":"own-{index}"}}]"#);
        let (hub, path) = (&hub, &path);
        async move {
            hub.post(path, &[("Idempotency-Key", key.as_str())], body.as_bytes())
                .await
        }
    });
    let replies = futures_util::future::join_all(posts).await;
    for reply in &replies {
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let mut ids = hub.record_ids(&name).await;
    ids.sort();
    let mut expected: Vec<String> = (0..DELIVERIES)
        .map(|index| format!("own-{index}"))
        .collect();
    expected.push("shared".to_owned());
    expected.sort();
    assert_eq!(ids, expected);
    // Each delivery updated the shared record once (its metadata names the
    // delivery): created by the first, updated by the others, never twice.
    let page = hub
        .get(&format!("/api/v1/records?source={name}&limit=1000"))
        .await;
    let shared = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["source_id"] == "shared")
        .unwrap();
    assert_eq!(shared["version"], DELIVERIES, "{shared:#}");
}

#[tokio::test]
async fn synchronous_deliveries_at_once_are_each_stored_once_on_sqlite() {
    synchronous_burst(None, "").await;
}

#[tokio::test]
async fn synchronous_deliveries_at_once_are_each_stored_once_on_postgres() {
    let Some(url) = test_postgres_url() else {
        return;
    };
    let suffix = format!("_{}_{}", std::process::id(), now());
    synchronous_burst(Some(&url), &suffix).await;
}

/// Prints how fast deliveries are accepted (202) one after another; asserts
/// only that every one was accepted and stored.
async fn acceptance_latency(database: Option<&str>, what: &str, source: &str) {
    let plugins = format!(
        "[plugins.{source}]\ncommand = \"@WEBHOOK_JSON@\"\n[plugins.{source}.webhook]\nauth = \"github\"\nsecret_env = \"E2E_GITHUB_SECRET\"\n"
    );
    let hub = Hub::start(&plugins, SECRETS, database).await;
    const COUNT: usize = 200;
    let mut latencies = Vec::with_capacity(COUNT);
    let started = Instant::now();
    for index in 0..COUNT {
        let body = format!(r#"{{"id":"f-{index}"}}"#);
        let reply = hub
            .post(
                &format!("/webhooks/{source}"),
                &[("X-Hub-Signature-256", &github_signature(body.as_bytes()))],
                body.as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        latencies.push(reply.took);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "webhook 202 latency over {COUNT} sequential requests ({what}): median {:?}, p99 {:?}, max {:?}; {:.0} accepted/s",
        latencies[COUNT / 2],
        latencies[COUNT * 99 / 100],
        latencies[COUNT - 1],
        COUNT as f64 / elapsed.as_secs_f64()
    );

    // The same again with 16 requests in flight at once.
    use futures_util::StreamExt as _;
    let started = Instant::now();
    let mut concurrent: Vec<Duration> = futures_util::stream::iter(COUNT..2 * COUNT)
        .map(|index| {
            let hub = &hub;
            async move {
                let body = format!(r#"{{"id":"f-{index}"}}"#);
                let path = format!("/webhooks/{source}");
                let signature = github_signature(body.as_bytes());
                let reply = hub
                    .post(
                        &path,
                        &[("X-Hub-Signature-256", &signature)],
                        body.as_bytes(),
                    )
                    .await;
                assert_eq!(reply.status, 202, "{}", reply.text);
                reply.took
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed();
    concurrent.sort();
    println!(
        "webhook 202 latency over {COUNT} requests, 16 in flight ({what}): median {:?}, p99 {:?}; {:.0} accepted/s",
        concurrent[COUNT / 2],
        concurrent[COUNT * 99 / 100],
        COUNT as f64 / elapsed.as_secs_f64()
    );
    hub.wait_record(source, &format!("f-{}", 2 * COUNT - 1))
        .await;
    let stored = hub
        .wait_for(|| async {
            let ids = hub.record_ids(source).await;
            (ids.len() == 2 * COUNT).then_some(ids.len())
        })
        .await;
    assert_eq!(
        stored,
        Some(2 * COUNT),
        "not every accepted delivery was stored"
    );
}

#[tokio::test]
async fn acceptance_latency_is_printed_on_sqlite() {
    acceptance_latency(None, "SQLite", "fast").await;
}

#[tokio::test]
async fn acceptance_latency_is_printed_on_postgres() {
    let Some(url) = test_postgres_url() else {
        return;
    };
    let source = format!("fast_{}_{}", std::process::id(), now());
    acceptance_latency(Some(&url), "PostgreSQL", &source).await;
}

/// In process: a delivery the plugin rejects is dead-lettered by the worker;
/// replaying the dead letter puts it back in the inbox, the worker hands it
/// to the plugin again, and (rejected again) it is dead-lettered once more.
#[tokio::test]
async fn a_replayed_webhook_dead_letter_goes_back_to_the_plugin() {
    use switchyard_hub::pipeline::Pipeline;
    use switchyard_hub::store::{DeadLetterFilter, Stage, Store};
    use switchyard_hub::supervisor::{Spawner, Supervisor};
    use switchyard_hub::webhook::{Answer, Incoming, Webhooks};

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[hub]\ndatabase = \"sqlite://hub.db\"\n[plugins.json]\ncommand = \"{}\"\n[plugins.json.webhook]\nauth = \"none\"\n",
        common::built("webhook-json").display()
    );
    std::fs::write(dir.path().join("plugins.toml"), text).unwrap();
    let config = switchyard_hub::config::load(&dir.path().join("plugins.toml")).unwrap();
    let store = Store::open(&config.hub.database.url()).await.unwrap();
    let spawner = std::sync::Arc::new(Spawner::start(tokio::runtime::Handle::current()).unwrap());
    let sockets = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(&config.plugins, spawner, sockets.path().to_path_buf());
    let registry = switchyard_hub::supervisor::Registry::new(supervisor.plugins().to_vec());
    let cluster = switchyard_hub::cluster::Cluster::solo("test");
    let pipeline = Pipeline::start(
        &config,
        store.clone(),
        registry.clone(),
        cluster.clone(),
        switchyard_hub::cluster::Demand::new(registry, Default::default()),
    );
    let (webhooks, workers) = Webhooks::start(
        &config.plugins,
        supervisor.plugins(),
        pipeline.ingest().clone(),
        cluster,
    )
    .await
    .unwrap();

    let answer = webhooks
        .receive(
            "json",
            Incoming {
                method: "POST".into(),
                path: "/webhooks/json".into(),
                query: String::new(),
                headers: vec![("idempotency-key".into(), "bad-1".into())],
                body: b"not json".to_vec(),
                received_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        answer,
        Answer::Accepted {
            delivery_id: "bad-1".into()
        }
    );
    let filter = DeadLetterFilter {
        plugin: Some("json".into()),
        stage: Some(Stage::Webhook),
    };
    let letters = |count: usize| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                let (letters, _) = store
                    .list_dead_letters(&filter, 0, 10, usize::MAX)
                    .await
                    .unwrap();
                if letters.len() == count {
                    return letters;
                }
                assert!(
                    Instant::now() < deadline,
                    "expected {count} dead letters, have {letters:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let first = letters(1).await.remove(0);
    assert_eq!(first.record.id, "bad-1");
    assert_eq!(first.record.record_type, "webhook.delivery");
    assert_eq!(first.record.payload.to_value()["body"], "not json");
    assert!(first.error.contains("not valid JSON"), "{}", first.error);

    assert!(webhooks.replay_dead_letter(&first).await.unwrap());
    // Replaying the same letter twice does nothing.
    assert!(!webhooks.replay_dead_letter(&first).await.unwrap());
    let again = letters(1).await.remove(0);
    assert_ne!(
        again.id, first.id,
        "the replayed delivery was not dead-lettered anew"
    );
    assert_eq!(again.record.id, "bad-1");

    workers.stop().await;
    pipeline.stop().await;
    supervisor.stop_all().await;
    store.close().await;
}

/// Accepted means durable: deliveries accepted while the plugin cannot take
/// them survive a SIGKILL of the hub and are handed to the plugin after the
/// restart.
#[tokio::test]
async fn accepted_deliveries_survive_a_hub_crash() {
    let data = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", data.path().join("hub.db").display());
    let stuck = common::write_script(data.path(), "stuck.sh", "exec /bin/sleep 600");
    let section =
        "[plugins.durable.webhook]\nauth = \"github\"\nsecret_env = \"E2E_GITHUB_SECRET\"\n";

    let mut hub = Hub::start_with(
        &format!(
            "[plugins.durable]\ncommand = \"{}\"\nstart_timeout = \"10m\"\n{section}",
            stuck.display()
        ),
        SECRETS,
        Some(&database),
        "/healthz",
    )
    .await;
    for index in 0..3 {
        let body = format!(r#"{{"id":"d-{index}"}}"#);
        let reply = hub
            .post(
                "/webhooks/durable",
                &[("X-Hub-Signature-256", &github_signature(body.as_bytes()))],
                body.as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    drop(hub);

    let hub = Hub::start(
        &format!("[plugins.durable]\ncommand = \"@WEBHOOK_JSON@\"\n{section}"),
        SECRETS,
        Some(&database),
    )
    .await;
    // The worker hands several deliveries over at once (`concurrency`), so
    // they may be stored in any order: wait for all three.
    let ids = hub
        .wait_for(|| async {
            let mut ids = hub.record_ids("durable").await;
            ids.sort();
            (ids.len() >= 3).then_some(ids)
        })
        .await
        .unwrap_or_else(|| panic!("the deliveries were not all stored:\n{}", hub.log()));
    assert_eq!(ids, ["d-0", "d-1", "d-2"]);
}

/// `switchyard check` reports a missing secret by the variable's name.
#[test]
fn check_names_a_missing_secret_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plugins.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.gh]\ncommand = \"{}\"\n[plugins.gh.webhook]\nauth = \"github\"\nsecret_env = \"E2E_UNSET_SECRET\"\n",
            common::built("webhook-json").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "plugins.toml:5:14: the environment variable `E2E_UNSET_SECRET` named by `secret_env` in [plugins.gh.webhook] (plugin `gh`) is not set"
        ),
        "{stderr}"
    );
}

/// Group commit keeps "accepted means durable" under concurrency: many
/// webhooks posted at once while the hub is SIGKILLed part-way through;
/// every delivery that was answered 202 is in the inbox afterwards.
#[tokio::test]
async fn every_accepted_concurrent_webhook_survives_a_hub_crash() {
    let data = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", data.path().join("hub.db").display());
    let stuck = common::write_script(data.path(), "stuck.sh", "exec /bin/sleep 600");
    let mut hub = Hub::start_with(
        &format!(
            "[plugins.busy]\ncommand = \"{}\"\nstart_timeout = \"10m\"\n\
             [plugins.busy.webhook]\nauth = \"none\"\n",
            stuck.display()
        ),
        &[],
        Some(&database),
        "/healthz",
    )
    .await;
    const POSTS: usize = 400;
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut posts = tokio::task::JoinSet::new();
    for index in 0..POSTS {
        let http = hub.http.clone();
        let url = format!("{}/webhooks/busy", hub.base);
        let accepted = accepted.clone();
        posts.spawn(async move {
            let response = http
                .post(url)
                .header("content-type", "application/json")
                .header("idempotency-key", format!("concurrent-{index}"))
                .body(format!(r#"{{"id":"c-{index}"}}"#))
                .send()
                .await;
            if let Ok(response) = response
                && response.status() == 202
            {
                let body: Value = response.json().await.unwrap();
                let id = body["delivery_id"].as_str().unwrap().to_owned();
                assert_eq!(id, format!("concurrent-{index}"));
                accepted.lock().unwrap().push(id);
            }
        });
    }
    // Kill the hub once part of the posts were answered, with the rest in
    // flight (some in a group commit, some not yet read).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while accepted.lock().unwrap().len() < POSTS / 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "too few webhooks accepted:\n{}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    while let Some(post) = posts.join_next().await {
        post.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= POSTS / 4, "{}", accepted.len());

    let store = switchyard_hub::store::Store::open(&database).await.unwrap();
    for id in &accepted {
        let entry = store.inbox_delivery("busy", id).await.unwrap();
        assert!(
            entry.is_some(),
            "delivery {id} was answered 202 but is not in the inbox"
        );
    }
    store.close().await;
}
