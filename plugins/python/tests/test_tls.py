"""Unit tests for switchyard_plugin.tls: go-plugin's AutoMTLS certificate, its handshake field, the TLS front."""

import base64
import datetime
import os
from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from switchyard_plugin import tls
from switchyard_plugin.handshake import HandshakeError, format_handshake_line
from tls_probe import H2_SETTINGS, h2_first_frame_type


def test_the_certificate_follows_go_plugins_template():
    now = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
    identity = tls.generate_identity(now)
    cert = x509.load_pem_x509_certificate(identity.cert_pem)
    assert cert.public_bytes(serialization.Encoding.DER) == identity.cert_der

    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA512)
    assert cert.subject == cert.issuer  # self-signed ...
    key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA512()))  # ... by its own key
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "HashiCorp"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and usage.key_agreement and usage.key_cert_sign
    assert 0 < cert.serial_number < 2**128
    assert cert.not_valid_before_utc == now - datetime.timedelta(seconds=30)
    assert cert.not_valid_after_utc == now + datetime.timedelta(hours=262_980)

    private = serialization.load_pem_private_key(identity.key_pem, password=None)
    assert identity.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert private.public_key().public_numbers() == key.public_numbers()


def test_every_certificate_is_new():
    first, second = tls.generate_identity(), tls.generate_identity()
    assert first.cert_der != second.cert_der and first.key_pem != second.key_pem
    serials = {x509.load_der_x509_certificate(i.cert_der).serial_number for i in (first, second)}
    assert len(serials) == 2


def test_the_handshake_field_is_unpadded_standard_base64_of_the_der():
    # DER lengths vary with the signature, so a few certificates cover lengths needing 0, 1 or 2 pad chars.
    for _ in range(12):
        identity = tls.generate_identity()
        field = identity.handshake_field()
        assert "=" not in field and "\n" not in field and "|" not in field
        assert set(field) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        assert base64.b64decode(field + "=" * (-len(field) % 4)) == identity.cert_der
    assert len(field) > 50  # go-plugin hosts ignore a 6th field of 50 characters or fewer
    line = format_handshake_line(1, "/s/plugin1", server_cert=field)
    assert line == f"1|1|unix|/s/plugin1|grpc|{field}"
    assert line.split("|")[5] == field
    assert format_handshake_line(1, "/s/plugin1", True, server_cert=field) == f"1|1|unix|/s/plugin1|grpc|{field}|false"


def test_the_host_certificate_must_be_readable_pem():
    host = tls.generate_identity()
    assert tls.read_host_certificate(host.cert_pem.decode()) == [host.cert_der]
    for bad in ("-----BEGIN CERTIFICATE-----\n...", "not pem at all", host.key_pem.decode()):
        with pytest.raises(HandshakeError) as err:
            tls.read_host_certificate(bad)
        assert str(err.value).startswith("PLUGIN_CLIENT_CERT does not hold a usable certificate (AutoMTLS)")


@pytest.fixture
def front(socket_dir):
    """A TlsFront for a host identity, with a gRPC health server behind it."""
    host, plugin = tls.generate_identity(), tls.generate_identity()
    public = os.path.join(socket_dir, "plugin1")
    front = tls.TlsFront(public, plugin, [host.cert_der])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(front.inner_address)
    server.start()
    front.start()
    yield front, host, plugin
    server.stop(None)
    front.close()


def test_the_front_serves_the_host_and_refuses_anyone_else(front, socket_dir):
    front, host, plugin = front
    private_dir = os.path.dirname(front.inner_address[len("unix:") :])
    assert os.path.dirname(private_dir) == socket_dir
    assert os.stat(private_dir).st_mode & 0o777 == 0o700
    assert os.listdir(private_dir) == ["g"], "the certificate and key files must be gone"

    # The host's certificate gets through to gRPC (HTTP/2 SETTINGS come back), twice.
    for _ in range(2):
        assert h2_first_frame_type(front.public_path, host, plugin.cert_der) == H2_SETTINGS
    # Another certificate of the same template, or none, is refused.
    stranger = tls.generate_identity()
    for client in (stranger, None):
        try:
            assert h2_first_frame_type(front.public_path, client, plugin.cert_der) is None
        except (ConnectionError, OSError):
            pass  # refused during the handshake (TLS 1.2) rather than after it (TLS 1.3)
    # Plaintext gRPC does not reach the server either.
    with grpc.insecure_channel(f"unix:{front.public_path}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_closing_the_front_removes_its_private_directory(socket_dir):
    host, plugin = tls.generate_identity(), tls.generate_identity()
    front = tls.TlsFront(os.path.join(socket_dir, "plugin2"), plugin, [host.cert_der])
    front.start()
    front.close()
    assert os.listdir(socket_dir) == ["plugin2"]  # the public socket is serve()'s to remove
