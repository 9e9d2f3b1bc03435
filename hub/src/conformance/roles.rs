//! The checks of the roles a plugin declares: a deterministic poll, an
//! enrichment that keeps ids and order and fails records one by one, an
//! output that acks every delivery exactly once, and a webhook that becomes
//! records.
//!
//! These calls go straight to the plugin's [`RoleClient`], not through the
//! hub's call path (`retry::Call`): a conformance check must see the
//! plugin's own answer to one call, with no retries, breaker or health gate
//! in between.

use std::sync::Arc;
use std::time::Duration;

use super::lifecycle::shorten;
use super::report::CheckResult;
use crate::domain::{EnrichOutcome, EventKind, PollRequest, Record, RecordEvent, WebhookDelivery};
use crate::rpc::roles::RoleClient;

/// How many records a conformance poll asks for.
const MAX_RECORDS: u32 = 100;
/// How long `output-acks` keeps reading after the last answer, for a
/// duplicate answer sent after it.
const ACK_LINGER: Duration = Duration::from_millis(500);
/// The first delivery id of the events sent to an output.
const FIRST_DELIVERY_ID: u64 = 1001;

/// `poll-determinism`: two polls from no checkpoint give the same record ids
/// and the same checkpoint.
pub async fn poll_determinism(roles: &RoleClient, timeout: Duration) -> CheckResult {
    const CHECK: &str = "poll-determinism";
    let mut runs = Vec::with_capacity(2);
    for attempt in 1..=2 {
        let request = PollRequest {
            checkpoint: None,
            max_records: MAX_RECORDS,
        };
        let batches = match tokio::time::timeout(timeout, roles.poll(request)).await {
            Err(_) => {
                return CheckResult::fail(CHECK, format!("poll {attempt} did not finish in time"));
            }
            Ok(Err(err)) => return CheckResult::fail(CHECK, format!("poll {attempt}: {err}")),
            Ok(Ok(batches)) => batches,
        };
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|batch| batch.records.iter().map(|record| record.id.clone()))
            .collect();
        let checkpoint = batches
            .iter()
            .rev()
            .find_map(|batch| batch.checkpoint.clone());
        runs.push((ids, checkpoint));
    }
    let (first_ids, first_checkpoint) = &runs[0];
    let (second_ids, second_checkpoint) = &runs[1];
    if first_ids != second_ids {
        let differs = first_ids
            .iter()
            .zip(second_ids)
            .position(|(a, b)| a != b)
            .unwrap_or(first_ids.len().min(second_ids.len()));
        return CheckResult::fail(
            CHECK,
            format!(
                "two polls from the same checkpoint gave different records: {} and {} records, first difference at record {differs} ({:?} vs {:?})",
                first_ids.len(),
                second_ids.len(),
                first_ids.get(differs),
                second_ids.get(differs)
            ),
        );
    }
    if first_checkpoint != second_checkpoint {
        return CheckResult::fail(
            CHECK,
            format!(
                "two polls from the same checkpoint gave the same records but different checkpoints ({} vs {})",
                show_checkpoint(first_checkpoint.as_deref()),
                show_checkpoint(second_checkpoint.as_deref())
            ),
        );
    }
    CheckResult::pass(
        CHECK,
        format!(
            "two polls from no checkpoint: the same {} record{} and checkpoint {}",
            first_ids.len(),
            if first_ids.len() == 1 { "" } else { "s" },
            show_checkpoint(first_checkpoint.as_deref())
        ),
    )
}

fn show_checkpoint(checkpoint: Option<&[u8]>) -> String {
    match checkpoint {
        None => "(none)".to_owned(),
        Some(bytes) => shorten(&format!("{:?}", String::from_utf8_lossy(bytes))),
    }
}

/// `enrich`: one `Enrich` stream with every sample record; each answer keeps
/// the id of the record sent under its sequence number, and a record the
/// plugin cannot enrich comes back as a failure of that record alone (with a
/// message), not as a failed call.
pub async fn enrich(roles: &RoleClient, sample: &[Record], timeout: Duration) -> CheckResult {
    const CHECK: &str = "enrich";
    let outcomes = match tokio::time::timeout(timeout, roles.enrich_on_own_stream(sample)).await {
        Err(_) => return CheckResult::fail(CHECK, "Enrich did not finish in time"),
        Ok(Err(err)) => {
            return CheckResult::fail(
                CHECK,
                format!(
                    "the Enrich call of {} records failed as a whole (a record it cannot enrich must fail alone): {err}",
                    sample.len()
                ),
            );
        }
        Ok(Ok(outcomes)) => outcomes,
    };
    let mut enriched = 0;
    let mut failed = Vec::new();
    for (index, (sent, outcome)) in sample.iter().zip(&outcomes).enumerate() {
        match outcome {
            EnrichOutcome::Enriched(record) if record.id != sent.id => {
                return CheckResult::fail(
                    CHECK,
                    format!(
                        "the answer to sequence number {index} is record {:?}, but record {:?} was sent under it (ids and order must be kept)",
                        record.id, sent.id
                    ),
                );
            }
            EnrichOutcome::Enriched(_) => enriched += 1,
            EnrichOutcome::Failed(failure) if failure.message.trim().is_empty() => {
                return CheckResult::fail(
                    CHECK,
                    format!("record {:?} failed without a message", sent.id),
                );
            }
            EnrichOutcome::Failed(failure) => {
                failed.push(format!("{:?}: {}", sent.id, failure.message));
            }
        }
    }
    let failures = if failed.is_empty() {
        String::new()
    } else {
        format!(
            ", {} failed alone ({})",
            failed.len(),
            shorten(&failed.join("; "))
        )
    };
    CheckResult::pass(
        CHECK,
        format!(
            "{} records: {enriched} enriched with their ids in order{failures}",
            sample.len()
        ),
    )
}

/// `output-acks`: every sample record sent as an event on one `HandleEvent`
/// stream is answered exactly once (acked or nacked).
pub async fn output_acks(roles: &RoleClient, sample: &[Record], timeout: Duration) -> CheckResult {
    const CHECK: &str = "output-acks";
    let events: Vec<RecordEvent> = sample
        .iter()
        .zip(FIRST_DELIVERY_ID..)
        .map(|(record, delivery_id)| RecordEvent {
            delivery_id,
            kind: EventKind::Created,
            record: Arc::new(record.clone()),
            attempt: 1,
        })
        .collect();
    let refs: Vec<&RecordEvent> = events.iter().collect();
    let mut nacked = 0;
    let mut acks = 0;
    let call = roles.events_each_lingering(&refs, ACK_LINGER, |_, ack| {
        acks += 1;
        if ack.failure.is_some() {
            nacked += 1;
        }
    });
    match tokio::time::timeout(timeout, call).await {
        Err(_) => CheckResult::fail(CHECK, "HandleEvent did not answer every event in time"),
        Ok(Err(err)) => CheckResult::fail(CHECK, err.to_string()),
        Ok(Ok(())) => CheckResult::pass(
            CHECK,
            format!(
                "{} events, each answered once ({} acked, {nacked} nacked)",
                events.len(),
                acks - nacked
            ),
        ),
    }
}

/// `webhook`: a sample JSON webhook body becomes at least one record.
pub async fn webhook(roles: &RoleClient, body: &[u8], timeout: Duration) -> CheckResult {
    const CHECK: &str = "webhook";
    let delivery = WebhookDelivery {
        method: "POST".to_owned(),
        path: "/webhooks/conformance".to_owned(),
        query: String::new(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: body.to_vec(),
        delivery_id: "conformance-1".to_owned(),
        received_at: chrono::Utc::now(),
    };
    match tokio::time::timeout(timeout, roles.webhook(delivery)).await {
        Err(_) => CheckResult::fail(CHECK, "HandleWebhook did not answer in time"),
        Ok(Err(err)) => CheckResult::fail(CHECK, format!("HandleWebhook: {err}")),
        Ok(Ok(outcome)) if outcome.records.is_empty() => CheckResult::fail(
            CHECK,
            format!("a {}-byte JSON webhook became no records", body.len()),
        ),
        Ok(Ok(outcome)) => {
            let ids: Vec<&str> = outcome
                .records
                .iter()
                .map(|record| record.id.as_str())
                .collect();
            CheckResult::pass(
                CHECK,
                format!(
                    "a {}-byte JSON webhook became {} record{} ({})",
                    body.len(),
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    shorten(&ids.join(", "))
                ),
            )
        }
    }
}
