//! Clients for the four roles: Poll, HandleWebhook, Enrich and HandleEvent,
//! speaking domain types. The streaming calls (Enrich, HandleEvent) send every
//! item at once and match the answers by sequence number or delivery id, so
//! many items are in flight together. Enrich calls share one long-lived
//! stream per connection ([`super::enrich_stream`]); HandleEvent opens one
//! per call (a batch of events).

use switchyard_wire::messages::{self, Limits};
use switchyard_wire::pb::v1 as pb;
use tonic::transport::Channel;

use super::CallError;
use super::channel::MAX_MESSAGE_BYTES;
use super::convert;
use super::enrich_stream::SharedEnrich;
use crate::domain::{
    EnrichOutcome, EventAck, PollBatch, PollRequest, Record, RecordEvent, WebhookDelivery,
    WebhookOutcome,
};

/// The role clients of one plugin, over its shared channel. Clones share the
/// channel and the Enrich stream.
#[derive(Debug, Clone)]
pub struct RoleClient {
    channel: Channel,
    enrich_stream: std::sync::Arc<SharedEnrich>,
}

impl RoleClient {
    /// Wraps a connected channel.
    pub fn new(channel: Channel) -> Self {
        RoleClient {
            enrich_stream: std::sync::Arc::new(SharedEnrich::new(channel.clone())),
            channel,
        }
    }

    /// Runs one poll and collects every batch the plugin streams back.
    pub async fn poll(&self, request: PollRequest) -> Result<Vec<PollBatch>, CallError> {
        let mut client = pb::polling_input_client::PollingInputClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut stream = client
            .poll(pb::PollRequest {
                checkpoint: request.checkpoint,
                max_records: request.max_records,
            })
            .await?
            .into_inner();
        let mut batches = Vec::new();
        while let Some(response) = stream.message().await? {
            batches.push(PollBatch {
                records: convert::records_from_pb(response.records)?,
                checkpoint: response.checkpoint,
            });
        }
        Ok(batches)
    }

    /// Starts a poll whose batches are read one at a time as the plugin
    /// streams them (so each checkpointed batch can be committed before the
    /// next arrives).
    pub async fn poll_stream(&self, request: PollRequest) -> Result<PollStream, CallError> {
        let mut client = pb::polling_input_client::PollingInputClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let stream = client
            .poll(pb::PollRequest {
                checkpoint: request.checkpoint,
                max_records: request.max_records,
            })
            .await?
            .into_inner();
        Ok(PollStream { stream })
    }

    /// Hands one webhook delivery to the plugin.
    pub async fn webhook(&self, delivery: WebhookDelivery) -> Result<WebhookOutcome, CallError> {
        let mut client = pb::webhook_input_client::WebhookInputClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let response = client
            .handle_webhook(pb::WebhookRequest {
                method: delivery.method,
                path: delivery.path,
                query: delivery.query,
                headers: delivery
                    .headers
                    .into_iter()
                    .map(|(name, value)| pb::Header { name, value })
                    .collect(),
                body: delivery.body,
                delivery_id: delivery.delivery_id,
                received_at: Some(convert::timestamp_to_pb(delivery.received_at)),
            })
            .await?
            .into_inner();
        Ok(WebhookOutcome {
            records: convert::records_from_pb(response.records)?,
            reply: response.reply.map(convert::reply_from_pb).transpose()?,
        })
    }

    /// Enriches `records` on the connection's shared `Enrich` stream; the
    /// outcomes come back in input order. If that stream fails while the
    /// call waits, the call runs again on a stream of its own, so a failure
    /// the plugin sends because of these records reaches this call alone.
    pub async fn enrich(&self, records: &[Record]) -> Result<Vec<EnrichOutcome>, CallError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        match self.enrich_stream.enrich(records).await {
            Some(result) => result,
            None => self.enrich_on_own_stream(records).await,
        }
    }

    /// Enriches `records` on a stream opened for this call alone, numbered
    /// from 0, and reads until the plugin ends it (`switchyard conformance`
    /// checks that lifecycle).
    pub async fn enrich_on_own_stream(
        &self,
        records: &[Record],
    ) -> Result<Vec<EnrichOutcome>, CallError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let requests = enrich_requests(records, 0);
        let mut client = pb::enricher_client::EnricherClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut stream = client
            .enrich(tokio_stream::iter(requests))
            .await?
            .into_inner();
        let mut outcomes: Vec<Option<EnrichOutcome>> = vec![None; records.len()];
        let mut answered = 0;
        while answered < records.len() {
            let Some(response) = stream.message().await? else {
                break;
            };
            for result in response.results {
                let slot = slot_for(&mut outcomes, result.sequence, "sequence number")?;
                *slot = Some(enrich_outcome_from_pb(result)?);
                answered += 1;
            }
        }
        collect_answers(outcomes, "Enrich", "records")
    }

    /// Sends `events` on one `HandleEvent` stream; the acks come back in the
    /// order of the input. Delivery ids must be distinct and are
    /// matched against the plugin's answers.
    pub async fn events(&self, events: &[RecordEvent]) -> Result<Vec<EventAck>, CallError> {
        let mut acks: Vec<Option<EventAck>> = vec![None; events.len()];
        let refs: Vec<&RecordEvent> = events.iter().collect();
        self.events_each(&refs, |index, ack| acks[index] = Some(ack))
            .await?;
        collect_answers(acks, "HandleEvent", "events")
    }

    /// Sends `events` on one `HandleEvent` stream and hands each ack to
    /// `on_ack` (with the index of the event it answers) as it arrives, so
    /// the acks that came before a broken stream are kept. `Ok` once every
    /// event is answered; otherwise the error says why the stream ended
    /// early. Delivery ids must be distinct.
    pub async fn events_each(
        &self,
        events: &[&RecordEvent],
        on_ack: impl FnMut(usize, EventAck),
    ) -> Result<(), CallError> {
        self.events_inner(events, None, on_ack).await
    }

    /// [`RoleClient::events_each`], but once every event is answered it keeps
    /// reading, until the plugin ends the stream or `linger` passes, so an
    /// answer sent twice is caught even when it comes after the last one
    /// (`switchyard conformance` checks that; the hub stops reading at once).
    pub async fn events_each_lingering(
        &self,
        events: &[&RecordEvent],
        linger: std::time::Duration,
        on_ack: impl FnMut(usize, EventAck),
    ) -> Result<(), CallError> {
        self.events_inner(events, Some(linger), on_ack).await
    }

    async fn events_inner(
        &self,
        events: &[&RecordEvent],
        linger: Option<std::time::Duration>,
        mut on_ack: impl FnMut(usize, EventAck),
    ) -> Result<(), CallError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut index_of = std::collections::HashMap::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            if index_of.insert(event.delivery_id, index).is_some() {
                return Err(CallError::Protocol(format!(
                    "delivery id {} appears twice in one batch of events",
                    event.delivery_id
                )));
            }
        }
        let requests: Vec<pb::EventRequest> = messages::pack(
            events.iter().map(|event| convert::event_to_pb(event)),
            Limits::REQUESTS,
        )
        .into_iter()
        .map(|events| pb::EventRequest { events })
        .collect();
        let mut client = pb::output_client::OutputClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut stream = client
            .handle_event(tokio_stream::iter(requests))
            .await?
            .into_inner();
        let mut answered = vec![false; events.len()];
        let mut count = 0;
        let mut lingering_until = None;
        loop {
            if count == events.len() {
                let Some(linger) = linger else { break };
                lingering_until.get_or_insert_with(|| tokio::time::Instant::now() + linger);
            }
            let next = match lingering_until {
                None => stream.message().await?,
                Some(until) => match tokio::time::timeout_at(until, stream.message()).await {
                    Err(_) => break,
                    Ok(next) => next?,
                },
            };
            let Some(response) = next else {
                if count == events.len() {
                    break;
                }
                return Err(CallError::Protocol(format!(
                    "the plugin ended the HandleEvent stream with {} of {} events unanswered",
                    events.len() - count,
                    events.len()
                )));
            };
            for ack in response.acks {
                let index = index_of.get(&ack.delivery_id).copied().ok_or_else(|| {
                    CallError::Protocol(format!(
                        "the plugin answered delivery id {}, which the hub did not send",
                        ack.delivery_id
                    ))
                })?;
                if std::mem::replace(&mut answered[index], true) {
                    return Err(CallError::Protocol(format!(
                        "the plugin answered delivery id {} twice",
                        ack.delivery_id
                    )));
                }
                on_ack(index, convert::ack_from_pb(ack));
                count += 1;
            }
        }
        Ok(())
    }
}

/// A poll in progress, from [`RoleClient::poll_stream`].
#[derive(Debug)]
pub struct PollStream {
    stream: tonic::Streaming<pb::PollResponse>,
}

impl PollStream {
    /// The next batch, or `None` when the poll is complete.
    pub async fn next(&mut self) -> Result<Option<PollBatch>, CallError> {
        match self.stream.message().await? {
            Some(response) => Ok(Some(PollBatch {
                records: convert::records_from_pb(response.records)?,
                checkpoint: response.checkpoint,
            })),
            None => Ok(None),
        }
    }
}

/// The request messages for `records`, numbered from `first` in input
/// order and packed as [`messages::pack`] does.
pub(super) fn enrich_requests(records: &[Record], first: u64) -> Vec<pb::EnrichRequest> {
    let items = records
        .iter()
        .enumerate()
        .map(|(index, record)| pb::EnrichItem {
            sequence: first + index as u64,
            record: Some(convert::record_to_pb(record)),
        });
    messages::pack(items, Limits::REQUESTS)
        .into_iter()
        .map(|items| pb::EnrichRequest { items })
        .collect()
}

/// The outcome one Enrich result carries, or why it breaks the contract.
pub(super) fn enrich_outcome_from_pb(result: pb::EnrichResult) -> Result<EnrichOutcome, CallError> {
    match result.outcome {
        Some(pb::enrich_result::Outcome::Record(record)) => {
            Ok(EnrichOutcome::Enriched(convert::record_from_pb(record)?))
        }
        Some(pb::enrich_result::Outcome::Failure(failure)) => {
            Ok(EnrichOutcome::Failed(convert::failure_from_pb(failure)))
        }
        None => Err(CallError::Protocol(format!(
            "the result for sequence number {} has neither a record nor a failure",
            result.sequence
        ))),
    }
}

/// The empty slot for answer `index`, or a protocol error when the index is
/// unknown or already answered.
fn slot_for<'a, T>(
    slots: &'a mut [Option<T>],
    index: u64,
    what: &str,
) -> Result<&'a mut Option<T>, CallError> {
    let slot = usize::try_from(index)
        .ok()
        .and_then(|index| slots.get_mut(index))
        .ok_or_else(|| {
            CallError::Protocol(format!("the plugin answered an unknown {what} {index}"))
        })?;
    if slot.is_some() {
        return Err(CallError::Protocol(format!(
            "the plugin answered {what} {index} twice"
        )));
    }
    Ok(slot)
}

/// Unwraps the answers, or says how many are missing.
fn collect_answers<T>(slots: Vec<Option<T>>, call: &str, items: &str) -> Result<Vec<T>, CallError> {
    let total = slots.len();
    let missing = slots.iter().filter(|slot| slot.is_none()).count();
    if missing > 0 {
        return Err(CallError::Protocol(format!(
            "the plugin ended the {call} stream with {missing} of {total} {items} unanswered"
        )));
    }
    Ok(slots.into_iter().flatten().collect())
}
