//! Hubs sharing one PostgreSQL database (docs/scaling.md), on the server
//! named by `SWITCHYARD_BENCH_POSTGRES_URL` (each run makes its own
//! database there and drops it afterwards):
//!
//! * takeover: two hubs, one polling input; the hub that owns its lease is
//!   SIGKILLed (at a random point within `lease_ttl` after it took it), and the time until the other hub's `GET /api/v1/cluster`
//!   shows it holding the lease is one sample. The killed hub is started
//!   again and takes the work back before the next kill.
//! * throughput: the durable pipeline (three generators -> enricher ->
//!   store -> jsonl-output with fsync) run by 1, 2 and 3 hubs on one
//!   database, records/s between 10% and 90% of the records reaching the
//!   output file.
//!
//! Every hub runs with `lease_ttl = 2s`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use serde::Serialize;

use crate::hub_process::{HubProcess, free_port};
use crate::pipeline::{Binaries, POSTGRES_ENV, wait_for_lines, with_database};
use crate::report::{Row, Target, Value};
use crate::rig::toml_string;
use crate::settings::Counts;
use crate::stats;

/// The hubs' `lease_ttl`.
const LEASE_TTL: Duration = Duration::from_secs(2);
/// Hub counts of the throughput rows.
const HUB_COUNTS: [usize; 3] = [1, 2, 3];
/// Polling inputs in the throughput runs, so there is work to spread.
const GENERATORS: u64 = 3;

/// What the cluster measurement found.
#[derive(Debug, Serialize)]
struct Details {
    takeover_ms: Vec<f64>,
    records_per_second_by_hubs: Vec<(usize, f64)>,
}

/// Measures takeover and throughput; rows saying why not without a server.
pub async fn measure(
    binaries: &Binaries,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let Some(server) = std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty())
    else {
        let why = format!(
            "no PostgreSQL server given (set {POSTGRES_ENV} to a server the run may create a database on)"
        );
        return Ok((
            vec![
                Row::not_measured("cluster", "Takeover after the owner's SIGKILL", &why),
                Row::not_measured("cluster", "Durable pipeline, hubs on one PostgreSQL", &why),
            ],
            serde_json::Value::Null,
        ));
    };
    let mut rows = Vec::new();
    let mut samples = with_database(&server, "sy_bench_cluster", |url| {
        takeovers(binaries, url, counts.takeovers)
    })
    .await
    .context("takeover")?;
    let summary = stats::summarize(&mut samples).context("no takeover was measured")?;
    let takeover_ms: Vec<f64> = samples.iter().map(|ns| *ns as f64 / 1e6).collect();
    rows.push(
        Row::new(
            "cluster",
            format!(
                "Takeover after the owner's SIGKILL, p50 of {}",
                summary.count
            ),
            Value::millis(Some(summary.p50_ns)),
            Value::none(),
            Value::none(),
            true,
            Some(Target::AtMost(LEASE_TTL.as_secs_f64() * 1e3)),
        )
        .note(&format!(
            "lease_ttl = {}s (the target: taken over within lease_ttl); from the SIGKILL until the surviving hub's GET /api/v1/cluster shows it holding the lease; max {:.0} ms",
            LEASE_TTL.as_secs(),
            summary.max_ns as f64 / 1e6
        )),
    );
    let mut by_hubs = Vec::new();
    for hubs in HUB_COUNTS {
        let rate = with_database(&server, "sy_bench_cluster", |url| {
            throughput(binaries, url, hubs, counts.pipeline_records)
        })
        .await
        .with_context(|| format!("throughput with {hubs} hubs"))?;
        by_hubs.push((hubs, rate));
        rows.push(
            Row::new(
                "cluster",
                format!(
                    "Durable pipeline, {hubs} hub{} on one PostgreSQL",
                    if hubs == 1 { "" } else { "s" }
                ),
                Value::rate(Some(rate)),
                Value::none(),
                Value::none(),
                false,
                None,
            )
            .note(&format!(
                "{GENERATORS} generators -> enricher -> store -> jsonl-output (fsync), {} records; the hubs share the polling inputs and the output through leases, on this one machine",
                counts.pipeline_records
            )),
        );
    }
    let details = Details {
        takeover_ms,
        records_per_second_by_hubs: by_hubs,
    };
    Ok((rows, serde_json::to_value(details)?))
}

/// A hub's `plugins.toml` for the throughput runs.
fn pipeline_config(
    binaries: &Binaries,
    id: &str,
    port: u16,
    url: &str,
    output: &Path,
    total: u64,
) -> String {
    let mut text = format!(
        "[hub]\nid = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\nlease_ttl = \"{}s\"\n\n\
         [pipeline]\nenrich = [\"enricher\"]\n\n\
         [plugins.enricher]\ncommand = {}\n\n\
         [plugins.out]\ncommand = {}\nconfig = {{ path = {} }}\n\
         [plugins.out.output]\nbatch = 1000\n",
        toml_string(Path::new(url)),
        LEASE_TTL.as_secs(),
        toml_string(&binaries.testkit),
        toml_string(&binaries.jsonl_output),
        toml_string(output),
    );
    let per_generator = total / GENERATORS;
    for index in 0..GENERATORS {
        text.push_str(&format!(
            "\n[plugins.gen{index}]\ncommand = {}\n\
             config = {{ total = {per_generator}, records_per_poll = 5000, batch_size = 500, payload_bytes = 100 }}\n\
             [plugins.gen{index}.poll]\ninterval = \"1ms\"\n",
            toml_string(&binaries.generator),
        ));
    }
    text
}

/// Records/s of the durable pipeline run by `hubs` hubs on `url`.
async fn throughput(
    binaries: &Binaries,
    url: String,
    hubs: usize,
    total: u64,
) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("sy-cluster-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let output = dir.path().join("out.jsonl");
    let total = total / GENERATORS * GENERATORS;
    let mut running = Vec::new();
    for index in 0..hubs {
        let hub_dir = dir.path().join(format!("hub{index}"));
        std::fs::create_dir(&hub_dir)?;
        let port = free_port()?;
        let text = pipeline_config(binaries, &format!("hub{index}"), port, &url, &output, total);
        running.push(HubProcess::start(&binaries.hub, &hub_dir, &text, port).await?);
    }
    let first = running[0].pid().context("the hub has no pid")?;
    let result = wait_for_lines(&output, total, first, None).await;
    let tail = running[0].log_tail(10);
    for hub in running {
        hub.stop().await?;
    }
    let (rate, _) = result.with_context(|| format!("the first hub's last log lines:\n{tail}"))?;
    Ok(rate)
}

/// A hub of the takeover runs: one polling input, no output.
fn takeover_config(binaries: &Binaries, id: &str, port: u16, url: &str) -> String {
    format!(
        "[hub]\nid = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\nlease_ttl = \"{}s\"\n\n\
         [plugins.gen]\ncommand = {}\nconfig = {{ records_per_poll = 10, batch_size = 10 }}\n\
         [plugins.gen.poll]\ninterval = \"100ms\"\n",
        toml_string(Path::new(url)),
        LEASE_TTL.as_secs(),
        toml_string(&binaries.generator),
    )
}

/// The owner of `work` as `hub`'s `GET /api/v1/cluster` shows it (a live
/// lease only).
async fn owner(http: &reqwest::Client, hub: &HubProcess, work: &str) -> Option<String> {
    let body: serde_json::Value = http
        .get(format!("{}/api/v1/cluster", hub.base_url()))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["leases"]
        .as_array()?
        .iter()
        .find(|lease| lease["work"] == work && lease["expired"] == false)
        .and_then(|lease| lease["owner"].as_str())
        .map(str::to_owned)
}

/// Waits until `hub` shows `id` owning `work`.
async fn wait_owner(
    http: &reqwest::Client,
    hub: &HubProcess,
    work: &str,
    id: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if owner(http, hub, work).await.as_deref() == Some(id) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{id} did not take {work} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `count` takeovers: kill hub `a` (the owner), time until `b` holds the
/// lease, start `a` again and wait until it has taken the work back.
async fn takeovers(binaries: &Binaries, url: String, count: usize) -> anyhow::Result<Vec<u64>> {
    let dir = tempfile::Builder::new()
        .prefix("sy-takeover-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let http = reqwest::Client::new();
    let start = |name: &'static str, round: usize| {
        let hub_dir: PathBuf = dir.path().join(format!("{name}{round}"));
        let url = url.clone();
        async move {
            std::fs::create_dir(&hub_dir)?;
            let port = free_port()?;
            let text = takeover_config(binaries, name, port, &url);
            HubProcess::start(&binaries.hub, &hub_dir, &text, port).await
        }
    };
    // Sorted ids: `a` is the one work's owner whenever it is alive.
    let mut a = start("a", 0).await?;
    let b = start("b", 0).await?;
    let mut samples = Vec::new();
    for round in 1..=count {
        wait_owner(&http, &b, "poll:gen", "a").await?;
        // At a random point of the owner's renewal cycle, not just after
        // it took the lease.
        tokio::time::sleep(LEASE_TTL.mul_f64(fastrand::f64())).await;
        let pid = a.pid().context("the hub has no pid")?;
        kill(pid, Signal::SIGKILL)?;
        let killed = Instant::now();
        wait_owner(&http, &b, "poll:gen", "b").await?;
        samples.push(u64::try_from(killed.elapsed().as_nanos()).unwrap_or(u64::MAX));
        drop(a);
        a = start("a", round).await?;
    }
    a.stop().await?;
    b.stop().await?;
    Ok(samples)
}
