//! Group commit: one writer task per [`Store`] runs every queued write in one
//! transaction, commits once, and only then answers each waiter.
//!
//! The hot write paths (a webhook's inbox row before its 202, a poll's
//! records with their checkpoint, an output's acknowledged progress) each
//! need their own write to be durable before they answer anyone, and a
//! durable commit costs a disk flush. Committing each of them on its own
//! caps the hub at one flush per write; here a [`WriteJob`] handed to
//! [`Store::write`] (or [`Store::submit`]) is queued for the writer task,
//! which takes everything queued at that moment (up to [`MAX_JOBS`] jobs
//! and [`MAX_WEIGHT`] weight), runs the jobs in arrival order in one
//! transaction and commits once. Before it commits, the jobs queued while
//! its statements ran join the same transaction (once per batch, as many
//! as there is room for): they share its flush instead of waiting for the
//! next one. While one commit waits for the disk the
//! next batch queues up, so the flushes per second stay bounded while the
//! writes per second grow with the load. A job that arrives alone is
//! committed alone, at once, unless it is patient ([`WriteJob::patient`]):
//! then it waits up to [`PATIENCE`] for another write to share its commit.
//! Pacing: while light writes keep coming, a transaction begins at most
//! once per [`PACE`]. A batch lighter than [`PACE_WEIGHT`] that would begin
//! sooner after the previous one began takes the jobs that arrive until
//! then (it begins at once when it reaches that weight or [`MAX_JOBS`]).
//! Every transaction costs the same round trips and flush however few rows
//! it holds, and each of its commits wakes the output workers and the
//! plugins behind them, so at a few thousand webhooks a second committing
//! as fast as the disk allowed spent a third of the hub's CPU on
//! transactions of a few rows. A write that comes after a quiet spell
//! (longer than [`PACE`] since the last one began) begins at once, as does
//! a batch of [`PACE_WEIGHT`] rows or more (a poll's 500 records).
//! The cost is up to [`PACE`] more before a light write is acknowledged.
//! On SQLite the writer task runs on a thread of its own
//! ([`WRITER_THREAD`]), where the wake-up at the end of each statement's
//! round trip to sqlx's worker thread does not queue behind the hub's other
//! tasks; on PostgreSQL it runs on the hub's runtime.
//!
//! Guarantees:
//! * A job's result is sent only after the transaction holding it has
//!   committed; a caller that acknowledges on `Ok` never acknowledges
//!   anything that is not durable.
//! * A failure to begin or to commit fails every job of the batch (none of
//!   them is known to be durable, so none is acknowledged).
//! * A job whose own statements fail (or that panics) gets its error; the
//!   transaction is rolled back and the other jobs of the batch run again
//!   in a new one, so one bad job cannot fail its neighbours. A job must
//!   therefore be re-runnable: [`WriteJob::run`] takes `&self` and writes
//!   only through the transaction it is given.
//! * Batches commit one after another, in the order their jobs were queued,
//!   and the writer takes the store's writer lock like [`Store::begin`], so
//!   outbox ids still commit in increasing order. Inside a batch the jobs
//!   of each type run in the order they were queued.
//! * A job type that sets [`WriteJob::GROUPED`] has all the jobs of its type
//!   in a batch run through one [`WriteJob::run_group`] call, which shares
//!   statements between them (one multi-row insert for a group's webhook
//!   deliveries instead of one statement each: on SQLite every statement is
//!   a round trip to sqlx's worker thread). The writer gathers them at the
//!   first of them, however other jobs were queued in between (webhook
//!   accepts and handled deliveries arrive interleaved: at 10,000 webhooks a
//!   second, about 3 runs of statements per commit as they came, 1.7
//!   gathered), so jobs of different types may run in another order than
//!   queued, inside the one transaction that commits them all. A
//!   caller whose write of one type must follow its write of another waits
//!   for the first's result before queuing the second ([`Store::write`]
//!   does). When a group fails, the batch runs again without groups, so the
//!   failing job is found and the others still commit.

use std::any::{Any, TypeId};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Store, StoreError, StoreTx};

/// The most jobs committed in one transaction.
pub const MAX_JOBS: usize = 1024;
/// The most weight (records, roughly) committed in one transaction.
pub const MAX_WEIGHT: usize = 8192;
/// Jobs that may wait for the writer before [`Store::submit`] waits too.
const QUEUE_DEPTH: usize = 8192;
/// The name of a SQLite store's writer thread (in `top -H` and profiles).
pub const WRITER_THREAD: &str = "sy-store-writer";
/// The longest a batch of patient jobs ([`WriteJob::patient`]) waits for
/// another write to join it.
pub const PATIENCE: Duration = Duration::from_millis(5);
/// The least time between the beginnings of two transactions while light
/// writes keep coming (see "Pacing" above).
pub const PACE: Duration = Duration::from_millis(2);
/// A batch of at least this weight begins without waiting for [`PACE`].
pub const PACE_WEIGHT: usize = 256;

/// A write to run inside the writer task's transaction.
///
/// Implement it for a small struct that owns what the write needs. `run`
/// may be called more than once (when another job of its batch failed, the
/// batch runs again without that job), each time in a fresh transaction;
/// only the output of the run that committed is returned.
///
/// ```
/// use futures_util::future::BoxFuture;
/// use switchyard_hub::store::{Store, StoreError, StoreTx, WriteJob};
///
/// struct SaveCheckpoint {
///     plugin: String,
///     checkpoint: Vec<u8>,
/// }
///
/// impl WriteJob for SaveCheckpoint {
///     type Output = ();
///     fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<(), StoreError>> {
///         Box::pin(tx.save_checkpoint(&self.plugin, &self.checkpoint))
///     }
/// }
///
/// # async fn example(store: Store) -> Result<(), StoreError> {
/// store
///     .write(SaveCheckpoint { plugin: "gen".into(), checkpoint: b"42".to_vec() })
///     .await?;
/// # Ok(())
/// # }
/// ```
pub trait WriteJob: Send + Sync + 'static {
    /// What a committed run gives back to the caller.
    type Output: Send + 'static;

    /// Runs the job's statements in `tx` (without committing it).
    fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<Self::Output, StoreError>>;

    /// Its share of a batch (about the rows it writes; 1 by default).
    fn weight(&self) -> usize {
        1
    }

    /// Whether this job, reaching the writer with nothing but other patient
    /// jobs queued, may wait up to [`PATIENCE`] for another write to share
    /// its commit (false by default: it commits at once). For a write
    /// nobody outside the hub waits on, whose writer has nothing else to do
    /// until it commits: an output's progress once the output has caught
    /// up, a webhook delivery's records when no other delivery waits. At a
    /// few hundred webhooks a second each of those otherwise took a
    /// transaction (and a disk flush) of its own. A job that something else
    /// queues up behind (a backlog being worked through) must not be
    /// patient: each step of the backlog would wait out the patience.
    fn patient(&self) -> bool {
        false
    }

    /// Whether the jobs of this type in one batch run together, through
    /// [`WriteJob::run_group`] (false by default: each through
    /// [`WriteJob::run`]). They are gathered at the first of them, ahead of
    /// jobs of other types queued in between: a job of a grouped type must
    /// not depend on the effect of a job of another type queued before it
    /// but not yet committed.
    const GROUPED: bool = false;

    /// Runs `jobs`, queued in this order, in `tx` with the same effect
    /// as running each in turn, and returns their outputs in order. Used
    /// only when [`WriteJob::GROUPED`] is set; the default runs them one by
    /// one. A failure fails the whole group: the writer then runs the jobs
    /// one by one to find the failing one.
    fn run_group<'a>(
        jobs: &'a [&'a Self],
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<Vec<Self::Output>, StoreError>>
    where
        Self: Sized,
    {
        Box::pin(async move {
            let mut outputs = Vec::with_capacity(jobs.len());
            for job in jobs {
                outputs.push(job.run(tx).await?);
            }
            Ok(outputs)
        })
    }
}

/// A job in the queue, with its type erased.
trait Queued: Send + Any {
    fn run<'a>(&'a mut self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<(), StoreError>>;
    fn weight(&self) -> usize;
    fn patient(&self) -> bool;
    fn finish(self: Box<Self>, result: Result<(), StoreError>);
    /// The job's type, if the writer gathers the jobs of its type into one
    /// group ([`WriteJob::GROUPED`]).
    fn grouped_type(&self) -> Option<TypeId>;
    /// How many of `followers` (the jobs queued right after this one) run
    /// in one group with it: 0 unless its type is grouped.
    fn group_len(&self, followers: &[Box<dyn Queued>]) -> usize;
    /// Runs this job and `followers` (as many as [`Queued::group_len`]
    /// said) through one [`WriteJob::run_group`].
    fn run_group<'a>(
        &'a mut self,
        followers: &'a mut [Box<dyn Queued>],
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

struct Entry<J: WriteJob> {
    job: J,
    output: Option<J::Output>,
    reply: oneshot::Sender<Result<J::Output, StoreError>>,
}

impl<J: WriteJob> Queued for Entry<J> {
    fn run<'a>(&'a mut self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.output = Some(self.job.run(tx).await?);
            Ok(())
        })
    }

    fn weight(&self) -> usize {
        self.job.weight().max(1)
    }

    fn patient(&self) -> bool {
        self.job.patient()
    }

    fn finish(self: Box<Self>, result: Result<(), StoreError>) {
        let Entry { output, reply, .. } = *self;
        let result = result.and_then(|()| output.ok_or(StoreError::WriterGone));
        // The waiter may have gone away (a client that hung up): the write
        // stands, there is just nobody left to tell.
        let _ = reply.send(result);
    }

    fn grouped_type(&self) -> Option<TypeId> {
        J::GROUPED.then(TypeId::of::<J>)
    }

    fn group_len(&self, followers: &[Box<dyn Queued>]) -> usize {
        if !J::GROUPED {
            return 0;
        }
        followers
            .iter()
            .take_while(|follower| (&***follower as &dyn Any).is::<Entry<J>>())
            .count()
    }

    fn run_group<'a>(
        &'a mut self,
        followers: &'a mut [Box<dyn Queued>],
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let outputs = {
                let mut jobs: Vec<&J> = Vec::with_capacity(followers.len() + 1);
                jobs.push(&self.job);
                for follower in followers.iter() {
                    jobs.push(&entry_of::<J>(&**follower)?.job);
                }
                J::run_group(&jobs, tx).await?
            };
            if outputs.len() != followers.len() + 1 {
                return Err(StoreError::GroupMismatch(
                    "the group gave another number of results than it had jobs",
                ));
            }
            let mut outputs = outputs.into_iter();
            self.output = outputs.next();
            for (follower, output) in followers.iter_mut().zip(outputs) {
                let follower: &mut dyn Any = &mut **follower;
                if let Some(entry) = follower.downcast_mut::<Entry<J>>() {
                    entry.output = Some(output);
                }
            }
            Ok(())
        })
    }
}

/// `queued` as the entry of a `J` job (which [`Queued::group_len`] checked
/// it is).
fn entry_of<J: WriteJob>(queued: &dyn Queued) -> Result<&Entry<J>, StoreError> {
    (queued as &dyn Any)
        .downcast_ref::<Entry<J>>()
        .ok_or(StoreError::GroupMismatch(
            "a job of another type in the group",
        ))
}

/// The sending side of the writer task's queue (one per store).
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Queued>>,
}

impl std::fmt::Debug for dyn Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued")
    }
}

impl GroupCommit {
    /// Starts the writer task for `store` (which must not hold a
    /// `GroupCommit` itself, or the task would keep itself alive).
    ///
    /// On SQLite the task runs on a thread of its own ([`WRITER_THREAD`],
    /// a single-threaded runtime), on PostgreSQL on the caller's runtime.
    /// Every statement of a SQLite transaction is a round trip to sqlx's
    /// worker thread, and the writer's task is woken from that thread at
    /// the end of each. On the hub's shared runtime that wake-up waits in
    /// the runtime's global queue behind the tasks the workers are busy
    /// with (at 10,000 webhooks a second, a request's tasks), once per
    /// statement, while every write of the hub waits for the writer. On
    /// its own thread the writer is polled as soon as it is woken. A
    /// PostgreSQL connection's socket belongs to the runtime that opened
    /// it, and the writer shares its pool with the readers, so there the
    /// task stays on the hub's runtime.
    pub(crate) fn start(store: Store) -> std::io::Result<GroupCommit> {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        match store.backend {
            Backend::Sqlite => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                // The span of whoever opened the store (the hub's, a
                // test's) stays the writer's.
                let span = tracing::Span::current();
                std::thread::Builder::new()
                    .name(WRITER_THREAD.to_owned())
                    .spawn(move || {
                        let _entered = span.entered();
                        // Returns once every sender is gone; then the
                        // runtime and anything left on it are dropped.
                        runtime.block_on(writer(store, jobs));
                    })?;
            }
            Backend::Postgres => {
                tokio::spawn(writer(store, jobs));
            }
        }
        Ok(GroupCommit { queue })
    }

    /// A test of whether any handle of this queue is left (the store's
    /// health probe stops when none is).
    pub(crate) fn liveness(&self) -> impl Fn() -> bool + Send + 'static {
        let weak = self.queue.downgrade();
        move || weak.upgrade().is_some()
    }
}

/// A job queued with [`Store::submit`]: await [`Pending::wait`] for its
/// committed result.
#[derive(Debug)]
#[must_use = "a submitted write is acknowledged only through `wait`"]
pub struct Pending<T> {
    reply: oneshot::Receiver<Result<T, StoreError>>,
}

impl<T> Pending<T> {
    /// Waits until the job's transaction committed (its output) or failed.
    pub async fn wait(self) -> Result<T, StoreError> {
        self.reply.await.unwrap_or(Err(StoreError::WriterGone))
    }
}

impl Store {
    /// Queues `job` for the writer task and returns at once (after waiting
    /// for room in the queue); the job commits with whatever else is queued.
    /// Jobs of one type submitted one after another by one caller commit in
    /// that order (a job of a grouped type may run ahead of jobs of other
    /// types queued before it in the same transaction: see
    /// [`WriteJob::GROUPED`]).
    pub async fn submit<J: WriteJob>(&self, job: J) -> Result<Pending<J::Output>, StoreError> {
        let Some(group) = &self.group else {
            return Err(StoreError::WriterGone);
        };
        let (reply, receiver) = oneshot::channel();
        let entry: Box<dyn Queued> = Box::new(Entry {
            job,
            output: None,
            reply,
        });
        group
            .queue
            .send(entry)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Pending { reply: receiver })
    }

    /// Runs `job` in the next group commit and returns its output once that
    /// transaction committed.
    pub async fn write<J: WriteJob>(&self, job: J) -> Result<J::Output, StoreError> {
        self.submit(job).await?.wait().await
    }
}

/// The writer task: batches until every sender is gone.
async fn writer(store: Store, mut jobs: mpsc::Receiver<Box<dyn Queued>>) {
    let metrics = super::metrics::global();
    // When the last transaction began.
    let mut last_began: Option<tokio::time::Instant> = None;
    while let Some(first) = jobs.recv().await {
        let patience_ends = tokio::time::Instant::now() + PATIENCE;
        let mut batch = Batch::new(first);
        // A batch of patient jobs alone waits a little for company.
        let waited = gather_until(&mut batch, &mut jobs, patience_ends, |batch| {
            batch.jobs.iter().all(|job| job.patient())
        })
        .await;
        if let Some(joined) = waited {
            metrics.patient_wait(joined);
        }
        // A light batch keeps the pace.
        if let Some(last_began) = last_began {
            let pace_ends = last_began + store.commit_pace();
            gather_until(&mut batch, &mut jobs, pace_ends, |batch| {
                batch.weight < PACE_WEIGHT
            })
            .await;
        }
        last_began = Some(tokio::time::Instant::now());
        let started = Instant::now();
        let ran = run_batch(&store, batch, &mut jobs).await;
        metrics.batch(ran.jobs, ran.weight, ran.runs, started.elapsed());
    }
}

/// Adds to `batch` the jobs queued now and, while it has room and
/// `waits(batch)` holds, those that arrive until `until` (returning at
/// once if `until` has passed). `None`: it did not wait; otherwise whether
/// any job arrived while it waited.
async fn gather_until(
    batch: &mut Batch,
    jobs: &mut mpsc::Receiver<Box<dyn Queued>>,
    until: tokio::time::Instant,
    waits: impl Fn(&Batch) -> bool,
) -> Option<bool> {
    let mut arrived = None;
    loop {
        batch.take_queued(jobs);
        if !batch.has_room() || !waits(batch) {
            return arrived;
        }
        match tokio::time::timeout_at(until, jobs.recv()).await {
            Ok(Some(job)) => {
                arrived = Some(true);
                batch.push(job);
            }
            // Time is up, or every sender is gone.
            Ok(None) | Err(_) => return Some(arrived.unwrap_or(false)),
        }
    }
}

/// The jobs of one transaction, and their weight.
struct Batch {
    jobs: Vec<Box<dyn Queued>>,
    weight: usize,
}

impl Batch {
    /// A batch of `first` alone.
    fn new(first: Box<dyn Queued>) -> Self {
        Batch {
            weight: first.weight(),
            jobs: vec![first],
        }
    }

    /// Whether the batch may take another job.
    fn has_room(&self) -> bool {
        self.jobs.len() < MAX_JOBS && self.weight < MAX_WEIGHT
    }

    /// Adds `job` at the end.
    fn push(&mut self, job: Box<dyn Queued>) {
        self.weight += job.weight();
        self.jobs.push(job);
    }

    /// Adds what is queued now, while there is room; returns how many.
    fn take_queued(&mut self, queue: &mut mpsc::Receiver<Box<dyn Queued>>) -> usize {
        let before = self.jobs.len();
        while self.has_room() {
            match queue.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => break,
            }
        }
        self.jobs.len() - before
    }

    /// What the batch came to: `runs` is its transaction's runs if it
    /// committed, `None` if it failed.
    fn ran(&self, runs: Option<usize>) -> Ran {
        Ran {
            jobs: self.jobs.len(),
            weight: self.weight,
            runs,
        }
    }
}

/// What one batch came to: its jobs and weight (with those it took while
/// its transaction was open), and, if it committed, the runs of its
/// transaction (the groups and lone jobs, each with statements of its own).
struct Ran {
    jobs: usize,
    weight: usize,
    runs: Option<usize>,
}

/// Runs `batch` in one transaction and answers every job. Once every job
/// has run, and before the commit, the jobs queued meanwhile (as many as
/// there is room for) join it, once: they share this commit's flush
/// instead of waiting for the next transaction, which would begin only
/// after this one committed.
async fn run_batch(
    store: &Store,
    mut batch: Batch,
    queue: &mut mpsc::Receiver<Box<dyn Queued>>,
) -> Ran {
    batch.jobs = gather_groups(std::mem::take(&mut batch.jobs));
    // Until a group fails: then every job runs on its own.
    let mut grouping = true;
    // Whether the jobs queued while the transaction ran were taken.
    let mut topped_up = false;
    loop {
        if batch.jobs.is_empty() {
            return batch.ran(Some(0));
        }
        // While the database is down nothing waits for a connection: every
        // write fails at once (the health probe says when to try again).
        let begun = match store.health.outage() {
            Some(outage) => Err(outage.refusal()),
            None => tokio::select! {
                begun = store.begin() => begun,
                () = store.health.went_down() => Err(store
                    .health
                    .outage()
                    .map_or_else(|| StoreError::Unavailable("down".to_owned()), |outage| outage.refusal())),
            },
        };
        let mut tx = match begun {
            Ok(tx) => tx,
            Err(err) => {
                store.health.report(&err);
                let failed = batch.ran(None);
                fail_all(batch.jobs, err);
                return failed;
            }
        };
        // The jobs that ran so far in this transaction, and its runs.
        let mut ran_jobs = 0;
        let mut runs = 0;
        let failed = loop {
            match run_jobs(store, &mut batch.jobs[ran_jobs..], &mut tx, grouping).await {
                Ok(more) => runs += more,
                Err(mut failed) => {
                    failed.at += ran_jobs;
                    break Some(failed);
                }
            }
            ran_jobs = batch.jobs.len();
            if topped_up {
                break None;
            }
            topped_up = true;
            if batch.take_queued(queue) == 0 {
                break None;
            }
            let arrived = batch.jobs.split_off(ran_jobs);
            batch.jobs.extend(gather_groups(arrived));
        };
        match failed {
            Some(Failed { grouped, error, .. }) if grouped > 0 => {
                // Which job of the group failed is not known: run the batch
                // again job by job, which finds it.
                if let Err(err) = tx.rollback().await {
                    tracing::warn!(error = %err, "Cannot roll back a failed group commit; the connection is dropped.");
                }
                tracing::debug!(error = %error, jobs = grouped + 1, "A group of writes failed; running its batch again one job at a time.");
                grouping = false;
            }
            Some(Failed { at, error, .. }) => {
                if let Err(err) = tx.rollback().await {
                    tracing::warn!(error = %err, "Cannot roll back a failed group commit; the connection is dropped.");
                }
                tracing::warn!(error = %error, others = batch.jobs.len() - 1, "A write failed; running the rest of its group again without it.");
                let job = batch.jobs.remove(at);
                batch.weight -= job.weight();
                job.finish(Err(error));
            }
            None => {
                return match tx.commit().await {
                    Ok(()) => {
                        let committed = batch.ran(Some(runs));
                        for job in batch.jobs {
                            job.finish(Ok(()));
                        }
                        committed
                    }
                    Err(err) => {
                        store.health.report(&err);
                        let failed = batch.ran(None);
                        fail_all(batch.jobs, err);
                        failed
                    }
                };
            }
        }
    }
}

/// Where [`run_jobs`] stopped: the job at `at` failed (with the `grouped`
/// jobs after it, when it ran as a group), and why.
struct Failed {
    at: usize,
    grouped: usize,
    error: StoreError,
}

/// Runs `jobs` in `tx`, in order, each group of a grouped type through one
/// run while `grouping`; returns how many runs that took, or where it
/// failed (the failure reported to the store's health).
async fn run_jobs(
    store: &Store,
    jobs: &mut [Box<dyn Queued>],
    tx: &mut StoreTx,
    grouping: bool,
) -> Result<usize, Failed> {
    let mut index = 0;
    let mut runs = 0;
    while let Some((job, followers)) = jobs.get_mut(index..).and_then(<[_]>::split_first_mut) {
        let grouped = if grouping {
            job.group_len(followers)
        } else {
            0
        };
        let run = if grouped == 0 {
            job.run(tx)
        } else {
            job.run_group(&mut followers[..grouped], tx)
        };
        let error = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(())) => {
                index += 1 + grouped;
                runs += 1;
                continue;
            }
            Ok(Err(err)) => err,
            Err(_) => StoreError::JobPanicked,
        };
        store.health.report(&error);
        return Err(Failed {
            at: index,
            grouped,
            error,
        });
    }
    Ok(runs)
}

/// `batch` with each job of a grouped type moved up to the first job of its
/// type, so that every grouped type runs as one group however the types
/// were interleaved in the queue; the jobs of each type keep their order,
/// and jobs of types that are not grouped keep their places among
/// themselves.
fn gather_groups(batch: Vec<Box<dyn Queued>>) -> Vec<Box<dyn Queued>> {
    let mut firsts: Vec<(TypeId, usize)> = Vec::new();
    let mut keyed: Vec<(usize, Box<dyn Queued>)> = batch
        .into_iter()
        .enumerate()
        .map(|(index, job)| {
            let key = match job.grouped_type() {
                Some(kind) => match firsts.iter().find(|(first, _)| *first == kind) {
                    Some(&(_, first)) => first,
                    None => {
                        firsts.push((kind, index));
                        index
                    }
                },
                None => index,
            };
            (key, job)
        })
        .collect();
    // Stable: equal keys (one grouped type) keep their queued order.
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, job)| job).collect()
}

/// Gives every job of `batch` the error `err` (none of them committed).
fn fail_all(batch: Vec<Box<dyn Queued>>, err: StoreError) {
    if matches!(err, StoreError::Unavailable(_)) {
        // The outage itself is logged once, by the store's health.
        tracing::debug!(error = %err, jobs = batch.len(), "Writes refused while the database is unavailable.");
    } else {
        tracing::error!(error = %err, jobs = batch.len(), "A group commit failed; none of its writes is acknowledged.");
    }
    let shared = Arc::new(err);
    for job in batch {
        job.finish(Err(StoreError::Batch(shared.clone())));
    }
}
