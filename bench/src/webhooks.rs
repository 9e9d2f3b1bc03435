//! Measurement 6, webhooks: the real hub with testkit as a webhook input
//! (`auth = "none"`; testkit asks for synchronous replies, so every accepted
//! request has been handled by the plugin and its record stored in SQLite
//! before the answer), driven by the open-loop generator at a fixed offered
//! rate on loopback.

use std::path::Path;

use anyhow::Context;

use crate::hub_process::{HubProcess, free_port, sqlite_url};
use crate::loadgen::{self, Plan};
use crate::report::{Row, Target, Value};
use crate::rig::{INSTANCE, plugins_toml};
use crate::settings::Counts;

/// The offered rate the targets are set for.
const TARGET_RATE: u64 = 10_000;

/// Offers the load and returns the rows and the generator's outcome.
pub async fn measure(
    hub: &Path,
    testkit: &Path,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let dir = tempfile::Builder::new()
        .prefix("sy-hooks-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\n\n{}\
         [plugins.{INSTANCE}.webhook]\nauth = \"none\"\n",
        sqlite_url(dir.path()),
        plugins_toml(testkit, 1)
    );
    let hub_process = HubProcess::start(hub, dir.path(), &source, port).await?;
    eprintln!(
        "webhooks: {}/s offered for {} s",
        counts.webhook_rate,
        counts.webhook_duration.as_secs_f64()
    );
    let plan = Plan {
        url: format!("{}/webhooks/{INSTANCE}", hub_process.base_url()),
        rate: counts.webhook_rate,
        duration: counts.webhook_duration,
        body: br#"{"id":"order-000000042","type":"order.created","customer":"c-1234567","total_cents":129900,"currency":"EUR"}"#.to_vec(),
        headers: Vec::new(),
        max_in_flight: 1024,
    };
    let outcome = loadgen::run(&plan).await;
    let tail = hub_process.log_tail(10);
    hub_process.stop().await?;
    let outcome = outcome.with_context(|| format!("the hub's last log lines:\n{tail}"))?;
    let at_target_rate = counts.webhook_rate >= TARGET_RATE;
    let target = |target| at_target_rate.then_some(target);
    let offered = format!("{} offered/s", counts.webhook_rate);
    let rows = vec![
        Row::new(
            "webhooks",
            format!("Webhooks accepted, {offered}"),
            Value::rate(Some(outcome.accepted_per_second)),
            Value::none(),
            Value::none(),
            false,
            target(Target::AtLeast(TARGET_RATE as f64)),
        )
        .note("synchronous testkit webhook: plugin called and record stored in SQLite before the answer; same body every time (one record id, updated)"),
        Row::new(
            "webhooks",
            format!("Webhook latency p50, {offered}"),
            Value::millis(outcome.latency.map(|s| s.p50_ns)),
            Value::none(),
            Value::none(),
            true,
            None,
        ),
        Row::new(
            "webhooks",
            format!("Webhook latency p99, {offered}"),
            Value::millis(outcome.latency.map(|s| s.p99_ns)),
            Value::none(),
            Value::none(),
            true,
            target(Target::AtMost(10.0)),
        ),
    ];
    Ok((rows, serde_json::to_value(&outcome)?))
}
