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

/// One series of launches: spawn to the first `Enrich` answer, and spawn to
/// the supervisor's "running" (handshake, health, metadata and Configure
/// done), per launch.
#[derive(Default)]
struct Series {
    to_first_enrich: Vec<u64>,
    to_running: Vec<u64>,
}

/// Runs the rounds and returns the report rows and the summaries.
pub async fn measure(
    rig: &Rig,
    dynamic: Option<&Rig>,
    peer: &Peer,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let record = payload::domain_record()?;
    let mut switchyard = Series::default();
    let mut switchyard_dynamic = Series::default();
    let mut go_plugin = Vec::new();
    for round in 0..counts.rounds {
        eprintln!("launch: round {}/{}", round + 1, counts.rounds);
        launches(rig, &record, counts.launches_per_round, &mut switchyard).await?;
        if let Some(dynamic) = dynamic {
            launches(
                dynamic,
                &record,
                counts.launches_per_round,
                &mut switchyard_dynamic,
            )
            .await?;
        }
        go_plugin.extend(
            peer.launch(counts.launches_per_round)
                .await
                .context("go-plugin launch round")?,
        );
    }
    let switchyard_running = stats::summarize(&mut switchyard.to_running);
    let switchyard = stats::summarize(&mut switchyard.to_first_enrich);
    let switchyard_dynamic_running = stats::summarize(&mut switchyard_dynamic.to_running);
    let switchyard_dynamic = stats::summarize(&mut switchyard_dynamic.to_first_enrich);
    let go_plugin = stats::summarize(&mut go_plugin);
    let linkage = Linkage::of(rig.testkit());
    let mut rows = vec![row(
        linkage,
        switchyard,
        go_plugin,
        Some(Target::RatioToGoAtMost(0.4)),
    )];
    if let Some(dynamic) = dynamic {
        rows.push(row(
            Linkage::of(dynamic.testkit()),
            switchyard_dynamic,
            go_plugin,
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

/// The launch row of testkit linked as `linkage`, beside go-plugin's.
fn row(
    linkage: Linkage,
    switchyard: Option<stats::Summary>,
    go_plugin: Option<stats::Summary>,
    target: Option<Target>,
) -> Row {
    Row::new(
        "launch",
        format!(
            "Launch: spawn to first successful call, p50 (testkit {})",
            linkage.describe()
        ),
        Value::millis(switchyard.map(|s| s.p50_ns)),
        Value::millis(go_plugin.map(|s| s.p50_ns)),
        Value::none(),
        true,
        target,
    )
}

/// Launches `count` times through `rig` and adds each launch's times to
/// `series`; the plugin is stopped after each, untimed.
async fn launches(
    rig: &Rig,
    record: &switchyard_hub::domain::Record,
    count: usize,
    series: &mut Series,
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
        series.to_first_enrich.push(nanos(elapsed));
        series.to_running.push(nanos(running));
    }
    Ok(())
}
