//! One async trait per role. A plugin implements the roles it serves on one
//! type, which its factory builds from the validated configuration.
//!
//! Methods take `&self` and may run concurrently (many enrich items or events
//! are in flight at once), so keep mutable state behind a lock or an atomic.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tokio::sync::mpsc;

use crate::concurrency::run_concurrently;
use crate::error::PluginError;
use crate::types::{PollBatch, PollRequest, Record, RecordEvent, WebhookRequest, WebhookResponse};

/// An input the hub polls on a schedule (never two polls of one instance at once).
pub trait PollingInput: Send + Sync + 'static {
    /// Fetches what is new since `request.checkpoint`, sending records and
    /// checkpoints through `emitter`. The poll ends when the future returns.
    ///
    /// Send a checkpoint after the records it covers: the hub commits records
    /// with the checkpoint that covers them, and re-fetches records sent after
    /// the last checkpoint if the poll fails.
    fn poll(
        &self,
        request: PollRequest,
        emitter: Emitter,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;
}

/// An input that turns HTTP webhook deliveries into records.
pub trait WebhookInput: Send + Sync + 'static {
    /// Turns one delivery into records (and optionally an HTTP reply).
    /// Return a [permanent](PluginError::permanent) error for a malformed
    /// body: the hub answers 400 and does not retry. Any other error is retried.
    fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> impl Future<Output = Result<WebhookResponse, PluginError>> + Send;
}

/// A step records pass through before they are stored.
pub trait Enricher: Send + Sync + 'static {
    /// Returns the enriched record; its id and source must be unchanged.
    /// Called concurrently for many records.
    ///
    /// The record may come back larger than it came: answers go to the hub
    /// in as many messages as they need. One too large for any message
    /// (over 65 MiB encoded) fails alone, as a permanent error with code
    /// `too_large`.
    fn enrich(&self, record: Record) -> impl Future<Output = Result<Record, PluginError>> + Send;
}

/// A destination that receives record events and acknowledges each one.
pub trait Output: Send + Sync + 'static {
    /// Delivers one event. Return `Ok(())` only once the event is durable
    /// downstream: the hub then considers it delivered.
    fn handle_event(
        &self,
        event: RecordEvent,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Delivers a batch of events and returns one outcome per event, in order.
    ///
    /// The default runs [`Output::handle_event`] for every event concurrently
    /// (a panic fails only its own event). Override it to make a batch durable
    /// at once, for example one fsync per batch.
    fn handle_batch(
        &self,
        events: Vec<RecordEvent>,
    ) -> impl Future<Output = Vec<Result<(), PluginError>>> + Send {
        async move {
            let count = events.len();
            let mut outcomes: Vec<Option<Result<(), PluginError>>> = vec![None; count];
            let handled = events.into_iter().enumerate().map(|(index, event)| {
                AssertUnwindSafe(self.handle_event(event))
                    .catch_unwind()
                    .map(move |outcome| {
                        (
                            index,
                            outcome.unwrap_or_else(|panic| Err(PluginError::from_panic(&panic))),
                        )
                    })
            });
            run_concurrently(handled, count, |done| {
                for (index, outcome) in done {
                    outcomes[index] = Some(outcome);
                }
                std::future::ready(true)
            })
            .await;
            outcomes
                .into_iter()
                .map(|outcome| {
                    outcome.unwrap_or_else(|| {
                        Err(PluginError::permanent("the event was never handled"))
                    })
                })
                .collect()
        }
    }
}

/// How a poll sends its output to the hub.
///
/// Every method waits while the hub is slow to read (back-pressure) and fails
/// with a retryable error once the hub has gone away (the poll was cancelled):
/// return that error to end the poll.
///
/// A batch may be of any size: one larger than gRPC's default message limit
/// goes to the hub as several messages of less than 4 MiB, the checkpoint on
/// the last (`switchyard_wire::messages`). A single record too large for any
/// message (over 65 MiB encoded) ends the poll with `RESOURCE_EXHAUSTED`
/// naming it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Emitter {
    sender: mpsc::Sender<PollBatch>,
    emitted: u64,
}

impl Emitter {
    /// An emitter that sends each message on `sender` (whoever serves the
    /// poll reads the other end).
    pub(crate) fn new(sender: mpsc::Sender<PollBatch>) -> Self {
        Emitter { sender, emitted: 0 }
    }

    /// Sends a batch of records (not yet covered by a checkpoint).
    ///
    /// # Errors
    /// A retryable error when the hub is no longer listening.
    pub async fn emit(&mut self, records: Vec<Record>) -> Result<(), PluginError> {
        if records.is_empty() {
            return Ok(());
        }
        self.send(records, None).await
    }

    /// Sends a checkpoint covering every record sent so far in this poll.
    ///
    /// # Errors
    /// A retryable error when the hub is no longer listening.
    pub async fn checkpoint(&mut self, checkpoint: impl Into<Vec<u8>>) -> Result<(), PluginError> {
        self.send(Vec::new(), Some(checkpoint.into())).await
    }

    /// Sends a batch of records and the checkpoint that covers them (in one
    /// message, or several with the checkpoint on the last when the batch is
    /// larger than one message may be).
    ///
    /// # Errors
    /// A retryable error when the hub is no longer listening.
    pub async fn emit_with_checkpoint(
        &mut self,
        records: Vec<Record>,
        checkpoint: impl Into<Vec<u8>>,
    ) -> Result<(), PluginError> {
        self.send(records, Some(checkpoint.into())).await
    }

    /// How many records this poll has sent so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    async fn send(
        &mut self,
        records: Vec<Record>,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<(), PluginError> {
        let count = records.len() as u64;
        let message = PollBatch {
            records,
            checkpoint,
        };
        self.sender
            .send(message)
            .await
            .map_err(|_| PluginError::retryable("the hub stopped listening to this poll"))?;
        self.emitted += count;
        Ok(())
    }
}
