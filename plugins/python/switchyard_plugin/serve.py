"""Runs a plugin the way the Switchyard hub (or any go-plugin host) expects.

:func:`serve` performs the whole plugin side of the go-plugin protocol: cookie
check, version negotiation, AutoMTLS, Unix socket, handshake line, gRPC
services, signals, parent-death watch and shutdown. It never returns.
"""

import concurrent.futures
import grp
import logging
import os
import secrets
import select
import signal
import sys
import tempfile
from typing import Mapping, NoReturn, Optional

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from . import handshake, hclog
from .records import DEFAULT_MAX_MESSAGE_BYTES
from .roles import Plugin
from .services import Lifecycle, register_all

#: The longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH_BYTES = 107
#: How often the main loop checks whether the parent (the hub) is still alive.
PARENT_POLL_SECONDS = 1.0
#: How long in-flight calls get to finish once the plugin stops.
STOP_GRACE_SECONDS = 0.5


def serve(
    plugin: Plugin,
    *,
    environ: Optional[Mapping[str, str]] = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_workers: int = 32,
) -> NoReturn:
    """Serves ``plugin`` until the host shuts it down, SIGTERM arrives or the parent dies; then exits.

    Exit status: 0 after a normal stop, 1 when the plugin cannot start (no
    magic cookie, no common protocol version, an unreadable
    ``PLUGIN_CLIENT_CERT``, socket errors). With ``PLUGIN_CLIENT_CERT`` set it
    serves over TLS with go-plugin's AutoMTLS (see :mod:`switchyard_plugin.tls`). Everything the
    plugin logs goes to stderr as hclog JSON; after the handshake line,
    ``sys.stdout`` is redirected to stderr so nothing can corrupt the protocol.
    """
    os._exit(_run(plugin, os.environ if environ is None else environ, max_message_bytes, max_workers))


def _run(plugin: Plugin, environ: Mapping[str, str], max_message_bytes: int, max_workers: int) -> int:
    try:
        handshake.check_cookie(environ)
    except handshake.HandshakeError as err:
        _write_stderr(f"{err}\n")
        return 1

    logger = hclog.install(plugin.name or "plugin")
    try:
        # Read at call time (not as a default argument) so tests can narrow the versions.
        version = handshake.negotiate_version(
            environ.get(handshake.ENV_PROTOCOL_VERSIONS), handshake.APP_PROTOCOL_VERSIONS
        )
    except handshake.HandshakeError as err:
        logger.error("cannot start: %s", err)
        return 1
    try:
        host_certs = _host_certificates(environ.get(handshake.ENV_CLIENT_CERT))
    except handshake.HandshakeError as err:
        logger.error("cannot start: %s", err)
        return 1
    if not plugin.roles():
        logger.warning("the plugin serves no role: derive it from PollingInput, WebhookInput, Enricher or Output")

    # Signals: SIGINT is ignored, as Go plugins do (a terminal's Ctrl-C reaches the whole
    # process group; the hub decides when the plugin stops). SIGTERM stops gracefully.
    # The main loop sleeps in select() on a pipe. Signal handlers must not take locks (the
    # thread they interrupt may hold them), so SIGTERM's handler only sets a flag and Python's
    # wakeup fd writes to the pipe; a stop requested by a gRPC call writes to it too.
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    lifecycle = Lifecycle(wake_fd=wake_write)
    sigterm_received = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sigterm_received.append(signum))
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    original_parent = os.getppid()

    try:
        socket_path = _socket_path(environ)
    except OSError as err:
        logger.error("cannot start: %s", err)
        return 1
    front = None  # AutoMTLS: TLS on socket_path, gRPC on a private socket behind it
    server_cert = ""
    if host_certs is not None:
        from . import tls  # imported only when needed: cryptography takes a while to load

        try:
            identity = tls.generate_identity()
            front = tls.TlsFront(socket_path, identity, host_certs)
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            logger.error("cannot start: cannot set up AutoMTLS: %s", err)
            return 1
        server_cert = identity.handshake_field()

    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-worker"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    plugin.health.attach(health_servicer)  # SERVING until the plugin says its upstream is down
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = register_all(server, plugin, lifecycle, max_message_bytes)

    try:
        server.add_insecure_port(front.inner_address if front is not None else f"unix:{socket_path}")
    except RuntimeError as err:
        logger.error("cannot start: failed to listen on unix socket %s: %s", socket_path, err)
        _close_front(front)
        return 1
    server.start()
    try:
        if front is not None:
            front.start()
        _apply_socket_group(socket_path, environ.get(handshake.ENV_UNIX_SOCKET_GROUP))
    except (OSError, KeyError) as err:
        logger.error("cannot start: cannot listen on or give socket %s to its group: %s", socket_path, err)
        server.stop(None)
        _close_front(front)
        _remove_socket(socket_path, logger)
        return 1

    line = handshake.format_handshake_line(
        version,
        socket_path,
        bool(environ.get(handshake.ENV_MULTIPLEX_GRPC)),
        server_cert=server_cert,
    )
    try:
        sys.__stdout__.write(line + "\n")
        sys.__stdout__.flush()
    except OSError as err:
        logger.error("cannot start: failed to write the handshake line to stdout: %s", err)
        server.stop(None)
        _close_front(front)
        _remove_socket(socket_path, logger)
        return 1
    # From now on stdout belongs to the protocol: anything the plugin prints goes to stderr.
    sys.stdout = sys.stderr
    logger.info(
        "plugin started",
        extra={
            "fields": {
                "network": "unix",
                "address": socket_path,
                "protocol_version": version,
                "auto_mtls": front is not None,
                "services": services,
            }
        },
    )

    while not lifecycle.stopping.is_set():
        if sigterm_received:
            lifecycle.request_stop("SIGTERM received")
        elif os.getppid() != original_parent:
            lifecycle.request_stop(f"the parent process {original_parent} exited")
        else:
            _sleep_on(wake_read, PARENT_POLL_SECONDS)
    logger.info("stopping", extra={"fields": {"reason": lifecycle.stop_reason}})

    health_servicer.enter_graceful_shutdown()
    server.stop(STOP_GRACE_SECONDS).wait(STOP_GRACE_SECONDS + 2.0)
    _close_front(front)
    _remove_socket(socket_path, logger)
    try:
        plugin.close()
    except Exception as err:  # noqa: BLE001 - still exit cleanly
        logger.error("close() raised: %r", err, exc_info=err)
    logger.info("plugin stopped")
    logging.shutdown()
    return 0


def _host_certificates(host_cert_pem: Optional[str]) -> Optional[list]:
    """The host's certificates (DER) when it asked for go-plugin AutoMTLS, else ``None``.

    ``None`` when ``PLUGIN_CLIENT_CERT`` is unset or blank. Raises
    :class:`handshake.HandshakeError` when it holds no usable certificate.
    ``cryptography`` is imported only here, so plugins without AutoMTLS start
    without loading it.
    """
    if not host_cert_pem or not host_cert_pem.strip():
        return None
    from . import tls

    return tls.read_host_certificate(host_cert_pem)


def _close_front(front) -> None:
    if front is not None:
        front.close()


def _remove_socket(path: str, logger: logging.Logger) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.warning("could not remove socket %s: %s", path, err)


def _sleep_on(fd: int, timeout: float) -> None:
    """Waits until ``fd`` is readable or ``timeout`` passes, then drains it."""
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
    except InterruptedError:  # pragma: no cover - Python retries select itself (PEP 475)
        return
    if readable:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass


def _socket_path(environ: Mapping[str, str]) -> str:
    """A fresh ``plugin<random>`` path in PLUGIN_UNIX_SOCKET_DIR (or the temp dir), checked for length."""
    directory = environ.get(handshake.ENV_UNIX_SOCKET_DIR) or tempfile.gettempdir()
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise OSError(f"the socket directory {directory} (PLUGIN_UNIX_SOCKET_DIR) does not exist")
    for _ in range(100):
        path = os.path.join(directory, f"plugin{secrets.randbelow(10**10)}")
        if not os.path.lexists(path):
            break
    else:
        raise OSError(f"could not find a free socket name in {directory}")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise OSError(
            f"the socket path {path} is {len(os.fsencode(path))} bytes long, over the limit of "
            f"{MAX_SOCKET_PATH_BYTES}: choose a shorter socket directory"
        )
    return path


def _apply_socket_group(path: str, group: Optional[str]) -> None:
    """go-plugin's PLUGIN_UNIX_SOCKET_GROUP: chown the socket to a group (name or gid) and make it 0660."""
    if not group:
        return
    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    os.chown(path, -1, gid)
    os.chmod(path, 0o660)


def _write_stderr(text: str) -> None:
    try:
        sys.__stderr__.write(text)
        sys.__stderr__.flush()
    except OSError:
        pass


__all__ = ["serve", "DEFAULT_MAX_MESSAGE_BYTES"]
