//! Round-trips every role through the real gRPC services with the in-process
//! harness: configuration (errors, preconditions, re-configure), poll streams,
//! webhooks, enrichment and output batches, and panics in plugin code.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugin_sdk::testing::{Code, TestHarness};
use switchyard_plugin_sdk::{
    ConfigError, Emitter, Enricher, EventKind, HttpReply, Output, Plugin, PluginError, PollRequest,
    PollingInput, Record, RecordEvent, RoleKind, WebhookInput, WebhookRequest, WebhookResponse,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoConfig {
    /// Prefix added to enriched record types.
    prefix: String,
    #[serde(default)]
    limit: u32,
}

struct Echo {
    prefix: String,
    limit: u32,
    generation: u64,
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

impl PollingInput for Echo {
    async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let start: u32 = request
            .checkpoint
            .map(|bytes| String::from_utf8(bytes).unwrap().parse().unwrap())
            .unwrap_or(0);
        if self.limit == 99 {
            return Err(
                PluginError::retryable("upstream down").with_retry_after(Duration::from_secs(3))
            );
        }
        for n in start..start + self.limit {
            emitter.emit(vec![Record::new(n.to_string(), "n")]).await?;
            emitter.checkpoint((n + 1).to_string()).await?;
        }
        Ok(())
    }
}

impl WebhookInput for Echo {
    async fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, PluginError> {
        let body: serde_json::Value = request.body_json()?;
        let id = body["id"]
            .as_str()
            .ok_or_else(|| PluginError::permanent("the body has no string `id`"))?;
        let record = Record::new(id, "hook").with_payload(&body)?;
        Ok(WebhookResponse::records(vec![record])
            .with_reply(HttpReply::new(200).with_body("text/plain", "ok")))
    }
}

impl Enricher for Echo {
    async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
        match record.id.as_str() {
            "panic" => panic!("boom in enrich"),
            "fail" => Err(PluginError::permanent("bad record").with_code("bad")),
            "slow" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                record.record_type = format!("{}{}", self.prefix, record.record_type);
                Ok(record)
            }
            _ => {
                record.record_type = format!("{}{}", self.prefix, record.record_type);
                record
                    .metadata
                    .insert("generation".into(), self.generation.to_string());
                Ok(record)
            }
        }
    }
}

impl Output for Echo {
    async fn handle_event(&self, event: RecordEvent) -> Result<(), PluginError> {
        match event.record.id.as_str() {
            "panic" => panic!("boom in output"),
            "retry" => {
                Err(PluginError::retryable("later").with_retry_after(Duration::from_millis(100)))
            }
            _ => Ok(()),
        }
    }
}

fn plugin() -> Plugin<Echo> {
    Plugin::new("echo", "1.2.3")
        .description("Echoes")
        .webhook_sync_reply(true)
        .factory(|config: EchoConfig| async move {
            if config.prefix.len() > 10 {
                return Err(ConfigError::new("prefix", "must be at most 10 characters").into());
            }
            Ok(Echo {
                prefix: config.prefix,
                limit: config.limit,
                generation: GENERATION.fetch_add(1, Ordering::SeqCst),
            })
        })
        .polling_input()
        .webhook_input()
        .enricher()
        .output()
}

fn event(id: &str, delivery_id: u64) -> RecordEvent {
    RecordEvent::new(delivery_id, EventKind::Created, Record::new(id, "t"))
}

#[tokio::test]
async fn metadata_reports_roles_and_schema() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    let metadata = harness.metadata().await.unwrap();
    assert_eq!(metadata.name, "echo");
    assert_eq!(metadata.version, "1.2.3");
    assert_eq!(metadata.description, "Echoes");
    assert!(metadata.webhook_sync_reply);
    assert_eq!(
        metadata.roles,
        [
            RoleKind::PollingInput,
            RoleKind::WebhookInput,
            RoleKind::Enrichment,
            RoleKind::Output
        ]
    );
    assert_eq!(
        metadata.config_schema["required"],
        serde_json::json!(["prefix"])
    );
    assert_eq!(
        metadata.config_schema["properties"]["prefix"]["description"],
        "Prefix added to enriched record types."
    );
}

#[tokio::test]
async fn role_calls_before_configure_fail_with_failed_precondition() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    let status = harness
        .enrich(vec![Record::new("1", "t")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("not configured"),
        "{}",
        status.message()
    );
    let status = harness.poll(None).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = harness
        .handle_webhook(WebhookRequest::json(&serde_json::json!({"id": "1"})))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = harness
        .handle_events(vec![event("1", 1)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn bad_configuration_names_the_field_and_leaves_the_plugin_unconfigured() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    let errors = harness
        .configure(serde_json::json!({"limit": "x", "prefix": "p"}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "limit");
    let errors = harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors, [ConfigError::new("prefix", "is required")]);
    let errors = harness
        .configure(serde_json::json!({"prefix": "way too long a prefix"}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        errors,
        [ConfigError::new("prefix", "must be at most 10 characters")]
    );
    let errors = harness
        .configure_raw(b"{not json".to_vec())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errors[0].field, "");

    // A good configuration works, and a later bad one unconfigures again.
    harness
        .configure(serde_json::json!({"prefix": "p."}))
        .await
        .unwrap()
        .unwrap();
    assert!(harness.enrich(vec![Record::new("1", "t")]).await.is_ok());
    harness
        .configure(serde_json::json!({"prefx": "p."}))
        .await
        .unwrap()
        .unwrap_err();
    let status = harness
        .enrich(vec![Record::new("1", "t")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn reconfigure_replaces_the_instance() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({"prefix": "a."}))
        .await
        .unwrap()
        .unwrap();
    let first = harness.enrich(vec![Record::new("1", "t")]).await.unwrap();
    harness
        .configure(serde_json::json!({"prefix": "b."}))
        .await
        .unwrap()
        .unwrap();
    let second = harness.enrich(vec![Record::new("1", "t")]).await.unwrap();
    let first = first[0].as_ref().unwrap();
    let second = second[0].as_ref().unwrap();
    assert_eq!(first.record_type, "a.t");
    assert_eq!(second.record_type, "b.t");
    assert_ne!(first.metadata["generation"], second.metadata["generation"]);
}

#[tokio::test]
async fn enrich_answers_every_item_and_isolates_failures_and_panics() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({"prefix": "x."}))
        .await
        .unwrap()
        .unwrap();
    let mut records: Vec<Record> = (0..500).map(|n| Record::new(n.to_string(), "t")).collect();
    records.insert(3, Record::new("slow", "t"));
    records.insert(10, Record::new("fail", "t"));
    records.insert(20, Record::new("panic", "t"));
    let payload = Record::new("with-payload", "t")
        .with_payload(&serde_json::json!({"k": [1, 2]}))
        .unwrap()
        .with_metadata("m", "v")
        .with_occurred_at(chrono::DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap());
    records.push(payload.clone());
    let results = harness.enrich(records).await.unwrap();
    assert_eq!(results.len(), 504);
    assert_eq!(results[3].as_ref().unwrap().record_type, "x.t");
    let failure = results[10].as_ref().unwrap_err();
    assert!(!failure.is_retryable());
    assert_eq!(failure.code(), Some("bad"));
    let panic = results[20].as_ref().unwrap_err();
    assert_eq!(panic.code(), Some("panic"));
    assert!(panic.message().contains("boom in enrich"), "{panic}");
    let last = results[503].as_ref().unwrap();
    assert_eq!(
        last.payload_json().unwrap(),
        serde_json::json!({"k": [1, 2]})
    );
    assert_eq!(last.metadata["m"], "v");
    assert_eq!(last.occurred_at, payload.occurred_at);
    assert_eq!(
        results.iter().filter(|result| result.is_ok()).count(),
        502,
        "every other record is enriched"
    );
}

#[tokio::test]
async fn poll_streams_records_and_checkpoints() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({"prefix": "", "limit": 3}))
        .await
        .unwrap()
        .unwrap();
    let output = harness.poll(None).await.unwrap();
    let ids: Vec<&str> = output
        .records()
        .iter()
        .map(|record| record.id.as_str())
        .collect();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(output.batches.len(), 6);
    assert_eq!(output.last_checkpoint(), Some(&b"3"[..]));
    let output = harness.poll(Some(b"3")).await.unwrap();
    assert_eq!(output.records()[0].id, "3");

    harness
        .configure(serde_json::json!({"prefix": "", "limit": 99}))
        .await
        .unwrap()
        .unwrap();
    let status = harness.poll(None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "upstream down");
    assert_eq!(
        status.metadata().get("switchyard-retry-after-ms").unwrap(),
        "3000"
    );
}

#[tokio::test]
async fn webhooks_map_to_records_and_malformed_bodies_to_invalid_argument() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({"prefix": ""}))
        .await
        .unwrap()
        .unwrap();
    let response = harness
        .handle_webhook(WebhookRequest::json(
            &serde_json::json!({"id": "evt_1", "n": 2}),
        ))
        .await
        .unwrap();
    assert_eq!(response.records.len(), 1);
    assert_eq!(response.records[0].id, "evt_1");
    assert_eq!(response.records[0].payload_json().unwrap()["n"], 2);
    let reply = response.reply.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"ok");

    let mut request = WebhookRequest::json(&serde_json::json!({}));
    request.body = b"not json".to_vec();
    let status = harness.handle_webhook(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("not valid JSON"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn output_acks_nacks_and_survives_panics() {
    let harness = TestHarness::start(plugin()).await.unwrap();
    harness
        .configure(serde_json::json!({"prefix": ""}))
        .await
        .unwrap()
        .unwrap();
    let events = vec![
        event("a", 10),
        event("retry", 11),
        event("panic", 12),
        event("b", 13),
    ];
    let outcomes = harness.handle_events(events).await.unwrap();
    assert!(outcomes[0].is_ok());
    let retry = outcomes[1].as_ref().unwrap_err();
    assert!(retry.is_retryable());
    assert_eq!(retry.retry_after(), Some(Duration::from_millis(100)));
    assert_eq!(outcomes[2].as_ref().unwrap_err().code(), Some("panic"));
    assert!(outcomes[3].is_ok());
    // The plugin is still serving after the panic.
    let outcomes = harness.handle_events(vec![event("c", 14)]).await.unwrap();
    assert!(outcomes[0].is_ok());
    harness.stop().await;
}

/// Emits `count` records of `bytes` bytes of payload each in one batch with
/// the checkpoint `"done"`.
struct Large {
    count: usize,
    bytes: usize,
}

impl PollingInput for Large {
    async fn poll(&self, _: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let records = (0..self.count)
            .map(|n| {
                let mut record = Record::new(n.to_string(), "large");
                record.payload = vec![b'7'; self.bytes];
                record
            })
            .collect();
        emitter.emit_with_checkpoint(records, "done").await
    }
}

fn large(count: usize, bytes: usize) -> Plugin<Large> {
    Plugin::new("large", "0.1.0")
        .factory(
            move |_: switchyard_plugin_sdk::NoConfig| async move { Ok(Large { count, bytes }) },
        )
        .polling_input()
}

#[tokio::test]
async fn a_poll_batch_larger_than_a_message_arrives_in_several() {
    // 70 records of 1 MB in one `emit`: 70 MB, over the 64 MiB the SDK
    // sends in one message (and far over the 4 MiB gRPC receivers take by
    // default).
    let harness = TestHarness::start(large(70, 1_000_000)).await.unwrap();
    harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    let output = harness.poll(None).await.unwrap();
    let ids: Vec<String> = output
        .records()
        .iter()
        .map(|record| record.id.clone())
        .collect();
    assert_eq!(ids, (0..70).map(|n| n.to_string()).collect::<Vec<_>>());
    assert!(
        output
            .records()
            .iter()
            .all(|record| record.payload.len() == 1_000_000)
    );
    // Four records to a message of at most 4 MiB less 64 KiB, and the
    // checkpoint only on the last, covering them all.
    assert_eq!(output.batches.len(), 18);
    let (last, rest) = output.batches.split_last().unwrap();
    assert!(
        rest.iter()
            .all(|batch| batch.checkpoint.is_none() && batch.records.len() == 4)
    );
    assert_eq!(last.checkpoint.as_deref(), Some(&b"done"[..]));
}

#[tokio::test]
async fn a_record_larger_than_any_message_fails_the_poll_naming_it() {
    let harness = TestHarness::start(large(2, 65 * 1024 * 1024))
        .await
        .unwrap();
    harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    let status = harness.poll(None).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().starts_with("record \"0\" is 68157"),
        "{}",
        status.message()
    );
}

/// A harness serving the enricher `make` builds, configured without config.
async fn configured_enricher<T: Enricher>(name: &str, make: fn() -> T) -> TestHarness {
    let plugin = Plugin::new(name, "0.1.0")
        .factory(move |_: switchyard_plugin_sdk::NoConfig| async move { Ok(make()) })
        .enricher();
    let harness = TestHarness::start(plugin).await.unwrap();
    harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    harness
}

/// Sends `batches` on one `Enrich` stream and returns the sequences of the
/// first `count` results, in the order they were answered (each answer
/// within 30 s).
async fn enrich_on_one_stream(
    harness: &TestHarness,
    batches: Vec<switchyard_wire::pb::v1::EnrichRequest>,
    count: usize,
) -> Vec<u64> {
    use switchyard_wire::pb::v1 as pb;
    let mut client = pb::enricher_client::EnricherClient::new(harness.channel());
    let mut answers = client
        .enrich(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    while sequences.len() < count {
        let response = tokio::time::timeout(Duration::from_secs(30), answers.message())
            .await
            .expect("answered within 30 s")
            .unwrap()
            .expect("the stream stays open until every item is answered");
        sequences.extend(response.results.iter().map(|result| result.sequence));
    }
    sequences
}

/// An enricher whose record `first` waits until record `second` has been
/// enriched.
struct Ordered;

static SECOND_ENRICHED: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

fn second_enriched() -> &'static tokio::sync::Semaphore {
    SECOND_ENRICHED.get_or_init(|| tokio::sync::Semaphore::new(0))
}

impl Enricher for Ordered {
    async fn enrich(&self, record: Record) -> Result<Record, PluginError> {
        if record.id == "first" {
            let _permit = second_enriched().acquire().await;
        } else {
            second_enriched().add_permits(1);
        }
        Ok(record)
    }
}

#[tokio::test]
async fn on_one_thread_a_batch_that_waits_does_not_hold_up_the_next_one() {
    use switchyard_wire::pb::v1 as pb;
    // The test runtime has one thread, as a plugin's has by default. The
    // first batch waits for the second, so the stream's reader must go on
    // reading while it waits: a reader that answered batches in place (as a
    // bare tonic server does) would hang here.
    let harness = configured_enricher("ordered", || Ordered).await;
    let batches: Vec<pb::EnrichRequest> = ["first", "second"]
        .into_iter()
        .enumerate()
        .map(|(sequence, id)| pb::EnrichRequest {
            items: vec![pb::EnrichItem {
                sequence: sequence as u64,
                record: Some(pb::Record {
                    id: id.to_owned(),
                    r#type: "t".to_owned(),
                    payload: b"{}".to_vec(),
                    ..pb::Record::default()
                }),
            }],
        })
        .collect();
    let sequences = enrich_on_one_stream(&harness, batches, 2).await;
    assert_eq!(sequences, vec![1, 0], "the second batch is answered first");
}

/// An enricher whose work is synchronous and heavy: each record blocks its
/// thread for 2 ms. It counts how many records are enriched at once.
struct Heavy;

static HEAVY_ACTIVE: AtomicU64 = AtomicU64::new(0);
static HEAVY_MOST: AtomicU64 = AtomicU64::new(0);

impl Enricher for Heavy {
    async fn enrich(&self, record: Record) -> Result<Record, PluginError> {
        let active = HEAVY_ACTIVE.fetch_add(1, Ordering::SeqCst) + 1;
        HEAVY_MOST.fetch_max(active, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
        HEAVY_ACTIVE.fetch_sub(1, Ordering::SeqCst);
        Ok(record)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_synchronous_batches_of_one_stream_run_in_parallel() {
    use switchyard_wire::pb::v1 as pb;
    let harness = configured_enricher("heavy", || Heavy).await;
    // Eight batches of 8 records on one stream, 16 ms each: each batch runs
    // on a task of its own, so they overlap on the runtime's four workers
    // instead of running one at a time on the stream's reader (what
    // answering batches in place, as a bare tonic server does, would give).
    let batches: Vec<pb::EnrichRequest> = (0..8_u64)
        .map(|batch| pb::EnrichRequest {
            items: (0..8_u64)
                .map(|item| pb::EnrichItem {
                    sequence: batch * 8 + item,
                    record: Some(pb::Record {
                        id: format!("{batch}-{item}"),
                        r#type: "t".to_owned(),
                        payload: b"{}".to_vec(),
                        ..pb::Record::default()
                    }),
                })
                .collect(),
        })
        .collect();
    let mut sequences = enrich_on_one_stream(&harness, batches, 64).await;
    sequences.sort_unstable();
    assert_eq!(sequences, (0..64).collect::<Vec<_>>());
    assert!(
        HEAVY_MOST.load(Ordering::SeqCst) >= 2,
        "the heavy batches ran one at a time"
    );
}

/// An enricher that makes each record's payload as many MiB as its id says
/// ("3" -> 3 MiB), and one byte more than a message may carry for "huge".
struct Inflate;

impl Enricher for Inflate {
    async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
        let bytes = match record.id.parse::<usize>() {
            Ok(mebibytes) => mebibytes << 20,
            Err(_) => (65 << 20) + 1,
        };
        record.payload = vec![b'x'; bytes];
        Ok(record)
    }
}

#[tokio::test]
async fn enrich_answers_larger_than_a_message_arrive_in_several_and_only_a_record_too_large_fails()
{
    use prost::Message as _;
    use switchyard_wire::pb::v1 as pb;
    let harness = configured_enricher("inflate", || Inflate).await;
    // Small records in, 8 + 30 + 30 + 1 MiB and one over 65 MiB out: one
    // request message whose answers (134 MiB) no one message can carry.
    let ids = ["8", "30", "huge", "30", "1"];
    let request = pb::EnrichRequest {
        items: ids
            .iter()
            .enumerate()
            .map(|(sequence, id)| pb::EnrichItem {
                sequence: sequence as u64,
                record: Some(pb::Record {
                    id: (*id).to_owned(),
                    r#type: "t".to_owned(),
                    payload: b"{}".to_vec(),
                    ..pb::Record::default()
                }),
            })
            .collect(),
    };
    let mut client = pb::enricher_client::EnricherClient::new(harness.channel())
        .max_decoding_message_size(usize::MAX);
    let mut answers = client
        .enrich(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let mut results = Vec::new();
    while results.len() < ids.len() {
        let response = tokio::time::timeout(Duration::from_secs(60), answers.message())
            .await
            .expect("answered within 60 s")
            .expect("the stream stays open: an answer too large fails its item alone")
            .expect("the stream stays open until every item is answered");
        let bytes = response.encoded_len();
        assert!(
            bytes <= 65 << 20,
            "a message of {bytes} bytes, over what the SDK sends"
        );
        assert!(
            response.results.len() == 1 || bytes <= 4 << 20,
            "{} results in a message of {bytes} bytes, over gRPC's default 4 MiB",
            response.results.len()
        );
        results.extend(response.results);
    }
    results.sort_by_key(|result| result.sequence);
    for (result, id) in results.iter().zip(ids) {
        match (&result.outcome, id) {
            (Some(pb::enrich_result::Outcome::Failure(failure)), "huge") => {
                assert!(!failure.retryable);
                assert_eq!(failure.code, "too_large");
                assert!(
                    failure
                        .message
                        .starts_with("the enriched record \"huge\" is 68157"),
                    "{}",
                    failure.message
                );
            }
            (Some(pb::enrich_result::Outcome::Record(record)), _) => {
                assert_eq!(record.id, id);
                assert_eq!(record.payload.len(), id.parse::<usize>().unwrap() << 20);
            }
            (Some(pb::enrich_result::Outcome::Failure(failure)), _) => {
                panic!("record {id} failed: {}", failure.message)
            }
            (None, _) => panic!("record {id}: a result without an outcome"),
        }
    }
}
