//! `POST /api/v1/plugins/NAME/call/{poll,webhook,enrich,events}`: one call to
//! a plugin, answered with the plugin's result, storing nothing. Each call
//! runs in its own span under the plugin's retry policy
//! ([`crate::retry::call`]): a plugin being restarted is waited for, and
//! transient failures are retried; permanent ones are answered at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::json::{
    EnrichBody, EventKindJson, EventsBody, FailureJson, HttpReplyJson, PollBatchJson, PollBody,
    RecordJson, WebhookBody, decode_base64,
};
use super::{ApiError, AppState};
use crate::domain::{EnrichOutcome, EventKind, PollRequest, Record, RecordEvent};
use crate::retry::{self, Rpc};
use crate::rpc::CallError;
use crate::supervisor::RunningPlugin;

fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_required_body(body)
}

fn parse_required_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::BadRequest(err.to_string()))
}

/// Runs a call to plugin `name` through the call path (its own span,
/// the plugin's retry policy).
async fn call<T, F, Fut>(state: &AppState, name: &str, rpc: Rpc, attempt: F) -> Result<T, ApiError>
where
    F: FnMut(RunningPlugin) -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let plugin = state.plugin(name)?;
    retry::call(&plugin, rpc, attempt)
        .await
        .map_err(|give_up| ApiError::from_give_up(name, give_up))
}

/// `call/poll`.
pub async fn poll(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: PollBody = parse_body(&body)?;
    let checkpoint = request
        .checkpoint
        .map(|text| decode_base64(&text))
        .transpose()
        .map_err(|err| ApiError::BadRequest(format!("`checkpoint` is not valid base64: {err}")))?;
    let request = PollRequest {
        checkpoint,
        max_records: request.max_records,
    };
    let batches = call(&state, &name, Rpc::Poll, |connection| {
        let request = request.clone();
        async move { connection.roles.poll(request).await }
    })
    .await?;
    let batches: Vec<PollBatchJson> = batches.into_iter().map(PollBatchJson::from).collect();
    Ok(Json(json!({ "batches": batches })))
}

/// A delivery id for a webhook sent by hand: unique within this hub run.
fn manual_delivery_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "manual-{}-{}",
        Utc::now().timestamp_millis(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `call/webhook`.
pub async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: WebhookBody = parse_body(&body)?;
    state.plugin(&name)?;
    let delivery = request.into_delivery(&name, manual_delivery_id(), Utc::now());
    let outcome = call(&state, &name, Rpc::Webhook, |connection| {
        let delivery = delivery.clone();
        async move { connection.roles.webhook(delivery).await }
    })
    .await?;
    let records: Vec<RecordJson> = outcome.records.into_iter().map(RecordJson::from).collect();
    Ok(Json(json!({
        "records": records,
        "reply": outcome.reply.map(HttpReplyJson::from),
    })))
}

/// `call/enrich`: every record on one stream; results in input order.
pub async fn enrich(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: EnrichBody = parse_required_body(&body)?;
    state.plugin(&name)?;
    let records: Vec<Record> = request.records.into_iter().map(Record::from).collect();
    let records = &records;
    let outcomes = call(&state, &name, Rpc::Enrich, |connection| async move {
        connection.roles.enrich(records).await
    })
    .await?;
    let results: Vec<Value> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            EnrichOutcome::Enriched(record) => json!({ "record": RecordJson::from(record) }),
            EnrichOutcome::Failed(failure) => json!({ "failure": FailureJson::from(failure) }),
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// `call/events`: every event on one stream with delivery ids 1, 2, ...;
/// acks in input order.
pub async fn events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: EventsBody = parse_required_body(&body)?;
    state.plugin(&name)?;
    let events: Vec<RecordEvent> = request
        .events
        .into_iter()
        .zip(1u64..)
        .map(|(event, delivery_id)| RecordEvent {
            delivery_id,
            kind: match event.kind {
                EventKindJson::Created => EventKind::Created,
                EventKindJson::Updated => EventKind::Updated,
            },
            record: Arc::new(Record::from(event.record)),
            attempt: 1,
        })
        .collect();
    let events = &events;
    let acks = call(&state, &name, Rpc::Events, |connection| async move {
        connection.roles.events(events).await
    })
    .await?;
    let acks: Vec<Value> = acks
        .into_iter()
        .map(|ack| match ack.failure {
            None => json!({ "delivery_id": ack.delivery_id, "ok": true }),
            Some(failure) => json!({
                "delivery_id": ack.delivery_id,
                "ok": false,
                "failure": FailureJson::from(failure),
            }),
        })
        .collect();
    Ok(Json(json!({ "acks": acks })))
}
