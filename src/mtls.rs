//! AutoMTLS exactly as go-plugin does it, for both sides of the connection.
//!
//! When AutoMTLS is on, the host makes a throw-away certificate and hands its
//! PEM to the plugin in `PLUGIN_CLIENT_CERT`; the plugin makes its own and
//! prints it (base64 DER, no padding) as the 6th field of the handshake line.
//! Each side then trusts exactly that one certificate: the host is the TLS
//! client, the plugin the TLS server, and both present a certificate.
//!
//! The certificates copy go-plugin's `mtls.go`: ECDSA P-521 signed with
//! SHA-512, self-signed, CN and SAN `localhost`, both `serverAuth` and
//! `clientAuth` extended key usages, `IsCA = true`, valid from 30 seconds ago
//! for about 30 years, with a random 128-bit serial number.
//!
//! Two traps decide how this is built (see the go-plugin protocol notes):
//! * rustls's stock WebPKI verifiers refuse a CA certificate used as an
//!   end-entity certificate (`CaUsedAsEndEntity`), and go-plugin's are CAs.
//!   [`PinnedCertificate`] therefore compares the peer's DER byte for byte with
//!   the one certificate exchanged in the handshake, and only checks the TLS
//!   handshake signatures.
//! * *ring* cannot verify P-521 signatures, so everything here uses rustls's
//!   aws-lc-rs provider, whose algorithms include `ecdsa_secp521r1_sha512`.
//!
//! Both configurations offer ALPN `h2` (grpc-go requires it) and accept TLS
//! 1.2 and 1.3; the client names the server `localhost`, as go-plugin does.
//!
//! ```
//! use switchyard_wire::mtls::{self, Identity};
//!
//! let host = Identity::generate().unwrap();
//! let plugin = Identity::generate().unwrap();
//! // The plugin reads the host's certificate from PLUGIN_CLIENT_CERT ...
//! let host_cert = mtls::parse_pem_certificate(host.cert_pem()).unwrap();
//! let _server = mtls::server_config(&plugin, host_cert).unwrap();
//! // ... and the host reads the plugin's from the handshake line.
//! let _client = mtls::client_config(&host, plugin.cert_der().clone()).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

/// The name both sides put in their certificates and the host expects the
/// plugin's certificate to be for (go-plugin's `ServerName`).
pub const SERVER_NAME: &str = "localhost";

/// The ALPN protocol both sides offer: HTTP/2, which grpc-go insists on.
pub const ALPN_H2: &[u8] = b"h2";

/// How long go-plugin's certificates are valid: 262 980 hours (about 30 years).
const VALIDITY: time::Duration = time::Duration::hours(262_980);

/// How far back the validity starts, to allow for clock differences.
const BACKDATE: time::Duration = time::Duration::seconds(30);

/// Why a certificate or TLS configuration could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum MtlsError {
    /// Generating the key pair or signing the certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// The text is not PEM, or its `CERTIFICATE` block is not valid base64.
    #[error("the PEM text cannot be read: {0}")]
    Pem(String),
    /// The PEM text has no `CERTIFICATE` block.
    #[error("the PEM text holds no CERTIFICATE block")]
    NoCertificate,
    /// The DER bytes are not an X.509 certificate rustls can work with.
    #[error("the certificate is not a valid X.509 certificate: {0}")]
    BadCertificate(String),
    /// rustls refused the configuration (for example the key does not match).
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate and its private key: what one side presents.
///
/// `Debug` never shows the key.
pub struct Identity {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cert_der_bytes", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a fresh key pair and a self-signed certificate like
    /// go-plugin's `generateCert` (see the module documentation).
    pub fn generate() -> Result<Self, MtlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P521_SHA512,
            SerialNumber,
        };
        let generate = |err: &dyn fmt::Display| MtlsError::Generate(err.to_string());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P521_SHA512).map_err(|err| generate(&err))?;

        let mut params =
            CertificateParams::new(vec![SERVER_NAME.to_owned()]).map_err(|err| generate(&err))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, SERVER_NAME);
        name.push(DnType::OrganizationName, "Switchyard");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + VALIDITY;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));

        let cert = params.self_signed(&key).map_err(|err| generate(&err))?;
        Ok(Identity {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The certificate, DER-encoded: what a plugin prints (base64) in its
    /// handshake line.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The certificate as one PEM `CERTIFICATE` block: what a host puts in
    /// `PLUGIN_CLIENT_CERT`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
}

/// A random positive 128-bit serial number, as go-plugin uses.
fn random_serial() -> Result<[u8; 16], MtlsError> {
    let mut serial = [0u8; 16];
    provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|_| MtlsError::Generate("the system random source failed".to_owned()))?;
    // Positive and without a leading zero byte, so it stays 16 bytes in DER.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// Reads the first `CERTIFICATE` block of PEM text (other blocks are ignored,
/// as Go's `AppendCertsFromPEM` does) and checks that it is an X.509
/// certificate.
pub fn parse_pem_certificate(pem: &str) -> Result<CertificateDer<'static>, MtlsError> {
    let cert = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or(MtlsError::NoCertificate)?
        .map_err(|err| MtlsError::Pem(err.to_string()))?;
    check_certificate(&cert)?;
    Ok(cert)
}

/// Checks that DER bytes are an X.509 certificate rustls can verify
/// signatures with (it does not check who issued it: the peer is pinned).
pub fn check_certificate(der: &CertificateDer<'_>) -> Result<(), MtlsError> {
    webpki::EndEntityCert::try_from(der)
        .map(|_| ())
        .map_err(|err| MtlsError::BadCertificate(format!("{err:?}")))
}

/// The TLS client configuration of a host: presents `identity`, trusts only
/// `server_cert` (the one the plugin printed), offers ALPN `h2`.
///
/// Connect with [`server_name`] as the name.
pub fn client_config(
    identity: &Identity,
    server_cert: CertificateDer<'static>,
) -> Result<Arc<ClientConfig>, MtlsError> {
    check_certificate(&server_cert)?;
    let verifier = PinnedCertificate::new(
        server_cert,
        "the plugin presented a certificate other than the one in its handshake line",
    );
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![identity.cert_der.clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The TLS server configuration of a plugin: presents `identity`, requires a
/// client certificate and accepts only `client_cert` (the one from
/// `PLUGIN_CLIENT_CERT`), offers ALPN `h2`.
pub fn server_config(
    identity: &Identity,
    client_cert: CertificateDer<'static>,
) -> Result<Arc<ServerConfig>, MtlsError> {
    server_config_reporting(identity, client_cert, |_| {})
}

/// [`server_config`] that also calls `on_refusal` with the reason whenever it
/// refuses the host's certificate, *before* the TLS alert goes out.
///
/// A plugin logs the reason there: a host that sees the alert (or the closed
/// connection) stops the plugin at once, and a line logged after the
/// handshake fails could be lost with it.
pub fn server_config_reporting(
    identity: &Identity,
    client_cert: CertificateDer<'static>,
    on_refusal: impl Fn(&str) + Send + Sync + 'static,
) -> Result<Arc<ServerConfig>, MtlsError> {
    check_certificate(&client_cert)?;
    let verifier = PinnedCertificate::new(
        client_cert,
        "the host presented a client certificate other than the one in PLUGIN_CLIENT_CERT",
    )
    .reporting_refusals(on_refusal);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![identity.cert_der.clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The name a host connects to: `localhost`.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME)
        .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

/// Describes a TLS failure for people: rustls's own text, except that a pin
/// mismatch reads as a sentence (rustls shows custom certificate errors in
/// their debug form).
pub fn describe_tls_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            format!("invalid peer certificate: {other}")
        }
        other => other.to_string(),
    }
}

/// [`describe_tls_error`] for the I/O errors tokio-rustls returns (which
/// carry the rustls error inside).
pub fn describe_io_error(error: &std::io::Error) -> String {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_tls_error(tls),
        None => error.to_string(),
    }
}

/// rustls's aws-lc-rs provider (which can verify P-521 signatures).
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// A certificate verifier for either side that accepts exactly one
/// certificate (compared as DER bytes) and checks the handshake signatures
/// with the aws-lc-rs provider's algorithms.
///
/// Chains, names, key usages and CA flags are not examined: the peer's
/// certificate was handed over out of band (environment variable or
/// handshake line) moments before, and pinning it is the whole trust model,
/// as it is in go-plugin.
pub struct PinnedCertificate {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: &'static str,
    on_refusal: Option<RefusalReport>,
}

/// What a [`PinnedCertificate`] calls with the reason when it refuses a peer.
type RefusalReport = Box<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for PinnedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedCertificate")
            .field("expected_bytes", &self.expected.len())
            .finish_non_exhaustive()
    }
}

/// The error a pin mismatch gives; its text is what an operator reads.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PinMismatch(&'static str);

impl PinnedCertificate {
    /// Accepts only `expected`; `mismatch` says what happened when another
    /// certificate is presented.
    pub fn new(expected: CertificateDer<'static>, mismatch: &'static str) -> Self {
        PinnedCertificate {
            expected,
            algorithms: provider().signature_verification_algorithms,
            mismatch,
            on_refusal: None,
        }
    }

    /// Calls `on_refusal` with the reason (the `mismatch` text) each time
    /// another certificate is refused, before rustls sends its alert.
    #[must_use]
    pub fn reporting_refusals(mut self, on_refusal: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_refusal = Some(Box::new(on_refusal));
        self
    }

    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.expected.as_ref() {
            Ok(())
        } else {
            if let Some(on_refusal) = &self.on_refusal {
                on_refusal(self.mismatch);
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch(self.mismatch))),
            )))
        }
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names are sent: Go clients then offer their certificate
    /// whoever issued it.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rustls::{ClientConnection, ServerConnection};

    use super::*;

    /// Runs a TLS handshake in memory; returns the first error either side hit.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
        let mut client = ClientConnection::new(client, server_name())?;
        let mut server = ServerConnection::new(server)?;
        for _ in 0..20 {
            let mut buffer = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buffer).unwrap();
            }
            let mut reader = buffer.as_slice();
            while !reader.is_empty() {
                server.read_tls(&mut reader).unwrap();
            }
            server.process_new_packets()?;
            let mut buffer = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buffer).unwrap();
            }
            let mut reader = buffer.as_slice();
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
            }
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
                return Ok((client, server));
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn pinned_peers_complete_a_handshake_with_alpn_h2() {
        let host = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let host_cert = parse_pem_certificate(host.cert_pem()).unwrap();
        assert_eq!(&host_cert, host.cert_der());
        let (client, server) = handshake(
            client_config(&host, plugin.cert_der().clone()).unwrap(),
            server_config(&plugin, host_cert).unwrap(),
        )
        .unwrap();
        assert_eq!(client.alpn_protocol(), Some(ALPN_H2));
        assert_eq!(
            client.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(
            server.peer_certificates().unwrap(),
            std::slice::from_ref(host.cert_der())
        );
    }

    #[test]
    fn tls12_works_too() {
        let host = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let pinned = PinnedCertificate::new(plugin.cert_der().clone(), "mismatch");
        let mut client = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pinned))
            .with_client_auth_cert(vec![host.cert_der().clone()], host.key())
            .unwrap();
        client.alpn_protocols = vec![ALPN_H2.to_vec()];
        let (client, _) = handshake(
            Arc::new(client),
            server_config(&plugin, host.cert_der().clone()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            client.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
    }

    #[test]
    fn a_server_with_another_certificate_is_refused() {
        let host = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let impostor = Identity::generate().unwrap();
        let Err(error) = handshake(
            client_config(&host, plugin.cert_der().clone()).unwrap(),
            server_config(&impostor, host.cert_der().clone()).unwrap(),
        ) else {
            panic!("the impostor was accepted");
        };
        assert_eq!(
            describe_tls_error(&error),
            "invalid peer certificate: the plugin presented a certificate other than the one in its handshake line"
        );
    }

    #[test]
    fn a_refusal_is_reported_with_its_reason_and_an_accepted_host_is_not() {
        let host = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let impostor = Identity::generate().unwrap();
        let reported = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let server = {
            let reported = Arc::clone(&reported);
            server_config_reporting(&plugin, host.cert_der().clone(), move |reason| {
                reported.lock().unwrap().push(reason.to_owned());
            })
            .unwrap()
        };
        handshake(
            client_config(&host, plugin.cert_der().clone()).unwrap(),
            Arc::clone(&server),
        )
        .unwrap();
        assert!(reported.lock().unwrap().is_empty());
        assert!(
            handshake(
                client_config(&impostor, plugin.cert_der().clone()).unwrap(),
                server,
            )
            .is_err()
        );
        assert_eq!(
            *reported.lock().unwrap(),
            ["the host presented a client certificate other than the one in PLUGIN_CLIENT_CERT"]
        );
    }

    #[test]
    fn a_client_with_another_certificate_is_refused() {
        let host = Identity::generate().unwrap();
        let plugin = Identity::generate().unwrap();
        let impostor = Identity::generate().unwrap();
        let Err(error) = handshake(
            client_config(&impostor, plugin.cert_der().clone()).unwrap(),
            server_config(&plugin, host.cert_der().clone()).unwrap(),
        ) else {
            panic!("the impostor was accepted");
        };
        assert_eq!(
            describe_tls_error(&error),
            "invalid peer certificate: the host presented a client certificate other than the one in PLUGIN_CLIENT_CERT"
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
        assert_eq!(
            describe_io_error(&io),
            describe_tls_error(&rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch(
                    "the host presented a client certificate other than the one in PLUGIN_CLIENT_CERT"
                )))
            )))
        );
    }

    #[test]
    fn certificates_look_like_go_plugins() {
        let identity = Identity::generate().unwrap();
        let der = identity.cert_der().as_ref();
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|window| window == needle);
        // namedCurve secp521r1 (1.3.132.0.35) and ecdsa-with-SHA512 (1.2.840.10045.4.3.4).
        assert!(contains(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]));
        assert!(contains(&[
            0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04
        ]));
        // serverAuth and clientAuth extended key usages, and cA = TRUE.
        assert!(contains(&[
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01
        ]));
        assert!(contains(&[
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02
        ]));
        assert!(contains(&[0x30, 0x03, 0x01, 0x01, 0xff]));
        assert!(contains(b"localhost"));
        assert!(
            identity
                .cert_pem()
                .starts_with("-----BEGIN CERTIFICATE-----\n")
        );
        // Two certificates never share a serial number or key.
        assert_ne!(
            Identity::generate().unwrap().cert_der(),
            identity.cert_der()
        );
        // The key never shows in Debug output.
        assert!(!format!("{identity:?}").contains("PRIVATE"));
    }

    #[test]
    fn garbage_pem_gives_clear_errors() {
        let error = parse_pem_certificate("not a certificate").unwrap_err();
        assert!(matches!(error, MtlsError::NoCertificate), "{error}");
        assert_eq!(error.to_string(), "the PEM text holds no CERTIFICATE block");

        let error =
            parse_pem_certificate("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
                .unwrap_err();
        assert!(matches!(error, MtlsError::Pem(_)), "{error}");

        // Valid PEM and base64, but not a certificate inside.
        let error = parse_pem_certificate(
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(matches!(error, MtlsError::BadCertificate(_)), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("the certificate is not a valid X.509")
        );
    }

    #[test]
    fn a_garbage_peer_certificate_is_refused_when_configuring() {
        let host = Identity::generate().unwrap();
        let error = client_config(&host, CertificateDer::from(vec![1, 2, 3])).unwrap_err();
        assert!(matches!(error, MtlsError::BadCertificate(_)), "{error}");
    }
}
