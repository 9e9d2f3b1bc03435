//! Measurement 1, call latency: one record at a time through `Enrich` to
//! testkit (sequential, p50/p99/p999), beside go-plugin's unary echo and the
//! raw-socket floor, in interleaved rounds.
//!
//! The Switchyard figure uses one long-lived `Enrich` stream (as the contract
//! describes it) on the hub's own channel to the plugin, with one item in
//! flight. A second series uses the hub's `RoleClient::enrich` API (what the
//! admin API's `call/enrich` and the pipeline call): the records converted
//! from the hub's domain types, sent on the connection's shared `Enrich`
//! stream and their answers routed back to the call. A third series makes the
//! same call through the hub's call path. The three take turns within a round.
//!
//! The bare-tonic series ([`crate::bare_tonic`]) make the same calls between
//! two minimal tonic processes: a unary Echo of the record (go-plugin's call)
//! and one-item messages on a long-lived Enrich stream (Switchyard's call), so
//! the report separates Switchyard's own cost from its transport's.

use std::time::Instant;

use anyhow::{Context, bail};
use switchyard_wire::pb::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::bare_tonic::BarePeer;
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
    call_path: Vec<u64>,
    go_plugin: Vec<u64>,
    bare_unary: Vec<u64>,
    bare_stream: Vec<u64>,
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
        let result = switchyard_round(&launched, counts, &mut series).await;
        launched.stop().await;
        result?;
        series.go_plugin.extend(
            peer.latency(counts.latency_calls_per_round, counts.latency_warmup)
                .await
                .context("go-plugin latency round")?,
        );
        let (calls, warmup) = (counts.latency_calls_per_round, counts.latency_warmup);
        let bare = BarePeer::start().await?;
        series.bare_unary.extend(
            bare.unary_latency(calls, warmup)
                .await
                .context("bare tonic unary round")?,
        );
        series.bare_stream.extend(
            bare.stream_latency(calls, warmup)
                .await
                .context("bare tonic stream round")?,
        );
        drop(bare);
        let floor_message = message.clone();
        series.floor.extend(
            tokio::task::spawn_blocking(move || floor::round(&floor_message, calls, warmup))
                .await
                .context("the floor round panicked")??,
        );
    }
    let stream = stats::summarize(&mut series.stream);
    let role_client = stats::summarize(&mut series.role_client);
    let call_path = stats::summarize(&mut series.call_path);
    let go_plugin = stats::summarize(&mut series.go_plugin);
    let bare_unary = stats::summarize(&mut series.bare_unary);
    let bare_stream = stats::summarize(&mut series.bare_stream);
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
        rows.push(
            Row::new(
                "latency",
                format!("Call latency {label}: Enrich, 1 record in flight"),
                Value::micros(stream.as_ref().map(pick)),
                Value::micros(go_plugin.as_ref().map(pick)),
                Value::micros(floor.as_ref().map(pick)),
                true,
                target,
            )
            .bare_tonic(Value::micros(bare_stream.as_ref().map(pick))),
        );
    }
    rows.push(
        Row::new(
            "latency",
            "Call latency p50 ÷ the raw-socket floor: Enrich, 1 record in flight",
            Value::micros(stream.as_ref().map(|s| s.p50_ns)),
            Value::none(),
            Value::micros(floor.as_ref().map(|s| s.p50_ns)),
            true,
            Some(Target::RatioToFloorAtMost(15.0)),
        )
        .bare_tonic(Value::micros(bare_stream.as_ref().map(|s| s.p50_ns))),
    );
    let per_call_series = [
        (
            "hub RoleClient::enrich, 1 record per call",
            &role_client,
            "the admin API's and the pipeline's call: the record converted from the hub's types, sent on the connection's shared Enrich stream, its answer routed back to the call; its bare-tonic figure is the unary Echo, one HTTP/2 stream per call",
        ),
        (
            "hub call path (retry::Call around RoleClient::enrich)",
            &call_path,
            "what the pipeline and the admin API pay: the RoleClient call inside the hub's call path (health, breaker, deadline, span, metrics)",
        ),
    ];
    for (what, series, note) in per_call_series {
        for (label, pick) in [
            ("p50", (|s: &Summary| s.p50_ns) as fn(&Summary) -> u64),
            ("p99", |s: &Summary| s.p99_ns),
        ] {
            rows.push(
                Row::new(
                    "latency",
                    format!("Call latency {label}: {what}"),
                    Value::micros(series.as_ref().map(pick)),
                    Value::micros(go_plugin.as_ref().map(pick)),
                    Value::micros(floor.as_ref().map(pick)),
                    true,
                    None,
                )
                .bare_tonic(Value::micros(bare_unary.as_ref().map(pick)))
                .note(note),
            );
        }
    }
    let per_call_over_stream = |pick: fn(&Summary) -> u64| match (&role_client, &stream) {
        (Some(role), Some(stream)) if pick(stream) > 0 => {
            Some(pick(role) as f64 / pick(stream) as f64)
        }
        _ => None,
    };
    rows.push(Row::new(
        "latency",
        "RoleClient::enrich ÷ long-lived stream, p50",
        Value::ratio(per_call_over_stream(|s| s.p50_ns)),
        Value::none(),
        Value::none(),
        true,
        Some(Target::AtMost(1.2)),
    ));
    for (label, pick) in [
        ("p50", (|s: &Summary| s.p50_ns) as fn(&Summary) -> u64),
        ("p99", |s: &Summary| s.p99_ns),
    ] {
        rows.push(
            Row::new(
                "latency",
                format!("Call latency {label}: bare tonic, unary Echo (transport only)"),
                Value::micros(bare_unary.as_ref().map(pick)),
                Value::micros(go_plugin.as_ref().map(pick)),
                Value::micros(floor.as_ref().map(pick)),
                true,
                None,
            )
            .note("not Switchyard: the same unary call as go-plugin's between two minimal tonic processes (current_thread server, the bench's runtime as client); what gRPC over HTTP/2 in Rust costs"),
        );
    }
    let details = serde_json::json!({
        "payload_bytes": message.len(),
        "switchyard_enrich_stream": stream,
        "switchyard_role_client_enrich": role_client,
        "switchyard_call_path_enrich": call_path,
        "go_plugin_unary_echo": go_plugin,
        "bare_tonic_unary_echo": bare_unary,
        "bare_tonic_enrich_stream": bare_stream,
        "floor_unix_socket_ping_pong": floor,
    });
    Ok((rows, details))
}

/// Calls per slice of a Switchyard round: the three series take turns in
/// slices this long, so a drift of the machine within a round (the host's
/// load, the plugin's state) reaches each of them alike instead of the one
/// measured last.
const SLICE_CALLS: usize = 500;

/// One Switchyard round: the long-lived stream series (one stream for the
/// whole round), the RoleClient series and the call-path series, taking
/// turns in slices of [`SLICE_CALLS`] calls (each series warms up unmeasured
/// before its first slice).
async fn switchyard_round(
    launched: &crate::rig::Launched,
    counts: &Counts,
    series: &mut Series,
) -> anyhow::Result<()> {
    let connection = &launched.connection;
    let record = payload::domain_record()?;
    let records = std::slice::from_ref(&record);
    // The same call through the hub's one call path (retry::Call: health and
    // breaker checks, deadline, span, metrics), to show what it adds.
    let handle = launched
        .supervisor
        .plugin(crate::rig::INSTANCE)
        .context("the supervisor does not know testkit")?;
    let mut stream = PingPong::open(connection.client.channel().clone(), "testkit").await?;
    let mut left = counts.latency_calls_per_round;
    let mut warmup = counts.latency_warmup;
    while left > 0 {
        let calls = left.min(SLICE_CALLS);
        series.stream.extend(stream.time(calls, warmup).await?);
        time_calls(
            warmup,
            calls,
            &mut series.role_client,
            "RoleClient::enrich",
            || async move {
                connection
                    .roles
                    .enrich(records)
                    .await
                    .context("RoleClient::enrich failed")
            },
        )
        .await?;
        time_calls(
            warmup,
            calls,
            &mut series.call_path,
            "the call path",
            || async move {
                switchyard_hub::retry::call(
                    handle,
                    switchyard_hub::retry::Rpc::Enrich,
                    |running| async move { running.roles.enrich(records).await },
                )
                .await
                .map_err(|err| anyhow::anyhow!("the hub's call path failed: {err}"))
            },
        )
        .await?;
        left -= calls;
        warmup = 0;
    }
    Ok(())
}

/// Makes `warmup + calls` one-record calls with `call`, one after another,
/// and keeps the latencies of the last `calls` in `samples`. `what` names the
/// call in errors.
async fn time_calls<T, F, Fut>(
    warmup: usize,
    calls: usize,
    samples: &mut Vec<u64>,
    what: &str,
    mut call: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<T>>>,
{
    for index in 0..warmup + calls {
        let start = Instant::now();
        let outcomes = call().await?;
        let elapsed = start.elapsed();
        if outcomes.len() != 1 {
            bail!("{what} answered {} outcomes for 1 record", outcomes.len());
        }
        if index >= warmup {
            samples.push(nanos(elapsed));
        }
    }
    Ok(())
}

/// A duration in whole nanoseconds.
pub fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Sequential one-item `Enrich` messages on one long-lived stream over
/// `channel` (`warmup` unmeasured first): the measured latencies. `peer`
/// names the plugin in errors.
pub(crate) async fn stream_ping_pong(
    channel: tonic::transport::Channel,
    calls: usize,
    warmup: usize,
    peer: &str,
) -> anyhow::Result<Vec<u64>> {
    PingPong::open(channel, peer)
        .await?
        .time(calls, warmup)
        .await
}

/// One open `Enrich` stream for one-item ping-pongs: the Switchyard round
/// times its slices on the same stream, so the series stays one long-lived
/// stream however many turns it takes.
struct PingPong<'a> {
    requests: mpsc::Sender<pb::EnrichRequest>,
    responses: tonic::Streaming<pb::EnrichResponse>,
    record: pb::Record,
    /// The next item's sequence number (they go on rising across slices).
    sequence: u64,
    /// The plugin, in errors.
    peer: &'a str,
}

impl<'a> PingPong<'a> {
    /// Opens the stream over `channel`.
    async fn open(channel: tonic::transport::Channel, peer: &'a str) -> anyhow::Result<Self> {
        let mut client = pb::enricher_client::EnricherClient::new(channel);
        let (requests, receiver) = mpsc::channel::<pb::EnrichRequest>(1);
        let responses = client
            .enrich(ReceiverStream::new(receiver))
            .await
            .with_context(|| format!("cannot open the Enrich stream to {peer}"))?
            .into_inner();
        Ok(PingPong {
            requests,
            responses,
            record: payload::record(),
            sequence: 0,
            peer,
        })
    }

    /// Sends `warmup + calls` one-item messages one after another and
    /// returns the latencies of the last `calls`.
    async fn time(&mut self, calls: usize, warmup: usize) -> anyhow::Result<Vec<u64>> {
        let peer = self.peer;
        let mut samples = Vec::with_capacity(calls);
        for call in 0..warmup + calls {
            let sequence = self.sequence;
            self.sequence += 1;
            let start = Instant::now();
            self.requests
                .send(pb::EnrichRequest {
                    items: vec![pb::EnrichItem {
                        sequence,
                        record: Some(self.record.clone()),
                    }],
                })
                .await
                .with_context(|| format!("the Enrich stream to {peer} closed"))?;
            let response = self
                .responses
                .message()
                .await
                .with_context(|| format!("Enrich to {peer} failed"))?
                .with_context(|| format!("the Enrich stream to {peer} ended early"))?;
            let elapsed = start.elapsed();
            match response.results.as_slice() {
                [result] if result.sequence == sequence => {}
                _ => bail!("{peer} answered something other than sequence {sequence} alone"),
            }
            if call >= warmup {
                samples.push(nanos(elapsed));
            }
        }
        Ok(samples)
    }
}
