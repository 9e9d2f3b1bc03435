//! The inbox worker of one webhook plugin: takes pending deliveries in
//! arrival order, hands each to `HandleWebhook` under the plugin's retry
//! policy (`[plugins.NAME.retry]`, through [`crate::retry::call`]), and commits the records it returns in
//! the transaction that marks the delivery done. A delivery the plugin
//! rejects (INVALID_ARGUMENT), or that fails past `max_attempts`, becomes a
//! dead letter (stage `webhook`) in the transaction that marks it dead.
//!
//! While the plugin is stopped, restarting or not serving, deliveries wait
//! in the inbox instead of being dead-lettered.
//! A hub crash at any point leaves the delivery pending, so it is handed to
//! the plugin again after the restart (at least once; records are upserted
//! by key, so a second pass does not duplicate them).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::Endpoint;
use crate::domain::Record;
use crate::pipeline::{ChainOutput, Ingest, write_prepared};
use crate::retry::{self, AttemptFailure, GiveUp, Rpc};
use crate::store::{
    InboxEntry, NewDeadLetter, Stage, Store, StoreError, StoreTx, Upserted, WriteJob,
};

/// How many pending deliveries are read per query.
const BATCH: u32 = 32;
/// How often an idle worker looks at the inbox even without a wake-up (a
/// delivery requeued by a replay, for example).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// How long to wait after a store error before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often a held-back delivery is tried again even if the plugin's
/// status does not change.
const HELD_BACK_RECHECK: Duration = Duration::from_secs(5);
/// How often done deliveries older than [`super::INBOX_RETENTION`] are
/// deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Runs until `stop` becomes true.
pub async fn run(endpoint: Arc<Endpoint>, ingest: Ingest, mut stop: watch::Receiver<bool>) {
    let span = tracing::info_span!("webhook_worker", plugin = %endpoint.name());
    async move {
        let store = &ingest.store;
        let mut next_prune = tokio::time::Instant::now();
        while !*stop.borrow() {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                prune(&endpoint, store).await;
            }
            let batch = match store.pending_inbox(endpoint.name(), BATCH).await {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::error!(error = %err, "Cannot read the webhook inbox; retrying.");
                    pause(&mut stop, STORE_RETRY).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = endpoint.wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut handled = Vec::with_capacity(batch.len());
            for entry in batch {
                if process(&endpoint, &ingest, entry, &mut stop, &mut handled).await == Flow::Stop {
                    break;
                }
            }
            if !commit_handled(&endpoint, &ingest, &mut handled).await {
                pause(&mut stop, STORE_RETRY).await;
            }
        }
        tracing::debug!("Webhook worker stopped.");
    }
    .instrument(span)
    .await
}

/// Deletes done deliveries past the retention (their ids no longer count
/// as replays).
async fn prune(endpoint: &Endpoint, store: &Store) {
    let retention =
        chrono::Duration::from_std(super::INBOX_RETENTION).unwrap_or(chrono::Duration::MAX);
    let before = chrono::Utc::now() - retention;
    match store.prune_inbox(endpoint.name(), before).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "Old webhook deliveries removed from the inbox."),
        Err(err) => tracing::warn!(error = %err, "Cannot prune the webhook inbox."),
    }
}

/// Sleeps `duration` or until stopped.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}

/// A delivery the plugin handled, waiting to be committed with the others
/// of its batch.
struct Handled {
    entry: InboxEntry,
    prepared: ChainOutput,
    attempts: u32,
}

/// Whether the worker goes on with the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Hands one delivery to the plugin (under the retry policy) and adds the
/// enriched result to `handled`, or dead-letters it. Returns
/// [`Flow::Stop`] when the worker was stopped or a commit failed (the
/// delivery stays pending and the batch is read again).
async fn process(
    endpoint: &Endpoint,
    ingest: &Ingest,
    entry: InboxEntry,
    stop: &mut watch::Receiver<bool>,
    handled: &mut Vec<Handled>,
) -> Flow {
    let name = endpoint.name();
    let store = &ingest.store;
    let first_failed_at = chrono::Utc::now();
    let mut held_back = false;
    loop {
        if *stop.borrow() {
            return Flow::Stop;
        }
        let mut attempts = u32::try_from(entry.attempts).unwrap_or(u32::MAX);
        let span = tracing::info_span!("call", plugin = %name, call = "webhook", delivery_id = %entry.delivery.delivery_id);
        let call = retry::call(&endpoint.plugin, Rpc::Webhook, |running| {
            attempts = attempts.saturating_add(1);
            let delivery = entry.delivery.clone();
            async move { running.roles.webhook(delivery).await }.instrument(span.clone())
        });
        let result = tokio::select! {
            result = call => result,
            _ = stop.changed() => return Flow::Stop,
        };
        let error = match result {
            Ok(outcome) => match ingest.prepare(name, outcome.records).await {
                Ok(prepared) => {
                    handled.push(Handled {
                        entry,
                        prepared,
                        attempts,
                    });
                    return Flow::Continue;
                }
                Err(failure) if failure.is_cancelled() => return Flow::Stop,
                Err(error) => {
                    // An enricher is down: the delivery stays pending and
                    // the plugin is asked again later.
                    tracing::warn!(plugin = %name, delivery_id = %entry.delivery.delivery_id, error = %error, "Cannot enrich the webhook's records; the delivery stays pending.");
                    if !commit_handled(endpoint, ingest, handled).await {
                        return Flow::Stop;
                    }
                    pause(stop, HELD_BACK_RECHECK).await;
                    continue;
                }
            },
            Err(GiveUp::Cancelled) => return Flow::Stop,
            Err(GiveUp::Permanent(error)) => {
                format!("the plugin refused the delivery: {error}")
            }
            Err(
                reason @ GiveUp::Exhausted {
                    last: AttemptFailure::Call(_) | AttemptFailure::Timeout(_),
                    ..
                },
            ) => reason.to_string(),
            // The plugin is stopped, restarting, unhealthy or serves no
            // webhooks: not the delivery's fault. Hold it until that changes.
            Err(reason) => {
                if !held_back {
                    tracing::warn!(
                        plugin = %name,
                        delivery_id = %entry.delivery.delivery_id,
                        reason = %reason,
                        "Webhook deliveries are held in the inbox until the plugin can take them."
                    );
                    held_back = true;
                }
                if !commit_handled(endpoint, ingest, handled).await {
                    return Flow::Stop;
                }
                if let Err(err) = store
                    .note_inbox_attempt(entry.id, attempts, &reason.to_string())
                    .await
                {
                    tracing::warn!(plugin = %name, error = %err, "Cannot record the failed webhook attempt.");
                }
                let mut status = endpoint.plugin.subscribe();
                tokio::select! {
                    _ = status.changed() => {}
                    () = tokio::time::sleep(HELD_BACK_RECHECK) => {}
                    _ = stop.changed() => return Flow::Stop,
                }
                continue;
            }
        };
        // Earlier deliveries are committed first, so the inbox stays in
        // arrival order.
        if !commit_handled(endpoint, ingest, handled).await {
            return Flow::Stop;
        }
        return match dead_letter(endpoint, store, &entry, attempts, &error, first_failed_at).await {
            Ok(()) => {
                endpoint.remove_pending();
                Flow::Continue
            }
            Err(err) => {
                tracing::error!(plugin = %name, delivery_id = %entry.delivery.delivery_id, error = %err, "Cannot dead-letter the webhook delivery; it stays pending.");
                Flow::Stop
            }
        };
    }
}

/// Commits every handled delivery's records and marks them done, in one
/// transaction; empties `handled`. On a store error nothing is committed:
/// the deliveries stay pending (handed to the plugin again; records are
/// upserted by key) and false is returned.
async fn commit_handled(endpoint: &Endpoint, ingest: &Ingest, handled: &mut Vec<Handled>) -> bool {
    if handled.is_empty() {
        return true;
    }
    let batch = std::mem::take(handled);
    let deliveries = batch.len();
    match complete(endpoint, ingest, batch).await {
        Ok(()) => {
            for _ in 0..deliveries {
                endpoint.remove_pending();
            }
            true
        }
        Err(err) => {
            tracing::error!(plugin = %endpoint.name(), deliveries, error = %err, "Cannot commit the webhook deliveries' records; they stay pending.");
            false
        }
    }
}

/// Stores the records and marks the deliveries done, in one transaction
/// (through the store's group commit).
async fn complete(
    endpoint: &Endpoint,
    ingest: &Ingest,
    batch: Vec<Handled>,
) -> Result<(), StoreError> {
    let name = endpoint.name();
    let stored: Vec<(String, usize)> = batch
        .iter()
        .map(|handled| {
            (
                handled.entry.delivery.delivery_id.clone(),
                handled.prepared.records.len(),
            )
        })
        .collect();
    let job = CompleteJob {
        plugin: name.to_owned(),
        batch,
    };
    let upserted = ingest.store.write(job).await?;
    ingest.count(name, &upserted);
    for (delivery_id, records) in stored {
        super::metrics::handled(name, "done");
        tracing::debug!(plugin = %name, delivery_id = %delivery_id, records, "Webhook delivery stored.");
    }
    Ok(())
}

/// A write job: handled deliveries' records, and their inbox rows done.
struct CompleteJob {
    plugin: String,
    batch: Vec<Handled>,
}

impl WriteJob for CompleteJob {
    type Output = Vec<Upserted>;

    fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<Vec<Upserted>, StoreError>> {
        Box::pin(async move {
            let mut upserted = Vec::new();
            for handled in &self.batch {
                upserted.extend(write_prepared(tx, &self.plugin, &handled.prepared).await?);
                tx.complete_inbox(handled.entry.id, handled.attempts)
                    .await?;
            }
            Ok(upserted)
        })
    }

    fn weight(&self) -> usize {
        self.batch
            .iter()
            .map(|handled| 1 + handled.prepared.records.len())
            .sum()
    }
}

/// Parks the delivery in dead letters and marks it dead, in one transaction.
async fn dead_letter(
    endpoint: &Endpoint,
    store: &Store,
    entry: &InboxEntry,
    attempts: u32,
    error: &str,
    first_failed_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let letter = NewDeadLetter {
        plugin: endpoint.name().to_owned(),
        stage: Stage::Webhook,
        record: delivery_record(endpoint.name(), entry),
        event: None,
        error: error.to_owned(),
        attempts,
        first_failed_at,
    };
    let mut tx = store.begin().await?;
    let id = tx.add_dead_letter(&letter).await?;
    tx.fail_inbox(entry.id, attempts, error).await?;
    tx.commit().await?;
    super::metrics::handled(endpoint.name(), "dead");
    tracing::warn!(
        plugin = %endpoint.name(),
        delivery_id = %entry.delivery.delivery_id,
        dead_letter = id,
        attempts,
        error = %error,
        "Webhook delivery moved to dead letters."
    );
    Ok(())
}

/// The dead letter's record for a delivery: id = the delivery id, type
/// `webhook.delivery`, the request as the payload (the body as text when it
/// is UTF-8, else base64) and `inbox_id` in the metadata (for a replay).
pub fn delivery_record(plugin: &str, entry: &InboxEntry) -> Record {
    let delivery = &entry.delivery;
    let body = match std::str::from_utf8(&delivery.body) {
        Ok(text) => serde_json::json!({ "body": text }),
        Err(_) => serde_json::json!({
            "body_base64": base64::engine::general_purpose::STANDARD.encode(&delivery.body)
        }),
    };
    let mut payload = serde_json::json!({
        "method": delivery.method,
        "path": delivery.path,
        "query": delivery.query,
        "headers": delivery.headers,
    });
    if let (Some(payload), Some(body)) = (payload.as_object_mut(), body.as_object()) {
        payload.extend(body.clone());
    }
    Record {
        id: delivery.delivery_id.clone(),
        source: plugin.to_owned(),
        record_type: "webhook.delivery".to_owned(),
        occurred_at: Some(delivery.received_at),
        payload,
        metadata: [
            ("inbox_id".to_owned(), entry.id.to_string()),
            ("delivery_id".to_owned(), delivery.delivery_id.clone()),
        ]
        .into_iter()
        .collect(),
        idempotency_key: None,
    }
}
