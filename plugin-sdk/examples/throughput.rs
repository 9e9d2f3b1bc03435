//! Measures Enrich and HandleEvent throughput through the real gRPC services
//! in-process (client and plugin share the process, so this is a lower bound
//! for the plugin side). Run with `cargo run --release -p switchyard-plugin-sdk --example throughput`.

use std::time::Instant;

use switchyard_plugin_sdk::testing::TestHarness;
use switchyard_plugin_sdk::{
    ConfigErrors, Enricher, NoConfig, Output, Plugin, PluginError, Record, RecordEvent,
};
use switchyard_wire::pb::v1 as pb;

struct Echo;

impl Enricher for Echo {
    async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
        record.metadata.insert("chain".into(), "echo".into());
        Ok(record)
    }
}

impl Output for Echo {
    async fn handle_event(&self, _event: RecordEvent) -> Result<(), PluginError> {
        Ok(())
    }
}

const BATCH: usize = 500;
const BATCHES: usize = 2000;

fn record(n: usize) -> pb::Record {
    pb::Record {
        id: n.to_string(),
        source: "bench".into(),
        r#type: "bench".into(),
        payload: br#"{"text":"hello world, a small payload of about sixty-four bytes"}"#.to_vec(),
        ..pb::Record::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plugin = Plugin::new("echo", "0")
        .factory(|_: NoConfig| async { Ok(Echo) })
        .enricher()
        .output();
    let harness = TestHarness::start(plugin).await?;
    harness
        .configure(serde_json::json!({}))
        .await?
        .map_err(ConfigErrors::from)?;

    let requests: Vec<pb::EnrichRequest> = (0..BATCHES)
        .map(|b| pb::EnrichRequest {
            items: (0..BATCH)
                .map(|i| pb::EnrichItem {
                    sequence: (b * BATCH + i) as u64,
                    record: Some(record(i)),
                })
                .collect(),
        })
        .collect();
    let mut client = pb::enricher_client::EnricherClient::new(harness.channel());
    let started = Instant::now();
    let mut stream = client
        .enrich(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut answered = 0;
    while answered < BATCH * BATCHES {
        let Some(response) = stream.message().await? else {
            break;
        };
        answered += response.results.len();
    }
    let elapsed = started.elapsed();
    println!(
        "enrich: {answered} records in {elapsed:?} = {:.0}/s",
        answered as f64 / elapsed.as_secs_f64()
    );

    let requests: Vec<pb::EventRequest> = (0..BATCHES)
        .map(|b| pb::EventRequest {
            events: (0..BATCH)
                .map(|i| pb::RecordEvent {
                    delivery_id: (b * BATCH + i) as u64,
                    kind: pb::EventKind::Created as i32,
                    record: Some(record(i)),
                    attempt: 1,
                })
                .collect(),
        })
        .collect();
    let mut client = pb::output_client::OutputClient::new(harness.channel());
    let started = Instant::now();
    let mut stream = client
        .handle_event(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut acked = 0;
    while acked < BATCH * BATCHES {
        let Some(response) = stream.message().await? else {
            break;
        };
        acked += response.acks.len();
    }
    let elapsed = started.elapsed();
    println!(
        "events: {acked} acks in {elapsed:?} = {:.0}/s",
        acked as f64 / elapsed.as_secs_f64()
    );
    harness.stop().await;
    Ok(())
}
