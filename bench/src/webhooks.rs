//! Measurement 6, webhooks: the real hub with testkit as a webhook input
//! (`auth = "none"`; testkit asks for synchronous replies, so every accepted
//! request has been handled by the plugin and its record stored in SQLite
//! before the answer), driven by the open-loop generator at a fixed offered
//! rate on loopback. Then the same load on the asynchronous path, the usual
//! one: `webhook-json` (found next to testkit), where the 202 follows the
//! durable inbox write and the plugin takes the delivery afterwards.

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
    let (mut rows, sync) = measure_sync(hub, testkit, counts).await?;
    let webhook_json = testkit.with_file_name("webhook-json");
    let offered = format!("{} offered/s", counts.webhook_rate);
    let at_target_rate = counts.webhook_rate >= TARGET_RATE;
    let target = |target| at_target_rate.then_some(target);
    let asynchronous = if webhook_json.is_file() {
        let plugins = format!(
            "[plugins.{INSTANCE}]\ncommand = {}\n\
             [plugins.{INSTANCE}.webhook]\nauth = \"none\"\nmax_pending = 1000000\n",
            crate::rig::toml_string(&webhook_json),
        );
        let outcome = offer(hub, INSTANCE, &plugins, "webhooks (asynchronous)", counts).await?;
        rows.push(
            Row::new(
                "webhooks",
                format!("Webhooks accepted, asynchronous inbox, {offered}"),
                Value::rate(Some(outcome.accepted_per_second)),
                Value::none(),
                Value::none(),
                false,
                target(Target::AtLeast(TARGET_RATE as f64)),
            )
            .note("webhook-json: 202 after the delivery's inbox row committed (group commit, SQLite, synchronous=full); the plugin takes it afterwards"),
        );
        rows.push(Row::new(
            "webhooks",
            format!("Webhook latency p99, asynchronous inbox, {offered}"),
            Value::millis(outcome.latency.map(|s| s.p99_ns)),
            Value::none(),
            Value::none(),
            true,
            target(Target::AtMost(10.0)),
        ));
        Some(outcome)
    } else {
        rows.push(Row::not_measured(
            "webhooks",
            format!("Webhooks accepted, asynchronous inbox, {offered}"),
            &format!(
                "{} is missing (cargo build --release -p webhook-json)",
                webhook_json.display()
            ),
        ));
        None
    };
    let details = serde_json::json!({ "synchronous": sync, "asynchronous": asynchronous });
    Ok((rows, details))
}

/// Runs the hub with `plugins` (the `plugins.toml` text after its `[hub]`
/// table) and offers the load to `/webhooks/{name}`; `label` names the
/// series in the progress line.
async fn offer(
    hub: &Path,
    name: &str,
    plugins: &str,
    label: &str,
    counts: &Counts,
) -> anyhow::Result<loadgen::Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("sy-hooks-")
        .tempdir_in("/tmp")
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    let source = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = {}\n\n{plugins}",
        sqlite_url(dir.path()),
    );
    let hub_process = HubProcess::start(hub, dir.path(), &source, port).await?;
    eprintln!(
        "{label}: {}/s offered for {} s",
        counts.webhook_rate,
        counts.webhook_duration.as_secs_f64()
    );
    let plan = Plan {
        url: format!("{}/webhooks/{name}", hub_process.base_url()),
        rate: counts.webhook_rate,
        duration: counts.webhook_duration,
        body: BODY.to_vec(),
        headers: Vec::new(),
        max_in_flight: 1024,
    };
    let outcome = loadgen::run(&plan).await;
    let tail = hub_process.log_tail(10);
    hub_process.stop().await?;
    outcome.with_context(|| format!("the hub's last log lines:\n{tail}"))
}

/// The body of every request.
const BODY: &[u8] = br#"{"id":"order-000000042","type":"order.created","customer":"c-1234567","total_cents":129900,"currency":"EUR"}"#;

/// The synchronous testkit measurement.
async fn measure_sync(
    hub: &Path,
    testkit: &Path,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let plugins = format!(
        "{}[plugins.{INSTANCE}.webhook]\nauth = \"none\"\n",
        plugins_toml(testkit, 1)
    );
    let outcome = offer(hub, INSTANCE, &plugins, "webhooks", counts).await?;
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
