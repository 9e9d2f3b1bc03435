"""The go-plugin handshake as a Switchyard plugin performs it.

Mirrors ``switchyard_wire::handshake`` (src/handshake.rs) on the plugin side:
the magic-cookie check, app protocol version negotiation and the handshake
line. Pure functions, no IO, so every case is unit-tested.
"""

from typing import Mapping, Optional, Sequence

#: The name of Switchyard's magic-cookie environment variable (a UX guard, not security).
MAGIC_COOKIE_KEY = "SWITCHYARD_PLUGIN_MAGIC_COOKIE"
#: The value the hub sets for :data:`MAGIC_COOKIE_KEY`.
MAGIC_COOKIE_VALUE = "7f1c9a4e2b5d8e03a6c1f9b27d4e8a15"
#: go-plugin's core protocol version: the first field of the handshake line.
CORE_PROTOCOL_VERSION = 1
#: The app protocol versions this SDK speaks (the ``switchyard.vN`` packages).
APP_PROTOCOL_VERSIONS = (1,)

#: Comma-separated app protocol versions the host offers, in any order.
ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
#: The directory in which the plugin must create its Unix socket.
ENV_UNIX_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
#: A group name or gid that should own the socket (then mode 0660).
ENV_UNIX_SOCKET_GROUP = "PLUGIN_UNIX_SOCKET_GROUP"
#: Set by go-plugin hosts that want yamux multiplexing (not supported here).
ENV_MULTIPLEX_GRPC = "PLUGIN_MULTIPLEX_GRPC"
#: The host's PEM certificate when go-plugin's AutoMTLS is on (see :mod:`switchyard_plugin.tls`).
ENV_CLIENT_CERT = "PLUGIN_CLIENT_CERT"

#: The gRPC health service name go-plugin hosts check.
HEALTH_SERVICE_NAME = "plugin"

#: Printed to stderr when the plugin is run without the cookie (same text as the hub's).
NOT_LAUNCHED_BY_HUB_MESSAGE = (
    "This binary is a Switchyard plugin. It is not meant to be executed directly: "
    "the Switchyard hub launches it as configured in plugins.toml "
    "(see `switchyard run --config plugins.toml`)."
)


class HandshakeError(Exception):
    """The plugin cannot start under this host; the text says why, for stderr."""


def check_cookie(environ: Mapping[str, str]) -> None:
    """Raises :class:`HandshakeError` unless the hub's magic cookie is set."""
    if environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        raise HandshakeError(NOT_LAUNCHED_BY_HUB_MESSAGE)


def parse_version_list(value: str) -> list:
    """Parses ``PLUGIN_PROTOCOL_VERSIONS``; entries that are not numbers are skipped, as go-plugin does."""
    versions = []
    for entry in value.split(","):
        entry = entry.strip()
        if entry.isdigit():
            versions.append(int(entry))
    return versions


def negotiate_version(host_offer: Optional[str], supported: Sequence[int] = APP_PROTOCOL_VERSIONS) -> int:
    """Picks the highest app protocol version both the host and the plugin support.

    ``host_offer`` is the raw ``PLUGIN_PROTOCOL_VERSIONS`` value, or ``None``
    when a (very old) host did not set it: then the plugin's lowest version is
    chosen, as go-plugin does. Raises :class:`HandshakeError` when there is no
    common version.
    """
    if host_offer is None:
        if not supported:
            raise HandshakeError("this plugin supports no app protocol version")
        return min(supported)
    offered = parse_version_list(host_offer)
    common = [version for version in supported if version in offered]
    if not common:
        # go-plugin builds the offer from a Go map, so its order is random:
        # report it sorted so the message is the same on every run.
        raise HandshakeError(
            f"no common app protocol version: the hub offered {sorted(set(offered))} "
            f"(PLUGIN_PROTOCOL_VERSIONS={host_offer!r}), this plugin supports {list(supported)}"
        )
    return max(common)


def format_handshake_line(
    app_version: int, socket_path: str, multiplex_requested: bool = False, server_cert: str = ""
) -> str:
    """The handshake line (without newline) exactly as a Go plugin prints it.

    The 6th field is always present: ``server_cert`` (the plugin's AutoMTLS
    certificate, base64 DER without padding), empty when AutoMTLS is off. The
    7th is printed only when the host set ``PLUGIN_MULTIPLEX_GRPC``, and is
    ``false`` because this SDK does not speak yamux, so a Go host that asked
    for multiplexing fails with a clear error instead of a hang.
    """
    line = f"{CORE_PROTOCOL_VERSION}|{app_version}|unix|{socket_path}|grpc|{server_cert}"
    if multiplex_requested:
        line += "|false"
    return line
