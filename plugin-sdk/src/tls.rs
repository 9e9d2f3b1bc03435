//! AutoMTLS, the plugin side, as go-plugin's `plugin.Serve` does it.
//!
//! When the host sets `PLUGIN_CLIENT_CERT` (its PEM certificate), the plugin
//! makes its own throw-away certificate, prints it in the handshake line, and
//! serves gRPC over TLS: it requires a client certificate and accepts only
//! the host's, byte for byte (see `switchyard_wire::mtls`).
//!
//! One stricter choice than Go: a `PLUGIN_CLIENT_CERT` that cannot be read
//! stops the plugin (exit 1, the reason on stderr). go-plugin only logs it
//! and carries on, which ends in a TLS failure the host cannot explain.
//!
//! TLS handshakes run on their own tasks (with a deadline), so a client that
//! stalls or fails its handshake never holds up the others or the server.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use switchyard_wire::handshake::ENV_CLIENT_CERT;
use switchyard_wire::mtls::{self, Identity, MtlsError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, UdsConnectInfo};

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait after a failed `accept` (for example: out of file
/// descriptors) before trying again, so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Why AutoMTLS could not be set up; the plugin does not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// `PLUGIN_CLIENT_CERT` does not hold a usable certificate.
    #[error("{ENV_CLIENT_CERT} does not hold a usable certificate (AutoMTLS): {0}")]
    HostCertificate(MtlsError),
    /// The plugin's own certificate or TLS configuration could not be made.
    #[error("cannot set up AutoMTLS: {0}")]
    Setup(MtlsError),
}

/// The plugin's AutoMTLS state: its certificate and the TLS acceptor pinned
/// to the host's certificate.
pub(crate) struct AutoMtls {
    identity: Identity,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for AutoMtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoMtls")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl AutoMtls {
    /// Sets AutoMTLS up from the value of `PLUGIN_CLIENT_CERT`: `None` (or an
    /// empty value) means the host did not ask for it.
    pub(crate) fn from_env(host_cert_pem: Option<&str>) -> Result<Option<Self>, TlsSetupError> {
        let Some(pem) = host_cert_pem.filter(|pem| !pem.trim().is_empty()) else {
            return Ok(None);
        };
        let host_cert = mtls::parse_pem_certificate(pem).map_err(TlsSetupError::HostCertificate)?;
        let identity = Identity::generate().map_err(TlsSetupError::Setup)?;
        // Logged as the certificate is refused, before the alert: the host
        // stops the plugin as soon as it hears it, and its error carries
        // this line.
        let config = mtls::server_config_reporting(&identity, host_cert, |reason| {
            tracing::warn!(reason, "Refusing the host's TLS connection.");
        })
        .map_err(TlsSetupError::Setup)?;
        Ok(Some(AutoMtls {
            identity,
            acceptor: TlsAcceptor::from(config),
        }))
    }

    /// The plugin's certificate (DER), for the handshake line's 6th field.
    pub(crate) fn cert_der(&self) -> Vec<u8> {
        self.identity.cert_der().to_vec()
    }

    /// The accepted, TLS-established connections on `listener`, for tonic's
    /// `serve_with_incoming`. Failed handshakes are logged and dropped; the
    /// stream ends when `shutdown` is cancelled.
    pub(crate) fn incoming(
        &self,
        listener: UnixListener,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Result<TlsConnection, std::io::Error>> + use<> {
        let (sender, receiver) = mpsc::channel(16);
        tokio::spawn(accept_loop(
            listener,
            self.acceptor.clone(),
            sender,
            shutdown,
        ));
        ReceiverStream::new(receiver)
    }
}

async fn accept_loop(
    listener: UnixListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<Result<TlsConnection, std::io::Error>>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            () = sender.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(error = %error, "Cannot accept a connection; retrying.");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let (acceptor, sender) = (acceptor.clone(), sender.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = sender.send(Ok(TlsConnection(stream))).await;
                }
                Ok(Err(error)) => {
                    tracing::warn!(
                        error = %mtls::describe_io_error(&error),
                        "A TLS handshake failed; the connection was closed."
                    );
                }
                Err(_) => {
                    tracing::warn!(
                        timeout = ?HANDSHAKE_TIMEOUT,
                        "A client did not complete its TLS handshake in time; the connection was closed."
                    );
                }
            }
        });
    }
}

/// One TLS connection from the host, as tonic serves it.
pub(crate) struct TlsConnection(TlsStream<UnixStream>);

impl Connected for TlsConnection {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hyper_util::rt::TokioIo;
    use tonic::transport::{Channel, Endpoint};

    use super::*;
    use crate::services::client::check_health as health;

    /// Connects to `path` over TLS as `identity`, trusting `server_cert` only.
    async fn connect(
        path: &std::path::Path,
        identity: &Identity,
        server_cert: Vec<u8>,
    ) -> Result<Channel, tonic::transport::Error> {
        let config = mtls::client_config(identity, server_cert.into()).unwrap();
        let path = path.to_path_buf();
        Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let (path, config) = (path.clone(), config.clone());
                async move {
                    let stream = UnixStream::connect(path).await?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(mtls::server_name(), stream)
                        .await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
    }

    #[tokio::test]
    async fn serves_the_pinned_host_and_survives_an_impostor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let host = Identity::generate().unwrap();
        let tls = AutoMtls::from_env(Some(host.cert_pem())).unwrap().unwrap();
        let plugin_cert = tls.cert_der();
        let shutdown = CancellationToken::new();
        let (_reporter, service) = tonic_health::server::health_reporter();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tls.incoming(listener, shutdown.clone()),
                    shutdown.clone().cancelled_owned(),
                ),
        );

        let channel = connect(&path, &host, plugin_cert.clone()).await.unwrap();
        assert!(health(channel, "").await.unwrap());

        // A client with another certificate gets nowhere (TLS 1.3: the
        // server's alert arrives on the first read)...
        let impostor = Identity::generate().unwrap();
        let refused = match connect(&path, &impostor, plugin_cert.clone()).await {
            Err(_) => true,
            Ok(channel) => health(channel, "").await.is_err(),
        };
        assert!(refused, "the impostor was served");
        // ...and a client trusting another server certificate refuses the plugin.
        assert!(
            connect(&path, &host, impostor.cert_der().to_vec())
                .await
                .is_err()
        );
        // The server keeps serving the real host.
        let channel = connect(&path, &host, plugin_cert).await.unwrap();
        assert!(health(channel, "").await.unwrap());

        shutdown.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn no_or_empty_variable_means_no_tls() {
        assert!(AutoMtls::from_env(None).unwrap().is_none());
        assert!(AutoMtls::from_env(Some("")).unwrap().is_none());
    }

    #[test]
    fn an_unreadable_host_certificate_is_a_clear_error() {
        let error = AutoMtls::from_env(Some("garbage")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "PLUGIN_CLIENT_CERT does not hold a usable certificate (AutoMTLS): the PEM text holds no CERTIFICATE block"
        );
    }
}
