//! `switchyard.v1.WebhookInput`: one [`WebhookInput::handle_webhook`] per call.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use switchyard_wire::pb::v1 as pb;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

use super::convert::{status_from_error, webhook_request_from_pb, webhook_response_to_pb};
use super::{MAX_MESSAGE_BYTES, Shared};
use crate::error::panic_message;
use crate::role::WebhookInput;

/// Adds `switchyard.v1.WebhookInput`, served by `T`, to `routes`.
pub(super) fn add_service<T: WebhookInput>(routes: &mut RoutesBuilder, shared: &Arc<Shared<T>>) {
    routes.add_service(
        pb::webhook_input_server::WebhookInputServer::new(WebhookService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

struct WebhookService<T>(Arc<Shared<T>>);

#[tonic::async_trait]
impl<T: WebhookInput> pb::webhook_input_server::WebhookInput for WebhookService<T> {
    async fn handle_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookResponse>, Status> {
        let instance = self.0.instance()?;
        let request = webhook_request_from_pb(request.into_inner());
        match AssertUnwindSafe(instance.handle_webhook(request))
            .catch_unwind()
            .await
        {
            Ok(Ok(response)) => Ok(Response::new(webhook_response_to_pb(response))),
            Ok(Err(error)) => Err(status_from_error(&error)),
            Err(panic) => {
                let message = panic_message(&panic);
                tracing::error!(panic = %message, "Plugin code panicked while handling a webhook.");
                Err(Status::internal(format!(
                    "the plugin panicked while handling the webhook: {message}"
                )))
            }
        }
    }
}
