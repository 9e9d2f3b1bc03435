//! Measurement 1, call latency: one record at a time through `Enrich` to
//! testkit (sequential, p50/p99/p999), beside go-plugin's unary echo and the
//! raw-socket floor, in interleaved rounds.
//!
//! The Switchyard figure uses one long-lived `Enrich` stream (as the contract
//! describes it) on the hub's own channel to the plugin, with one item in
//! flight. A second series uses the hub's `RoleClient::enrich` API, which
//! opens a stream per call (what the admin API's `call/enrich` does).

use std::time::Instant;

use anyhow::{Context, bail};
use switchyard_wire::pb::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::floor;
use crate::goplugin::Peer;
use crate::payload;
use crate::report::{Row, Target, Value};
use crate::rig::Rig;
use crate::settings::Counts;
use crate::stats::{self, Summary};

/// Every series' samples, merged over the rounds.
#[derive(Default)]
struct Series {
    stream: Vec<u64>,
    role_client: Vec<u64>,
    go_plugin: Vec<u64>,
    floor: Vec<u64>,
}

/// Runs the rounds and returns the report rows and the raw summaries.
pub async fn measure(
    rig: &Rig,
    peer: &Peer,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let message = payload::encoded();
    let mut series = Series::default();
    for round in 0..counts.rounds {
        eprintln!("latency: round {}/{}", round + 1, counts.rounds);
        let launched = rig.launch().await?;
        let result = switchyard_round(&launched.connection, counts, &mut series).await;
        launched.stop().await;
        result?;
        series.go_plugin.extend(
            peer.latency(counts.latency_calls_per_round, counts.latency_warmup)
                .await
                .context("go-plugin latency round")?,
        );
        let (calls, warmup) = (counts.latency_calls_per_round, counts.latency_warmup);
        let floor_message = message.clone();
        series.floor.extend(
            tokio::task::spawn_blocking(move || floor::round(&floor_message, calls, warmup))
                .await
                .context("the floor round panicked")??,
        );
    }
    let stream = stats::summarize(&mut series.stream);
    let role_client = stats::summarize(&mut series.role_client);
    let go_plugin = stats::summarize(&mut series.go_plugin);
    let floor = stats::summarize(&mut series.floor);
    let mut rows = Vec::new();
    for (label, pick, target) in [
        (
            "p50",
            (|s: &Summary| s.p50_ns) as fn(&Summary) -> u64,
            Some(Target::RatioToGoAtMost(0.5)),
        ),
        (
            "p99",
            |s: &Summary| s.p99_ns,
            Some(Target::RatioToGoAtMost(0.5)),
        ),
        ("p999", |s: &Summary| s.p999_ns, None),
    ] {
        rows.push(Row::new(
            "latency",
            format!("Call latency {label}: Enrich, 1 record in flight"),
            Value::micros(stream.as_ref().map(pick)),
            Value::micros(go_plugin.as_ref().map(pick)),
            Value::micros(floor.as_ref().map(pick)),
            true,
            target,
        ));
    }
    for (label, pick) in [
        ("p50", (|s: &Summary| s.p50_ns) as fn(&Summary) -> u64),
        ("p99", |s: &Summary| s.p99_ns),
    ] {
        rows.push(
            Row::new(
                "latency",
                format!("Call latency {label}: hub RoleClient::enrich, 1 record per call"),
                Value::micros(role_client.as_ref().map(pick)),
                Value::micros(go_plugin.as_ref().map(pick)),
                Value::micros(floor.as_ref().map(pick)),
                true,
                None,
            )
            .note("opens one Enrich stream per call (the admin API's path)"),
        );
    }
    let details = serde_json::json!({
        "payload_bytes": message.len(),
        "switchyard_enrich_stream": stream,
        "switchyard_role_client_enrich": role_client,
        "go_plugin_unary_echo": go_plugin,
        "floor_unix_socket_ping_pong": floor,
    });
    Ok((rows, details))
}

/// One Switchyard round: the long-lived stream series, then the RoleClient series.
async fn switchyard_round(
    connection: &switchyard_hub::supervisor::RunningPlugin,
    counts: &Counts,
    series: &mut Series,
) -> anyhow::Result<()> {
    let record = payload::record();
    let mut client = pb::enricher_client::EnricherClient::new(connection.client.channel().clone());
    let (requests, receiver) = mpsc::channel::<pb::EnrichRequest>(1);
    let mut responses = client
        .enrich(ReceiverStream::new(receiver))
        .await
        .context("cannot open the Enrich stream")?
        .into_inner();
    for call in 0..counts.latency_warmup + counts.latency_calls_per_round {
        let sequence = call as u64;
        let start = Instant::now();
        requests
            .send(pb::EnrichRequest {
                items: vec![pb::EnrichItem {
                    sequence,
                    record: Some(record.clone()),
                }],
            })
            .await
            .context("the Enrich stream closed")?;
        let response = responses
            .message()
            .await
            .context("Enrich failed")?
            .context("the Enrich stream ended early")?;
        let elapsed = start.elapsed();
        match response.results.as_slice() {
            [result] if result.sequence == sequence => {}
            _ => bail!("testkit answered something other than sequence {sequence} alone"),
        }
        if call >= counts.latency_warmup {
            series.stream.push(nanos(elapsed));
        }
    }
    drop(requests);
    let record = payload::domain_record()?;
    let records = std::slice::from_ref(&record);
    for call in 0..counts.latency_warmup + counts.latency_calls_per_round {
        let start = Instant::now();
        let outcomes = connection
            .roles
            .enrich(records)
            .await
            .context("RoleClient::enrich failed")?;
        let elapsed = start.elapsed();
        if outcomes.len() != 1 {
            bail!(
                "RoleClient::enrich answered {} outcomes for 1 record",
                outcomes.len()
            );
        }
        if call >= counts.latency_warmup {
            series.role_client.push(nanos(elapsed));
        }
    }
    Ok(())
}

/// A duration in whole nanoseconds.
pub fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
