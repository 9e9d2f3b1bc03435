//! Measurement 3, launch: spawn to first successful call. Switchyard: the hub
//! library's supervisor starts testkit (spawner thread, handshake, connect,
//! health, metadata, Configure) and the first `Enrich` through the hub's
//! `RoleClient` succeeds. go-plugin: NewClient, Client(), Dispense, first
//! unary call. Interleaved rounds; stopping is not timed.

use std::time::Instant;

use anyhow::{Context, bail};

use crate::goplugin::Peer;
use crate::latency::nanos;
use crate::payload;
use crate::report::{Row, Target, Value};
use crate::rig::Rig;
use crate::settings::Counts;
use crate::stats;

/// Runs the rounds and returns the report rows and the summaries.
pub async fn measure(
    rig: &Rig,
    peer: &Peer,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let record = payload::domain_record()?;
    let mut switchyard = Vec::new();
    let mut go_plugin = Vec::new();
    for round in 0..counts.rounds {
        eprintln!("launch: round {}/{}", round + 1, counts.rounds);
        for _ in 0..counts.launches_per_round {
            let start = Instant::now();
            let launched = rig.launch().await?;
            let first = launched
                .connection
                .roles
                .enrich(std::slice::from_ref(&record))
                .await;
            let elapsed = start.elapsed();
            launched.stop().await;
            let outcomes = first.context("the first Enrich call failed")?;
            if outcomes.len() != 1 {
                bail!("the first Enrich call answered {} outcomes", outcomes.len());
            }
            switchyard.push(nanos(elapsed));
        }
        go_plugin.extend(
            peer.launch(counts.launches_per_round)
                .await
                .context("go-plugin launch round")?,
        );
    }
    let switchyard = stats::summarize(&mut switchyard);
    let go_plugin = stats::summarize(&mut go_plugin);
    let rows = vec![Row::new(
        "launch",
        "Launch: spawn to first successful call, p50",
        Value::millis(switchyard.map(|s| s.p50_ns)),
        Value::millis(go_plugin.map(|s| s.p50_ns)),
        Value::none(),
        true,
        Some(Target::RatioToGoAtMost(0.4)),
    )];
    let details = serde_json::json!({
        "switchyard_supervisor_to_first_enrich": switchyard,
        "go_plugin_newclient_to_first_call": go_plugin,
    });
    Ok((rows, details))
}
