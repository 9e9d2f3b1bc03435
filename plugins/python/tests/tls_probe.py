"""A TLS client for the tests, standing in for a go-plugin host's AutoMTLS.

grpcio's own TLS (BoringSSL) cannot present or verify go-plugin's P-521
certificates under TLS 1.3 (see switchyard_plugin/tls.py), so the tests talk
to the plugin's TLS socket with Python's ``ssl`` module, as the hub and Go do:
present the host certificate, trust only the plugin's, offer ALPN ``h2``,
send the HTTP/2 preface and read the server's first frame.
"""

import os
import socket
import ssl
import tempfile
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from switchyard_plugin.tls import Identity

#: The HTTP/2 client preface followed by an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
#: The frame type of SETTINGS, the first frame an HTTP/2 server sends.
H2_SETTINGS = 0x4


def h2_first_frame_type(socket_path: str, client: Optional[Identity], server_cert_der: bytes) -> Optional[int]:
    """Connects over TLS as ``client`` (or with no certificate) and returns the type of the server's first
    HTTP/2 frame; ``None`` when the server closed the connection instead. TLS errors propagate."""
    server_pem = x509.load_der_x509_certificate(server_cert_der).public_bytes(serialization.Encoding.PEM)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=server_pem.decode())
    context.set_alpn_protocols(["h2"])
    if client is not None:
        with tempfile.TemporaryDirectory() as directory:
            cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
            for path, data in ((cert, client.cert_pem), (key, client.key_pem)):
                with open(path, "wb") as file:
                    file.write(data)
            context.load_cert_chain(cert, key)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(10)
        raw.connect(socket_path)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            tls.sendall(H2_PREFACE)
            header = b""
            while len(header) < 9:
                try:
                    chunk = tls.recv(9 - len(header))
                except (ConnectionResetError, ssl.SSLError):
                    return None
                if not chunk:
                    return None
                header += chunk
            return header[3]
