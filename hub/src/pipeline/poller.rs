//! One polling loop per `[plugins.NAME.poll]`: poll once at start, then
//! every `interval` (+ jitter) after the previous poll ended, so two polls of
//! one plugin never overlap. Each poll starts from the last committed
//! checkpoint; every batch that carries a checkpoint is enriched and
//! committed together with that checkpoint in one transaction (queued for
//! the store's group commit; while it commits the next batch is read and
//! enriched, and queued only once the previous one committed). Records after the last checkpoint of a failed poll are
//! not committed, so the retry (or the next poll) fetches them again; a
//! re-fetched record is an upsert, never a duplicate.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::call::{self, CallFailure};
use super::{Ingest, IngestError};
use crate::config::PollConfig;
use crate::domain::{PollRequest, Record, Role};
use crate::store::{Pending, Upserted};
use crate::supervisor::PluginHandle;

/// Why one poll attempt failed.
type PollError = IngestError;

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
            poll_with_retries(&plugin, &poll, &ingest, &cancel).await;
            let delay = poll.interval + jitter(poll.jitter);
            if !call::sleep(delay, &cancel).await {
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

/// One poll, retried under the plugin's retry policy; a poll that still
/// fails is logged and tried again at the next interval.
async fn poll_with_retries(
    plugin: &PluginHandle,
    poll: &PollConfig,
    ingest: &Ingest,
    cancel: &CancellationToken,
) {
    let policy = plugin.retry_config().clone();
    let max_attempts = policy.max_attempts.max(1);
    for attempt in 0..max_attempts {
        match poll_once(plugin, poll, ingest, cancel).await {
            Ok(summary) => {
                tracing::debug!(
                    records = summary.records,
                    commits = summary.commits,
                    "Poll finished."
                );
                return;
            }
            Err(PollError::Call(CallFailure::Cancelled)) => return,
            Err(err) => {
                let retryable = match &err {
                    PollError::Call(failure) => failure.is_retryable(&policy),
                    PollError::Store(_) => true,
                };
                if retryable && attempt + 1 < max_attempts {
                    let delay = call::retry_delay(&policy, attempt, None);
                    tracing::warn!(error = %err, attempt = attempt + 1, retry_in = ?delay, "Poll failed; retrying.");
                    if !call::sleep(delay, cancel).await {
                        return;
                    }
                } else {
                    tracing::error!(error = %err, attempts = attempt + 1, next_poll_in = ?poll.interval, "Poll failed; giving up until the next interval.");
                    return;
                }
            }
        }
    }
}

async fn poll_once(
    plugin: &PluginHandle,
    poll: &PollConfig,
    ingest: &Ingest,
    cancel: &CancellationToken,
) -> Result<PollSummary, PollError> {
    let mut in_flight = None;
    let result = read_and_commit(plugin, poll, ingest, cancel, &mut in_flight).await;
    // Whatever happened, the commit already queued finishes before the next
    // attempt reads the checkpoint back.
    let waited = finish(ingest, plugin.name(), in_flight.take()).await;
    let summary = result?;
    waited?;
    Ok(summary)
}

/// A commit queued for the group-commit writer, not yet confirmed.
type InFlight = Option<Pending<Vec<Upserted>>>;

/// Waits for the queued commit, if any, and counts its records.
async fn finish(ingest: &Ingest, name: &str, in_flight: InFlight) -> Result<(), PollError> {
    if let Some(pending) = in_flight {
        let outcomes = pending.wait().await?;
        ingest.count(name, &outcomes);
    }
    Ok(())
}

/// Reads the poll's batches; each one that carries a checkpoint is enriched
/// and queued for commit with it. One commit is in flight while the next
/// batch is read and enriched; the next is queued only after it committed,
/// so a failed commit never lets a later checkpoint pass over its records.
async fn read_and_commit(
    plugin: &PluginHandle,
    poll: &PollConfig,
    ingest: &Ingest,
    cancel: &CancellationToken,
    in_flight: &mut InFlight,
) -> Result<PollSummary, PollError> {
    let name = plugin.name();
    let policy = plugin.retry_config().clone();
    let checkpoint = ingest.store.checkpoint(name).await?;
    let connection = call::running(plugin, Role::PollingInput, policy.timeout, cancel).await?;
    let deadline = tokio::time::Instant::now() + poll.timeout;
    let request = PollRequest {
        checkpoint,
        max_records: poll.max_records,
    };
    let mut stream = call::bounded(
        name,
        poll.timeout,
        cancel,
        connection.roles.poll_stream(request),
    )
    .await?;
    let mut pending: Vec<Record> = Vec::new();
    let mut summary = PollSummary::default();
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let batch = call::bounded(name, remaining, cancel, stream.next())
            .await
            .map_err(|failure| match failure {
                CallFailure::Timeout { plugin, .. } => CallFailure::Timeout {
                    plugin,
                    limit: poll.timeout,
                },
                other => other,
            })?;
        let (records, checkpoint, last) = match batch {
            Some(batch) => {
                ingest.metrics.records_in(name, batch.records.len());
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
        let prepared = ingest.prepare(name, records).await?;
        finish(ingest, name, in_flight.take()).await?;
        *in_flight = Some(ingest.submit(name, prepared, checkpoint).await?);
        summary.commits += 1;
        if last {
            return Ok(summary);
        }
    }
}
