//! Measurement 2, stream throughput: records/s through `Enrich` and events/s
//! through `HandleEvent` (every event acked) with many items in flight, beside
//! go-plugin's best equivalent (the same bidi streams, same batches and
//! window, served by the go-plugin peer), in interleaved rounds. Each side
//! checks that every item is answered exactly once.
//!
//! A second pair of series drives the hub's own `RoleClient::enrich` and
//! `RoleClient::events` with a window's worth of items per call.
//!
//! The floor of the Enrich row and of the HandleEvent row is the same bidi
//! stream (same record, batches and window) between two minimal tonic
//! processes ([`crate::bare_tonic`]).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use nix::unistd::Pid;
use switchyard_hub::domain::{EventKind, RecordEvent};
use switchyard_hub::supervisor::RunningPlugin;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::bare_tonic::BarePeer;
use crate::footprint::{clock_ticks_per_second, cpu_ticks};
use crate::goplugin::Peer;
use crate::payload;
use crate::report::{Row, Target, Value};
use crate::rig::Rig;
use crate::settings::Counts;
use crate::stats;

/// Per-round rates (items/s) of every series, and where the CPU went.
#[derive(Default, serde::Serialize)]
struct Rates {
    /// CPU µs per record on the hub side (this process) in the Enrich rounds.
    enrich_cpu_us_hub: Vec<f64>,
    /// CPU µs per record in testkit in the Enrich rounds.
    enrich_cpu_us_plugin: Vec<f64>,
    /// CPU µs per event on the hub side in the HandleEvent rounds.
    events_cpu_us_hub: Vec<f64>,
    /// CPU µs per event in testkit in the HandleEvent rounds.
    events_cpu_us_plugin: Vec<f64>,
    enrich: Vec<f64>,
    events: Vec<f64>,
    role_client_enrich: Vec<f64>,
    role_client_events: Vec<f64>,
    go_enrich: Vec<f64>,
    go_events: Vec<f64>,
    bare_tonic_enrich: Vec<f64>,
    bare_tonic_events: Vec<f64>,
}

/// Which stream a round drives.
#[derive(Clone, Copy)]
enum Kind {
    Enrich,
    Events,
}

/// Runs the rounds and returns the report rows and per-round rates.
pub async fn measure(
    rig: &Rig,
    peer: &Peer,
    counts: &Counts,
) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let batch = counts.stream_batch.max(1);
    let window = counts.stream_window.max(batch);
    let items = counts.stream_items_per_round.div_ceil(batch) * batch;
    let mut rates = Rates::default();
    for round in 0..counts.rounds {
        eprintln!("stream: round {}/{}", round + 1, counts.rounds);
        let launched = rig.launch().await?;
        let result = async {
            let connection = &launched.connection;
            let plugin = launched
                .supervisor
                .plugin(crate::rig::INSTANCE)
                .and_then(|handle| handle.status().pid)
                .and_then(|pid| i32::try_from(pid).ok())
                .map(Pid::from_raw)
                .context("testkit has no pid")?;
            let cpu = CpuMeter::start(plugin)?;
            rates
                .enrich
                .push(stream_round(connection, Kind::Enrich, items, batch, window).await?);
            let (hub, plugin_us) = cpu.per_item_us(items)?;
            rates.enrich_cpu_us_hub.push(hub);
            rates.enrich_cpu_us_plugin.push(plugin_us);
            let cpu = CpuMeter::start(plugin)?;
            rates
                .events
                .push(stream_round(connection, Kind::Events, items, batch, window).await?);
            let (hub, plugin_us) = cpu.per_item_us(items)?;
            rates.events_cpu_us_hub.push(hub);
            rates.events_cpu_us_plugin.push(plugin_us);
            rates
                .role_client_enrich
                .push(role_client_round(connection, Kind::Enrich, items, window).await?);
            rates
                .role_client_events
                .push(role_client_round(connection, Kind::Events, items, window).await?);
            anyhow::Ok(())
        }
        .await;
        launched.stop().await;
        result?;
        rates.go_enrich.push(
            peer.stream("enrich", items, batch, window)
                .await
                .context("go-plugin Enrich round")?,
        );
        rates.go_events.push(
            peer.stream("events", items, batch, window)
                .await
                .context("go-plugin HandleEvent round")?,
        );
        let bare = BarePeer::start().await?;
        rates.bare_tonic_enrich.push(
            bare.stream_rate(items, batch, window)
                .await
                .context("bare tonic Enrich round")?,
        );
        rates.bare_tonic_events.push(
            bare.events_rate(items, batch, window)
                .await
                .context("bare tonic HandleEvent round")?,
        );
    }
    let median = |values: &[f64]| stats::median(values);
    let mut rows = vec![
        Row::new(
            "stream",
            "Enrich throughput, many in flight (records/s)",
            Value::rate(median(&rates.enrich)),
            Value::rate(median(&rates.go_enrich)),
            Value::none(),
            false,
            Some(Target::AtLeast(1_000_000.0)),
        )
        .bare_tonic(Value::rate(median(&rates.bare_tonic_enrich))),
        Row::new(
            "stream",
            "Enrich throughput: bare tonic, same bidi stream (records/s)",
            Value::rate(median(&rates.bare_tonic_enrich)),
            Value::rate(median(&rates.go_enrich)),
            Value::none(),
            false,
            None,
        )
        .note("not Switchyard: the same Enrich stream, batches and window between two minimal tonic processes, answered in place; the transport's floor"),
        Row::new(
            "stream",
            "HandleEvent throughput, every event acked (events/s)",
            Value::rate(median(&rates.events)),
            Value::rate(median(&rates.go_events)),
            Value::none(),
            false,
            Some(Target::AtLeast(1_500_000.0)),
        )
        .bare_tonic(Value::rate(median(&rates.bare_tonic_events))),
        Row::new(
            "stream",
            "HandleEvent throughput: bare tonic, same bidi stream (events/s)",
            Value::rate(median(&rates.bare_tonic_events)),
            Value::rate(median(&rates.go_events)),
            Value::none(),
            false,
            None,
        )
        .note("not Switchyard: the same HandleEvent stream, batches and window between two minimal tonic processes, every event acked in place; the transport's floor"),
        Row::new(
            "stream",
            format!("Enrich via hub RoleClient::enrich, {window} per call (records/s)"),
            Value::rate(median(&rates.role_client_enrich)),
            Value::rate(median(&rates.go_enrich)),
            Value::none(),
            false,
            None,
        )
        .note("the hub's own role client: domain conversion, the connection's shared Enrich stream"),
        Row::new(
            "stream",
            format!("HandleEvent via hub RoleClient::events, {window} per call (events/s)"),
            Value::rate(median(&rates.role_client_events)),
            Value::rate(median(&rates.go_events)),
            Value::none(),
            false,
            None,
        )
        .note("the hub's own role client: domain conversion, one HandleEvent stream per call"),
    ];
    for (label, values) in [
        ("Enrich CPU per record, hub side", &rates.enrich_cpu_us_hub),
        (
            "Enrich CPU per record, plugin side",
            &rates.enrich_cpu_us_plugin,
        ),
        (
            "HandleEvent CPU per event, hub side",
            &rates.events_cpu_us_hub,
        ),
        (
            "HandleEvent CPU per event, plugin side",
            &rates.events_cpu_us_plugin,
        ),
    ] {
        let us = median(values);
        rows.push(
            Row::new(
                "stream",
                label,
                Value::micros(us.map(|us| (us * 1e3) as u64)),
                Value::none(),
                Value::none(),
                true,
                None,
            )
            .note("CPU time (utime + stime, 10 ms ticks) of the process over the round ÷ items: where the time goes"),
        );
    }
    let details = serde_json::json!({
        "cpu_us_per_item_median": {
            "enrich_hub_side": median(&rates.enrich_cpu_us_hub),
            "enrich_plugin_side": median(&rates.enrich_cpu_us_plugin),
            "events_hub_side": median(&rates.events_cpu_us_hub),
            "events_plugin_side": median(&rates.events_cpu_us_plugin),
        },
        "items_per_round": items,
        "batch": batch,
        "window": window,
        "per_round_rates": rates,
    });
    Ok((rows, details))
}

/// Pushes `items` through one long-lived stream with `window` items in flight
/// in messages of `batch`; returns items per second.
async fn stream_round(
    connection: &RunningPlugin,
    kind: Kind,
    items: usize,
    batch: usize,
    window: usize,
) -> anyhow::Result<f64> {
    let channel = connection.client.channel().clone();
    match kind {
        Kind::Enrich => enrich_stream_rate(channel, items, batch, window, "testkit").await,
        Kind::Events => events_stream_rate(channel, items, batch, window, "testkit").await,
    }
}

/// Pushes `items` events through one long-lived `HandleEvent` stream over
/// `channel` with `window` events in flight in messages of `batch`, checking
/// that each is acked (not nacked) exactly once; returns events per second.
/// `peer` names the plugin in errors.
pub(crate) async fn events_stream_rate(
    channel: tonic::transport::Channel,
    items: usize,
    batch: usize,
    window: usize,
    peer: &str,
) -> anyhow::Result<f64> {
    let shape = Shape {
        rpc: "HandleEvent",
        request: |ids, record| pb::EventRequest {
            events: ids
                .map(|id| pb::RecordEvent {
                    delivery_id: id as u64,
                    kind: pb::EventKind::Created as i32,
                    record: Some(record.clone()),
                    attempt: 1,
                })
                .collect(),
        },
        answered: |response: &pb::EventResponse, peer, ids| {
            for ack in &response.acks {
                if let Some(failure) = &ack.failure {
                    bail!(
                        "{peer} nacked delivery {}: {}",
                        ack.delivery_id,
                        failure.message
                    );
                }
                ids.push(ack.delivery_id);
            }
            Ok(())
        },
    };
    let open = |requests| async move {
        pb::output_client::OutputClient::new(channel)
            .handle_event(requests)
            .await
    };
    stream_rate(shape, open, items, batch, window, peer).await
}

/// Pushes `items` through one long-lived `Enrich` stream over `channel`
/// with `window` items in flight in messages of `batch`, checking that each
/// is enriched and answered exactly once; returns items per second. `peer`
/// names the plugin in errors.
pub(crate) async fn enrich_stream_rate(
    channel: tonic::transport::Channel,
    items: usize,
    batch: usize,
    window: usize,
    peer: &str,
) -> anyhow::Result<f64> {
    let shape = Shape {
        rpc: "Enrich",
        request: |ids, record| pb::EnrichRequest {
            items: ids
                .map(|sequence| pb::EnrichItem {
                    sequence: sequence as u64,
                    record: Some(record.clone()),
                })
                .collect(),
        },
        answered: |response: &pb::EnrichResponse, peer, ids| {
            for result in &response.results {
                if !matches!(result.outcome, Some(pb::enrich_result::Outcome::Record(_))) {
                    bail!("{peer} did not enrich sequence {}", result.sequence);
                }
                ids.push(result.sequence);
            }
            Ok(())
        },
    };
    let open = |requests| async move {
        pb::enricher_client::EnricherClient::new(channel)
            .enrich(requests)
            .await
    };
    stream_rate(shape, open, items, batch, window, peer).await
}

/// What tells the two bidi streams apart in [`stream_rate`].
struct Shape<Req, Resp> {
    /// The method's name, for errors.
    rpc: &'static str,
    /// The request message carrying the items with these ids.
    request: fn(std::ops::Range<usize>, &pb::Record) -> Req,
    /// Adds the ids a response answers to the list, or says why one of its
    /// answers is wrong (given the peer's name).
    answered: fn(&Resp, &str, &mut Vec<u64>) -> anyhow::Result<()>,
}

/// Pushes `items` through the stream `open` opens, `window` in flight in
/// messages of `batch` made by `shape`, checking that each is answered
/// exactly once; returns items per second.
async fn stream_rate<Req, Resp, Open, Opened>(
    shape: Shape<Req, Resp>,
    open: Open,
    items: usize,
    batch: usize,
    window: usize,
    peer: &str,
) -> anyhow::Result<f64>
where
    Req: Send + 'static,
    Open: FnOnce(ReceiverStream<Req>) -> Opened,
    Opened: std::future::Future<Output = Result<tonic::Response<tonic::Streaming<Resp>>, tonic::Status>>,
{
    let Shape {
        rpc,
        request,
        answered: answers,
    } = shape;
    let record = payload::record();
    let credits = Arc::new(Semaphore::new(window));
    let mut answered = vec![false; items];
    let start = Instant::now();
    let sender_credits = credits.clone();
    let batch_permits = u32::try_from(batch).context("batch too large")?;
    let (requests, receiver) = mpsc::channel::<Req>((window / batch).max(1));
    let sender = tokio::spawn(async move {
        for first in (0..items).step_by(batch) {
            sender_credits.acquire_many(batch_permits).await?.forget();
            let message = request(first..(first + batch).min(items), &record);
            if requests.send(message).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    });
    let mut responses = open(ReceiverStream::new(receiver))
        .await
        .with_context(|| format!("cannot open the {rpc} stream to {peer}"))?
        .into_inner();
    let mut done = 0;
    let mut ids = Vec::with_capacity(batch);
    while done < items {
        let response = responses
            .message()
            .await
            .with_context(|| format!("{rpc} to {peer} failed"))?
            .with_context(|| format!("{rpc} to {peer} ended with {done} of {items} answered"))?;
        ids.clear();
        answers(&response, peer, &mut ids)?;
        for &id in &ids {
            mark(&mut answered, id)?;
        }
        done += ids.len();
        credits.add_permits(ids.len());
    }
    sender.await.context("the sender panicked")??;
    Ok(items as f64 / start.elapsed().as_secs_f64())
}

/// CPU time of this process (the hub side) and of the plugin over a round.
struct CpuMeter {
    plugin: Pid,
    hub_ticks: u64,
    plugin_ticks: u64,
}

impl CpuMeter {
    fn start(plugin: Pid) -> anyhow::Result<Self> {
        Ok(CpuMeter {
            plugin,
            hub_ticks: cpu_ticks(Pid::this())?,
            plugin_ticks: cpu_ticks(plugin)?,
        })
    }

    /// CPU µs per item on the hub side and in the plugin since `start`.
    fn per_item_us(&self, items: usize) -> anyhow::Result<(f64, f64)> {
        let scale = 1e6 / clock_ticks_per_second() / items.max(1) as f64;
        let hub = cpu_ticks(Pid::this())?.saturating_sub(self.hub_ticks);
        let plugin = cpu_ticks(self.plugin)?.saturating_sub(self.plugin_ticks);
        Ok((hub as f64 * scale, plugin as f64 * scale))
    }
}

/// Marks item `id` answered, refusing unknown and repeated ids.
fn mark(answered: &mut [bool], id: u64) -> anyhow::Result<()> {
    match usize::try_from(id)
        .ok()
        .and_then(|index| answered.get_mut(index))
    {
        Some(slot) if !*slot => {
            *slot = true;
            Ok(())
        }
        Some(_) => bail!("item {id} was answered twice"),
        None => bail!("item {id} was never sent"),
    }
}

/// Pushes `items` through the hub's RoleClient, `per_call` items per call.
async fn role_client_round(
    connection: &RunningPlugin,
    kind: Kind,
    items: usize,
    per_call: usize,
) -> anyhow::Result<f64> {
    let record = payload::domain_record()?;
    let records = vec![record; per_call];
    // Events share their record, as the hub's output worker's do.
    let shared: Vec<Arc<_>> = records.iter().cloned().map(Arc::new).collect();
    let start = Instant::now();
    let mut done = 0;
    while done < items {
        let count = per_call.min(items - done);
        match kind {
            Kind::Enrich => {
                let outcomes = connection
                    .roles
                    .enrich(&records[..count])
                    .await
                    .context("RoleClient::enrich failed")?;
                if outcomes.len() != count {
                    bail!("RoleClient::enrich answered {} of {count}", outcomes.len());
                }
            }
            Kind::Events => {
                let events: Vec<RecordEvent> = shared[..count]
                    .iter()
                    .enumerate()
                    .map(|(index, record)| RecordEvent {
                        delivery_id: (done + index) as u64,
                        kind: EventKind::Created,
                        record: Arc::clone(record),
                        attempt: 1,
                    })
                    .collect();
                let acks = connection
                    .roles
                    .events(&events)
                    .await
                    .context("RoleClient::events failed")?;
                if acks.len() != count || acks.iter().any(|ack| ack.failure.is_some()) {
                    bail!("RoleClient::events did not ack all {count} events");
                }
            }
        }
        done += count;
    }
    Ok(items as f64 / start.elapsed().as_secs_f64())
}
