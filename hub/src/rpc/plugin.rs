//! The services every plugin serves besides its roles: gRPC health,
//! `switchyard.v1.Plugin` (GetMetadata, Configure) and go-plugin's
//! `GRPCController` (Shutdown) and `GRPCStdio` (StreamStdio).

use std::pin::Pin;

use switchyard_wire::handshake::HEALTH_SERVICE_NAME;
use switchyard_wire::pb::plugin as go_plugin;
use switchyard_wire::pb::v1 as pb;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::channel::MAX_MESSAGE_BYTES;
use super::convert::{self, ConvertError};
use crate::domain::{ConfigProblem, PluginMetadata};

/// Which of the plugin's output streams a stdio chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioChannel {
    /// The plugin's standard output.
    Stdout,
    /// The plugin's standard error.
    Stderr,
}

/// A stream of raw output chunks forwarded over `GRPCStdio` (chunks do not
/// follow line boundaries).
pub type StdioStream =
    Pin<Box<dyn Stream<Item = Result<(StdioChannel, Vec<u8>), tonic::Status>> + Send>>;

/// A failure in one of the calls made during the handshake.
#[derive(Debug, thiserror::Error)]
pub enum PluginCallError {
    /// The call itself failed.
    #[error("{0}")]
    Status(#[from] tonic::Status),
    /// The answer broke the contract.
    #[error("{0}")]
    Invalid(#[from] ConvertError),
}

/// The client for the plugin-wide services, over one shared channel.
#[derive(Debug, Clone)]
pub struct PluginClient {
    channel: Channel,
}

impl PluginClient {
    /// Wraps a connected channel.
    pub fn new(channel: Channel) -> Self {
        PluginClient { channel }
    }

    /// The underlying channel, for the role clients.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Asks `grpc.health.v1.Health/Check` about the `plugin` service; returns
    /// the serving status as text (`SERVING`, `NOT_SERVING`, ...).
    pub async fn health(&self) -> Result<HealthStatus, tonic::Status> {
        self.health_of(HEALTH_SERVICE_NAME).await
    }

    /// Asks `grpc.health.v1.Health/Check` about `service` (`""` is the
    /// server as a whole).
    pub async fn health_of(&self, service: &str) -> Result<HealthStatus, tonic::Status> {
        let mut client = HealthClient::new(self.channel.clone());
        let response = client
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?;
        Ok(
            match ServingStatus::try_from(response.into_inner().status) {
                Ok(ServingStatus::Serving) => HealthStatus::Serving,
                Ok(other) => HealthStatus::NotServing(other.as_str_name().to_owned()),
                Err(_) => HealthStatus::NotServing("an unknown status".to_owned()),
            },
        )
    }

    /// Calls `GetMetadata` and validates the answer.
    pub async fn metadata(&self) -> Result<PluginMetadata, PluginCallError> {
        let mut client = pb::plugin_client::PluginClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let metadata = client.get_metadata(pb::GetMetadataRequest {}).await?;
        Ok(convert::metadata_from_pb(metadata.into_inner())?)
    }

    /// Calls `Configure`; returns the problems the plugin found (empty when
    /// it accepted the configuration).
    pub async fn configure(
        &self,
        config: &serde_json::Value,
        instance_name: &str,
    ) -> Result<Vec<ConfigProblem>, tonic::Status> {
        let mut client = pb::plugin_client::PluginClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let response = client
            .configure(pb::ConfigureRequest {
                config_json: serde_json::to_vec(config).unwrap_or_else(|_| b"{}".to_vec()),
                instance_name: instance_name.to_owned(),
            })
            .await?;
        Ok(response
            .into_inner()
            .errors
            .into_iter()
            .map(|error| ConfigProblem {
                field: error.field,
                message: error.message,
            })
            .collect())
    }

    /// Calls go-plugin's `GRPCController/Shutdown`. Its reply may never come
    /// (the plugin closes its connections); callers ignore the error.
    pub async fn shutdown(&self) -> Result<(), tonic::Status> {
        let mut client =
            go_plugin::grpc_controller_client::GrpcControllerClient::new(self.channel.clone());
        client.shutdown(go_plugin::Empty {}).await?;
        Ok(())
    }

    /// Opens go-plugin's `GRPCStdio/StreamStdio`. A plugin that does not serve
    /// it answers `Unimplemented`, which callers ignore.
    pub async fn stdio(&self) -> Result<StdioStream, tonic::Status> {
        let mut client = go_plugin::grpc_stdio_client::GrpcStdioClient::new(self.channel.clone());
        let stream = client.stream_stdio(()).await?.into_inner();
        Ok(Box::pin(stream.filter_map(|chunk| match chunk {
            Err(status) => Some(Err(status)),
            Ok(chunk) => {
                let channel = match go_plugin::stdio_data::Channel::try_from(chunk.channel) {
                    Ok(go_plugin::stdio_data::Channel::Stdout) => StdioChannel::Stdout,
                    Ok(go_plugin::stdio_data::Channel::Stderr) => StdioChannel::Stderr,
                    // go-plugin hosts drop chunks of an invalid channel.
                    _ => return None,
                };
                Some(Ok((channel, chunk.data)))
            }
        })))
    }
}

/// The answer of a health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// The `plugin` service is serving.
    Serving,
    /// Any other status, by name.
    NotServing(String),
}
