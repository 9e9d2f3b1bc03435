//! The only hub module that names the generated protobuf (`pb`) types: the
//! gRPC channel to a plugin, one client per concern, and conversions to the
//! hub's domain types.
//!
//! * [`channel`]: connect to the address a plugin printed in its handshake.
//! * [`plugin`]: health, metadata, Configure, Shutdown and the stdio stream.
//! * [`roles`]: Poll, HandleWebhook, Enrich and HandleEvent.
//! * [`convert`]: pb <-> domain, validating what plugins send.

pub mod channel;
pub mod convert;
pub mod plugin;
pub mod roles;

/// Why a call to a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin answered INVALID_ARGUMENT: the input is bad and retrying
    /// will not help.
    #[error("the plugin rejected the input: {0}")]
    Rejected(String),
    /// The call failed with another gRPC status (or the connection broke).
    #[error("the call failed: {code}: {message}")]
    Failed {
        /// The gRPC status code, as text (for example `Unavailable`).
        code: String,
        /// The status message.
        message: String,
        /// How long the plugin asked the hub to wait before trying again
        /// (metadata `switchyard-retry-after-ms` or `grpc-retry-pushback-ms`).
        retry_after: Option<std::time::Duration>,
    },
    /// The plugin answered something that breaks the wire contract.
    #[error("the plugin broke the protocol: {0}")]
    Protocol(String),
}

impl From<tonic::Status> for CallError {
    fn from(status: tonic::Status) -> Self {
        if status.code() == tonic::Code::InvalidArgument {
            CallError::Rejected(status.message().to_owned())
        } else {
            CallError::Failed {
                code: format!("{:?}", status.code()),
                message: status.message().to_owned(),
                retry_after: retry_after_hint(status.metadata()),
            }
        }
    }
}

/// The retry-after hint a plugin attached to an error status, if any: the
/// SDK's `switchyard-retry-after-ms`, or gRPC's `grpc-retry-pushback-ms`.
pub fn retry_after_hint(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    ["switchyard-retry-after-ms", "grpc-retry-pushback-ms"]
        .iter()
        .filter_map(|key| metadata.get(*key))
        .filter_map(|value| value.to_str().ok())
        .filter_map(|text| text.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
        .next()
}

impl From<convert::ConvertError> for CallError {
    fn from(err: convert::ConvertError) -> Self {
        CallError::Protocol(err.0)
    }
}
