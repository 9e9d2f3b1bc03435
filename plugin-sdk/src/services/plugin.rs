//! `switchyard.v1.Plugin`: `GetMetadata` and `Configure`, which builds a fresh
//! role implementation with the plugin's factory.

use std::sync::Arc;

use switchyard_wire::pb::v1 as pb;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

use super::convert::{
    configure_request_from_pb, configure_response_to_pb, metadata_to_pb, status_from_error,
};
use super::{MAX_MESSAGE_BYTES, Shared};

/// Adds `switchyard.v1.Plugin` to `routes`.
pub(super) fn add_service<T: Send + Sync + 'static>(
    routes: &mut RoutesBuilder,
    shared: &Arc<Shared<T>>,
) {
    routes.add_service(
        pb::plugin_server::PluginServer::new(PluginService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    );
}

struct PluginService<T>(Arc<Shared<T>>);

#[tonic::async_trait]
impl<T: Send + Sync + 'static> pb::plugin_server::Plugin for PluginService<T> {
    async fn get_metadata(
        &self,
        _request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::PluginMetadata>, Status> {
        let shared = &self.0;
        Ok(Response::new(metadata_to_pb(
            &shared.info,
            &shared.roles,
            &shared.config_schema,
        )))
    }

    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<Response<pb::ConfigureResponse>, Status> {
        let (config_json, instance_name) = configure_request_from_pb(request.into_inner());
        let shared = &self.0;
        let _serialized = shared.configure_lock.lock().await;
        let outcome = (shared.factory)(&config_json).await;
        let errors = match outcome {
            Ok(instance) => {
                shared.set_instance(Some(Arc::new(instance)));
                tracing::info!(instance = %instance_name, "Configured.");
                Vec::new()
            }
            Err(errors) => {
                shared.set_instance(None);
                if let Some(reason) = errors.unavailable_reason() {
                    tracing::warn!(
                        instance = %instance_name,
                        error = %reason,
                        "Could not apply the configuration now; the hub will try again."
                    );
                    return Err(status_from_error(reason));
                }
                for error in errors.iter() {
                    tracing::warn!(
                        instance = %instance_name,
                        field = %error.field,
                        error = %error.message,
                        "Rejected the configuration."
                    );
                }
                errors.into_iter().collect()
            }
        };
        Ok(Response::new(configure_response_to_pb(errors)))
    }
}
