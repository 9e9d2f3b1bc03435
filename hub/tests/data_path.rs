//! The data path end to end, with the real `switchyard` binary, real SDK
//! plugins (generator, jsonl-output, testkit) and both databases: polled
//! records survive SIGKILLs of the hub, an output killed mid-stream still
//! gets every event, permanent nacks and enrichment failures land in the
//! dead letters and replay, and the enrichment chain runs in order.
//!
//! PostgreSQL runs when `SWITCHYARD_TEST_POSTGRES_URL` is set (see
//! `scripts/start-test-postgres`); under `CI=true` it must be.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::wait_for;
use serde_json::Value;
use switchyard_hub::store::{Store, testing};

/// The databases to run each scenario on: a fresh SQLite file in `dir`,
/// and a fresh PostgreSQL database when one is configured.
async fn databases(dir: &Path, test: &str) -> Vec<String> {
    let mut urls = vec![testing::sqlite_url(dir)];
    if let Some(url) = testing::postgres_url(test).await {
        urls.push(url);
    }
    urls
}

/// A `switchyard run` process.
struct Hub {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Hub {
    /// Starts the hub on `database` with `plugins` (TOML after `[hub]`) in
    /// `dir`, and waits until it is ready.
    async fn start(dir: &Path, database: &str, plugins: &str) -> Hub {
        let hub = Hub::start_unready(dir, database, plugins).await;
        wait_until(Duration::from_secs(60), "the hub to be ready", || async {
            hub.http
                .get(format!("{}/readyz", hub.base))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
        })
        .await;
        hub
    }

    /// Starts the hub and waits only until it answers `/healthz` (some
    /// plugins may never become ready).
    async fn start_unready(dir: &Path, database: &str, plugins: &str) -> Hub {
        let port = common::free_port();
        let text = format!(
            "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"{database}\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n\n{}",
            plugins
                .replace(
                    "@GENERATOR@",
                    &common::built("generator").display().to_string()
                )
                .replace(
                    "@JSONL@",
                    &common::built("jsonl-output").display().to_string()
                )
                .replace("@TESTKIT@", &common::built("testkit").display().to_string())
        );
        let config = dir.join("plugins.toml");
        std::fs::write(&config, text).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hub.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("SWITCHYARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let hub = Hub {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let mut hub = hub;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answered = hub
                .http
                .get(format!("{}/healthz", hub.base))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if answered {
                return hub;
            }
            let log = || std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
            if let Some(status) = hub.child.try_wait().unwrap() {
                panic!("the hub exited with {status}; its log:\n{}", log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub did not answer within 60s; its log:\n{}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn plugin_pid(&self, name: &str) -> i32 {
        let status = self.get(&format!("/api/v1/plugins/{name}")).await;
        i32::try_from(status["pid"].as_i64().unwrap()).unwrap()
    }

    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the hub exited with {status}");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the hub did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it is true, or panics after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for(limit, what, || {
        let probe = probe();
        async move { probe.await.then_some(()) }
    })
    .await;
}

async fn count_records(database: &str) -> i64 {
    let store = Store::open(database).await.unwrap();
    let count = store.count_records().await.unwrap();
    store.close().await;
    count
}

/// The distinct record ids in a jsonl-output file, and the line count.
/// Only whole lines count: the file is read while the plugin appends, so
/// its end may be a line still being written. Every whole line must parse.
fn delivered_ids(path: &Path) -> (BTreeSet<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut ids = BTreeSet::new();
    let mut lines = 0;
    for line in whole.lines().filter(|line| !line.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap();
        ids.insert(event["record"]["id"].as_str().unwrap().to_owned());
        lines += 1;
    }
    (ids, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_records_survive_hub_sigkills_without_duplicates() {
    const TOTAL: i64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    for database in databases(dir.path(), "polled_records_survive_hub_sigkills").await {
        let plugins = format!(
            r#"
[plugins.gen]
command = "@GENERATOR@"
[plugins.gen.config]
records_per_poll = {TOTAL}
batch_size = 100
total = {TOTAL}
[plugins.gen.poll]
interval = "300ms"
"#
        );
        // Mid-poll: killed once some batches are committed but not all.
        let hub = Hub::start(dir.path(), &database, &plugins).await;
        wait_until(Duration::from_secs(60), "the first records", || async {
            count_records(&database).await > 0
        })
        .await;
        hub.sigkill();
        let after_kill = count_records(&database).await;
        assert!(
            after_kill < TOTAL,
            "the poll had already finished ({after_kill} records); the kill was not mid-poll"
        );

        // Restarted, it resumes from the checkpoint and completes.
        let hub = Hub::start(dir.path(), &database, &plugins).await;
        wait_until(Duration::from_secs(120), "every record", || async {
            count_records(&database).await == TOTAL
        })
        .await;
        // Between polls: the generator has nothing more to emit.
        hub.sigkill();
        let hub = Hub::start(dir.path(), &database, &plugins).await;
        let page = hub.get("/api/v1/records?limit=1").await;
        assert_eq!(page["records"][0]["source"], "gen");
        tokio::time::sleep(Duration::from_millis(700)).await; // at least one more poll
        hub.stop().await;

        let store = Store::open(&database).await.unwrap();
        assert_eq!(store.count_records().await.unwrap(), TOTAL);
        assert_eq!(
            store.count_events().await.unwrap(),
            (TOTAL, 0),
            "every record was created exactly once and never updated"
        );
        assert_eq!(
            store.checkpoint("gen").await.unwrap(),
            Some(TOTAL.to_string().into_bytes())
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_killed_mid_stream_still_gets_every_event() {
    const TOTAL: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    for (index, database) in databases(dir.path(), "output_killed_mid_stream")
        .await
        .into_iter()
        .enumerate()
    {
        let events = dir.path().join(format!("events-{index}.jsonl"));
        let unordered = dir.path().join(format!("unordered-{index}.jsonl"));
        let plugins = format!(
            r#"
[plugins.gen]
command = "@GENERATOR@"
[plugins.gen.config]
records_per_poll = {TOTAL}
batch_size = 100
total = {TOTAL}
[plugins.gen.poll]
interval = "1h"

[plugins.out]
command = "@JSONL@"
[plugins.out.config]
path = "{}"
[plugins.out.output]
batch = 20

[plugins.fast]
command = "@JSONL@"
[plugins.fast.config]
path = "{}"
[plugins.fast.output]
batch = 50
ordered = false
max_in_flight = 4
"#,
            events.display(),
            unordered.display()
        );
        let hub = Hub::start(dir.path(), &database, &plugins).await;
        wait_until(Duration::from_secs(60), "the first deliveries", || async {
            delivered_ids(&events).1 > 0
        })
        .await;
        let pid = hub.plugin_pid("out").await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let at_kill = delivered_ids(&events).0.len();
        assert!(
            at_kill < TOTAL,
            "the output was killed after the last event"
        );
        wait_until(
            Duration::from_secs(120),
            "every event delivered",
            || async { delivered_ids(&events).0.len() == TOTAL },
        )
        .await;
        let (ids, lines) = delivered_ids(&events);
        let expected: BTreeSet<String> = (0..TOTAL).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected, "no event is missing");
        // The unordered output, killed too, also gets everything.
        let pid = hub.plugin_pid("fast").await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_until(
            Duration::from_secs(120),
            "every event delivered out of order",
            || async { delivered_ids(&unordered).0.len() == TOTAL },
        )
        .await;
        assert_eq!(delivered_ids(&unordered).0, expected);
        // Only what was not acked is redelivered: at most one stream's worth.
        assert!(lines <= TOTAL + 20 * 2, "{lines} lines for {TOTAL} events");
        hub.stop().await;
    }
}

/// An output's progress may wait a few milliseconds for another write to
/// share its commit (`WriteJob::patient`), but only once the output has
/// caught up: while it works through a backlog it commits each step at
/// once, or a backlog of one-event streams would wait at every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_working_through_a_backlog_commits_each_step_at_once() {
    const TOTAL: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    for (index, database) in databases(dir.path(), "output_backlog_patience")
        .await
        .into_iter()
        .enumerate()
    {
        let ordered = dir.path().join(format!("ordered-{index}.jsonl"));
        let unordered = dir.path().join(format!("unordered-{index}.jsonl"));
        let plugins = format!(
            r#"
[plugins.gen]
command = "@GENERATOR@"
[plugins.gen.config]
records_per_poll = {TOTAL}
batch_size = 100
total = {TOTAL}
[plugins.gen.poll]
interval = "1h"

[plugins.one]
command = "@JSONL@"
[plugins.one.config]
path = "{}"
[plugins.one.output]
batch = 1

[plugins.four]
command = "@JSONL@"
[plugins.four.config]
path = "{}"
[plugins.four.output]
batch = 1
ordered = false
max_in_flight = 4
"#,
            ordered.display(),
            unordered.display()
        );
        let hub = Hub::start(dir.path(), &database, &plugins).await;
        wait_until(
            Duration::from_secs(120),
            "every event delivered to both outputs",
            || async {
                delivered_ids(&ordered).0.len() == TOTAL
                    && delivered_ids(&unordered).0.len() == TOTAL
            },
        )
        .await;
        // Each output took hundreds of steps, one commit each; a commit
        // waited for company only where an output had caught up with the
        // poll's batches (four of them) and had nothing else to deliver.
        let waits =
            common::metric_sum(&hub.metrics().await, "switchyard_store_patient_waits_total");
        assert!(
            waits <= 12.0,
            "{waits} commits waited for company while two outputs worked through {TOTAL} events each ({database})"
        );
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_nack_is_dead_lettered_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    for database in databases(dir.path(), "permanent_nack").await {
        let plugins = |nack: &str, poll: &str| {
            format!(
                r#"
[plugins.src]
command = "@TESTKIT@"
[plugins.src.config]
poll_batches = 1
records_per_batch = 5
{poll}

[plugins.sink]
command = "@TESTKIT@"
[plugins.sink.config]
nack_ids = [{nack}]
[plugins.sink.output]
batch = 2
"#
            )
        };
        let poll = "[plugins.src.poll]\ninterval = \"1h\"";
        let hub = Hub::start(dir.path(), &database, &plugins("\"2\"", poll)).await;
        let letters = wait_for(Duration::from_secs(30), "a dead letter", || async {
            let letters = hub
                .get("/api/v1/dead-letters?plugin=sink&stage=output")
                .await;
            (letters["dead_letters"].as_array().unwrap().len() == 1).then_some(letters)
        })
        .await;
        let letter = &letters["dead_letters"][0];
        assert_eq!(letter["record"]["id"], "2");
        assert_eq!(letter["stage"], "output");
        assert_eq!(letter["attempts"], 1);
        assert!(letter["error"].as_str().unwrap().contains("nack_ids"));
        let id = letter["id"].as_i64().unwrap();
        let empty = hub.get("/api/v1/dead-letters?stage=enrich").await;
        assert!(empty["dead_letters"].as_array().unwrap().is_empty());

        // Replayed while the output still refuses it: dead-lettered again.
        let (status, body) = hub.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 202, "{body}");
        wait_until(
            Duration::from_secs(30),
            "the second dead letter",
            || async {
                let letters = hub.get("/api/v1/dead-letters?plugin=sink").await;
                let letters = letters["dead_letters"].as_array().unwrap().clone();
                letters.len() == 1 && letters[0]["id"].as_i64() != Some(id)
            },
        )
        .await;
        hub.stop().await;

        // The output is fixed (and nothing new is polled); the replay is
        // delivered and the letter gone.
        let hub = Hub::start(dir.path(), &database, &plugins("", "")).await;
        let letters = hub.get("/api/v1/dead-letters").await;
        let id = letters["dead_letters"][0]["id"].as_i64().unwrap();
        let (status, _) = hub.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 202);
        let (status, _) = hub.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 404, "a replayed dead letter is gone");
        let metric = "switchyard_events_delivered_total{plugin=\"sink\"} 1";
        wait_until(Duration::from_secs(30), "the replayed delivery", || async {
            hub.metrics().await.contains(metric)
        })
        .await;
        let letters = hub.get("/api/v1/dead-letters").await;
        assert!(letters["dead_letters"].as_array().unwrap().is_empty());
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrichment_chain_runs_in_order_and_failures_follow_on_error() {
    let dir = tempfile::tempdir().unwrap();
    for database in databases(dir.path(), "enrichment_chain").await {
        let plugins_with = |fail_a: &str, fail_b: &str, on_error_b: &str| {
            format!(
                r#"
[plugins.src]
command = "@TESTKIT@"
[plugins.src.config]
poll_batches = 2
records_per_batch = 3
[plugins.src.poll]
interval = "1h"

[plugins.a]
command = "@TESTKIT@"
[plugins.a.config]
tag = "a"
enrich_delay_ms = 5
fail_ids = [{fail_a}]

[plugins.b]
command = "@TESTKIT@"
[plugins.b.config]
tag = "b"
fail_ids = [{fail_b}]

[pipeline]
enrich = ["a", "b"]
on_error = {{ a = "dead-letter", b = "{on_error_b}" }}
"#
            )
        };
        let plugins = |fail_a: &str, fail_b: &str| plugins_with(fail_a, fail_b, "skip");
        let hub = Hub::start(dir.path(), &database, &plugins("\"4\"", "\"1\"")).await;
        let page = wait_for(Duration::from_secs(30), "five records", || async {
            let page = hub.get("/api/v1/records?source=src").await;
            (page["records"].as_array().unwrap().len() == 5).then_some(page)
        })
        .await;
        for record in page["records"].as_array().unwrap() {
            if record["source_id"] == "1" {
                // `b` failed it with on_error = "skip": stored without b's tag.
                assert_eq!(record["metadata"]["chain"], "a", "{record}");
                assert!(
                    record["metadata"]["enrich_error.b"]
                        .as_str()
                        .unwrap()
                        .contains("fail_ids")
                );
            } else {
                assert_eq!(record["metadata"]["chain"], "a,b", "{record}");
            }
            assert_eq!(record["source"], "src");
            assert_eq!(record["type"], "testkit.poll");
            let id = record["id"].as_i64().unwrap();
            let one = hub.get(&format!("/api/v1/records/{id}")).await;
            assert_eq!(one["source_id"], record["source_id"]);
        }
        let letters = hub.get("/api/v1/dead-letters?stage=enrich").await;
        let letters = letters["dead_letters"].as_array().unwrap().clone();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0]["plugin"], "a");
        assert_eq!(letters[0]["record"]["id"], "4");
        assert!(
            letters[0]["record"]["metadata"].get("chain").is_none(),
            "the original record is kept"
        );
        let id = letters[0]["id"].as_i64().unwrap();
        hub.stop().await;

        // With `a` fixed but `b` parking the record, the replay passes `a`
        // and is dead-lettered by `b`: the new letter keeps the record as it
        // entered the chain, without `a`'s changes.
        let hub = Hub::start(
            dir.path(),
            &database,
            &plugins_with("", "\"4\"", "dead-letter"),
        )
        .await;
        let (status, body) = hub.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "dead-lettered", "{body}");
        let letters = hub.get("/api/v1/dead-letters?stage=enrich").await;
        let letters = letters["dead_letters"].as_array().unwrap().clone();
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0]["plugin"], "b");
        assert_eq!(letters[0]["record"]["id"], "4");
        assert!(
            letters[0]["record"]["metadata"].get("chain").is_none(),
            "the letter keeps the record as it entered the chain: {}",
            letters[0]["record"]
        );
        let id = letters[0]["id"].as_i64().unwrap();
        hub.stop().await;

        // With `a` fixed, the replay runs the original record through the
        // whole chain and stores it.
        let hub = Hub::start(dir.path(), &database, &plugins("", "\"1\"")).await;
        let (status, body) = hub.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "stored");
        let record_id = body["record_id"].as_i64().unwrap();
        let record = hub.get(&format!("/api/v1/records/{record_id}")).await;
        assert_eq!(record["source_id"], "4");
        assert_eq!(record["metadata"]["chain"], "a,b");
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_wait_for_an_enricher_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    for database in databases(dir.path(), "enricher_down").await {
        let broken = dir.path().join("broken-enricher");
        std::fs::write(&broken, "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let plugins = |enricher: &str| {
            format!(
                r#"
[plugins.src]
command = "@TESTKIT@"
[plugins.src.poll]
interval = "200ms"

[plugins.a]
command = "{enricher}"
[plugins.a.config]
tag = "a"

[pipeline]
enrich = ["a"]
"#
            )
        };
        // The enricher cannot start: polls run, but nothing can be stored.
        let broken_hub = Hub::start_unready(
            dir.path(),
            &database,
            &plugins(&broken.display().to_string()),
        )
        .await;
        wait_until(Duration::from_secs(30), "a poll", || async {
            broken_hub
                .metrics()
                .await
                .contains("switchyard_records_in_total{plugin=\"src\"}")
        })
        .await;
        assert_eq!(
            count_records(&database).await,
            0,
            "records were stored unenriched"
        );
        broken_hub.stop().await;

        // Fixed, the same records (from the same checkpoint) are enriched
        // and stored: nothing was lost.
        let hub = Hub::start(dir.path(), &database, &plugins("@TESTKIT@")).await;
        let page = wait_for(Duration::from_secs(30), "the held-back records", || async {
            let page = hub.get("/api/v1/records?source=src").await;
            (page["records"].as_array().unwrap().len() >= 6).then_some(page)
        })
        .await;
        let ids: Vec<&str> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["source_id"].as_str().unwrap())
            .collect();
        assert_eq!(&ids[..6], ["0", "1", "2", "3", "4", "5"]);
        assert!(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["metadata"]["chain"] == "a")
        );
        hub.stop().await;
    }
}
