//! Every conversion between protobuf messages and the SDK's own types, both
//! ways (the services decode requests and encode answers; the test harness's
//! client does the reverse). This is the only module that builds or reads
//! the fields of protobuf messages.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message as _;
use switchyard_wire::messages::{self, Limits};
use switchyard_wire::pb::plugin as gp;
use switchyard_wire::pb::v1 as pb;
use tonic::Status;

use super::MAX_MESSAGE_BYTES;
use crate::error::{ConfigError, PluginError};
use crate::plugin::Info;
use crate::types::{
    EventKind, HttpReply, Metadata, PollBatch, PollRequest, Record, RecordEvent, RoleKind,
    WebhookRequest, WebhookResponse,
};

// ---------------------------------------------------------------------------
// Shared pieces: timestamps, records, failures, headers, kinds.

fn timestamp_from_pb(ts: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

fn timestamp_to_pb(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(|at| prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

fn record_from_pb(record: pb::Record) -> Record {
    Record {
        id: record.id,
        source: record.source,
        record_type: record.r#type,
        occurred_at: timestamp_from_pb(record.occurred_at),
        payload: record.payload,
        metadata: record.metadata,
        idempotency_key: record.idempotency_key,
    }
}

fn record_to_pb(record: Record) -> pb::Record {
    pb::Record {
        id: record.id,
        source: record.source,
        r#type: record.record_type,
        occurred_at: timestamp_to_pb(record.occurred_at),
        payload: record.payload,
        metadata: record.metadata,
        idempotency_key: record.idempotency_key,
    }
}

fn failure_to_pb(error: &PluginError) -> pb::Failure {
    pb::Failure {
        message: error.message().to_owned(),
        retryable: error.is_retryable(),
        retry_after: error
            .retry_after()
            .and_then(|after| prost_types::Duration::try_from(after).ok()),
        code: error.code().unwrap_or_default().to_owned(),
    }
}

fn failure_from_pb(failure: pb::Failure) -> PluginError {
    let mut error = if failure.retryable {
        PluginError::retryable(failure.message)
    } else {
        PluginError::permanent(failure.message)
    };
    if let Some(after) = failure
        .retry_after
        .and_then(|after| Duration::try_from(after).ok())
    {
        error = error.with_retry_after(after);
    }
    if !failure.code.is_empty() {
        error = error.with_code(failure.code);
    }
    error
}

fn event_kind_to_pb(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Created => pb::EventKind::Created,
        EventKind::Updated => pb::EventKind::Updated,
    }
}

fn headers_from_pb(headers: Vec<pb::Header>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|header| (header.name, header.value))
        .collect()
}

fn headers_to_pb(headers: Vec<(String, String)>) -> Vec<pb::Header> {
    headers
        .into_iter()
        .map(|(name, value)| pb::Header { name, value })
        .collect()
}

/// Maps a failed unary or server-streaming call to a gRPC status: a permanent
/// failure is INVALID_ARGUMENT (the hub does not retry; a webhook gets 400), a
/// retryable one UNAVAILABLE. The code and retry-after travel as metadata
/// (`switchyard-failure-code`, `switchyard-retry-after-ms`).
pub(super) fn status_from_error(error: &PluginError) -> Status {
    let code = if error.is_retryable() {
        tonic::Code::Unavailable
    } else {
        tonic::Code::InvalidArgument
    };
    let mut status = Status::new(code, error.message().to_owned());
    if let Some(value) = error.code().and_then(|code| code.parse().ok()) {
        status
            .metadata_mut()
            .insert("switchyard-failure-code", value);
    }
    if let Some(value) = error
        .retry_after()
        .and_then(|after| after.as_millis().to_string().parse().ok())
    {
        status
            .metadata_mut()
            .insert("switchyard-retry-after-ms", value);
    }
    status
}

// ---------------------------------------------------------------------------
// switchyard.v1.Plugin

/// A `GetMetadata` request (it has no fields).
pub(super) fn metadata_request_to_pb() -> pb::GetMetadataRequest {
    pb::GetMetadataRequest {}
}

/// `GetMetadata`'s answer for a plugin.
pub(super) fn metadata_to_pb(
    info: &Info,
    roles: &[RoleKind],
    config_schema: &str,
) -> pb::PluginMetadata {
    pb::PluginMetadata {
        name: info.name.clone(),
        version: info.version.clone(),
        roles: roles.iter().map(|role| role.to_pb() as i32).collect(),
        config_schema: config_schema.to_owned(),
        description: info.description.clone(),
        webhook_sync_reply: info.webhook_sync_reply,
    }
}

/// `GetMetadata`'s answer as plain types; fails when the schema is not JSON.
pub(super) fn metadata_from_pb(metadata: pb::PluginMetadata) -> Result<Metadata, String> {
    let roles = metadata
        .roles()
        .filter_map(|role| RoleKind::from_pb(role as i32))
        .collect();
    let config_schema = if metadata.config_schema.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&metadata.config_schema)
            .map_err(|err| format!("config_schema is not JSON: {err}"))?
    };
    Ok(Metadata {
        name: metadata.name,
        version: metadata.version,
        roles,
        config_schema,
        description: metadata.description,
        webhook_sync_reply: metadata.webhook_sync_reply,
    })
}

/// A `Configure` request: the config JSON and the instance name.
pub(super) fn configure_request_from_pb(request: pb::ConfigureRequest) -> (Vec<u8>, String) {
    (request.config_json, request.instance_name)
}

pub(super) fn configure_request_to_pb(
    config_json: Vec<u8>,
    instance_name: String,
) -> pb::ConfigureRequest {
    pb::ConfigureRequest {
        config_json,
        instance_name,
    }
}

/// `Configure`'s answer: no errors means accepted.
pub(super) fn configure_response_to_pb(errors: Vec<ConfigError>) -> pb::ConfigureResponse {
    pb::ConfigureResponse {
        errors: errors
            .into_iter()
            .map(|error| pb::ConfigError {
                field: error.field,
                message: error.message,
            })
            .collect(),
    }
}

pub(super) fn configure_response_from_pb(response: pb::ConfigureResponse) -> Vec<ConfigError> {
    response
        .errors
        .into_iter()
        .map(|error| ConfigError::new(error.field, error.message))
        .collect()
}

// ---------------------------------------------------------------------------
// switchyard.v1.PollingInput

pub(super) fn poll_request_from_pb(request: pb::PollRequest) -> PollRequest {
    PollRequest {
        checkpoint: request.checkpoint,
        max_records: request.max_records,
    }
}

pub(super) fn poll_request_to_pb(request: PollRequest) -> pb::PollRequest {
    pb::PollRequest {
        checkpoint: request.checkpoint,
        max_records: request.max_records,
    }
}

/// The messages of one emitted batch: its records packed into messages that
/// every gRPC receiver takes ([`messages::pack`]), the checkpoint on the
/// last, so it still covers them all. A record too large for any message
/// (over [`MAX_MESSAGE_BYTES`] on its own) ends the list with an error that
/// names it, in place of the message that could not be sent.
pub(super) fn poll_batch_to_pb(batch: PollBatch) -> Vec<Result<pb::PollResponse, Status>> {
    let records = batch.records.into_iter().map(record_to_pb);
    let mut responses: Vec<pb::PollResponse> = messages::pack(records, Limits::BYTES)
        .into_iter()
        .map(|records| pb::PollResponse {
            records,
            checkpoint: None,
        })
        .collect();
    match responses.last_mut() {
        Some(last) => last.checkpoint = batch.checkpoint,
        None => responses.push(pb::PollResponse {
            records: Vec::new(),
            checkpoint: batch.checkpoint,
        }),
    }
    let mut out = Vec::with_capacity(responses.len());
    for response in responses {
        // `pack` put at most `messages::MESSAGE_BYTES` (4 MiB) of records in
        // a message of several, 61 MiB below the limit: only a lone record or
        // a checkpoint of tens of MiB can pass it, so only those messages are
        // measured again (half the room is margin for the field's framing).
        let room = MAX_MESSAGE_BYTES - messages::MESSAGE_BYTES;
        let may_exceed = response.records.len() == 1
            || response
                .checkpoint
                .as_ref()
                .is_some_and(|checkpoint| checkpoint.len() > room / 2);
        let bytes = if may_exceed {
            response.encoded_len()
        } else {
            0
        };
        if bytes > MAX_MESSAGE_BYTES {
            let id = response
                .records
                .first()
                .map_or("", |record| record.id.as_str());
            out.push(Err(Status::resource_exhausted(format!(
                "record {id:?} is {bytes} bytes on the wire, over the {MAX_MESSAGE_BYTES} bytes one message may carry; emit it smaller"
            ))));
            break;
        }
        out.push(Ok(response));
    }
    out
}

pub(super) fn poll_batch_from_pb(response: pb::PollResponse) -> PollBatch {
    PollBatch {
        records: response.records.into_iter().map(record_from_pb).collect(),
        checkpoint: response.checkpoint,
    }
}

// ---------------------------------------------------------------------------
// switchyard.v1.WebhookInput

pub(super) fn webhook_request_to_pb(request: WebhookRequest) -> pb::WebhookRequest {
    pb::WebhookRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: headers_to_pb(request.headers),
        body: request.body,
        delivery_id: request.delivery_id,
        received_at: timestamp_to_pb(request.received_at),
    }
}

pub(super) fn webhook_request_from_pb(request: pb::WebhookRequest) -> WebhookRequest {
    WebhookRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: headers_from_pb(request.headers),
        body: request.body,
        delivery_id: request.delivery_id,
        received_at: timestamp_from_pb(request.received_at),
    }
}

pub(super) fn webhook_response_from_pb(response: pb::WebhookResponse) -> WebhookResponse {
    WebhookResponse {
        records: response.records.into_iter().map(record_from_pb).collect(),
        reply: response.reply.map(|reply| HttpReply {
            status: u16::try_from(reply.status).unwrap_or(u16::MAX),
            headers: headers_from_pb(reply.headers),
            body: reply.body,
        }),
    }
}

pub(super) fn webhook_response_to_pb(response: WebhookResponse) -> pb::WebhookResponse {
    pb::WebhookResponse {
        records: response.records.into_iter().map(record_to_pb).collect(),
        reply: response.reply.map(|reply| pb::HttpReply {
            status: u32::from(reply.status),
            headers: headers_to_pb(reply.headers),
            body: reply.body,
        }),
    }
}

// ---------------------------------------------------------------------------
// switchyard.v1.Enricher

/// One `Enrich` answer as plain types: (sequence, enriched record or failure).
pub(crate) type EnrichOutcomes = Vec<(u64, Result<Record, PluginError>)>;

/// The items of one `Enrich` batch as (sequence, record); an item without a
/// record reads as `None`. Lazy: records are converted as they are taken.
pub(super) fn enrich_items_from_pb(
    batch: pb::EnrichRequest,
) -> impl ExactSizeIterator<Item = (u64, Option<Record>)> {
    batch
        .items
        .into_iter()
        .map(|item| (item.sequence, item.record.map(record_from_pb)))
}

/// One item's outcome: the enriched record or its failure.
pub(super) fn enrich_result_to_pb(
    sequence: u64,
    outcome: Result<Record, PluginError>,
) -> pb::EnrichResult {
    let outcome = match outcome {
        Ok(record) => pb::enrich_result::Outcome::Record(record_to_pb(record)),
        Err(error) => pb::enrich_result::Outcome::Failure(failure_to_pb(&error)),
    };
    pb::EnrichResult {
        sequence,
        outcome: Some(outcome),
    }
}

/// The messages that answer `results`: one when they fit in
/// [`messages::MESSAGE_BYTES`], as nearly all do, else packed into several
/// ([`messages::pack`]), since an enricher may make its records larger than
/// they came. A result too large for any message (over [`MAX_MESSAGE_BYTES`]
/// on its own) is replaced by a permanent failure that names it: that item
/// fails alone, where sending it would end the whole stream with
/// `RESOURCE_EXHAUSTED` and fail every item in flight on it.
pub(super) fn enrich_responses_to_pb(results: Vec<pb::EnrichResult>) -> Vec<pb::EnrichResponse> {
    let bytes: usize = results.iter().map(enrich_result_bytes).sum();
    if bytes <= messages::MESSAGE_BYTES {
        return vec![pb::EnrichResponse { results }];
    }
    let sendable = results.into_iter().map(|result| {
        let bytes = enrich_result_bytes(&result);
        if bytes <= MAX_MESSAGE_BYTES {
            return result;
        }
        let id = match &result.outcome {
            Some(pb::enrich_result::Outcome::Record(record)) => record.id.as_str(),
            _ => "",
        };
        let error = PluginError::permanent(format!(
            "the enriched record {id:?} is {bytes} bytes on the wire, over the {MAX_MESSAGE_BYTES} bytes one message may carry"
        ))
        .with_code("too_large");
        pb::EnrichResult {
            sequence: result.sequence,
            outcome: Some(pb::enrich_result::Outcome::Failure(failure_to_pb(&error))),
        }
    });
    messages::pack(sendable, Limits::BYTES)
        .into_iter()
        .map(|results| pb::EnrichResponse { results })
        .collect()
}

/// What `result` takes in an `EnrichResponse`: its key, length and body.
fn enrich_result_bytes(result: &pb::EnrichResult) -> usize {
    prost::encoding::message::encoded_len(1, result)
}

/// One `Enrich` batch of `records`, numbered from 0 in order.
pub(super) fn enrich_request_to_pb(records: Vec<Record>) -> pb::EnrichRequest {
    let items = records
        .into_iter()
        .enumerate()
        .map(|(index, record)| pb::EnrichItem {
            sequence: index as u64,
            record: Some(record_to_pb(record)),
        })
        .collect();
    pb::EnrichRequest { items }
}

/// The outcomes in one `Enrich` answer as (sequence, outcome).
///
/// # Errors
/// When a result carries no outcome.
pub(super) fn enrich_response_from_pb(
    response: pb::EnrichResponse,
) -> Result<EnrichOutcomes, &'static str> {
    response
        .results
        .into_iter()
        .map(|result| {
            let outcome = match result.outcome {
                Some(pb::enrich_result::Outcome::Record(record)) => Ok(record_from_pb(record)),
                Some(pb::enrich_result::Outcome::Failure(failure)) => Err(failure_from_pb(failure)),
                None => return Err("a result without an outcome"),
            };
            Ok((result.sequence, outcome))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// switchyard.v1.Output

fn event_from_pb(event: pb::RecordEvent) -> Result<RecordEvent, PluginError> {
    let kind = match pb::EventKind::try_from(event.kind) {
        Ok(pb::EventKind::Created) => EventKind::Created,
        Ok(pb::EventKind::Updated) => EventKind::Updated,
        _ => {
            return Err(PluginError::permanent(format!(
                "event kind {} is neither created nor updated",
                event.kind
            )));
        }
    };
    let record = event
        .record
        .ok_or_else(|| PluginError::permanent("the event carries no record"))?;
    Ok(RecordEvent {
        delivery_id: event.delivery_id,
        kind,
        record: record_from_pb(record),
        attempt: event.attempt,
    })
}

/// The events of one `HandleEvent` batch as (delivery id, event), an event
/// the plugin cannot be given (no record, unknown kind) as a permanent failure.
pub(super) fn events_from_pb(
    batch: pb::EventRequest,
) -> impl ExactSizeIterator<Item = (u64, Result<RecordEvent, PluginError>)> {
    batch
        .events
        .into_iter()
        .map(|event| (event.delivery_id, event_from_pb(event)))
}

/// One event's ack (`Ok`) or nack.
pub(super) fn event_ack_to_pb(delivery_id: u64, outcome: Result<(), PluginError>) -> pb::EventAck {
    pb::EventAck {
        delivery_id,
        failure: outcome.err().map(|error| failure_to_pb(&error)),
    }
}

pub(super) fn event_response_to_pb(acks: Vec<pb::EventAck>) -> pb::EventResponse {
    pb::EventResponse { acks }
}

pub(super) fn event_request_to_pb(events: Vec<RecordEvent>) -> pb::EventRequest {
    pb::EventRequest {
        events: events
            .into_iter()
            .map(|event| pb::RecordEvent {
                delivery_id: event.delivery_id,
                kind: event_kind_to_pb(event.kind) as i32,
                record: Some(record_to_pb(event.record)),
                attempt: event.attempt,
            })
            .collect(),
    }
}

/// The acks in one `HandleEvent` answer as (delivery id, outcome).
pub(super) fn event_response_from_pb(
    response: pb::EventResponse,
) -> impl Iterator<Item = (u64, Result<(), PluginError>)> {
    response.acks.into_iter().map(|ack| {
        let outcome = match ack.failure {
            None => Ok(()),
            Some(failure) => Err(failure_from_pb(failure)),
        };
        (ack.delivery_id, outcome)
    })
}

// ---------------------------------------------------------------------------
// go-plugin

/// go-plugin's empty message, the answer to Controller.Shutdown.
pub(super) fn empty_to_pb() -> gp::Empty {
    gp::Empty {}
}

/// The service id a go-plugin broker offer names.
pub(super) fn broker_offer_id(offer: &gp::ConnInfo) -> u32 {
    offer.service_id
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn full_record() -> Record {
        Record::new("r1", "issue.opened")
            .with_source("github")
            .with_payload(&serde_json::json!({"n": 1}))
            .unwrap()
            .with_metadata("k", "v")
            .with_idempotency_key("key")
            .with_occurred_at(DateTime::from_timestamp(1_700_000_000, 5).unwrap())
    }

    #[test]
    fn records_round_trip() {
        let record = full_record();
        assert_eq!(record_from_pb(record_to_pb(record.clone())), record);
        assert_eq!(
            record_from_pb(record_to_pb(Record::new("x", "t"))),
            Record::new("x", "t")
        );
    }

    #[test]
    fn failures_round_trip() {
        let error = PluginError::retryable("later")
            .with_retry_after(Duration::from_millis(1500))
            .with_code("rate_limited");
        assert_eq!(failure_from_pb(failure_to_pb(&error)), error);
        let error = PluginError::permanent("bad");
        assert_eq!(failure_from_pb(failure_to_pb(&error)), error);
    }

    #[test]
    fn webhooks_round_trip() {
        let request = WebhookRequest::new("POST", "/hooks/x")
            .with_query("a=1")
            .with_header("X-One", "1")
            .with_header("x-one", "2")
            .with_body("{}")
            .with_delivery_id("d1")
            .with_received_at(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        assert_eq!(
            webhook_request_from_pb(webhook_request_to_pb(request.clone())),
            request
        );
        let response = WebhookResponse::records(vec![full_record()]).with_reply(
            HttpReply::new(202)
                .with_header("x-a", "b")
                .with_body("text/plain", "ok"),
        );
        assert_eq!(
            webhook_response_from_pb(webhook_response_to_pb(response.clone())),
            response
        );
    }

    #[test]
    fn events_round_trip_and_bad_ones_fail_permanently() {
        let event = RecordEvent::new(7, EventKind::Updated, full_record()).with_attempt(3);
        let batch = event_request_to_pb(vec![event.clone()]);
        let decoded: Vec<_> = events_from_pb(batch).collect();
        assert_eq!(decoded, [(7, Ok(event))]);

        let batch = pb::EventRequest {
            events: vec![
                pb::RecordEvent {
                    delivery_id: 1,
                    kind: 99,
                    record: Some(record_to_pb(Record::new("a", "t"))),
                    attempt: 1,
                },
                pb::RecordEvent {
                    delivery_id: 2,
                    kind: pb::EventKind::Created as i32,
                    record: None,
                    attempt: 1,
                },
            ],
        };
        for (_, outcome) in events_from_pb(batch) {
            assert!(!outcome.unwrap_err().is_retryable());
        }
    }

    #[test]
    fn poll_batches_round_trip() {
        let batch = PollBatch::new(vec![full_record()]).with_checkpoint("c1");
        let mut messages = poll_batch_to_pb(batch.clone());
        assert_eq!(messages.len(), 1);
        let message = messages.pop().unwrap().unwrap();
        assert_eq!(poll_batch_from_pb(message), batch);
        let request = PollRequest::new().with_checkpoint("c").with_max_records(5);
        assert_eq!(
            poll_request_from_pb(poll_request_to_pb(request.clone())),
            request
        );
    }
}
