//! Connects a gRPC channel to the address a plugin printed in its handshake
//! line: a Unix socket (what every plugin uses outside Windows) or loopback TCP.
//!
//! With AutoMTLS (`tls = "auto"`), the connection runs over TLS (tokio-rustls,
//! inside the connector, since tonic's own TLS settings take no custom
//! verifier): the hub presents the certificate it put in `PLUGIN_CLIENT_CERT`
//! and accepts only the certificate the plugin printed in the handshake line
//! (see `switchyard_wire::mtls`).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use switchyard_wire::handshake::{HandshakeLine, Network};
use switchyard_wire::mtls::{self, Identity, MtlsError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};

use super::io_thread::IoExecutor;

/// Why the hub could not connect to a plugin.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The plugin sent a certificate although the hub did not ask for AutoMTLS.
    #[error(
        "it sent a TLS certificate in its handshake line, but the hub did not ask for AutoMTLS (set `tls = \"auto\"` for it in plugins.toml to use AutoMTLS)"
    )]
    UnexpectedCertificate,
    /// AutoMTLS is on, but the plugin printed no certificate.
    #[error(
        "it did not offer a certificate in its handshake line although `tls = \"auto\"` is set for it: does it support AutoMTLS?"
    )]
    MissingCertificate,
    /// The certificate the plugin printed cannot be used.
    #[error("the certificate in its handshake line cannot be used: {0}")]
    BadCertificate(MtlsError),
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
    /// The thread that runs the connection could not be started.
    #[error("cannot start the thread for its connection: {0}")]
    Thread(std::io::Error),
    /// The TLS handshake (AutoMTLS) failed, or the plugin ended the TLS
    /// session with an alert (it refused the hub's certificate).
    #[error("the TLS handshake with it on {address} failed: {reason}")]
    Tls {
        /// The socket path or host:port.
        address: String,
        /// What rustls said.
        reason: String,
    },
}

/// The first TLS failure on a plugin's connection, if any. A TLS 1.3 server
/// checks the client's certificate after the client considers the handshake
/// done, so a plugin refusing the hub's certificate shows up later, as an
/// alert or a closed connection: the connection records it here so the
/// caller can report it instead of an opaque "transport error".
#[derive(Debug, Clone, Default)]
pub struct TlsFailure(Arc<OnceLock<String>>);

impl TlsFailure {
    /// What went wrong first, if anything did.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    fn record(&self, reason: String) {
        let _ = self.0.set(reason);
    }
}

/// A connected plugin channel.
#[derive(Debug)]
pub struct PluginChannel {
    /// The gRPC channel.
    pub channel: Channel,
    /// TLS failures seen on it (never set without AutoMTLS).
    pub tls_failure: TlsFailure,
}

impl PluginChannel {
    /// A [`ConnectError::Tls`] when TLS failed on this connection.
    pub fn tls_error(&self, line: &HandshakeLine) -> Option<ConnectError> {
        self.tls_failure.get().map(|reason| ConnectError::Tls {
            address: line.address.clone(),
            reason: reason.to_owned(),
        })
    }
}

/// Opens a channel to the plugin. Message size limits are raised to what Go
/// plugins allow, so large records are not refused by the hub.
///
/// The connection runs on a thread of its own ([`IoExecutor`]): the socket
/// is opened there and every task of the channel is spawned there, so a
/// call's bytes never hop between the hub's worker threads.
///
/// `tls` is the hub's certificate for this launch when the plugin runs with
/// `tls = "auto"` (it was sent in `PLUGIN_CLIENT_CERT`); then the plugin must
/// have printed its certificate, and only that one is accepted.
pub async fn connect(
    line: &HandshakeLine,
    tls: Option<&Identity>,
) -> Result<PluginChannel, ConnectError> {
    if line.mux_supported == Some(true) {
        return Err(ConnectError::UnexpectedMultiplexing);
    }
    let tls_config = match (tls, &line.server_cert_der) {
        (None, None) => None,
        (None, Some(_)) => return Err(ConnectError::UnexpectedCertificate),
        (Some(_), None) => return Err(ConnectError::MissingCertificate),
        (Some(identity), Some(der)) => Some(
            mtls::client_config(identity, der.clone().into())
                .map_err(ConnectError::BadCertificate)?,
        ),
    };
    let tls_failure = TlsFailure::default();
    let endpoint = match line.network {
        Network::Unix => Endpoint::from_static("http://localhost"),
        Network::Tcp => {
            Endpoint::from_shared(format!("http://{}", line.address)).map_err(|err| {
                ConnectError::BadAddress {
                    address: line.address.clone(),
                    reason: err.to_string(),
                }
            })?
        }
    }
    .connect_timeout(Duration::from_secs(5));
    let io = IoExecutor::start("sy-plugin-io").map_err(ConnectError::Thread)?;
    let endpoint = endpoint.executor(io.clone());
    let address = line.address.clone();
    // Each connector opens the socket (and runs the TLS handshake) on the
    // connection's thread, so the socket's events reach that thread.
    let result = match (line.network, tls_config) {
        (Network::Unix, None) => {
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let (path, io) = (address.clone(), io.clone());
                    async move {
                        let stream = io.run(UnixStream::connect(path)).await??;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        (Network::Tcp, None) => {
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let (address, io) = (address.clone(), io.clone());
                    async move {
                        let stream = io.run(tcp_connect(address)).await??;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        (Network::Unix, Some(config)) => {
            let failure = tls_failure.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let (path, config, failure, io) =
                        (address.clone(), config.clone(), failure.clone(), io.clone());
                    async move {
                        io.run(async move {
                            let stream = UnixStream::connect(path).await?;
                            tls_handshake(stream, config, failure).await
                        })
                        .await?
                    }
                }))
                .await
        }
        (Network::Tcp, Some(config)) => {
            let failure = tls_failure.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let (address, config, failure, io) =
                        (address.clone(), config.clone(), failure.clone(), io.clone());
                    async move {
                        io.run(async move {
                            let stream = tcp_connect(address).await?;
                            tls_handshake(stream, config, failure).await
                        })
                        .await?
                    }
                }))
                .await
        }
    };
    match result {
        Ok(channel) => Ok(PluginChannel {
            channel,
            tls_failure,
        }),
        Err(source) => Err(match tls_failure.get() {
            Some(reason) => ConnectError::Tls {
                address: line.address.clone(),
                reason: reason.to_owned(),
            },
            None => ConnectError::Connect {
                address: line.address.clone(),
                source,
            },
        }),
    }
}

/// Connects to a loopback TCP address with Nagle's algorithm off (as
/// tonic's own connector does).
async fn tcp_connect(address: String) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs the client side of the TLS handshake on a fresh stream.
async fn tls_handshake<S>(
    stream: S,
    config: Arc<rustls::ClientConfig>,
    failure: TlsFailure,
) -> std::io::Result<TokioIo<Watched<TlsStream<S>>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match TlsConnector::from(config)
        .connect(mtls::server_name(), stream)
        .await
    {
        Ok(stream) => Ok(TokioIo::new(Watched {
            inner: stream,
            failure,
            established: false,
        })),
        Err(err) => {
            failure.record(mtls::describe_io_error(&err));
            Err(err)
        }
    }
}

/// A TLS stream that records, in a [`TlsFailure`], the first TLS error on it
/// and anything that ends it before the plugin sent a byte of data (a TLS
/// 1.3 server that refuses the client's certificate sends its alert after
/// the client's side of the handshake is complete, then closes).
struct Watched<T> {
    inner: T,
    failure: TlsFailure,
    /// True once application data has arrived: later errors are ordinary
    /// connection errors, not TLS refusals.
    established: bool,
}

impl<T> Watched<T> {
    fn note(&self, error: &std::io::Error) {
        // rustls reports alerts and protocol errors as InvalidData.
        if error.kind() == std::io::ErrorKind::InvalidData {
            self.failure.record(mtls::describe_io_error(error));
        } else if !self.established {
            self.failure.record(format!(
                "it closed the connection right after the TLS handshake ({error}): did it refuse the hub's certificate?"
            ));
        }
    }
}

impl<T: AsyncRead + Unpin> Watched<T> {
    /// After a failed write on a fresh connection, reads what the plugin
    /// sent before it closed: usually the TLS alert that says why.
    fn catch_alert(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 256];
        let mut buf = ReadBuf::new(&mut scratch);
        if let Poll::Ready(Err(error)) = Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
            self.note(&error);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.established = true,
            Poll::Ready(Ok(())) if !self.established => self.failure.record(
                "it closed the connection right after the TLS handshake (end of file): did it refuse the hub's certificate?"
                    .to_owned(),
            ),
            Poll::Ready(Err(error)) => self.note(error),
            _ => {}
        }
        result
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Watched<T> {
    fn after_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if let Poll::Ready(Err(error)) = &result {
            if !self.established {
                self.catch_alert(cx);
            }
            self.note(error);
        }
        result
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.after_write(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The largest message the hub sends or accepts (Go uses `i32::MAX`).
pub const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;
