//! `switchyard.v1.PollingInput`: runs the author's [`PollingInput::poll`] on
//! its own task and streams what its [`Emitter`] sends, ending the stream
//! with the poll's failure, if any. When the hub goes away, the poll is
//! dropped.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{FutureExt as _, Stream, StreamExt as _};
use switchyard_wire::pb::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

use super::convert::{poll_batch_to_pb, poll_request_from_pb, status_from_error};
use super::{MAX_MESSAGE_BYTES, Shared};
use crate::error::panic_message;
use crate::role::{Emitter, PollingInput};

/// Messages queued per poll before the plugin's `emit` waits for the hub.
const POLL_BUFFER: usize = 16;

/// Adds `switchyard.v1.PollingInput`, served by `T`, to `routes`.
pub(super) fn add_service<T: PollingInput>(routes: &mut RoutesBuilder, shared: &Arc<Shared<T>>) {
    routes.add_service(
        pb::polling_input_server::PollingInputServer::new(PollService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

struct PollService<T>(Arc<Shared<T>>);

/// A poll's response stream: the emitted batches, then the failure, if any.
type PollStream = Pin<Box<dyn Stream<Item = Result<pb::PollResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<T: PollingInput> pb::polling_input_server::PollingInput for PollService<T> {
    type PollStream = PollStream;

    async fn poll(
        &self,
        request: Request<pb::PollRequest>,
    ) -> Result<Response<Self::PollStream>, Status> {
        let instance = self.0.instance()?;
        let request = poll_request_from_pb(request.into_inner());
        let (sender, receiver) = mpsc::channel(POLL_BUFFER);
        let (failed, failure) = oneshot::channel();
        let emitter = Emitter::new(sender.clone());
        tokio::spawn(async move {
            let run = AssertUnwindSafe(instance.poll(request, emitter)).catch_unwind();
            let outcome = tokio::select! {
                outcome = run => outcome,
                () = sender.closed() => {
                    tracing::debug!("The hub cancelled the poll.");
                    return;
                }
            };
            let status = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "The poll failed.");
                    status_from_error(&error)
                }
                Err(panic) => {
                    let message = panic_message(&panic);
                    tracing::error!(panic = %message, "Plugin code panicked during a poll.");
                    Status::internal(format!("the plugin panicked during the poll: {message}"))
                }
            };
            // Sent before `sender` drops, so it is there when the batches end.
            let _ = failed.send(status);
        });
        // The batches end once the poll's emitter and the task's sender are
        // dropped; then the failure, if the task sent one, ends the stream.
        // One emitted batch may take several messages (`poll_batch_to_pb`).
        let batches = ReceiverStream::new(receiver)
            .flat_map(|batch| futures_util::stream::iter(poll_batch_to_pb(batch)));
        let end = futures_util::stream::once(failure)
            .filter_map(|failure| std::future::ready(failure.ok().map(Err)));
        Ok(Response::new(Box::pin(batches.chain(end))))
    }
}
