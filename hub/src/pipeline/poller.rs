//! One polling loop per `[plugins.NAME.poll]`: poll once at start, then
//! every `interval` (+ jitter) after the previous poll ended, so two polls of
//! one plugin never overlap. Each poll starts from the last committed
//! checkpoint; every batch that carries a checkpoint is enriched and
//! committed together with that checkpoint in one transaction (queued for
//! the store's group commit; while it commits the next batch is read and
//! enriched, and queued only once the previous one committed). Records after the last checkpoint of a failed poll are
//! not committed, so the retry (or the next poll) fetches them again; a
//! re-fetched record is an upsert, never a duplicate.
//!
//! Each poll holds its plugin's [`PollControl`] lock from start to last
//! commit, so an operator's checkpoint change waits for it; the loop also
//! polls at once when asked through the control (`POST
//! /api/v1/plugins/NAME/poll`), then waits a full interval again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::poll_control::{PollControl, PollResult, PollSummary, Trigger};
use super::{Ingest, IngestError};
use crate::config::PollConfig;
use crate::domain::{PollRequest, Record};
use crate::retry::{self, AttemptError, Call, GiveUp, Rpc};
use crate::store::{Fence, Pending, Upserted};
use crate::supervisor::{PluginHandle, RunningPlugin};

/// Polls `plugin` until `cancel` fires: at start, then `interval` (+
/// jitter) after each poll, or at once when `control` is asked to poll now
/// (the interval then counts from that poll). Every poll runs under
/// `control`'s lock, and its outcome is recorded there.
pub(crate) async fn run(
    plugin: PluginHandle,
    poll: PollConfig,
    ingest: Ingest,
    control: PollControl,
    triggers: &mut mpsc::Receiver<Trigger>,
    fence: Option<Fence>,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("poller", plugin = %plugin.name());
    async move {
        let mut asked: Option<Trigger> = None;
        let mut triggers_open = true;
        loop {
            let (result, asked_to_wait) = {
                let _exclusive = control.hold().await;
                poll_once(&plugin, &poll, &ingest, &control, fence.as_ref(), &cancel).await
            };
            if let Some(reply) = asked.take() {
                let _ = reply.send(result);
            }
            let delay =
                (poll.interval + jitter(poll.jitter)).max(asked_to_wait.unwrap_or_default());
            tokio::select! {
                slept = retry::sleep(delay, Some(&cancel)) => {
                    if !slept {
                        break;
                    }
                }
                trigger = triggers.recv(), if triggers_open => match trigger {
                    Some(reply) => {
                        tracing::info!("Polling now, as asked through the API.");
                        asked = Some(reply);
                    }
                    None => {
                        triggers_open = false;
                        if !retry::sleep(delay, Some(&cancel)).await {
                            break;
                        }
                    }
                },
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

/// What one poll has in hand, shared between its attempts: the commit
/// queued for the group-commit writer and not yet confirmed (whatever
/// happened to an attempt, it finishes before the next attempt reads the
/// checkpoint back), with how many records it carries, and what the poll
/// has committed so far.
#[derive(Debug, Default)]
struct Progress {
    queued: Option<(Pending<Vec<Upserted>>, usize)>,
    committed: PollSummary,
}

type InFlight = Arc<Mutex<Progress>>;

fn progress(in_flight: &InFlight) -> std::sync::MutexGuard<'_, Progress> {
    match in_flight.lock() {
        Ok(progress) => progress,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One poll through the call path (retried under the plugin's retry
/// policy, bounded per attempt by the poll's `timeout`); a poll that still
/// fails is logged and tried again at the next interval. Records how it
/// ended in `control` and returns it, with how long the plugin asked to be
/// left alone, if it did.
async fn poll_once(
    plugin: &PluginHandle,
    poll: &PollConfig,
    ingest: &Ingest,
    control: &PollControl,
    fence: Option<&Fence>,
    cancel: &CancellationToken,
) -> (PollResult, Option<Duration>) {
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
                fence.cloned(),
            )
        })
        .await;
    let last_commit = finish(ingest, plugin.name(), &in_flight).await;
    let committed = progress(&in_flight).committed;
    let result = match (result, last_commit) {
        (Ok(()), Ok(())) => Ok(committed),
        (Ok(()), Err(err)) => {
            tracing::error!(error = %err, "The poll's last commit failed; its records are fetched again.");
            Err(GiveUp::Local(Arc::new(err)))
        }
        (Err(reason), last_commit) => {
            if let Err(err) = last_commit {
                tracing::error!(error = %err, "The poll's last commit failed; its records are fetched again.");
            }
            Err(reason)
        }
    };
    control.record(&result, committed.records);
    match &result {
        Ok(summary) => {
            tracing::debug!(
                records = summary.records,
                commits = summary.commits,
                "Poll finished."
            );
            (result, None)
        }
        Err(GiveUp::Cancelled) => (result, None),
        Err(reason) => {
            let next_poll_in = poll.interval.max(reason.retry_after().unwrap_or_default());
            tracing::error!(error = %reason, next_poll_in = ?next_poll_in, "Poll failed; giving up until the next interval.");
            let asked_to_wait = reason.retry_after();
            (result, asked_to_wait)
        }
    }
}

/// Waits for the queued commit, if any, and counts its records.
async fn finish(ingest: &Ingest, name: &str, in_flight: &InFlight) -> Result<(), IngestError> {
    let queued = progress(in_flight).queued.take();
    if let Some((pending, records)) = queued {
        let outcomes = pending.wait().await?;
        ingest.count(name, &outcomes);
        let mut progress = progress(in_flight);
        progress.committed.records += records;
        progress.committed.commits += 1;
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
    fence: Option<Fence>,
) -> Result<(), AttemptError> {
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
    loop {
        let (records, checkpoint, last) = match stream.next().await? {
            Some(batch) => {
                ingest.metrics.records_in(&name, batch.records.len());
                pending.extend(batch.records);
                match batch.checkpoint {
                    Some(checkpoint) => (std::mem::take(&mut pending), Some(checkpoint), false),
                    None => continue,
                }
            }
            None if pending.is_empty() => return Ok(()),
            None => (std::mem::take(&mut pending), None, true),
        };
        let count = records.len();
        let prepared = ingest.prepare(&name, records).await.map_err(local)?;
        finish(&ingest, &name, &in_flight).await.map_err(local)?;
        let queued = ingest
            .submit_fenced(&name, prepared, checkpoint, fence.clone())
            .await
            .map_err(local)?;
        progress(&in_flight).queued = Some((queued, count));
        if last {
            return Ok(());
        }
    }
}
