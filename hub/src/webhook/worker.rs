//! The inbox worker of one webhook plugin: claims pending deliveries in
//! inbox (arrival) order and hands up to `concurrency` of them
//! (`[plugins.NAME.webhook]`) at a time to `HandleWebhook`, each under the
//! plugin's retry policy (`[plugins.NAME.retry]`, through
//! [`crate::retry::call`]). A delivery's records are committed in the
//! transaction that marks it done. A delivery the plugin rejects
//! (INVALID_ARGUMENT), or that fails past `max_attempts`, becomes a dead
//! letter (stage `webhook`) in the transaction that marks it dead.
//!
//! Claims: a read of the inbox takes up to [`BATCH`] pending deliveries
//! ahead. Once a read has seen every pending delivery, the ones this hub
//! commits next come from the inbox feed (`store/inbox_feed.rs`, SQLite
//! only) in id order, without reading the table again; a wake-up (a
//! replay, another hub's delivery, the idle poll), a release, or a
//! delivery the feed could not hold makes the worker read again.
//!
//! Order: one task per delivery in hand, so a delivery's own attempts are
//! sequential and one delivery being retried does not hold back the others;
//! deliveries are claimed strictly in inbox order, and with `concurrency = 1`
//! each one is finished (done or dead, durably) before the next is claimed,
//! so the plugin sees them, and the store finishes them, in inbox order.
//! With more, they may finish out of order.
//!
//! While the plugin is stopped, restarting or not serving, deliveries wait
//! in the inbox instead of being dead-lettered.
//! A hub crash at any point leaves the delivery pending, so it is handed to
//! the plugin again after the restart (at least once; records are upserted
//! by key, so a second pass does not duplicate them).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::Endpoint;
use crate::domain::Record;
use crate::pipeline::{ChainOutput, Ingest, write_prepared_many};
use crate::retry::{self, AttemptFailure, GiveUp, Rpc};
use crate::store::inbox_feed::{Fed, InboxSubscription, entry_bytes};
use crate::store::{
    Fence, InboxEntry, NewDeadLetter, Stage, Store, StoreError, StoreTx, Upserted, WriteJob,
};

/// How many pending deliveries are read ahead per query (beyond those in
/// hand), and the most the queue takes from the inbox feed.
const BATCH: u32 = 32;
/// The most body and header bytes one read ahead takes past its first
/// delivery: with large bodies (`max_body` allows 64 MiB) the queue holds a
/// few, not [`BATCH`].
const READ_AHEAD_BYTES: usize = 64 * 1024 * 1024;
/// The body and header bytes in hand past which no further delivery is
/// claimed until some finish (one delivery is always claimed, however
/// large): with `concurrency` at its default and large bodies, the bodies
/// in hand stay within what 32 of `max_body`'s default (1 MiB) held.
const IN_HAND_BYTES: usize = 32 * 1024 * 1024;
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

/// How the task handling one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// Its records are stored and it is marked done.
    Done,
    /// It is dead-lettered.
    Dead,
    /// It is still pending (a store error): it is claimed again, first.
    Released,
    /// The worker was stopped; it is still pending.
    Stopped,
}

/// The worker's claims: deliveries read ahead in inbox order, and the ones
/// in hand (a task each).
struct Claims {
    /// The most deliveries in hand at once.
    concurrency: usize,
    /// Pending deliveries read from the inbox, in inbox order, not in hand.
    queue: VecDeque<InboxEntry>,
    /// The inbox ids in hand, and each one's body and header bytes.
    in_hand: HashMap<i64, usize>,
    /// [`IN_HAND_BYTES`], but for tests.
    in_hand_budget: usize,
    /// The last read found nothing new: read again only after a wake-up,
    /// the idle poll, or a release. While it holds, the deliveries this hub
    /// commits come from the inbox feed, in id order, without a read.
    drained: bool,
    /// The highest inbox id read or fed: every pending delivery at or below
    /// it (but a requeued one, which wakes the worker) is in the queue, in
    /// hand, or was there.
    seen: i64,
    /// How many times the inbox table was read.
    reads: u64,
    /// [`READ_AHEAD_BYTES`], but for tests.
    read_ahead_bytes: usize,
}

impl Claims {
    fn new(concurrency: usize) -> Self {
        Claims {
            concurrency: concurrency.max(1),
            queue: VecDeque::new(),
            in_hand: HashMap::new(),
            in_hand_budget: IN_HAND_BYTES,
            drained: false,
            seen: 0,
            reads: 0,
            read_ahead_bytes: READ_AHEAD_BYTES,
        }
    }

    /// Whether another delivery may be claimed: fewer than `concurrency`
    /// in hand, and their bytes below [`IN_HAND_BYTES`] (or none in hand).
    fn has_room(&self) -> bool {
        self.in_hand.len() < self.concurrency
            && (self.in_hand.is_empty() || self.bytes_in_hand() < self.in_hand_budget)
    }

    /// The body and header bytes of the deliveries in hand.
    fn bytes_in_hand(&self) -> usize {
        self.in_hand.values().sum()
    }

    /// Takes the next pending delivery in inbox order into hand, reading
    /// ahead from the store when the queue is empty. `Ok(None)`: nothing to
    /// claim now.
    async fn claim(
        &mut self,
        store: &Store,
        plugin: &str,
    ) -> Result<Option<InboxEntry>, StoreError> {
        if self.queue.is_empty() && !self.drained {
            // A delivery in hand is still pending until its task ends (its
            // commit happens before), so the read skips those: they take
            // none of its count or bytes.
            let in_hand: Vec<i64> = self.in_hand.keys().copied().collect();
            let pending = store
                .pending_inbox(plugin, BATCH, self.read_ahead_bytes, &in_hand)
                .await?;
            self.reads += 1;
            // A read that saw every pending delivery: reading again before
            // a wake-up would find nothing new (an insert wakes the worker
            // or reaches it through the feed after its commit, and a
            // wake-up is kept until it is seen), so one claim costs one
            // read, not two.
            let complete = pending.complete;
            // In id order: the last is the highest.
            if let Some(last) = pending.entries.last() {
                self.seen = self.seen.max(last.id);
            }
            self.queue.extend(pending.entries);
            self.drained = complete || self.queue.is_empty();
        }
        let entry = self.queue.pop_front();
        if let Some(entry) = &entry {
            self.in_hand.insert(entry.id, entry_bytes(entry));
        }
        Ok(entry)
    }

    /// Takes the deliveries this hub committed (the inbox feed) into the
    /// queue, where no read is needed: while the last read saw every
    /// pending delivery, each one the feed brings after the highest id seen
    /// is the next in inbox order (commits are in id order, and only this
    /// hub writes a SQLite inbox). Otherwise, or past the read-ahead's
    /// bounds, the next read finds it, and everything after it.
    fn feed(&mut self, fed: Fed) {
        if fed.overflowed {
            self.drained = false;
        }
        let mut queued_bytes: usize = self.queue.iter().map(entry_bytes).sum();
        for entry in fed.entries {
            // Read already (it committed before the last read).
            if entry.id <= self.seen {
                continue;
            }
            let bytes = entry_bytes(&entry);
            let fits = self.queue.len() < BATCH as usize
                && (self.queue.is_empty() || queued_bytes + bytes <= self.read_ahead_bytes);
            if !self.drained || !fits {
                self.drained = false;
                continue;
            }
            self.seen = entry.id;
            queued_bytes += bytes;
            self.queue.push_back(entry);
        }
    }

    /// Something may have been added to the inbox.
    fn wake(&mut self) {
        self.drained = false;
    }

    /// The task of inbox row `id` ended: the delivery is out of hand. A
    /// released one is pending again, so the read-ahead is discarded to
    /// claim it first.
    fn end(&mut self, id: i64, finished: Finished) {
        self.in_hand.remove(&id);
        if finished == Finished::Released {
            self.queue.clear();
            self.drained = false;
        }
    }
}

/// Runs until `stop` becomes true, then waits for the deliveries in hand to
/// finish or be abandoned (left pending). Every commit checks `fence`, if
/// any (the inbox's lease, on a hub sharing its database).
pub async fn run(
    endpoint: Arc<Endpoint>,
    ingest: Ingest,
    fence: Option<Fence>,
    mut stop: watch::Receiver<bool>,
) {
    let concurrency = endpoint.config().concurrency;
    let span = tracing::info_span!("webhook_worker", plugin = %endpoint.name(), concurrency);
    async move {
        let store = &ingest.store;
        let mut next_prune = tokio::time::Instant::now();
        let mut claims = Claims::new(concurrency);
        // Deliveries other hubs accepted into this inbox.
        let mut elsewhere = store.subscribe_inbox();
        // Deliveries this hub accepts, without a read (SQLite), taken
        // before the first read so none committed after it is missed.
        let feed = store.subscribe_inbox_feed(endpoint.name());
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        // Which task holds which inbox row.
        let mut holders: HashMap<tokio::task::Id, i64> = HashMap::new();
        'work: while !*stop.borrow() {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                prune(&endpoint, store).await;
            }
            while claims.has_room() {
                let entry = match claims.claim(store, endpoint.name()).await {
                    Ok(Some(entry)) => entry,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(error = %err, "Cannot read the webhook inbox; retrying.");
                        pause(&mut stop, STORE_RETRY).await;
                        claims.wake();
                        continue 'work;
                    }
                };
                let id = entry.id;
                let span = tracing::info_span!(
                    "webhook_delivery",
                    delivery_id = %entry.delivery.delivery_id,
                    inbox_id = id
                );
                let task = tasks.spawn(
                    deliver(
                        endpoint.clone(),
                        ingest.clone(),
                        entry,
                        fence.clone(),
                        stop.clone(),
                    )
                    .instrument(span),
                );
                holders.insert(task.id(), id);
            }
            tokio::select! {
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    end_task(&mut claims, &mut holders, joined);
                }
                () = endpoint.wake.notified() => claims.wake(),
                () = arrived(feed.as_ref()) => {
                    if let Some(feed) = &feed {
                        claims.feed(feed.take());
                    }
                }
                Ok(()) = elsewhere.changed() => claims.wake(),
                () = tokio::time::sleep(IDLE_POLL) => claims.wake(),
                _ = stop.changed() => {}
            }
        }
        while let Some(joined) = tasks.join_next_with_id().await {
            end_task(&mut claims, &mut holders, joined);
        }
        tracing::debug!(reads = claims.reads, "Webhook worker stopped.");
    }
    .instrument(span)
    .await
}

/// Resolves when the inbox feed brought deliveries; never without a feed.
async fn arrived(feed: Option<&InboxSubscription>) {
    match feed {
        Some(feed) => feed.arrived().await,
        None => std::future::pending().await,
    }
}

/// Books a delivery task's end.
fn end_task(
    claims: &mut Claims,
    holders: &mut HashMap<tokio::task::Id, i64>,
    joined: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
) {
    let (task, finished) = match joined {
        Ok(ended) => ended,
        Err(err) => {
            // A bug, not the delivery's fault: it stays pending and is
            // claimed again.
            tracing::error!(error = %err, "A webhook delivery task ended abnormally; the delivery stays pending.");
            (err.id(), Finished::Released)
        }
    };
    if let Some(id) = holders.remove(&task) {
        claims.end(id, finished);
    }
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

/// A delivery the plugin handled, ready to be committed.
struct Handled {
    entry: InboxEntry,
    prepared: ChainOutput,
    attempts: u32,
}

/// Hands one delivery to the plugin (under the retry policy, attempts one
/// after another) until it is done or dead, durably, or the worker stops.
/// A delivery the plugin cannot take now (stopped, restarting, not serving,
/// an enricher down) is held in hand and tried again.
async fn deliver(
    endpoint: Arc<Endpoint>,
    ingest: Ingest,
    entry: InboxEntry,
    fence: Option<Fence>,
    mut stop: watch::Receiver<bool>,
) -> Finished {
    let name = endpoint.name();
    let store = &ingest.store;
    let first_failed_at = chrono::Utc::now();
    let mut held_back = false;
    loop {
        if *stop.borrow() {
            return Finished::Stopped;
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
            _ = stop.changed() => return Finished::Stopped,
        };
        let error = match result {
            Ok(outcome) => match ingest.prepare(name, outcome.records).await {
                Ok(prepared) => {
                    let handled = Handled {
                        entry,
                        prepared,
                        attempts,
                    };
                    // Not abandoned when the worker stops: what the plugin
                    // made of the delivery is worth keeping.
                    return match complete(&endpoint, &ingest, handled, fence.clone()).await {
                        Ok(()) => {
                            endpoint.remove_pending();
                            Finished::Done
                        }
                        Err(err) => {
                            tracing::error!(plugin = %name, error = %err, "Cannot commit the webhook delivery's records; it stays pending.");
                            pause(&mut stop, STORE_RETRY).await;
                            Finished::Released
                        }
                    };
                }
                Err(failure) if failure.is_cancelled() => return Finished::Stopped,
                Err(error) => {
                    // An enricher is down: the delivery stays pending and
                    // the plugin is asked again later.
                    tracing::warn!(plugin = %name, delivery_id = %entry.delivery.delivery_id, error = %error, "Cannot enrich the webhook's records; the delivery stays pending.");
                    pause(&mut stop, HELD_BACK_RECHECK).await;
                    continue;
                }
            },
            Err(GiveUp::Cancelled) => return Finished::Stopped,
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
                    _ = stop.changed() => return Finished::Stopped,
                }
                continue;
            }
        };
        return match dead_letter(
            &endpoint,
            store,
            &entry,
            attempts,
            &error,
            first_failed_at,
            fence.as_ref(),
        )
        .await
        {
            Ok(()) => {
                endpoint.remove_pending();
                Finished::Dead
            }
            Err(err) => {
                tracing::error!(plugin = %name, delivery_id = %entry.delivery.delivery_id, error = %err, "Cannot dead-letter the webhook delivery; it stays pending.");
                pause(&mut stop, STORE_RETRY).await;
                Finished::Released
            }
        };
    }
}

/// Stores the delivery's records and marks it done, in one transaction
/// (through the store's group commit, which joins concurrent deliveries'
/// commits). On a store error nothing is committed: the delivery stays
/// pending.
async fn complete(
    endpoint: &Endpoint,
    ingest: &Ingest,
    handled: Handled,
    fence: Option<Fence>,
) -> Result<(), StoreError> {
    let name = endpoint.name();
    let delivery_id = handled.entry.delivery.delivery_id.clone();
    let records = handled.prepared.records.len();
    let job = CompleteJob {
        plugin: name.to_owned(),
        handled,
        fence,
        // This hub's only delivery of the plugin yet to finish is this one
        // (it leaves the count once committed): the worker has nothing else
        // to do until the next webhook, whose accept then shares the commit.
        alone: endpoint.pending() <= 1,
    };
    let upserted = ingest.store.write(job).await?;
    ingest.count(name, &upserted);
    super::metrics::handled(name, "done");
    tracing::debug!(plugin = %name, delivery_id = %delivery_id, records, "Webhook delivery stored.");
    Ok(())
}

/// A write job: a handled delivery's records, and its inbox row done.
struct CompleteJob {
    plugin: String,
    handled: Handled,
    fence: Option<Fence>,
    /// No other delivery of the plugin waits in this hub's inbox.
    alone: bool,
}

impl WriteJob for CompleteJob {
    type Output = Vec<Upserted>;

    fn run<'a>(&'a self, tx: &'a mut StoreTx) -> BoxFuture<'a, Result<Vec<Upserted>, StoreError>> {
        Box::pin(async move {
            let mut outputs = Self::run_group(&[self], tx).await?;
            Ok(outputs.pop().unwrap_or_default())
        })
    }

    fn weight(&self) -> usize {
        1 + self.handled.prepared.records.len()
    }

    /// Nobody outside the hub waits on a delivery's records (the sender had
    /// its 202 when the delivery was accepted), and a crash before the
    /// commit leaves the delivery pending, to be handed to the plugin again
    /// as before. So when no other delivery waits behind it, its commit may
    /// wait a little for the next write (the next webhook's accept, as a
    /// rule) to share it. With a backlog it commits at once: each delivery
    /// would otherwise wait out the patience.
    fn patient(&self) -> bool {
        self.alone
    }

    /// Deliveries handled together share their statements: one upsert of
    /// all their records, one update of their inbox rows.
    const GROUPED: bool = true;

    fn run_group<'a>(
        jobs: &'a [&'a Self],
        tx: &'a mut StoreTx,
    ) -> BoxFuture<'a, Result<Vec<Vec<Upserted>>, StoreError>> {
        Box::pin(async move {
            // Each lease once (the deliveries of one endpoint share theirs).
            let mut fences: Vec<&Fence> = Vec::new();
            for fence in jobs.iter().filter_map(|job| job.fence.as_ref()) {
                if !fences.contains(&fence) {
                    tx.check_fence(fence).await?;
                    fences.push(fence);
                }
            }
            let prepared: Vec<(&str, &ChainOutput)> = jobs
                .iter()
                .map(|job| (job.plugin.as_str(), &job.handled.prepared))
                .collect();
            let upserted = write_prepared_many(tx, &prepared).await?;
            let done: Vec<(i64, u32)> = jobs
                .iter()
                .map(|job| (job.handled.entry.id, job.handled.attempts))
                .collect();
            tx.complete_inbox_many(&done).await?;
            Ok(upserted)
        })
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
    fence: Option<&Fence>,
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
    if let Some(fence) = fence {
        tx.check_fence(fence).await?;
    }
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
        payload: payload.into(),
        metadata: [
            ("inbox_id".to_owned(), entry.id.to_string()),
            ("delivery_id".to_owned(), delivery.delivery_id.clone()),
        ]
        .into_iter()
        .collect(),
        idempotency_key: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::WebhookDelivery;
    use crate::store::{InboxInsert, InboxStatus, testing};

    /// Inserts `count` pending deliveries; returns their inbox ids in
    /// order.
    async fn fill(store: &Store, count: usize) -> Vec<i64> {
        let names: Vec<String> = (0..count).map(|n| format!("d{n}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        fill_more_each(store, &names).await
    }

    /// Inserts one pending delivery; returns its inbox id.
    async fn insert(store: &Store, delivery_id: &str) -> i64 {
        let delivery = WebhookDelivery {
            method: "POST".into(),
            path: "/webhooks/hook".into(),
            query: String::new(),
            headers: Vec::new(),
            body: b"{}".to_vec(),
            delivery_id: delivery_id.into(),
            received_at: chrono::Utc::now(),
        };
        let mut tx = store.begin().await.unwrap();
        let InboxInsert::Inserted(id) = tx
            .insert_inbox("hook", &delivery, InboxStatus::Pending, None)
            .await
            .unwrap()
        else {
            panic!("not inserted");
        };
        tx.commit().await.unwrap();
        id
    }

    async fn claimed(claims: &mut Claims, store: &Store) -> Option<i64> {
        claims
            .claim(store, "hook")
            .await
            .unwrap()
            .map(|entry| entry.id)
    }

    /// Marks `id` done in the store, as a delivery task does, then ends it.
    async fn finish(claims: &mut Claims, store: &Store, id: i64) {
        let mut tx = store.begin().await.unwrap();
        assert!(tx.complete_inbox(id, 1).await.unwrap());
        tx.commit().await.unwrap();
        claims.end(id, Finished::Done);
    }

    #[tokio::test]
    async fn claims_follow_inbox_order_and_a_released_delivery_comes_first_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        let ids = fill(&store, 4).await;
        let mut claims = Claims::new(2);
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[0]));
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[1]));
        assert!(!claims.has_room());

        // The first is released (a store error): it is pending again and is
        // claimed before the ones read ahead; the one in hand is skipped.
        claims.end(ids[0], Finished::Released);
        assert!(claims.has_room());
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[0]));

        // Finished deliveries make room for the next ones, in order.
        finish(&mut claims, &store, ids[0]).await;
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[2]));
        finish(&mut claims, &store, ids[1]).await;
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[3]));

        // Nothing left but the one in hand: no claim, and no read until
        // something may have arrived.
        finish(&mut claims, &store, ids[2]).await;
        assert_eq!(claimed(&mut claims, &store).await, None);
        assert!(claims.drained);
        let late = fill_more(&store).await;
        assert_eq!(claimed(&mut claims, &store).await, None);
        claims.wake();
        assert_eq!(claimed(&mut claims, &store).await, Some(late));
        finish(&mut claims, &store, ids[3]).await;
        finish(&mut claims, &store, late).await;
        claims.wake();
        assert_eq!(claimed(&mut claims, &store).await, None);
        store.close().await;
    }

    #[tokio::test]
    async fn a_read_ahead_cut_by_its_bytes_claims_past_the_deliveries_in_hand() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        let ids = fill(&store, 3).await;
        // Every read ahead is cut after its first delivery (large bodies):
        // the ones in hand must not count, or the second claim would see
        // only the first again and the worker would hold one at a time.
        let mut claims = Claims::new(3);
        claims.read_ahead_bytes = 1;
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[0]));
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[1]));
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[2]));
        assert!(!claims.has_room());
        store.close().await;
    }

    #[tokio::test]
    async fn deliveries_in_hand_stop_at_their_bytes_but_one_is_always_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        let ids = fill(&store, 4).await;
        let mut claims = Claims::new(8);
        // Room for two: the budget is crossed by the second.
        let first = claimed(&mut claims, &store).await.unwrap();
        let each = claims.bytes_in_hand();
        assert!(each > 0);
        claims.in_hand_budget = each + 1;
        assert!(claims.has_room());
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[1]));
        assert!(!claims.has_room(), "the bytes in hand reached the budget");
        finish(&mut claims, &store, first).await;
        assert!(claims.has_room());
        assert_eq!(claims.bytes_in_hand(), each);
        // A budget smaller than one delivery still lets one through at a
        // time, so a large body never stalls the inbox.
        claims.in_hand_budget = 1;
        assert!(!claims.has_room());
        finish(&mut claims, &store, ids[1]).await;
        assert!(claims.has_room());
        assert_eq!(claims.bytes_in_hand(), 0);
        assert_eq!(claimed(&mut claims, &store).await, Some(ids[2]));
        assert!(!claims.has_room());
        store.close().await;
    }

    /// One more pending delivery, arrived later; returns its id.
    async fn fill_more(store: &Store) -> i64 {
        insert(store, "late").await
    }

    #[tokio::test]
    async fn deliveries_this_hub_commits_are_claimed_from_the_feed_without_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        let feed = store.subscribe_inbox_feed("hook").unwrap();
        let first = fill(&store, 2).await;
        let mut claims = Claims::new(4);
        // The first read finds what was there; the feed brought the same
        // deliveries, which are not claimed twice.
        assert_eq!(claimed(&mut claims, &store).await, Some(first[0]));
        assert_eq!(claimed(&mut claims, &store).await, Some(first[1]));
        assert_eq!(claimed(&mut claims, &store).await, None);
        assert_eq!(claims.reads, 1);
        claims.feed(feed.take());
        assert_eq!(claimed(&mut claims, &store).await, None);

        // Later deliveries come from the feed, in order, with no read.
        let later = fill_more_each(&store, &["e1", "e2", "e3"]).await;
        claims.feed(feed.take());
        for id in &later {
            assert_eq!(claimed(&mut claims, &store).await, Some(*id));
        }
        assert_eq!(claimed(&mut claims, &store).await, None);
        assert_eq!(claims.reads, 1, "the feed spared every read");

        // A delivery the feed brings as the table holds it.
        let (via_feed, via_table) = {
            let id = insert(&store, "same").await;
            let fed = feed.take();
            let read = store.inbox_delivery("hook", "same").await.unwrap().unwrap();
            assert_eq!(read.id, id);
            (fed.entries, read)
        };
        assert_eq!(via_feed, vec![via_table]);
        store.close().await;
    }

    #[tokio::test]
    async fn a_delivery_the_feed_cannot_hand_over_is_read_in_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::sqlite_url(dir.path())).await.unwrap();
        let feed = store.subscribe_inbox_feed("hook").unwrap();
        let mut claims = Claims::new(1);
        assert_eq!(claimed(&mut claims, &store).await, None);
        assert!(claims.drained);

        // More than the read-ahead arrives at once: the queue takes BATCH
        // from the feed, the rest are read afterwards, in inbox order.
        let names: Vec<String> = (0..BATCH + 3).map(|n| format!("b{n}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let ids = fill_more_each(&store, &names).await;
        claims.feed(feed.take());
        assert!(!claims.drained);
        for id in &ids {
            assert_eq!(claimed(&mut claims, &store).await, Some(*id));
            finish(&mut claims, &store, *id).await;
        }
        assert_eq!(claims.reads, 2, "one read for the deliveries left out");

        // While a read is due (a requeued delivery woke the worker), the
        // feed's deliveries wait for that read, behind the older one.
        let old = insert(&store, "old").await;
        claims.feed(feed.take());
        assert_eq!(claimed(&mut claims, &store).await, Some(old));
        let mut tx = store.begin().await.unwrap();
        assert!(tx.fail_inbox(old, 1, "refused").await.unwrap());
        tx.commit().await.unwrap();
        claims.end(old, Finished::Dead);
        let mut tx = store.begin().await.unwrap();
        assert!(tx.requeue_inbox(old).await.unwrap());
        tx.commit().await.unwrap();
        claims.wake();
        let new = insert(&store, "new").await;
        claims.feed(feed.take());
        assert_eq!(claimed(&mut claims, &store).await, Some(old));
        finish(&mut claims, &store, old).await;
        assert_eq!(claimed(&mut claims, &store).await, Some(new));
        store.close().await;
    }

    /// Inserts pending deliveries with these ids, in order; returns their
    /// inbox ids.
    async fn fill_more_each(store: &Store, delivery_ids: &[&str]) -> Vec<i64> {
        let mut ids = Vec::new();
        for delivery_id in delivery_ids {
            ids.push(insert(store, delivery_id).await);
        }
        ids
    }
}
