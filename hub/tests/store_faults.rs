//! The store's faults, end to end: the real `switchyard` binary and real
//! plugin binaries (generator, webhook-json, jsonl-output) under webhook,
//! poll and output load, while
//! * a private PostgreSQL server (the test's own, see
//!   `store_faults/private_postgres.rs`) is stopped and started again, or
//! * the small tmpfs the SQLite database lives on fills up and is freed.
//!
//! While the database is down: webhooks answer 503 `store_unavailable` with
//! `Retry-After` (never 202 for a request sent while PostgreSQL is stopped),
//! `/readyz` answers 503 naming the database, `/healthz` stays 200. After
//! it is back: every webhook that got 202 and every generated record is
//! stored exactly once and delivered to the output file at least once.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "store_faults/private_postgres.rs"]
mod private_postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use private_postgres::PrivatePostgres;

type Hub = common::HubProcess;

/// Records the generator makes in all.
const GENERATED: usize = 1500;
/// Webhook senders, and the most ids each sends.
const SENDERS: usize = 3;
const PER_SENDER: usize = 400;

/// The config: a webhook input, a generator polling every 100 ms (10
/// records a poll, so it takes a while to reach [`GENERATED`]) and a JSON
/// Lines output of everything.
fn config(port: u16, database: &str, dir: &Path) -> String {
    let text = format!(
        r#"[hub]
listen = "127.0.0.1:{port}"
database = "{database}"
stop_grace = "2s"
kill_grace = "1s"

[plugins.hooks]
command = "@webhook-json@"
[plugins.hooks.webhook]
auth = "none"

[plugins.gen]
command = "@generator@"
[plugins.gen.poll]
interval = "100ms"
[plugins.gen.config]
records_per_poll = 10
batch_size = 5
total = {GENERATED}

[plugins.sink]
command = "@jsonl-output@"
[plugins.sink.config]
path = "@DIR@/sink.jsonl"
fsync = false
[plugins.sink.output]
"#
    );
    let mut text = text.replace("@DIR@", &dir.display().to_string());
    for name in ["generator", "webhook-json", "jsonl-output"] {
        text = text.replace(
            &format!("@{name}@"),
            &common::built(name).display().to_string(),
        );
    }
    text
}

/// One webhook answer, as a sender saw it.
#[derive(Debug, Clone)]
struct Answer {
    id: String,
    sent: Instant,
    answered: Instant,
    status: u16,
    retry_after: Option<String>,
    code: Option<String>,
}

/// Posts `id` once (the id is also the delivery's `Idempotency-Key`, so a
/// retry of a delivery the hub stored is a duplicate, not a second copy).
async fn post_webhook(hub: &Hub, id: &str) -> Answer {
    let sent = Instant::now();
    let response = hub
        .http
        .post(format!("{}/webhooks/hooks", hub.base))
        .header("Idempotency-Key", id)
        .json(&json!({ "id": id }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Answer {
        id: id.to_owned(),
        sent,
        answered: Instant::now(),
        status,
        retry_after,
        code: body["code"].as_str().map(str::to_owned),
    }
}

/// Webhook senders posting distinct ids until stopped, each retrying a
/// refused id (429, 503) as a webhook sender would, until it gets 202.
struct Load {
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

impl Load {
    fn start(hub: &Arc<Hub>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let senders = (0..SENDERS)
            .map(|sender| {
                let hub = hub.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for n in 0..PER_SENDER {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let id = format!("s{sender}-{n}");
                        loop {
                            let answer = post_webhook(&hub, &id).await;
                            let status = answer.status;
                            answers.push(answer);
                            match status {
                                202 => break,
                                429 | 503 => tokio::time::sleep(Duration::from_millis(50)).await,
                                other => panic!("webhook {id} answered {other}"),
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    answers
                })
            })
            .collect();
        Load { stop, senders }
    }

    /// Stops the senders (each finishes the id in hand) and returns every
    /// answer they got.
    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        let mut answers = Vec::new();
        for sender in self.senders {
            answers.extend(sender.await.unwrap());
        }
        answers
    }
}

/// Every record of `source`.
async fn records(hub: &Hub, source: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/records?source={source}&limit=1000");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, body) = hub.send("GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        all.extend(body["records"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

async fn status_of(hub: &Hub, path: &str) -> (u16, Value) {
    let response = hub
        .http
        .get(format!("{}{path}", hub.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the generator has stored at least `generated` records.
async fn wait_for_progress(hub: &Hub, generated: usize) {
    hub.wait("the generator to store some records", || async {
        (records(hub, "gen").await.len() >= generated).then_some(())
    })
    .await;
}

/// While the database is down: a webhook answers 503 `store_unavailable`
/// with `Retry-After`, `/readyz` 503 naming the database, `/healthz` 200.
/// With `may_accept` false (the server is stopped) no webhook posted here
/// may get 202. Returns the ids posted here (to be posted again once it
/// is back).
async fn check_outage_answers(hub: &Hub, backend: &str, may_accept: bool) -> Vec<String> {
    let mut posted = Vec::new();
    // A full disk may still take a small commit (SQLite reuses its WAL's
    // space); a stopped server takes none. Until the hub has noticed the
    // outage a refusal may come from the write that found the database
    // gone; every refusal is a 503 with Retry-After.
    let refused = hub
        .wait("a webhook refused with 503 store_unavailable", || {
            let id = format!("outage-{}", posted.len());
            posted.push(id.clone());
            async move {
                let answer = post_webhook(hub, &id).await;
                assert!(
                    answer.status == 503 || (may_accept && answer.status == 202),
                    "a webhook during the outage answered {answer:?}"
                );
                if answer.status == 503 {
                    assert!(
                        answer.retry_after.as_deref().is_some_and(|value| value
                            .parse::<u64>()
                            .is_ok_and(|seconds| seconds > 0)),
                        "a 503 carries Retry-After: {answer:?}"
                    );
                }
                (answer.code.as_deref() == Some("store_unavailable")).then_some(answer)
            }
        })
        .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    let ready = hub
        .wait("/readyz to report the database", || async {
            let (status, body) = status_of(hub, "/readyz").await;
            (status == 503 && body["status"] == "database_unavailable").then_some(body)
        })
        .await;
    assert_eq!(ready["database"]["backend"], backend, "{ready}");
    assert_eq!(ready["database"]["available"], false, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap().contains("database"),
        "{ready}"
    );
    let (status, _) = status_of(hub, "/healthz").await;
    assert_eq!(status, 200, "/healthz stays 200 during a database outage");
    wait_for_metric(hub, "switchyard_store_available 0").await;
    posted
}

/// Waits until `/metrics` has the line `line`.
async fn wait_for_metric(hub: &Hub, line: &str) {
    hub.wait(&format!("/metrics to show `{line}`"), || async {
        let text = hub.metrics_text().await;
        text.lines().any(|metric| metric == line).then_some(())
    })
    .await;
}

/// After recovery: posts `ids` again until each is accepted, waits for the
/// hub to store and deliver everything, and checks that every accepted
/// webhook and every generated record is stored exactly once and delivered
/// at least once.
async fn check_nothing_lost(hub: &Hub, answers: &[Answer], outage_ids: &[String]) {
    let mut accepted: BTreeSet<String> = answers
        .iter()
        .filter(|answer| answer.status == 202)
        .map(|answer| answer.id.clone())
        .collect();
    for id in outage_ids {
        let answer = hub
            .wait(
                "a webhook posted during the outage to be accepted",
                || async {
                    let answer = post_webhook(hub, id).await;
                    (answer.status == 202).then_some(answer)
                },
            )
            .await;
        accepted.insert(answer.id);
    }
    let stored_hooks = hub
        .wait("every accepted webhook to be stored", || async {
            let records = records(hub, "hooks").await;
            (records.len() >= accepted.len()).then_some(records)
        })
        .await;
    let hook_ids: BTreeSet<String> = stored_hooks
        .iter()
        .map(|record| record["source_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        hook_ids.len(),
        stored_hooks.len(),
        "no webhook stored twice"
    );
    assert_eq!(
        hook_ids, accepted,
        "exactly the accepted webhooks are stored"
    );

    let stored_gen = hub
        .wait("every generated record to be stored", || async {
            let records = records(hub, "gen").await;
            (records.len() >= GENERATED).then_some(records)
        })
        .await;
    let gen_ids: BTreeSet<String> = stored_gen
        .iter()
        .map(|record| record["source_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(gen_ids.len(), stored_gen.len(), "no record stored twice");
    let expected: BTreeSet<String> = (0..GENERATED).map(|seq| seq.to_string()).collect();
    assert_eq!(gen_ids, expected, "every generated record is stored");

    let mut stored: BTreeSet<(String, String)> = BTreeSet::new();
    stored.extend(hook_ids.into_iter().map(|id| ("hooks".to_owned(), id)));
    stored.extend(gen_ids.into_iter().map(|id| ("gen".to_owned(), id)));
    let sink = hub.dir().join("sink.jsonl");
    hub.wait("every stored record to be delivered", || async {
        let delivered = common::delivered_events(&sink);
        stored.is_subset(&delivered).then_some(())
    })
    .await;
    let (_, dead) = hub.send("GET", "/api/v1/dead-letters", None).await;
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
    wait_for_metric(hub, "switchyard_store_available 1").await;
}

/// Every answer's status, counted (for failure messages).
fn tally(answers: &[Answer]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.status).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_nothing_acknowledged() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = config(port, &postgres.url, dir.path());
    let hub =
        Arc::new(Hub::spawn(dir, &text, port, &[], "/readyz", Duration::from_secs(120)).await);
    let load = Load::start(&hub);
    wait_for_progress(&hub, 100).await;

    postgres.stop_server();
    let stopped = Instant::now();
    let outage_ids = check_outage_answers(&hub, "postgres", false).await;
    // The generator's polls pause while the database is down: a poll fails,
    // or (on PostgreSQL the poller runs under a lease it cannot renew now)
    // the poller stops when its lease runs out.
    hub.wait(
        "the polls to fail or pause while PostgreSQL is down",
        || async {
            let (_, status) = hub.send("GET", "/api/v1/plugins/gen", None).await;
            let paused = hub
                .log()
                .contains("Lease ran out before it could be renewed");
            (status["last_poll_error"].is_string() || paused).then_some(())
        },
    )
    .await;
    let restarting = Instant::now();
    postgres.start_server();

    hub.wait("/readyz to be 200 again", || async {
        (status_of(&hub, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    wait_for_progress(&hub, 200).await;
    let answers = load.finish().await;

    // A request sent after PostgreSQL was down and answered before it was
    // started again cannot have been stored: it must not have got 202.
    let wrongly_accepted: Vec<&Answer> = answers
        .iter()
        .filter(|answer| {
            answer.status == 202 && answer.sent > stopped && answer.answered < restarting
        })
        .collect();
    assert!(
        wrongly_accepted.is_empty(),
        "webhooks accepted while PostgreSQL was down: {wrongly_accepted:?}"
    );
    assert!(
        answers.iter().any(|answer| answer.status == 503),
        "the senders saw the outage: {:?}",
        tally(&answers)
    );
    check_nothing_lost(&hub, &answers, &outage_ids).await;
    let log = hub.log();
    assert!(
        log.contains("The database is unavailable")
            && log.contains("The database is available again"),
        "the outage and the recovery are logged:\n{log}"
    );
}

/// A tmpfs of `size` mounted by the test (needs root, or CAP_SYS_ADMIN);
/// lazily unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`) on `path`, or `None` (with the
    /// reason printed) when mounting is not permitted here and
    /// `SWITCHYARD_REQUIRE_ALL` is unset.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output();
        let refusal = match output {
            Ok(output) if output.status.success() => {
                return Some(Tmpfs {
                    path: path.to_path_buf(),
                });
            }
            Ok(output) => format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(err) => format!("cannot run mount: {err}"),
        };
        assert!(
            std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
            "{refusal} (the full-disk test mounts a small tmpfs and needs root; SWITCHYARD_REQUIRE_ALL is set)"
        );
        eprintln!("SKIPPED: {refusal} (the full-disk test mounts a small tmpfs and needs root)");
        None
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(err) => panic!("cannot fill {}: {err}", path.display()),
            }
        }
        // The last bytes that fit, a page at a time.
        loop {
            match file.write(&chunk[..4096]) {
                Ok(written) if written > 0 => {}
                _ => break,
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_under_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("db"), "16m") else {
        return;
    };
    let database = format!("sqlite://{}/hub.db", tmpfs.path.display());
    let port = common::free_port();
    let text = config(port, &database, dir.path());
    let hub =
        Arc::new(Hub::spawn(dir, &text, port, &[], "/readyz", Duration::from_secs(120)).await);
    let load = Load::start(&hub);
    wait_for_progress(&hub, 100).await;

    let filler = tmpfs.fill();
    let outage_ids = check_outage_answers(&hub, "sqlite", true).await;
    hub.wait("a poll to fail while the disk is full", || async {
        let (_, status) = hub.send("GET", "/api/v1/plugins/gen", None).await;
        status["last_poll_error"].is_string().then_some(())
    })
    .await;
    std::fs::remove_file(&filler).unwrap();

    hub.wait("/readyz to be 200 again", || async {
        (status_of(&hub, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    wait_for_progress(&hub, 200).await;
    let answers = load.finish().await;
    assert!(
        answers.iter().any(|answer| answer.status == 503),
        "the senders saw the full disk: {:?}",
        tally(&answers)
    );
    check_nothing_lost(&hub, &answers, &outage_ids).await;
    let log = hub.log();
    assert!(
        log.contains("The database is unavailable")
            && log.contains("The database is available again"),
        "the outage and the recovery are logged:\n{log}"
    );
    // The hub lets go of the database before the tmpfs is unmounted.
    drop(hub);
    drop(tmpfs);
}
