"""go-plugin's AutoMTLS, the plugin side.

When the host sets ``PLUGIN_CLIENT_CERT`` (its PEM certificate), the plugin
makes a throw-away certificate of its own, prints it in the handshake line
(the 6th field: base64 of the DER, without ``=`` padding) and serves gRPC over
TLS, requiring a client certificate and trusting only the host's.

The certificate copies go-plugin's ``mtls.go`` (``generateCert``): an ECDSA
P-521 key, self-signed with ECDSA-SHA512, CN ``localhost`` and O
``HashiCorp``, SAN DNS ``localhost``, extended key usages ``serverAuth`` and
``clientAuth`` (the same certificate serves both roles), key usages digital
signature, key encipherment, key agreement and certificate signing,
``IsCA``, a random 128-bit serial, valid from 30 seconds ago for 262 980
hours. The Switchyard hub and any go-plugin host (Go's x509 verifier) accept
it.

Why TLS is not done by gRPC itself: grpcio's TLS (BoringSSL) leaves
``ecdsa_secp521r1_sha512`` out of the signature algorithms a server accepts
from clients, so under TLS 1.3 a host whose certificate is go-plugin's P-521
one cannot authenticate (the hub and Go both send no certificate, and the
handshake fails with ``PEER_DID_NOT_RETURN_A_CERTIFICATE``), and grpcio cannot
cap TLS at 1.2. :class:`TlsFront` therefore terminates TLS with Python's own
``ssl`` module (OpenSSL, which accepts P-521) on the plugin's public socket
and forwards the plaintext to the gRPC server, which listens on a socket in a
private (0700) directory next to it.

The host's certificate is checked twice: OpenSSL verifies it against
``PLUGIN_CLIENT_CERT`` (as go-plugin's ``ClientCAs`` does), and the front then
requires the exact certificate bytes the host sent, so nothing else signed by
that key is accepted either.

One stricter choice than Go, as in the Rust SDK: a ``PLUGIN_CLIENT_CERT`` that
holds no readable certificate stops the plugin (exit 1, the reason on
stderr); go-plugin only logs it and carries on into a TLS failure the host
cannot explain.
"""

import asyncio
import base64
import datetime
import logging
import os
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from typing import List, Optional, Set

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .handshake import ENV_CLIENT_CERT, HandshakeError

logger = logging.getLogger("switchyard_plugin")

#: The name in the certificate, and the name go-plugin hosts expect the plugin's certificate to be for.
SERVER_NAME = "localhost"
#: How long the certificate is valid (go-plugin: 262 980 hours, about 30 years).
VALIDITY = datetime.timedelta(hours=262_980)
#: How far back the validity starts, to allow for clock differences.
BACKDATE = datetime.timedelta(seconds=30)
#: How long a client has to complete its TLS handshake.
HANDSHAKE_TIMEOUT_SECONDS = 10.0
#: The longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH_BYTES = 107


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, as PEM (and the certificate as DER)."""

    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes

    def handshake_field(self) -> str:
        """The certificate as the handshake line's 6th field: standard base64 of the DER, no padding."""
        return base64.b64encode(self.cert_der).decode("ascii").rstrip("=")


def generate_identity(now: Optional[datetime.datetime] = None) -> Identity:
    """A fresh self-signed certificate exactly like go-plugin's ``generateCert``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbelow(2**128 - 1) + 1)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(key, hashes.SHA512())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "EC PRIVATE KEY", as go-plugin writes it
        serialization.NoEncryption(),
    )
    return Identity(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )


def read_host_certificate(pem: str) -> List[bytes]:
    """The DER of every certificate in ``PLUGIN_CLIENT_CERT`` (go-plugin sends one).

    Raises :class:`HandshakeError` naming the variable when it holds none.
    """
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8", "replace"))
    except ValueError as err:
        raise HandshakeError(f"{ENV_CLIENT_CERT} does not hold a usable certificate (AutoMTLS): {err}") from None
    return [cert.public_bytes(serialization.Encoding.DER) for cert in certificates]


class TlsFront:
    """Serves AutoMTLS on the plugin's public socket and forwards the plaintext to its gRPC server.

    ``public_path`` is the socket the handshake line names; :attr:`inner_address`
    is where the gRPC server must listen (insecure: only this process can
    reach it). Call :meth:`start` once the gRPC server runs and :meth:`close`
    after it stopped. Connections are handled on one asyncio loop in a daemon
    thread. A client that does not finish its TLS handshake within
    :data:`HANDSHAKE_TIMEOUT_SECONDS`, fails it, or presents any certificate
    other than the host's, is dropped and logged at warn.
    """

    def __init__(self, public_path: str, identity: Identity, host_certs_der: List[bytes]) -> None:
        self.public_path = public_path
        self._host_certs_der = list(host_certs_der)
        self._private_dir = tempfile.mkdtemp(prefix="t", dir=os.path.dirname(public_path))
        try:
            self._inner_path = os.path.join(self._private_dir, "g")
            if len(os.fsencode(self._inner_path)) > MAX_SOCKET_PATH_BYTES:
                raise OSError(
                    f"the private gRPC socket path {self._inner_path} is over {MAX_SOCKET_PATH_BYTES} bytes: "
                    "choose a shorter socket directory"
                )
            self._context = self._server_context(identity, host_certs_der)
        except BaseException:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            raise
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._transports: Set[asyncio.BaseTransport] = set()

    @property
    def inner_address(self) -> str:
        """The gRPC address (``unix:...``) the plugin's server must listen on."""
        return f"unix:{self._inner_path}"

    def _server_context(self, identity: Identity, host_certs_der: List[bytes]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=b"".join(host_certs_der))
        context.set_alpn_protocols(["h2"])
        # load_cert_chain reads files only: write them into the private directory and remove them at once.
        cert_file = os.path.join(self._private_dir, "cert.pem")
        key_file = os.path.join(self._private_dir, "key.pem")
        try:
            for path, data in ((cert_file, identity.cert_pem), (key_file, identity.key_pem)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                    file.write(data)
            context.load_cert_chain(cert_file, key_file)
        finally:
            for path in (cert_file, key_file):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return context

    def start(self) -> None:
        """Binds the public socket and starts accepting TLS connections (raises OSError on failure)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.public_path)
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        asyncio_logger = logging.getLogger("asyncio")
        if asyncio_logger.level == logging.NOTSET:
            asyncio_logger.setLevel(logging.INFO)  # not "Using selector: EpollSelector" in the host's log
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(loop.create_unix_server(self._accepted, sock=listener))
        except BaseException:
            listener.close()
            loop.close()
            raise
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="auto-mtls", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops accepting, drops open connections and removes the private directory."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shut_down(), loop).result(timeout=2.0)
            except Exception as err:  # noqa: BLE001 - closing anyway
                logger.warning("AutoMTLS front did not shut down cleanly", extra={"fields": {"error": repr(err)}})
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=2.0)
            if not thread.is_alive():
                loop.close()
        shutil.rmtree(self._private_dir, ignore_errors=True)

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _accepted(self) -> "_Relay":
        """A new connection on the public socket: reading waits for the TLS handshake."""
        relay = _Relay(self._transports)
        relay.on_connected = lambda transport: asyncio.ensure_future(self._secure(transport, relay))
        return relay

    async def _secure(self, transport: asyncio.BaseTransport, relay: "_Relay") -> None:
        loop = asyncio.get_running_loop()
        try:
            tls_transport = await loop.start_tls(
                transport, relay, self._context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS
            )
        except (OSError, EOFError, asyncio.TimeoutError) as err:  # ssl.SSLError is an OSError
            logger.warning("AutoMTLS: a TLS handshake failed", extra={"fields": {"error": str(err) or repr(err)}})
            self._transports.discard(transport)
            transport.close()
            return
        if tls_transport is None:  # the connection closed during the handshake
            self._transports.discard(transport)
            return
        relay.adopt(tls_transport)
        ssl_object = tls_transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if peer not in self._host_certs_der:
            logger.warning("AutoMTLS: refused a client whose certificate is not the one in PLUGIN_CLIENT_CERT")
            tls_transport.close()
            return
        try:
            _, inner = await loop.create_unix_connection(lambda: _Relay(self._transports), self._inner_path)
        except OSError as err:
            logger.error("AutoMTLS: cannot reach the plugin's own gRPC server", extra={"fields": {"error": str(err)}})
            tls_transport.close()
            return
        relay.link(inner)
        inner.link(relay)


class _Relay(asyncio.Protocol):
    """One side of a forwarded connection: what it receives is written to its peer, with flow control.

    Either side ending (EOF, error, close) closes both; writes already buffered
    are flushed first.
    """

    def __init__(self, registry: Set[asyncio.BaseTransport]) -> None:
        self._registry = registry
        self.transport: Optional[asyncio.Transport] = None
        self.peer: Optional["_Relay"] = None
        self.on_connected = None
        self._pending: List[bytes] = []
        self._closed = False

    def connection_made(self, transport) -> None:
        self.adopt(transport)
        if self.on_connected is not None:
            # Nothing may be read before the TLS handshake takes the connection over.
            transport.pause_reading()
            self.on_connected(transport)

    def adopt(self, transport) -> None:
        """Uses ``transport`` from now on (the TLS one replaces the plain one after the handshake)."""
        if self.transport is not None:
            self._registry.discard(self.transport)
        self.transport = transport
        self._registry.add(transport)

    def link(self, peer: "_Relay") -> None:
        """Starts forwarding to ``peer``, first anything that arrived before it was there."""
        self.peer = peer
        if peer._closed:
            self._close()
            return
        for data in self._pending:
            peer.transport.write(data)
        self._pending.clear()
        if self._closed:
            peer._close()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self._pending.append(data)
        elif self.peer.transport is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> None:
        self._close()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._closed = True
        if self.transport is not None:
            self._registry.discard(self.transport)
        if self.peer is not None:
            self.peer._close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.peer is None:
            self._closed = True


__all__ = ["Identity", "TlsFront", "generate_identity", "read_host_certificate", "SERVER_NAME"]
