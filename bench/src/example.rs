//! The example pipeline as a bench row (issue #15, item 4), with the
//! webhooks' floor beside it (item 5).
//!
//! README's example configuration (`examples/plugins.toml`, compiled in) is
//! run by the real hub binary as written, except its port, its database (a
//! fresh SQLite file per rate), its output file and the plugins' paths (the
//! release binaries next to the hub): webhook-json -> sentiment (enricher)
//! -> store -> jsonl-output, plus its generator. The bench's open-loop load
//! generator posts one JSON body to `/webhooks/webhooks` at each offered
//! rate, each with an id of its own (as real webhooks have), so every
//! webhook creates a record and jsonl-output writes its event. The hub's CPU
//! (utime + stime from /proc) is read from the first request until every
//! accepted delivery has been taken by the plugin and stored (the hub's
//! `switchyard_webhook_deliveries` counters) and jsonl-output has acked
//! each one's event (`switchyard_events_delivered`), and divided by the
//! accepted webhooks; the load generator's own CPU (this process) over its
//! run is reported too, since it shares the cores.
//!
//! Right after the hub at each rate, the same load goes to a bare axum
//! handler answering 202 in its own process ([`crate::http_floor`]): its
//! accepted/s, p99 and CPU per request are the floor column.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::unistd::Pid;
use serde::Serialize;

use crate::footprint::{clock_ticks_per_second, cpu_ticks};
use crate::http_floor::FloorServer;
use crate::hub_process::{HubProcess, free_port};
use crate::loadgen::{self, Outcome, Plan};
use crate::pipeline::cpu_snapshot;
use crate::report::{Row, Target, Value};
use crate::rig::toml_string;
use crate::settings::Counts;

/// README's example configuration, as written.
const EXAMPLE: &str = include_str!("../../examples/plugins.toml");
/// The webhook plugin's instance name in the example.
const WEBHOOK: &str = "webhooks";
/// The output plugin's instance name in the example.
const OUTPUT: &str = "archive";
/// A webhook plugin's finished deliveries (done and dead) in the hub's
/// metrics, by either name the counter may be exposed under.
const FINISHED_DELIVERIES: &[&str] = &[
    "switchyard_webhook_deliveries",
    "switchyard_webhook_deliveries_total",
];
/// The events an output acked, in the hub's metrics, by either name.
const EVENTS_DELIVERED: &[&str] = &[
    "switchyard_events_delivered",
    "switchyard_events_delivered_total",
];
/// Every offered webhook must be accepted up to this rate.
const ACCEPT_ALL_UP_TO: u64 = 10_000;
/// The hub's CPU per webhook must stay at or below this, at every rate.
const CPU_TARGET_US: f64 = 50.0;
/// The most time the hub gets to finish accepted deliveries after the load.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The body of every request (the webhooks measurement's), each with its
/// own order id ([`loadgen::SEQUENCE_MARKER`]): with one id for all, every
/// webhook after the first changed nothing and the output had nothing to
/// deliver.
const BODY: &[u8] = br#"{"id":"order-{seq}","type":"order.created","customer":"c-1234567","total_cents":129900,"currency":"EUR","text":"Great service, the parcel arrived early and intact."}"#;

/// One side (the hub or the floor) at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// The load generator's outcome.
    pub load: Outcome,
    /// The server's CPU per accepted request, in microseconds (for the hub,
    /// until its deliveries were done).
    pub cpu_us_per_request: Option<f64>,
    /// The server's CPU over the window (from the first request until the
    /// hub's deliveries were done), in cores.
    pub cpu_cores: f64,
    /// The load generator's own CPU per offered request, in microseconds.
    pub loadgen_cpu_us_per_request: f64,
    /// The hub's plugins' CPU per accepted request, in microseconds.
    pub plugins_cpu_us_per_request: Vec<(String, f64)>,
    /// Whether every accepted delivery was processed within the drain limit.
    pub drained: bool,
}

/// The hub and the floor at one offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    /// Webhooks offered per second.
    pub offered_per_second: u64,
    /// Whether this is the saturation run (more offered than it can take).
    pub saturation: bool,
    /// The example pipeline.
    pub hub: Side,
    /// The bare axum handler.
    pub floor: Side,
}

/// Runs the example at each of the mode's rates, then the saturation run.
pub async fn measure(hub: &Path, counts: &Counts) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let bin_dir = hub
        .parent()
        .context("the hub binary has no directory")?
        .to_path_buf();
    for plugin in ["webhook-json", "sentiment", "jsonl-output", "generator"] {
        crate::rig::binary(
            &bin_dir.join(plugin),
            &format!("cargo build --release -p {plugin}"),
        )?;
    }
    let bench_exe = std::env::current_exe().context("cannot find the bench's own binary")?;
    let mut results = Vec::new();
    let rates = counts
        .example_rates
        .iter()
        .map(|&rate| (rate, false))
        .chain(std::iter::once((counts.example_saturation_rate, true)));
    for (rate, saturation) in rates {
        let hub_side = run_hub(hub, &bin_dir, rate, counts.example_duration).await?;
        let floor_side = run_floor(&bench_exe, rate, counts.example_duration).await?;
        results.push(RateResult {
            offered_per_second: rate,
            saturation,
            hub: hub_side,
            floor: floor_side,
        });
    }
    let mut rows = Vec::new();
    for result in &results {
        rows.extend(rows_for(result));
    }
    Ok((rows, serde_json::to_value(&results)?))
}

fn rows_for(result: &RateResult) -> Vec<Row> {
    let rate = result.offered_per_second;
    let label = if result.saturation {
        format!("saturation, {} offered/s", thousands(rate))
    } else {
        format!("{} offered/s", thousands(rate))
    };
    let (hub, floor) = (&result.hub, &result.floor);
    let mut rows = vec![
        Row::new(
            "example",
            format!("Example pipeline: webhooks accepted/s, {label}"),
            Value::rate(Some(hub.load.accepted_per_second)),
            Value::none(),
            Value::rate(Some(floor.load.accepted_per_second)),
            false,
            None,
        )
        .note("README's example (examples/plugins.toml as written but for port and paths): webhook-json -> sentiment -> store (fresh SQLite, synchronous=full) -> jsonl-output, one JSON body with an order id of its own per request (each webhook creates a record, and jsonl-output writes its event) posted by the bench's open-loop generator; floor: a bare axum handler answering 202 in its own process, same generator, same rate, same run"),
    ];
    if !result.saturation {
        rows.push(Row::new(
            "example",
            format!("Example pipeline: share of offered webhooks accepted, {label}"),
            Value::percent(Some(hub.load.accepted_percent())),
            Value::none(),
            Value::percent(Some(floor.load.accepted_percent())),
            false,
            (rate <= ACCEPT_ALL_UP_TO).then_some(Target::AtLeast(100.0)),
        ));
    }
    rows.push(Row::new(
        "example",
        format!("Example pipeline: webhook latency p99, {label}"),
        Value::millis(hub.load.latency.map(|s| s.p99_ns)),
        Value::none(),
        Value::millis(floor.load.latency.map(|s| s.p99_ns)),
        true,
        None,
    ));
    let mut cpu = Row::new(
        "example",
        format!("Example pipeline: hub CPU per webhook, {label}"),
        Value::micros(hub.cpu_us_per_request.map(|us| (us * 1000.0) as u64)),
        Value::none(),
        Value::micros(floor.cpu_us_per_request.map(|us| (us * 1000.0) as u64)),
        true,
        Some(Target::AtMost(CPU_TARGET_US)),
    )
    .note("hub CPU (utime + stime, 10 ms ticks) from the first request until every accepted delivery was stored and jsonl-output had acked each one's event, ÷ accepted webhooks; the plugins' CPU is in report.json (details.example); floor: the axum process's CPU over its run ÷ its accepted requests");
    if !hub.drained {
        cpu.status = format!(
            "failed: the accepted deliveries were not all processed within {} s",
            DRAIN_LIMIT.as_secs()
        );
    }
    rows.push(cpu);
    rows.push(
        Row::new(
            "example",
            format!("Example pipeline: load generator CPU per webhook, {label}"),
            Value::micros(Some((hub.loadgen_cpu_us_per_request * 1000.0) as u64)),
            Value::none(),
            Value::micros(Some((floor.loadgen_cpu_us_per_request * 1000.0) as u64)),
            true,
            None,
        )
        .note("the load generator shares the cores: its own CPU (this process, utime + stime) over its run ÷ offered requests, while loading the hub (Switchyard column) and the axum floor (floor column)"),
    );
    rows
}

/// The example's configuration with its port, database, output file and
/// plugin paths replaced; fails if the example no longer has one of them.
fn example_config(port: u16, dir: &Path, bin_dir: &Path) -> anyhow::Result<String> {
    let replacements = [
        (
            "listen = \"127.0.0.1:7300\"".to_owned(),
            format!("listen = \"127.0.0.1:{port}\""),
        ),
        (
            "database = \"sqlite://switchyard-example.db\"".to_owned(),
            format!(
                "database = {}",
                toml_string(Path::new(&format!(
                    "sqlite://{}",
                    dir.join("example.db").display()
                )))
            ),
        ),
        (
            "path = \"events.jsonl\"".to_owned(),
            format!("path = {}", toml_string(&dir.join("events.jsonl"))),
        ),
    ];
    let mut source = EXAMPLE.to_owned();
    for (from, to) in replacements {
        if !source.contains(&from) {
            bail!("examples/plugins.toml no longer has `{from}`; update bench/src/example.rs");
        }
        source = source.replace(&from, &to);
    }
    let prefix = "command = \"../target/release/";
    if !source.contains(prefix) {
        bail!("examples/plugins.toml no longer has `{prefix}…`; update bench/src/example.rs");
    }
    let bin_dir = toml_string(bin_dir);
    // `"/abs/bin/dir"` without its closing quote, then the binary name.
    let open = &bin_dir[..bin_dir.len() - 1];
    Ok(source.replace(prefix, &format!("command = {open}/")))
}

async fn run_hub(
    hub: &Path,
    bin_dir: &Path,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<Side> {
    let dir = tempfile::Builder::new()
        .prefix("sy-example-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    let source = example_config(port, dir.path(), bin_dir)?;
    let hub_process = HubProcess::start(hub, dir.path(), &source, port).await?;
    let pid = hub_process.pid().context("the hub has no pid")?;
    eprintln!(
        "example: {rate}/s offered to the example pipeline for {} s",
        duration.as_secs_f64()
    );
    let plan = Plan {
        url: format!("{}/webhooks/{WEBHOOK}", hub_process.base_url()),
        rate,
        duration,
        body: BODY.to_vec(),
        headers: Vec::new(),
        max_in_flight: 1024,
    };
    // The generator's records reach the output too.
    let delivered_before = metric_total(&hub_process.base_url(), EVENTS_DELIVERED, OUTPUT).await?;
    let start = Instant::now();
    let before = cpu_snapshot(pid, None);
    let (load, loadgen_ticks) = offer(&plan).await;
    let result = async {
        let load = load?;
        let stored = wait_drained(&hub_process.base_url(), WEBHOOK, load.accepted).await?;
        let delivered = wait_for_metric(
            &hub_process.base_url(),
            EVENTS_DELIVERED,
            OUTPUT,
            delivered_before + load.accepted,
        )
        .await?;
        let drained = Drained {
            done: stored.done && delivered.done,
        };
        let after = cpu_snapshot(pid, None);
        let window_seconds = start.elapsed().as_secs_f64().max(1e-9);
        Ok::<_, anyhow::Error>((load, drained, after, window_seconds))
    }
    .await;
    let tail = hub_process.log_tail(10);
    hub_process.stop().await?;
    let (load, drained, after, window_seconds) =
        result.with_context(|| format!("the hub's last log lines:\n{tail}"))?;
    let window = |name: &str| {
        let start = before
            .iter()
            .find(|(other, _)| other == name)
            .map_or(0, |(_, ticks)| *ticks);
        after
            .iter()
            .find(|(other, _)| other == name)
            .map_or(0, |(_, ticks)| *ticks)
            .saturating_sub(start)
    };
    let per_request = |ticks: u64| ticks_to_us(ticks) / load.accepted.max(1) as f64;
    let hub_ticks = window("hub");
    let plugins = after
        .iter()
        .filter(|(name, _)| name != "hub")
        .map(|(name, _)| (name.clone(), per_request(window(name))))
        .collect();
    Ok(Side {
        cpu_us_per_request: (load.accepted > 0).then(|| per_request(hub_ticks)),
        cpu_cores: ticks_to_us(hub_ticks) / 1e6 / window_seconds,
        loadgen_cpu_us_per_request: ticks_to_us(loadgen_ticks) / load.offered.max(1) as f64,
        plugins_cpu_us_per_request: plugins,
        drained: drained.done,
        load,
    })
}

async fn run_floor(bench_exe: &Path, rate: u64, duration: Duration) -> anyhow::Result<Side> {
    let server = FloorServer::start(bench_exe).await?;
    eprintln!(
        "example: {rate}/s offered to the axum floor for {} s",
        duration.as_secs_f64()
    );
    let plan = Plan {
        url: server.url(),
        rate,
        duration,
        body: BODY.to_vec(),
        headers: Vec::new(),
        max_in_flight: 1024,
    };
    let start = Instant::now();
    let before = server.cpu_ticks()?;
    let (load, loadgen_ticks) = offer(&plan).await;
    let after = server.cpu_ticks();
    let elapsed = start.elapsed();
    server.stop().await;
    let (load, after) = (load?, after?);
    let ticks = after.saturating_sub(before);
    Ok(Side {
        cpu_us_per_request: (load.accepted > 0).then(|| ticks_to_us(ticks) / load.accepted as f64),
        cpu_cores: ticks_to_us(ticks) / 1e6 / elapsed.as_secs_f64().max(1e-9),
        loadgen_cpu_us_per_request: ticks_to_us(loadgen_ticks) / load.offered.max(1) as f64,
        plugins_cpu_us_per_request: Vec::new(),
        drained: true,
        load,
    })
}

/// Runs the load generator; returns its outcome and the CPU ticks this
/// process used meanwhile.
pub(crate) async fn offer(plan: &Plan) -> (anyhow::Result<Outcome>, u64) {
    let me = Pid::this();
    let before = cpu_ticks(me).unwrap_or(0);
    let outcome = loadgen::run(plan).await;
    let after = cpu_ticks(me).unwrap_or(before);
    (outcome, after.saturating_sub(before))
}

pub(crate) fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / clock_ticks_per_second()
}

/// How the wait for the hub's deliveries ended.
pub(crate) struct Drained {
    /// Every accepted delivery was done (or dead-lettered).
    pub(crate) done: bool,
}

/// Waits until the hub's webhook plugin `plugin` has finished `accepted`
/// deliveries (done or dead-lettered), reading its `/metrics`, at most
/// [`DRAIN_LIMIT`].
pub(crate) async fn wait_drained(
    base_url: &str,
    plugin: &str,
    accepted: u64,
) -> anyhow::Result<Drained> {
    wait_for_metric(base_url, FINISHED_DELIVERIES, plugin, accepted).await
}

/// Waits until the hub's counters `names` for plugin `plugin` add up to at
/// least `at_least`, reading its `/metrics`, at most [`DRAIN_LIMIT`].
async fn wait_for_metric(
    base_url: &str,
    names: &[&str],
    plugin: &str,
    at_least: u64,
) -> anyhow::Result<Drained> {
    let start = Instant::now();
    loop {
        if metric_total(base_url, names, plugin).await? >= at_least {
            return Ok(Drained { done: true });
        }
        if start.elapsed() > DRAIN_LIMIT {
            return Ok(Drained { done: false });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of the hub's counters `names` for plugin `plugin` (every other
/// label) in its `/metrics` now.
async fn metric_total(base_url: &str, names: &[&str], plugin: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("cannot read the hub's /metrics")?
        .text()
        .await?;
    Ok(plugin_counter(&text, names, plugin))
}

/// The sum of the counters `names` labelled `plugin="PLUGIN"` in a
/// Prometheus text exposition.
fn plugin_counter(metrics: &str, names: &[&str], plugin: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, rest) = line.split_once('{')?;
            if !names.contains(&name) {
                return None;
            }
            let (labels, value) = rest.split_once('}')?;
            if !labels.contains(&format!("plugin=\"{plugin}\"")) {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>() as u64
}

fn thousands(value: u64) -> String {
    crate::report::thousands(value as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_keeps_its_shape_but_for_port_and_paths() {
        let dir = Path::new("/tmp/sy-example-test");
        let source = example_config(7411, dir, Path::new("/opt/bin")).unwrap();
        assert!(source.contains("listen = \"127.0.0.1:7411\""));
        assert!(source.contains("sqlite:///tmp/sy-example-test/example.db"));
        assert!(source.contains("command = \"/opt/bin/webhook-json\""));
        assert!(source.contains("command = \"/opt/bin/sentiment\""));
        assert!(source.contains("path = \"/tmp/sy-example-test/events.jsonl\""));
        assert!(!source.contains("../target/release"));
        assert!(source.contains("enrich = [\"sentiment\"]"));
    }

    #[test]
    fn finished_deliveries_are_summed_for_the_example_plugin_only() {
        let metrics = "# HELP x\n\
            switchyard_webhook_deliveries_total{plugin=\"webhooks\",outcome=\"done\"} 41\n\
            switchyard_webhook_deliveries_total{plugin=\"webhooks\",outcome=\"dead\"} 1\n\
            switchyard_webhook_deliveries_total{plugin=\"other\",outcome=\"done\"} 7\n\
            switchyard_webhook_inbox_pending{plugin=\"webhooks\"} 3\n";
        assert_eq!(plugin_counter(metrics, FINISHED_DELIVERIES, WEBHOOK), 42);
        let delivered = "switchyard_events_delivered_total{plugin=\"archive\"} 12\n\
            switchyard_events_delivered_total{plugin=\"other\"} 5\n";
        assert_eq!(plugin_counter(delivered, EVENTS_DELIVERED, OUTPUT), 12);
    }
}
