//! Measurement 3, launch: spawn to first successful call. Switchyard: the hub
//! library's supervisor starts testkit (spawner thread, handshake, connect,
//! health, metadata, Configure) and the first `Enrich` through the hub's
//! `RoleClient` succeeds. go-plugin: NewClient, Client(), Dispense, first
//! unary call. Interleaved rounds; stopping is not timed.
//!
//! The row with the target launches `--testkit-bin`; scripts/bench links it
//! static-pie, as Go links its plugins statically. With
//! `--testkit-dynamic-bin`, the same plugin linked dynamically is launched in
//! the same rounds, in a row of its own: what the dynamic loader costs.
//! Each row's label says how its binary is linked ([`Linkage`]).

use std::time::Instant;

use anyhow::{Context, bail};

use crate::goplugin::Peer;
use crate::latency::nanos;
use crate::linkage::Linkage;
use crate::payload;
use crate::report::{Row, Target, Value};
use crate::rig::Rig;
use crate::settings::Counts;
use crate::stats;

/// Runs the rounds and returns the report rows and the summaries.
pub async fn measure(
    rig: &Rig,
    dynamic: Option<&Rig>,
    peer: &Peer,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let record = payload::domain_record()?;
    let mut switchyard = Vec::new();
    let mut switchyard_running = Vec::new();
    let mut switchyard_dynamic = Vec::new();
    let mut switchyard_dynamic_running = Vec::new();
    let mut go_plugin = Vec::new();
    for round in 0..counts.rounds {
        eprintln!("launch: round {}/{}", round + 1, counts.rounds);
        launches(
            rig,
            &record,
            counts.launches_per_round,
            &mut switchyard,
            &mut switchyard_running,
        )
        .await?;
        if let Some(dynamic) = dynamic {
            launches(
                dynamic,
                &record,
                counts.launches_per_round,
                &mut switchyard_dynamic,
                &mut switchyard_dynamic_running,
            )
            .await?;
        }
        go_plugin.extend(
            peer.launch(counts.launches_per_round)
                .await
                .context("go-plugin launch round")?,
        );
    }
    let switchyard = stats::summarize(&mut switchyard);
    let switchyard_running = stats::summarize(&mut switchyard_running);
    let switchyard_dynamic = stats::summarize(&mut switchyard_dynamic);
    let switchyard_dynamic_running = stats::summarize(&mut switchyard_dynamic_running);
    let go_plugin = stats::summarize(&mut go_plugin);
    let linkage = Linkage::of(rig.testkit());
    let mut rows = vec![Row::new(
        "launch",
        format!(
            "Launch: spawn to first successful call, p50 (testkit {})",
            linkage.describe()
        ),
        Value::millis(switchyard.map(|s| s.p50_ns)),
        Value::millis(go_plugin.map(|s| s.p50_ns)),
        Value::none(),
        true,
        Some(Target::RatioToGoAtMost(0.4)),
    )];
    if let Some(dynamic) = dynamic {
        rows.push(Row::new(
            "launch",
            format!(
                "Launch: spawn to first successful call, p50 (testkit {})",
                Linkage::of(dynamic.testkit()).describe()
            ),
            Value::millis(switchyard_dynamic.map(|s| s.p50_ns)),
            Value::millis(go_plugin.map(|s| s.p50_ns)),
            Value::none(),
            true,
            None,
        ));
    }
    let details = serde_json::json!({
        "testkit_linkage": linkage.describe(),
        "switchyard_supervisor_to_first_enrich": switchyard,
        "switchyard_supervisor_to_running": switchyard_running,
        "switchyard_dynamic_testkit_to_first_enrich": switchyard_dynamic,
        "switchyard_dynamic_testkit_to_running": switchyard_dynamic_running,
        "go_plugin_newclient_to_first_call": go_plugin,
    });
    Ok((rows, details))
}

/// Launches `count` times through `rig`, timing each from spawn to the first
/// `Enrich` answer (`samples`) and to the supervisor's "running" with the
/// handshake, health, metadata and Configure done (`to_running`); the
/// plugin is stopped after each, untimed.
async fn launches(
    rig: &Rig,
    record: &switchyard_hub::domain::Record,
    count: usize,
    samples: &mut Vec<u64>,
    to_running: &mut Vec<u64>,
) -> anyhow::Result<()> {
    for _ in 0..count {
        let start = Instant::now();
        let launched = rig.launch().await?;
        let running = start.elapsed();
        let first = launched
            .connection
            .roles
            .enrich(std::slice::from_ref(record))
            .await;
        let elapsed = start.elapsed();
        launched.stop().await;
        let outcomes = first.context("the first Enrich call failed")?;
        if outcomes.len() != 1 {
            bail!("the first Enrich call answered {} outcomes", outcomes.len());
        }
        samples.push(nanos(elapsed));
        to_running.push(nanos(running));
    }
    Ok(())
}
