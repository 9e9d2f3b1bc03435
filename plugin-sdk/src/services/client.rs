//! The client half of the services, as plain types: what
//! [`TestHarness`](crate::testing::TestHarness) drives a plugin with.
//! It names the protobuf clients so the harness does not have to.

use switchyard_wire::pb::v1 as pb;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::MAX_MESSAGE_BYTES;
use super::convert::{
    EnrichOutcomes, configure_request_to_pb, configure_response_from_pb, enrich_request_to_pb,
    enrich_response_from_pb, event_request_to_pb, event_response_from_pb, metadata_from_pb,
    metadata_request_to_pb, poll_batch_from_pb, poll_request_to_pb, webhook_request_to_pb,
    webhook_response_from_pb,
};
use crate::error::{ConfigError, PluginError};
use crate::types::{
    Metadata, PollBatch, PollRequest, Record, RecordEvent, WebhookRequest, WebhookResponse,
};

/// The answers of a streaming call, converted one message at a time.
pub(crate) struct Answers<M, T> {
    stream: Streaming<M>,
    convert: fn(M) -> Result<T, Status>,
}

impl<M, T> Answers<M, T> {
    /// The next message, `None` once the stream ended cleanly.
    ///
    /// # Errors
    /// The status that ended the stream, or INTERNAL for a malformed message.
    pub(crate) async fn next(&mut self) -> Result<Option<T>, Status> {
        match self.stream.message().await? {
            Some(message) => (self.convert)(message).map(Some),
            None => Ok(None),
        }
    }
}

/// Calls a plugin's services over `channel`.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    channel: Channel,
}

impl Client {
    /// A client on an established channel.
    pub(crate) fn new(channel: Channel) -> Self {
        Client { channel }
    }

    /// `GetMetadata`.
    pub(crate) async fn metadata(&self) -> Result<Metadata, Status> {
        let mut client = pb::plugin_client::PluginClient::new(self.channel.clone());
        let metadata = client
            .get_metadata(metadata_request_to_pb())
            .await?
            .into_inner();
        metadata_from_pb(metadata).map_err(Status::internal)
    }

    /// `Configure`; the rejected fields, empty when the config was accepted.
    pub(crate) async fn configure(
        &self,
        config_json: Vec<u8>,
        instance_name: &str,
    ) -> Result<Vec<ConfigError>, Status> {
        let mut client = pb::plugin_client::PluginClient::new(self.channel.clone());
        let request = configure_request_to_pb(config_json, instance_name.to_owned());
        let response = client.configure(request).await?.into_inner();
        Ok(configure_response_from_pb(response))
    }

    /// `Poll`: the stream of what the poll emits.
    pub(crate) async fn poll(
        &self,
        request: PollRequest,
    ) -> Result<Answers<pb::PollResponse, PollBatch>, Status> {
        let mut client = pb::polling_input_client::PollingInputClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let stream = client.poll(poll_request_to_pb(request)).await?.into_inner();
        Ok(Answers {
            stream,
            convert: |message| Ok(poll_batch_from_pb(message)),
        })
    }

    /// `HandleWebhook`.
    pub(crate) async fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, Status> {
        let mut client = pb::webhook_input_client::WebhookInputClient::new(self.channel.clone());
        let response = client
            .handle_webhook(webhook_request_to_pb(request))
            .await?
            .into_inner();
        Ok(webhook_response_from_pb(response))
    }

    /// `Enrich` with one batch, the records numbered from 0 in order: the
    /// stream of (sequence, outcome) answers.
    pub(crate) async fn enrich(
        &self,
        records: Vec<Record>,
    ) -> Result<Answers<pb::EnrichResponse, EnrichOutcomes>, Status> {
        let mut client = pb::enricher_client::EnricherClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let request = enrich_request_to_pb(records);
        let stream = client
            .enrich(tokio_stream::iter([request]))
            .await?
            .into_inner();
        Ok(Answers {
            stream,
            convert: |message| enrich_response_from_pb(message).map_err(Status::internal),
        })
    }

    /// `HandleEvent` with one batch: the stream of (delivery id, outcome) answers.
    pub(crate) async fn handle_events(
        &self,
        events: Vec<RecordEvent>,
    ) -> Result<Answers<pb::EventResponse, EventOutcomes>, Status> {
        let mut client = pb::output_client::OutputClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let request = event_request_to_pb(events);
        let stream = client
            .handle_event(tokio_stream::iter([request]))
            .await?
            .into_inner();
        Ok(Answers {
            stream,
            convert: |message| Ok(event_response_from_pb(message).collect()),
        })
    }
}

/// One `HandleEvent` answer: (delivery id, ack or nack).
pub(crate) type EventOutcomes = Vec<(u64, Result<(), PluginError>)>;

/// Asks gRPC health about `service` (`""` for the whole server, `"plugin"`
/// for the plugin): true for SERVING, false for anything else.
///
/// # Errors
/// The call's status (NOT_FOUND for an unknown service).
pub(crate) async fn check_health(channel: Channel, service: &str) -> Result<bool, Status> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(answer.into_inner().status == ServingStatus::Serving as i32)
}
