//! `switchyard.v1.Output`: each received batch through
//! [`Output::handle_batch`], answered with one ack or nack per event.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status, Streaming};

use super::batches::drive_batches;
use super::convert::{event_ack_to_pb, event_response_to_pb, events_from_pb};
use super::{MAX_MESSAGE_BYTES, Shared};
use crate::error::PluginError;
use crate::role::Output;

/// Adds `switchyard.v1.Output`, served by `T`, to `routes`.
pub(super) fn add_service<T: Output>(routes: &mut RoutesBuilder, shared: &Arc<Shared<T>>) {
    routes.add_service(
        pb::output_server::OutputServer::new(OutputService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

struct OutputService<T>(Arc<Shared<T>>);

#[tonic::async_trait]
impl<T: Output> pb::output_server::Output for OutputService<T> {
    type HandleEventStream = ReceiverStream<Result<pb::EventResponse, Status>>;

    async fn handle_event(
        &self,
        request: Request<Streaming<pb::EventRequest>>,
    ) -> Result<Response<Self::HandleEventStream>, Status> {
        self.0.instance()?;
        let stream = drive_batches(Arc::clone(&self.0), request.into_inner(), output_batch::<T>);
        Ok(Response::new(stream))
    }
}

async fn output_batch<T: Output>(
    instance: Arc<T>,
    batch: pb::EventRequest,
    sender: mpsc::Sender<Result<pb::EventResponse, Status>>,
) {
    let decoded = events_from_pb(batch);
    let mut acks = Vec::with_capacity(decoded.len());
    let mut ids = Vec::with_capacity(decoded.len());
    let mut events = Vec::with_capacity(decoded.len());
    for (delivery_id, event) in decoded {
        match event {
            Ok(event) => {
                ids.push(delivery_id);
                events.push(event);
            }
            Err(error) => acks.push(event_ack_to_pb(delivery_id, Err(error))),
        }
    }
    if !events.is_empty() {
        let count = events.len();
        let outcomes = match AssertUnwindSafe(instance.handle_batch(events))
            .catch_unwind()
            .await
        {
            Ok(outcomes) if outcomes.len() == count => outcomes,
            Ok(outcomes) => {
                let error = PluginError::permanent(format!(
                    "the plugin's handle_batch returned {} outcomes for {count} events",
                    outcomes.len()
                ));
                tracing::error!(error = %error, "Plugin code broke the Output contract.");
                vec![Err(error); count]
            }
            Err(panic) => vec![Err(PluginError::from_panic(&panic)); count],
        };
        acks.extend(
            ids.into_iter()
                .zip(outcomes)
                .map(|(delivery_id, outcome)| event_ack_to_pb(delivery_id, outcome)),
        );
    }
    if !acks.is_empty() {
        let _ = sender.send(Ok(event_response_to_pb(acks))).await;
    }
}
