//! One delivery loop per `[plugins.NAME.output]`.
//!
//! The loop reads outbox events after the output's durable position, skips
//! those its filter excludes, and sends the rest in `batch`-sized
//! `HandleEvent` streams (one at a time when `ordered`, up to
//! `max_in_flight` at once otherwise). The delivery id is the outbox event
//! id, the same on every redelivery, so plugins can deduplicate. Events this
//! hub has just committed come from the store's in-memory feed instead of a
//! table read (`store/feed.rs`), but only while nothing above the position
//! is marked done, since the feed knows nothing of marks.
//!
//! An event is finished only when the plugin acks it, or when it is moved to
//! the dead letters (a permanent nack, or a retryable nack after the retry
//! policy's attempts). Retryable nacks wait out a backoff (at least the
//! plugin's `retry_after`) and are sent again before anything later in
//! ordered mode. A broken stream (the plugin crashed) keeps the acks that
//! arrived and resends the rest once the plugin is back; these failures do
//! not count as attempts, so a plugin that is down holds events back rather
//! than dead-lettering them.
//!
//! Progress is committed after every stream: the position moves past
//! everything finished in order, and events finished out of order are
//! marked individually. While some events of a stream still wait (a
//! retryable nack, a plugin that is down), those already acked or
//! dead-lettered are committed before the wait, so a crash of the hub
//! redelivers only what was not acknowledged. Dead letters are written in
//! the same transaction as the marks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::metrics::PipelineMetrics;
use crate::config::OutputConfig;
use crate::domain::{EventAck, Record, RecordEvent};
use crate::retry::{self, AttemptError, Call, GiveUp, Rpc};
use crate::store::{
    Backend, FeedReader, Fence, NewDeadLetter, OutboxEvent, OutputFilter, Stage, Store, StoreError,
    StoreTx, WriteJob,
};
use crate::supervisor::{PluginHandle, RunningPlugin};

/// The most record bytes one scan reads past its first event: with large
/// records a scan holds a few of them, not `batch × max_in_flight`.
const SCAN_BYTES: usize = 64 * 1024 * 1024;

/// How often an idle output looks at the outbox even without a wake-up.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// How long an output worker goes without reading its replays while it
/// knows of none queued on this hub (another hub sharing the database may
/// queue one): as long as an idle output takes to look at the outbox.
const REPLAY_RECHECK: Duration = IDLE_RECHECK;
/// How long to wait before retrying after a store error.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// What happened to the events of one stream.
#[derive(Debug, Default)]
struct Finished {
    /// Events acked by the plugin.
    acked: Vec<i64>,
    /// Events moved to the dead letters.
    dead: Vec<NewDeadLetter>,
    /// How many of `acked` are already committed.
    saved_acked: usize,
    /// How many of `dead` are already committed.
    saved_dead: usize,
}

impl Finished {
    /// The dead letters not committed yet.
    fn unsaved_dead(&self) -> &[NewDeadLetter] {
        &self.dead[self.saved_dead..]
    }

    /// The events finished (acked or dead-lettered) but not committed yet.
    fn unsaved_ids(&self) -> Vec<i64> {
        let mut ids = self.acked[self.saved_acked..].to_vec();
        ids.extend(
            self.unsaved_dead()
                .iter()
                .filter_map(|letter| letter.event.map(|(id, _)| id)),
        );
        ids
    }

    fn has_unsaved(&self) -> bool {
        self.saved_acked < self.acked.len() || self.saved_dead < self.dead.len()
    }

    /// Whether some of these were committed already: for outbox events,
    /// as marks above the position (see [`OutputWorker::deliver`]).
    fn saved_some(&self) -> bool {
        self.saved_acked > 0 || self.saved_dead > 0
    }

    fn mark_saved(&mut self) {
        self.saved_acked = self.acked.len();
        self.saved_dead = self.dead.len();
    }
}

/// How an output worker finds its next events.
struct Scan {
    /// The events this hub committed last.
    feed: FeedReader,
    /// Known: no event above the position is marked done. A finished step
    /// keeps it so (its marks are all at or below its new position, which
    /// forgets them); a failed one may not.
    no_marks: bool,
    /// When the replays were last read and found none.
    replays: ReplayCheck,
    /// The output's durable position, once read: only this worker moves
    /// it (the lease's holder, on a shared database), so after a step it
    /// is what that step saved. Forgotten when a step fails.
    position: Option<i64>,
}

/// Whether an output worker must read its pending replays, which a step
/// used to do every time and almost always found none: a table read (two
/// round trips to a SQLite worker thread; planned again every time on
/// PostgreSQL) per step, twice per event at low rates.
#[derive(Debug, Default)]
struct ReplayCheck {
    /// The store's replay generation before the last read that found none,
    /// and when that read began.
    none_since: Option<(u64, Instant)>,
}

impl ReplayCheck {
    /// Due unless the last read found none, no replay was committed on this
    /// hub since (`generation`, [`Store::replay_generation`]), and less
    /// than [`REPLAY_RECHECK`] has passed.
    fn due(&self, generation: u64, now: Instant) -> bool {
        match self.none_since {
            Some((seen, at)) => seen != generation || now.duration_since(at) >= REPLAY_RECHECK,
            None => true,
        }
    }

    /// A read that began at `now`, with the generation read before it,
    /// found no replays. A replay committed after that read of the
    /// generation changes it; one committed before it was in the read.
    fn found_none(&mut self, generation: u64, now: Instant) {
        self.none_since = Some((generation, now));
    }

    /// A read found replays: the next step reads again.
    fn found_some(&mut self) {
        self.none_since = None;
    }
}

/// Where a stream's events came from, which decides how their progress is saved.
#[derive(Debug, Clone, Copy)]
enum Progress {
    /// New events after the output's position.
    Outbox,
    /// Events an operator asked to deliver again.
    Replay,
}

/// One output's delivery loop.
pub(crate) struct OutputWorker {
    pub plugin: PluginHandle,
    pub config: OutputConfig,
    pub store: Store,
    pub metrics: Arc<PipelineMetrics>,
    pub cancel: CancellationToken,
    /// The lease every progress commit must still hold (a hub sharing its
    /// database), or `None`.
    pub fence: Option<Fence>,
}

impl OutputWorker {
    fn filter(&self) -> OutputFilter {
        OutputFilter {
            kinds: self.config.events.clone(),
            sources: self.config.sources.clone(),
            types: self.config.types.clone(),
        }
    }

    /// Delivers until `cancel` fires.
    pub(crate) async fn run(self) {
        let span = tracing::info_span!("output", plugin = %self.plugin.name());
        async move {
            let mut wake = self.store.subscribe_events();
            let mut scan = Scan {
                feed: self.store.outbox_reader(),
                no_marks: false,
                replays: ReplayCheck::default(),
                position: None,
            };
            loop {
                // Marked seen before looking, so a commit after the look
                // still wakes the wait below.
                wake.borrow_and_update();
                let stepped = self.step(&mut scan).await;
                if stepped.is_err() {
                    // A step cut short may have left marks above the
                    // position, or moved it before it failed.
                    scan.no_marks = false;
                    scan.position = None;
                }
                match stepped {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.metrics.lag(self.plugin.name(), 0.0);
                        tokio::select! {
                            () = self.cancel.cancelled() => break,
                            _ = wake.changed() => {}
                            () = tokio::time::sleep(IDLE_RECHECK) => {}
                        }
                    }
                    Err(StepError::Cancelled) => break,
                    Err(StepError::Store(err)) => {
                        tracing::error!(error = %err, "The output's progress could not be read or saved; retrying.");
                        if !retry::sleep(STORE_RETRY, Some(&self.cancel)).await {
                            break;
                        }
                    }
                }
            }
            tracing::debug!("Output worker stopped.");
        }
        .instrument(span)
        .await;
    }

    /// Delivers pending replays, else one scan of new events. `Ok(true)`
    /// when there may be more to do at once; `Ok(false)` when there was
    /// nothing to do, or the scan delivered every event there was (a
    /// commit since the last look at the store's event generation wakes
    /// the worker, see `run`): finding nothing new would cost a read.
    async fn step(&self, scan: &mut Scan) -> Result<bool, StepError> {
        if self.replay(scan).await? {
            return Ok(true);
        }
        let name = self.plugin.name();
        let position = match scan.position {
            Some(position) => position,
            None => self.store.output_position(name).await?,
        };
        scan.position = Some(position);
        let scan_limit = self.config.batch.saturating_mul(self.config.max_in_flight);
        if !scan.no_marks {
            scan.no_marks = !self.store.output_has_marks(name).await?;
        }
        // The feed knows nothing of marks: with none, the events after the
        // position are all due, and the feed has them if this hub just
        // committed them. Otherwise, or when it does not, the table.
        let fed = if scan.no_marks {
            scan.feed.events_after(
                position,
                usize::try_from(scan_limit).unwrap_or(usize::MAX),
                SCAN_BYTES,
            )
        } else {
            None
        };
        // Whether these are every event after the position that there was
        // when they were taken. From the feed, only where no other hub
        // writes the outbox (SQLite): its end is then the table's.
        let (scanned, complete) = match fed {
            Some(run) => {
                tracing::trace!(
                    position,
                    events = run.events.len(),
                    "Took the events after the position from the feed."
                );
                let complete = run.to_end && self.store.backend() == Backend::Sqlite;
                (run.events, complete)
            }
            None => {
                let read = self
                    .store
                    .events_after(name, position, scan_limit, SCAN_BYTES)
                    .await?;
                tracing::trace!(
                    position,
                    events = read.events.len(),
                    "Read the events after the position from the outbox table."
                );
                (read.events, read.complete)
            }
        };
        let Some(last_scanned) = scanned.last().map(|event| event.id) else {
            return Ok(false);
        };
        let filter = self.filter();
        let events: Vec<OutboxEvent> = scanned.into_iter().filter(|e| filter.matches(e)).collect();
        if let Some(oldest) = events.first() {
            let age = (Utc::now() - oldest.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics.lag(name, age);
        }
        let chunks: Vec<&[OutboxEvent]> = events.chunks(self.config.batch as usize).collect();
        if self.config.ordered {
            for (index, chunk) in chunks.iter().enumerate() {
                let mut finished = self.deliver(chunk, Progress::Outbox).await?;
                // Everything before the next chunk is finished now.
                let through = chunks
                    .get(index + 1)
                    .and_then(|next| next.first())
                    .map_or(last_scanned, |next| next.id - 1);
                // In order, events are marked done only while others of
                // their stream wait for a retry: with no marks before and
                // none made, there are none to forget.
                let unmarked = scan.no_marks && !finished.saved_some();
                // Caught up once the scan's last chunk is finished: nothing
                // else to deliver waits on this commit.
                let caught_up = complete && index + 1 == chunks.len();
                self.save(
                    &mut finished,
                    Progress::Outbox,
                    Some(through),
                    unmarked,
                    caught_up,
                )
                .await?;
            }
            if chunks.is_empty() {
                self.save(
                    &mut Finished::default(),
                    Progress::Outbox,
                    Some(last_scanned),
                    scan.no_marks,
                    complete,
                )
                .await?;
            }
        } else {
            let mut in_flight: FuturesUnordered<_> = chunks
                .iter()
                .map(|chunk| self.deliver(chunk, Progress::Outbox))
                .collect();
            while let Some(finished) = in_flight.next().await {
                self.save(&mut finished?, Progress::Outbox, None, false, false)
                    .await?;
            }
            self.save(
                &mut Finished::default(),
                Progress::Outbox,
                Some(last_scanned),
                false,
                complete,
            )
            .await?;
        }
        scan.position = Some(last_scanned);
        Ok(!complete)
    }

    /// Delivers the pending replays, when some may be queued (see
    /// [`ReplayCheck`]). `Ok(true)` when there were some.
    async fn replay(&self, scan: &mut Scan) -> Result<bool, StepError> {
        let generation = self.store.replay_generation();
        let now = Instant::now();
        if !scan.replays.due(generation, now) {
            return Ok(false);
        }
        let replays = self
            .store
            .pending_replays(self.plugin.name(), self.config.batch, SCAN_BYTES)
            .await?;
        if replays.is_empty() {
            scan.replays.found_none(generation, now);
            return Ok(false);
        }
        scan.replays.found_some();
        let mut finished = self.deliver(&replays, Progress::Replay).await?;
        self.save(&mut finished, Progress::Replay, None, false, false)
            .await?;
        Ok(true)
    }

    /// Commits what a stream finished and has not committed yet, in one
    /// transaction (through the store's group commit): its dead letters,
    /// then per-event marks (or, for replays, the end of the replay), or the
    /// new position when everything up to `through` is finished. `unmarked`:
    /// the caller knows no event of this output is marked done, so moving
    /// the position has none to forget (one statement fewer). `caught_up`:
    /// the worker has nothing more to deliver after this (the scan was the
    /// end of the outbox), so the commit may wait a little for another
    /// write to share it ([`crate::store::WriteJob::patient`]); while a
    /// backlog is worked through, every step commits at once.
    async fn save(
        &self,
        finished: &mut Finished,
        progress: Progress,
        through: Option<i64>,
        unmarked: bool,
        caught_up: bool,
    ) -> Result<(), StoreError> {
        let name = self.plugin.name();
        let job = ProgressJob {
            output: name.to_owned(),
            dead: finished.unsaved_dead().to_vec(),
            ids: finished.unsaved_ids(),
            progress,
            through,
            unmarked,
            caught_up,
            fence: self.fence.clone(),
        };
        self.store.write(job).await?;
        self.metrics
            .delivered(name, finished.acked.len() - finished.saved_acked);
        for _ in finished.unsaved_dead() {
            self.metrics.dead_lettered(name, Stage::Output);
        }
        finished.mark_saved();
        Ok(())
    }

    /// Sends `events` until each is acked or dead-lettered. Each round is
    /// one call through the call path (health, breaker, retries of the
    /// stream, deadline, metrics): the acks that arrive are kept even when
    /// the stream breaks, and only what is unanswered is sent again.
    async fn deliver(
        &self,
        events: &[OutboxEvent],
        progress: Progress,
    ) -> Result<Finished, StepError> {
        let name = self.plugin.name();
        let policy = self.plugin.retry_config().clone();
        let max_attempts = policy.max_attempts.max(1);
        let mut finished = Finished::default();
        // Event index -> (nacks so far, time of the first failure).
        let mut attempts: BTreeMap<usize, (u32, chrono::DateTime<Utc>)> = BTreeMap::new();
        let mut pending: Vec<usize> = (0..events.len()).collect();
        let mut call_failures = 0_u32;
        while !pending.is_empty() {
            // While events wait (retries, a plugin that is down) the lag grows.
            if let Some(oldest) = pending.iter().map(|&index| events[index].created_at).min() {
                let age = (Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0;
                self.metrics.lag(name, age);
            }
            let batch: Arc<Vec<RecordEvent>> = Arc::new(
                pending
                    .iter()
                    .map(|&index| {
                        let event = &events[index];
                        RecordEvent {
                            delivery_id: u64::try_from(event.id).unwrap_or_default(),
                            kind: event.kind,
                            record: event.record.clone(),
                            attempt: attempts.get(&index).map_or(1, |(count, _)| count + 1),
                        }
                    })
                    .collect(),
            );
            let acks: Arc<Mutex<Vec<Option<EventAck>>>> =
                Arc::new(Mutex::new(vec![None; batch.len()]));
            let result = Call::new(&self.plugin, Rpc::Events)
                .cancel(&self.cancel)
                .run(|running| send_unanswered(running, batch.clone(), acks.clone()))
                .await;
            let acks = match Arc::try_unwrap(acks) {
                Ok(acks) => acks.into_inner(),
                Err(shared) => Ok(lock(&shared).clone()),
            }
            .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut delay: Option<Duration> = None;
            match result {
                Ok(()) => call_failures = 0,
                Err(GiveUp::Cancelled) => return Err(StepError::Cancelled),
                Err(reason) => {
                    // Never dead-lettered for it: a plugin that is down or
                    // failing its stream holds the events back.
                    let unanswered = acks.iter().filter(|ack| ack.is_none()).count();
                    tracing::warn!(error = %reason, unanswered, "The output could not take its events; holding them back.");
                    let wait =
                        retry::delay(&policy, call_failures.min(16) + 1, reason.retry_after());
                    delay = Some(wait);
                    call_failures += 1;
                }
            }
            let mut still_pending = Vec::new();
            for (&index, ack) in pending.iter().zip(acks) {
                let event = &events[index];
                match ack {
                    Some(ack) => match ack.failure {
                        None => finished.acked.push(event.id),
                        Some(failure) => {
                            let entry = attempts.entry(index).or_insert((0, Utc::now()));
                            entry.0 += 1;
                            if failure.retryable && entry.0 < max_attempts {
                                let wait = retry::delay(&policy, entry.0, failure.retry_after);
                                delay = Some(delay.map_or(wait, |known| known.max(wait)));
                                still_pending.push(index);
                            } else {
                                tracing::warn!(event = event.id, record = %event.record.id, attempts = entry.0, error = %failure.message, "The output refused an event; moving it to the dead letters.");
                                finished.dead.push(NewDeadLetter {
                                    plugin: name.to_owned(),
                                    stage: Stage::Output,
                                    record: Record::clone(&event.record),
                                    event: Some((event.id, event.kind)),
                                    error: failure.message,
                                    attempts: entry.0,
                                    first_failed_at: entry.1,
                                });
                            }
                        }
                    },
                    None => still_pending.push(index),
                }
            }
            // Keep outbox order for what is left.
            still_pending.sort_unstable();
            pending = still_pending;
            // Before waiting for what is left, make what is finished durable,
            // so a crash during the wait does not deliver it again.
            if !pending.is_empty() && finished.has_unsaved() {
                self.save(&mut finished, progress, None, false, false)
                    .await?;
            }
            if !pending.is_empty()
                && let Some(delay) = delay
                && !retry::sleep(delay, Some(&self.cancel)).await
            {
                return Err(StepError::Cancelled);
            }
        }
        Ok(finished)
    }
}

/// One attempt of a round: sends the events of `batch` that `acks` does not
/// answer yet on one `HandleEvent` stream, filling `acks` as answers arrive.
async fn send_unanswered(
    running: RunningPlugin,
    batch: Arc<Vec<RecordEvent>>,
    acks: Arc<Mutex<Vec<Option<EventAck>>>>,
) -> Result<(), AttemptError> {
    let unanswered: Vec<usize> = lock(&acks)
        .iter()
        .enumerate()
        .filter_map(|(index, ack)| ack.is_none().then_some(index))
        .collect();
    let events: Vec<&RecordEvent> = unanswered.iter().map(|&index| &batch[index]).collect();
    running
        .roles
        .events_each(&events, |position, ack| {
            if let Some(&index) = unanswered.get(position) {
                lock(&acks)[index] = Some(ack);
            }
        })
        .await?;
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A write job: an output's progress after a stream (see
/// [`OutputWorker::save`]).
struct ProgressJob {
    output: String,
    dead: Vec<NewDeadLetter>,
    ids: Vec<i64>,
    progress: Progress,
    through: Option<i64>,
    /// No event of the output is marked done: moving the position leaves
    /// no marks to forget.
    unmarked: bool,
    /// The output has nothing more to deliver until new events commit.
    caught_up: bool,
    fence: Option<Fence>,
}

impl WriteJob for ProgressJob {
    type Output = ();

    /// Nobody outside the hub waits on an output's progress, and the
    /// worker delivers nothing more until it commits, so a crash redelivers
    /// no more than before: once the output has caught up it may as well
    /// share the next write's commit. While it works through a backlog it
    /// does not wait: each of its steps would wait out the patience.
    fn patient(&self) -> bool {
        self.caught_up
    }

    fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(fence) = &self.fence {
                tx.check_fence(fence).await?;
            }
            for letter in &self.dead {
                tx.add_dead_letter(letter).await?;
            }
            match (self.progress, self.through) {
                (Progress::Replay, _) => {
                    for &id in &self.ids {
                        tx.finish_replay(&self.output, id).await?;
                    }
                }
                (Progress::Outbox, Some(position)) if self.unmarked => {
                    tx.move_position(&self.output, position).await?;
                }
                (Progress::Outbox, Some(position)) => {
                    tx.set_position(&self.output, position).await?;
                }
                (Progress::Outbox, None) => tx.mark_done(&self.output, &self.ids).await?,
            }
            Ok(())
        })
    }

    fn weight(&self) -> usize {
        self.ids.len() / 16 + self.dead.len()
    }
}

/// Why a delivery step stopped.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("the hub is shutting down")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_read_until_a_read_finds_none_then_only_after_a_new_one_or_a_while() {
        let start = Instant::now();
        let mut check = ReplayCheck::default();
        assert!(check.due(0, start), "the first step reads them");
        check.found_some();
        assert!(check.due(0, start), "a read that found some reads again");
        check.found_none(0, start);
        assert!(!check.due(0, start + Duration::from_millis(10)));
        assert!(
            check.due(1, start + Duration::from_millis(10)),
            "a replay committed on this hub since"
        );
        assert!(
            check.due(0, start + REPLAY_RECHECK),
            "one another hub may have queued"
        );
        check.found_none(1, start + REPLAY_RECHECK);
        assert!(!check.due(1, start + REPLAY_RECHECK + Duration::from_millis(10)));
    }
}
