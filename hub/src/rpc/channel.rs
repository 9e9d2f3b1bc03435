//! Connects a gRPC channel to the address a plugin printed in its handshake
//! line: a Unix socket (what every plugin uses outside Windows) or loopback TCP.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use switchyard_wire::handshake::{HandshakeLine, Network};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Why the hub could not connect to a plugin.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The plugin asked for TLS, which the hub never requested.
    #[error(
        "it sent a TLS certificate in its handshake line, but the hub did not ask for AutoMTLS"
    )]
    UnexpectedCertificate,
    /// The plugin asked for yamux multiplexing, which the hub never requested.
    #[error("it announced gRPC multiplexing, which the hub does not support")]
    UnexpectedMultiplexing,
    /// The TCP address is not a valid URI.
    #[error("its address {address:?} is not valid: {reason}")]
    BadAddress {
        /// The address as printed.
        address: String,
        /// What was wrong.
        reason: String,
    },
    /// Connecting failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The socket path or host:port.
        address: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Opens a channel to the plugin. Message size limits are raised to what Go
/// plugins allow, so large records are not refused by the hub.
pub async fn connect(line: &HandshakeLine) -> Result<Channel, ConnectError> {
    if line.server_cert_der.is_some() {
        return Err(ConnectError::UnexpectedCertificate);
    }
    if line.mux_supported == Some(true) {
        return Err(ConnectError::UnexpectedMultiplexing);
    }
    match line.network {
        Network::Unix => {
            let path = line.address.clone();
            let endpoint =
                Endpoint::from_static("http://localhost").connect_timeout(Duration::from_secs(5));
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .map_err(|source| ConnectError::Connect {
                    address: line.address.clone(),
                    source,
                })
        }
        Network::Tcp => {
            let endpoint = Endpoint::from_shared(format!("http://{}", line.address))
                .map_err(|err| ConnectError::BadAddress {
                    address: line.address.clone(),
                    reason: err.to_string(),
                })?
                .connect_timeout(Duration::from_secs(5));
            endpoint
                .connect()
                .await
                .map_err(|source| ConnectError::Connect {
                    address: line.address.clone(),
                    source,
                })
        }
    }
}

/// The largest message the hub sends or accepts (Go uses `i32::MAX`).
pub const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;
