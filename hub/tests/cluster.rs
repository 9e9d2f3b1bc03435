//! Many hubs on one PostgreSQL database (`crate::cluster`, docs/scaling.md).
//!
//! * `a_commit_under_a_lease_taken_over_commits_nothing`: the fence, on the
//!   store itself, with two store handles standing for two hubs: a write
//!   made under a lease another hub has since taken over fails and writes
//!   nothing, and a takeover waits for a commit already checking its fence.
//! * `three_hubs_survive_kills_a_pause_and_a_database_restart`: three real
//!   hubs on the same plugins (a generator, a webhook input, a JSON Lines
//!   output) and one private PostgreSQL server, webhooks posted round-robin
//!   to all three; the owner of each kind of work is SIGKILLed in turn (and
//!   started again, taking its share back), one owner is SIGSTOPped past
//!   its lease and continued, and PostgreSQL is restarted once. Every
//!   accepted webhook and every generated record is stored exactly once
//!   and delivered at least once, and no process a hub started outlives it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "store_faults/private_postgres.rs"]
mod private_postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use switchyard_hub::domain::Record;
use switchyard_hub::pipeline::{ChainOutput, IngestJob};
use switchyard_hub::store::{Fence, InboxStatus, Store, StoreError, testing};

use private_postgres::PrivatePostgres;

type Hub = common::HubProcess;

/// The hubs' `lease_ttl`.
const LEASE_TTL: Duration = Duration::from_secs(3);
/// Records the generator makes in all.
const GENERATED: usize = 4000;
/// Webhook senders.
const SENDERS: usize = 3;
/// How long any one condition may take.
const WAIT: Duration = Duration::from_secs(90);

fn record(id: &str) -> Record {
    Record {
        id: id.to_owned(),
        source: String::new(),
        record_type: "test".to_owned(),
        occurred_at: None,
        payload: json!({ "n": id }).into(),
        metadata: BTreeMap::new(),
        idempotency_key: None,
    }
}

fn ingest_job(id: &str, fence: &Fence) -> IngestJob {
    IngestJob {
        plugin: "gen".to_owned(),
        prepared: ChainOutput {
            records: vec![record(id)],
            dead_letters: Vec::new(),
        },
        checkpoint: Some(id.as_bytes().to_vec()),
        fence: Some(fence.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_under_a_lease_taken_over_commits_nothing() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let hub_a = Store::open(&postgres.url).await.unwrap();
    let hub_b = Store::open(&postgres.url).await.unwrap();
    let ttl = Duration::from_millis(400);

    let epoch_a = hub_a
        .acquire_lease("poll:gen", "hub-a", ttl)
        .await
        .unwrap()
        .expect("a free lease is granted");
    assert_eq!(
        hub_b.acquire_lease("poll:gen", "hub-b", ttl).await.unwrap(),
        None,
        "a lease held and not expired is not granted to another hub"
    );
    let fence_a = Fence {
        work: "poll:gen".into(),
        owner: "hub-a".into(),
        epoch: epoch_a,
    };
    hub_a.write(ingest_job("1", &fence_a)).await.unwrap();

    // Hub A stalls past its lease; hub B takes the work over.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let epoch_b = hub_b
        .acquire_lease("poll:gen", "hub-b", ttl)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert!(epoch_b > epoch_a);

    // Hub A goes on where it stopped: its commit is refused whole.
    let refused = hub_a.write(ingest_job("2", &fence_a)).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::Fenced { ref work, epoch } if work == "poll:gen" && epoch == epoch_a),
        "{refused}"
    );
    assert_eq!(
        hub_a.checkpoint("gen").await.unwrap().as_deref(),
        Some(&b"1"[..]),
        "the fenced commit left the checkpoint alone"
    );
    assert_eq!(record_ids(&hub_b).await, ["1"], "nor stored its record");
    assert!(
        !hub_a
            .renew_lease("poll:gen", "hub-a", epoch_a, ttl)
            .await
            .unwrap(),
        "a lease taken over cannot be renewed"
    );
    assert!(
        !hub_a
            .release_lease("poll:gen", "hub-a", epoch_a)
            .await
            .unwrap(),
        "nor given up by its old owner"
    );

    // The new owner commits.
    let fence_b = Fence {
        work: "poll:gen".into(),
        owner: "hub-b".into(),
        epoch: epoch_b,
    };
    hub_b.write(ingest_job("2", &fence_b)).await.unwrap();
    assert_eq!(record_ids(&hub_b).await, ["1", "2"]);

    // A takeover waits for a commit that already passed its fence.
    let mut tx = hub_b.begin().await.unwrap();
    tx.check_fence(&fence_b).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let taking = tokio::spawn({
        let hub_a = hub_a.clone();
        async move { hub_a.acquire_lease("poll:gen", "hub-a", ttl).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !taking.is_finished(),
        "the takeover waits while a commit holds the fence"
    );
    tx.save_checkpoint("gen", b"3").await.unwrap();
    tx.commit().await.unwrap();
    let epoch_taken = taking
        .await
        .unwrap()
        .unwrap()
        .expect("taken once committed");
    assert!(epoch_taken > epoch_b);
    assert_eq!(
        hub_a.checkpoint("gen").await.unwrap().as_deref(),
        Some(&b"3"[..]),
        "the new owner reads what the old one committed before the takeover"
    );

    // Given up: free at once for the next hub.
    assert!(
        hub_a
            .release_lease("poll:gen", "hub-a", epoch_taken)
            .await
            .unwrap()
    );
    assert!(
        hub_b
            .acquire_lease("poll:gen", "hub-b", ttl)
            .await
            .unwrap()
            .is_some()
    );
    hub_a.close().await;
    hub_b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_hub_wakes_the_others_workers() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let hub_a = Store::open(&postgres.url).await.unwrap();
    let hub_b = Store::open(&postgres.url).await.unwrap();
    let mut b_events = hub_b.subscribe_events();
    let mut b_inbox = hub_b.subscribe_inbox();
    let a_inbox = hub_a.subscribe_inbox();
    // Hub B's listener connects in the background: commit until it hears.
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "hub B never heard of hub A's inbox commits"
        );
        n += 1;
        let mut tx = hub_a.begin().await.unwrap();
        let delivery = switchyard_hub::domain::WebhookDelivery {
            method: "POST".to_owned(),
            path: "/webhooks/hooks".to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: b"{}".to_vec(),
            delivery_id: format!("d{n}"),
            received_at: chrono::Utc::now(),
        };
        tx.insert_inbox("hooks", &delivery, InboxStatus::Pending, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(200), b_inbox.changed()).await;
        if heard.is_ok() {
            break;
        }
    }
    assert!(
        !b_events.has_changed().unwrap(),
        "an inbox commit does not wake outputs"
    );
    assert!(
        !a_inbox.has_changed().unwrap(),
        "a hub ignores the echo of its own commits"
    );
    hub_a.write(ingest_job_unfenced("1")).await.unwrap();
    tokio::time::timeout(WAIT, b_events.changed())
        .await
        .expect("hub B hears of hub A's events")
        .unwrap();
    hub_a.close().await;
    hub_b.close().await;
}

fn ingest_job_unfenced(id: &str) -> IngestJob {
    IngestJob {
        fence: None,
        ..ingest_job(
            id,
            &Fence {
                work: "poll:gen".into(),
                owner: "nobody".into(),
                epoch: 0,
            },
        )
    }
}

/// The stored records' source ids, sorted.
async fn record_ids(store: &Store) -> Vec<String> {
    let mut ids: Vec<String> = all_records(store)
        .await
        .into_iter()
        .map(|record| record.record.id)
        .collect();
    ids.sort();
    ids
}

/// Every stored record.
async fn all_records(store: &Store) -> Vec<switchyard_hub::store::StoredRecord> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .list_records(&Default::default(), after, 1000, usize::MAX)
            .await
            .unwrap();
        all.extend(page.records);
        match page.next_after {
            Some(next) => after = next,
            None => return all,
        }
    }
}

/// One hub's config: the same plugins for every hub, its own `listen` and
/// `id` (hubs on one machine need their own ports), `marker` in every
/// plugin's environment so the test can find every process they start.
fn config(id: &str, port: u16, database: &str, data: &Path, marker: &str) -> String {
    let ttl = humantime::format_duration(LEASE_TTL);
    let mut text = format!(
        r#"[hub]
id = "{id}"
listen = "127.0.0.1:{port}"
database = "{database}"
lease_ttl = "{ttl}"
stop_grace = "2s"
kill_grace = "1s"

[plugins.hooks]
command = "@webhook-json@"
env = {{ SY_CLUSTER_TEST = "{marker}" }}
[plugins.hooks.webhook]
auth = "none"

[plugins.gen]
command = "@generator@"
env = {{ SY_CLUSTER_TEST = "{marker}" }}
[plugins.gen.poll]
interval = "100ms"
[plugins.gen.config]
records_per_poll = 20
batch_size = 5
total = {GENERATED}

[plugins.sink]
command = "@jsonl-output@"
env = {{ SY_CLUSTER_TEST = "{marker}" }}
[plugins.sink.config]
path = "@DATA@/sink.jsonl"
fsync = false
[plugins.sink.output]
"#
    );
    text = text.replace("@DATA@", &data.display().to_string());
    for name in ["generator", "webhook-json", "jsonl-output"] {
        text = text.replace(
            &format!("@{name}@"),
            &common::built(name).display().to_string(),
        );
    }
    text
}

/// The three hubs, each restartable on its own config and port.
struct Hubs {
    configs: Vec<(String, u16)>,
    running: Vec<Option<Hub>>,
}

impl Hubs {
    async fn start(&mut self, index: usize) {
        let (text, port) = &self.configs[index];
        let hub = Hub::spawn(
            tempfile::tempdir().unwrap(),
            text,
            *port,
            &[],
            "/healthz",
            WAIT,
        )
        .await;
        self.running[index] = Some(hub);
    }

    fn hub(&self, index: usize) -> &Hub {
        self.running[index].as_ref().expect("the hub runs")
    }

    /// The last `lines` lines of each running hub's log, each under a
    /// heading naming the hub.
    fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for (id, hub) in hub_ids().iter().zip(&self.running) {
            let Some(hub) = hub else {
                text.push_str(&format!("== {id}: not running ==\n"));
                continue;
            };
            let log = hub.log();
            let all: Vec<&str> = log.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            text.push_str(&format!(
                "== {id}: the last {} lines of its log ==\n",
                tail.len()
            ));
            for line in tail {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Any running hub (for API reads).
    fn any(&self) -> &Hub {
        self.running.iter().flatten().next().expect("a hub runs")
    }

    fn index_of(&self, id: &str) -> usize {
        hub_ids().iter().position(|known| *known == id).unwrap()
    }

    fn signal(&self, index: usize, signal: Signal) {
        let pid = i32::try_from(self.hub(index).pid()).unwrap();
        kill(Pid::from_raw(pid), signal).unwrap();
    }
}

fn hub_ids() -> [&'static str; 3] {
    ["hub-a", "hub-b", "hub-c"]
}

/// `GET /api/v1/cluster` from `hub`: the owner of each work with a live
/// lease, by work.
async fn lease_owners(hub: &Hub) -> Option<BTreeMap<String, String>> {
    let response = hub
        .http
        .get(format!("{}/api/v1/cluster", hub.base))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let mut owners = BTreeMap::new();
    for lease in body["leases"].as_array()? {
        if lease["expired"] == json!(false)
            && let Some(owner) = lease["owner"].as_str()
        {
            owners.insert(lease["work"].as_str()?.to_owned(), owner.to_owned());
        }
    }
    Some(owners)
}

const WORKS: [&str; 3] = ["inbox:hooks", "output:sink", "poll:gen"];

/// Waits until each work has a live lease held by a distinct hub among
/// `alive` (every hub takes its share), and returns the owners.
async fn wait_balanced(hubs: &Hubs, alive: &[&str]) -> BTreeMap<String, String> {
    wait_leases(hubs, "each hub to own one work", |owners| {
        let distinct: BTreeSet<&String> = owners.values().collect();
        let balanced = WORKS.iter().all(|work| owners.contains_key(*work))
            && distinct.len() == alive.len().min(WORKS.len())
            && owners.values().all(|owner| alive.contains(&owner.as_str()));
        balanced.then(|| owners.clone())
    })
    .await
}

/// Waits until `work` is held by a hub other than `former`; returns it.
async fn wait_taken_over(hubs: &Hubs, work: &str, former: &str) -> String {
    wait_leases(
        hubs,
        &format!("{work} to be taken over from {former}"),
        |owners| owners.get(work).filter(|owner| *owner != former).cloned(),
    )
    .await
}

/// Reads the live leases from any running hub until `done` accepts them,
/// for up to `WAIT`. On timeout it fails with the last leases it read and
/// the end of every running hub's log, so that a run that fails once says
/// which hub held what and why.
async fn wait_leases<T>(
    hubs: &Hubs,
    what: &str,
    done: impl Fn(&BTreeMap<String, String>) -> Option<T>,
) -> T {
    let last = Mutex::new(None);
    common::wait_explained(
        WAIT,
        Duration::from_millis(50),
        what,
        || async {
            let owners = lease_owners(hubs.any()).await?;
            let value = done(&owners);
            *last.lock().unwrap() = Some(owners);
            value
        },
        || {
            format!(
                "; the last live leases read: {:?}\n{}",
                last.lock().unwrap(),
                hubs.log_tails(80)
            )
        },
    )
    .await
}

/// Each hub runs `gen` and `sink` (on-demand plugins: their every use is
/// leased work) only if it owns their work, and `hooks` (a webhook plugin:
/// every hub receives webhooks) everywhere.
async fn check_plugins_follow_work(hubs: &Hubs, owners: &BTreeMap<String, String>) {
    for (index, id) in hub_ids().iter().enumerate() {
        let hub = hubs.hub(index);
        hub.wait(&format!("{id}'s plugins to follow its work"), || async {
            let (status, plugins) = hub.send("GET", "/api/v1/plugins", None).await;
            if status != 200 {
                return None;
            }
            let state = |name: &str| {
                plugins
                    .as_array()
                    .and_then(|all| all.iter().find(|plugin| plugin["name"] == name))
                    .map(|plugin| (plugin["state"].clone(), plugin["on_demand"].clone()))
            };
            let expect = |work: &str| {
                if owners[work] == *id {
                    json!("running")
                } else {
                    json!("stopped")
                }
            };
            let follows = state("gen")? == (expect("poll:gen"), json!(true))
                && state("sink")? == (expect("output:sink"), json!(true))
                && state("hooks")? == (json!("running"), json!(false));
            follows.then_some(())
        })
        .await;
    }
}

/// Webhook senders posting distinct ids round-robin to the hubs; a refused
/// or unanswered id is posted again (to the next hub) until one answers
/// 202. The same id is the delivery's `Idempotency-Key`, so a retry of a
/// delivery already stored is a duplicate, not a second copy.
struct Load {
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    accepted: Arc<Mutex<BTreeSet<String>>>,
}

impl Load {
    fn start(bases: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(BTreeSet::new()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let senders = (0..SENDERS)
            .map(|sender| {
                let (stop, accepted, http, bases) =
                    (stop.clone(), accepted.clone(), http.clone(), bases.clone());
                tokio::spawn(async move {
                    let mut target = sender;
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let id = format!("s{sender}-{n}");
                        loop {
                            target = (target + 1) % bases.len();
                            let answer = http
                                .post(format!("{}/webhooks/hooks", bases[target]))
                                .header("Idempotency-Key", &id)
                                .json(&json!({ "id": id }))
                                .send()
                                .await;
                            match answer.map(|answer| answer.status().as_u16()) {
                                Ok(202) => {
                                    accepted.lock().unwrap().insert(id.clone());
                                    break;
                                }
                                Ok(429 | 503) | Err(_) => {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                Ok(other) => panic!("webhook {id} answered {other}"),
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            senders,
            accepted,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    async fn finish(self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.unwrap();
        }
        self.accepted.lock().unwrap().clone()
    }
}

/// The processes whose environment holds `marker` (everything the hubs'
/// plugins started).
fn marked_processes(marker: &str) -> Vec<i32> {
    let needle = format!("SY_CLUSTER_TEST={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|entry| entry == needle.as_bytes())
            })
        })
        .collect()
}

/// Counts in one SQL query on the shared database.
async fn count(store: &Store, sql: &'static str) -> i64 {
    testing::count_rows(store, sql).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hubs_survive_kills_a_pause_and_a_database_restart() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let marker = format!("{}-{}", std::process::id(), fastrand::u64(..));
    let ids = hub_ids();
    let configs: Vec<(String, u16)> = ids
        .iter()
        .map(|id| {
            let port = common::free_port();
            (config(id, port, &postgres.url, data.path(), &marker), port)
        })
        .collect();
    let bases: Vec<String> = configs
        .iter()
        .map(|(_, port)| format!("http://127.0.0.1:{port}"))
        .collect();
    let mut hubs = Hubs {
        configs,
        running: vec![None, None, None],
    };
    for index in 0..3 {
        hubs.start(index).await;
    }
    let owners = wait_balanced(&hubs, &ids).await;
    eprintln!("owners at start: {owners:?}");
    check_plugins_follow_work(&hubs, &owners).await;
    let load = Load::start(bases);
    hubs.any()
        .wait("webhooks to be accepted", || async {
            (load.accepted() >= 30).then_some(())
        })
        .await;

    // The owner of each kind of work is killed in turn, and comes back.
    let mut takeovers = Vec::new();
    for work in ["poll:gen", "output:sink", "inbox:hooks"] {
        let owners = wait_balanced(&hubs, &ids).await;
        let owner = owners[work].clone();
        let index = hubs.index_of(&owner);
        hubs.signal(index, Signal::SIGKILL);
        let killed = Instant::now();
        drop(hubs.running[index].take());
        let successor = wait_taken_over(&hubs, work, &owner).await;
        takeovers.push((work, killed.elapsed()));
        eprintln!(
            "{work}: {owner} killed, taken over by {successor} after {:?}",
            killed.elapsed()
        );
        hubs.start(index).await;
    }
    let owners = wait_balanced(&hubs, &ids).await;
    eprintln!("owners after the kills: {owners:?}; takeovers: {takeovers:?}");

    // The generator's owner is paused past its lease, then continued.
    let owner = owners["poll:gen"].clone();
    let paused = hubs.index_of(&owner);
    hubs.signal(paused, Signal::SIGSTOP);
    let successor = {
        let others: Vec<usize> = (0..3).filter(|index| *index != paused).collect();
        let reader = hubs.hub(others[0]);
        reader
            .wait("poll:gen to be taken from the paused hub", || async {
                let owners = lease_owners(reader).await?;
                owners.get("poll:gen").filter(|id| **id != owner).cloned()
            })
            .await
    };
    // A little longer: the new owner commits under its own epoch.
    tokio::time::sleep(LEASE_TTL).await;
    hubs.signal(paused, Signal::SIGCONT);
    eprintln!("poll:gen: {owner} paused, taken over by {successor}, continued");
    let resumed = hubs.hub(paused);
    resumed
        .wait("the paused hub to learn that it lost its lease", || async {
            let log = resumed.log();
            (log.contains("Lease lost") || log.contains("Lease ran out")).then_some(())
        })
        .await;
    let metrics = resumed.metrics_text().await;
    assert!(
        metrics.lines().any(
            |line| line.starts_with("switchyard_cluster_lease_changes_total{")
                && line.contains("work=\"poll:gen\"")
                && line.contains("change=\"lost\"")
                && !line.ends_with(" 0")
        ),
        "the paused hub counts the lost lease:\n{metrics}"
    );
    let fenced: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("switchyard_store_fenced_writes_total"))
        .collect();
    eprintln!("fenced writes on the paused hub: {fenced:?}");
    wait_balanced(&hubs, &ids).await;

    // PostgreSQL restarts under load.
    postgres.stop_server();
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.start_server();
    let owners = wait_balanced(&hubs, &ids).await;
    eprintln!("owners after the database restart: {owners:?}");
    let before_stop = load.accepted();
    hubs.any()
        .wait("webhooks to be accepted after the restart", || async {
            (load.accepted() > before_stop + 30).then_some(())
        })
        .await;
    let accepted = load.finish().await;

    // Everything is stored exactly once and delivered at least once.
    let store = Store::open(&postgres.url).await.unwrap();
    let reader = hubs.any();
    reader
        .wait(
            "every accepted webhook and generated record to be stored",
            || async {
                let hooks = testing::count_rows(
                    &store,
                    "SELECT COUNT(*) FROM records WHERE source = 'hooks'",
                )
                .await
                .ok()?;
                let generated = testing::count_rows(
                    &store,
                    "SELECT COUNT(*) FROM records WHERE source = 'gen'",
                )
                .await
                .ok()?;
                (usize::try_from(hooks).ok()? >= accepted.len()
                    && usize::try_from(generated).ok()? >= GENERATED)
                    .then_some(())
            },
        )
        .await;
    let records = all_records(&store).await;
    let mut stored: BTreeSet<(String, String)> = BTreeSet::new();
    for record in &records {
        assert!(
            stored.insert((record.record.source.clone(), record.record.id.clone())),
            "stored twice: {} {}",
            record.record.source,
            record.record.id
        );
    }
    let hooks: BTreeSet<String> = stored
        .iter()
        .filter(|(source, _)| source == "hooks")
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(hooks, accepted, "exactly the accepted webhooks are stored");
    let generated: BTreeSet<String> = stored
        .iter()
        .filter(|(source, _)| source == "gen")
        .map(|(_, id)| id.clone())
        .collect();
    let expected: BTreeSet<String> = (0..GENERATED).map(|seq| seq.to_string()).collect();
    assert_eq!(generated, expected, "every generated record is stored");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM records WHERE version <> 1").await,
        0,
        "no record was written twice"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM outbox WHERE kind <> 'created'"
        )
        .await,
        0,
        "one event per record"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM webhook_inbox WHERE status <> 'done'"
        )
        .await,
        0,
        "every delivery is done, none dead"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM dead_letters").await, 0);
    let sink = data.path().join("sink.jsonl");
    reader
        .wait("every stored record to be delivered", || async {
            stored
                .is_subset(&common::delivered_events(&sink))
                .then_some(())
        })
        .await;

    // No process any hub started outlives the hubs.
    for index in 0..3 {
        let mut hub = hubs.running[index].take().unwrap();
        let stopped = hub.terminate(Duration::from_secs(30));
        assert!(
            stopped.is_some(),
            "hub {index} did not stop within 30 s of SIGTERM; its log:\n{}",
            hub.log()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = marked_processes(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes started by the hubs are still running: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
}
