//! The only hub module that names the generated protobuf (`pb`) types: the
//! gRPC channel to a plugin, one client per concern, and conversions to the
//! hub's domain types.
//!
//! * [`channel`]: connect to the address a plugin printed in its handshake.
//! * [`io_thread`]: the thread each plugin connection runs on.
//! * [`plugin`]: health, metadata, Configure, Shutdown and the stdio stream.
//! * [`roles`]: Poll, HandleWebhook, Enrich and HandleEvent.
//! * `enrich_stream`: the one `Enrich` stream each connection shares.
//! * `messages`: how a streamed call's items are packed into messages.
//! * [`convert`]: pb <-> domain, validating what plugins send.

pub mod channel;
pub mod convert;
mod enrich_stream;
pub mod io_thread;
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
    #[error("the call failed: {}: {message}", code_name(*.code))]
    Failed {
        /// The gRPC status code.
        code: tonic::Code,
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

impl CallError {
    /// The gRPC code of the failure, if it has one (`Rejected` is
    /// INVALID_ARGUMENT; a protocol violation has none).
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CallError::Rejected(_) => Some(tonic::Code::InvalidArgument),
            CallError::Failed { code, .. } => Some(*code),
            CallError::Protocol(_) => None,
        }
    }

    /// The plugin's retry-after hint, if it gave one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            CallError::Failed { retry_after, .. } => *retry_after,
            CallError::Rejected(_) | CallError::Protocol(_) => None,
        }
    }
}

/// The name of a gRPC code as the gRPC specification spells it
/// (`UNAVAILABLE`), for messages and config.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<tonic::Status> for CallError {
    fn from(status: tonic::Status) -> Self {
        if status.code() == tonic::Code::InvalidArgument {
            CallError::Rejected(status.message().to_owned())
        } else {
            CallError::Failed {
                code: status.code(),
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
