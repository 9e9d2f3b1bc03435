//! One polling loop per `[plugins.NAME.poll]`: poll once at start, then
//! every `interval` (+ jitter) after the previous poll ended, so two polls of
//! one plugin never overlap. Each poll starts from the last committed
//! checkpoint; every batch that carries a checkpoint is enriched and
//! committed together with that checkpoint in one transaction (queued for
//! the store's group commit; while it commits the next batch is read and
//! enriched, and queued only once the previous one committed). Records after the last checkpoint of a failed poll are
//! not committed, so the retry (or the next poll) fetches them again; a
//! re-fetched record is an upsert, never a duplicate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{Ingest, IngestError};
use crate::config::PollConfig;
use crate::domain::{PollRequest, Record};
use crate::retry::{self, AttemptError, Call, GiveUp, Rpc};
use crate::store::{Pending, Upserted};
use crate::supervisor::{PluginHandle, RunningPlugin};

/// What a successful poll did.
#[derive(Debug, Default)]
struct PollSummary {
    records: usize,
    commits: usize,
}

/// Polls `plugin` until `cancel` fires.
pub(crate) async fn run(
    plugin: PluginHandle,
    poll: PollConfig,
    ingest: Ingest,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("poller", plugin = %plugin.name());
    async move {
        loop {
            let asked_to_wait = poll_once(&plugin, &poll, &ingest, &cancel).await;
            let delay =
                (poll.interval + jitter(poll.jitter)).max(asked_to_wait.unwrap_or_default());
            if !retry::sleep(delay, Some(&cancel)).await {
                break;
            }
        }
        tracing::debug!("Poller stopped.");
    }
    .instrument(span)
    .await;
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        Duration::ZERO
    } else {
        max.mul_f64(fastrand::f64())
    }
}

/// A commit queued for the group-commit writer, not yet confirmed, shared
/// between the attempts of one poll: whatever happened to an attempt, the
/// commit it queued finishes before the next attempt reads the checkpoint
/// back.
type InFlight = Arc<Mutex<Option<Pending<Vec<Upserted>>>>>;

/// One poll through the call path (retried under the plugin's retry
/// policy, bounded per attempt by the poll's `timeout`); a poll that still
/// fails is logged and tried again at the next interval. Returns how long
/// the plugin asked to be left alone, if it did.
async fn poll_once(
    plugin: &PluginHandle,
    poll: &PollConfig,
    ingest: &Ingest,
    cancel: &CancellationToken,
) -> Option<Duration> {
    let in_flight: InFlight = Arc::default();
    let result = Call::new(plugin, Rpc::Poll)
        .timeout(poll.timeout)
        .cancel(cancel)
        .run(|running| {
            read_and_commit(
                running,
                plugin.shared_name().clone(),
                poll.max_records,
                ingest.clone(),
                in_flight.clone(),
            )
        })
        .await;
    if let Err(err) = finish(ingest, plugin.name(), &in_flight).await {
        tracing::error!(error = %err, "The poll's last commit failed; its records are fetched again.");
    }
    match result {
        Ok(summary) => {
            tracing::debug!(
                records = summary.records,
                commits = summary.commits,
                "Poll finished."
            );
            None
        }
        Err(GiveUp::Cancelled) => None,
        Err(reason) => {
            let next_poll_in = poll.interval.max(reason.retry_after().unwrap_or_default());
            tracing::error!(error = %reason, next_poll_in = ?next_poll_in, "Poll failed; giving up until the next interval.");
            reason.retry_after()
        }
    }
}

/// Waits for the queued commit, if any, and counts its records.
async fn finish(ingest: &Ingest, name: &str, in_flight: &InFlight) -> Result<(), IngestError> {
    let pending = match in_flight.lock() {
        Ok(mut slot) => slot.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(pending) = pending {
        let outcomes = pending.wait().await?;
        ingest.count(name, &outcomes);
    }
    Ok(())
}

/// The caller's own failure inside a poll attempt.
fn local(error: impl Into<IngestError>) -> AttemptError {
    AttemptError::Local(Arc::new(error.into()))
}

/// One attempt: reads the poll's batches; each one that carries a
/// checkpoint is enriched and queued for commit with it. One commit is in
/// flight while the next batch is read and enriched; the next is queued
/// only after it committed, so a failed commit never lets a later
/// checkpoint pass over its records.
async fn read_and_commit(
    running: RunningPlugin,
    name: Arc<str>,
    max_records: u32,
    ingest: Ingest,
    in_flight: InFlight,
) -> Result<PollSummary, AttemptError> {
    // Left over from an attempt that timed out: finish it before reading
    // the checkpoint back.
    finish(&ingest, &name, &in_flight).await.map_err(local)?;
    let checkpoint = ingest.store.checkpoint(&name).await.map_err(local)?;
    let request = PollRequest {
        checkpoint,
        max_records,
    };
    let mut stream = running.roles.poll_stream(request).await?;
    let mut pending: Vec<Record> = Vec::new();
    let mut summary = PollSummary::default();
    loop {
        let (records, checkpoint, last) = match stream.next().await? {
            Some(batch) => {
                ingest.metrics.records_in(&name, batch.records.len());
                summary.records += batch.records.len();
                pending.extend(batch.records);
                match batch.checkpoint {
                    Some(checkpoint) => (std::mem::take(&mut pending), Some(checkpoint), false),
                    None => continue,
                }
            }
            None if pending.is_empty() => return Ok(summary),
            None => (std::mem::take(&mut pending), None, true),
        };
        let prepared = ingest.prepare(&name, records).await.map_err(local)?;
        finish(&ingest, &name, &in_flight).await.map_err(local)?;
        let queued = ingest
            .submit(&name, prepared, checkpoint)
            .await
            .map_err(local)?;
        match in_flight.lock() {
            Ok(mut slot) => *slot = Some(queued),
            Err(poisoned) => *poisoned.into_inner() = Some(queued),
        }
        summary.commits += 1;
        if last {
            return Ok(summary);
        }
    }
}
