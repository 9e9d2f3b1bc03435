"""The plugin's health as the gRPC health service reports it to the hub.

A connector whose upstream is down says so with
``plugin.health.set_upstream_healthy(False, "api.example.com answers 503")``:
the health service then answers NOT_SERVING for both service names the hub
and go-plugin hosts ask about (``""`` and ``"plugin"``), so the hub stops
sending it work until ``set_upstream_healthy(True)``. Safe from any thread.
"""

import logging
import threading
from typing import Optional

from grpc_health.v1 import health, health_pb2

from . import handshake

logger = logging.getLogger("switchyard_plugin")

#: The health service names a Switchyard or go-plugin host checks.
SERVICE_NAMES = ("", handshake.HEALTH_SERVICE_NAME)


class Health:
    """The handle a plugin flips when its upstream goes down or comes back (``plugin.health``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._healthy = True
        self._reason = ""
        self._servicer: Optional[health.HealthServicer] = None

    @property
    def upstream_healthy(self) -> bool:
        """Whether the plugin last said its upstream is reachable (True until it says otherwise)."""
        return self._healthy

    @property
    def reason(self) -> str:
        """Why the upstream was last reported unhealthy (``""`` when healthy)."""
        return self._reason

    def set_upstream_healthy(self, healthy: bool, reason: str = "") -> None:
        """Reports whether the upstream works: the health service answers SERVING or NOT_SERVING.

        ``reason`` is logged on every change (keep secrets out of it).
        """
        with self._lock:
            changed = healthy != self._healthy
            self._healthy = bool(healthy)
            self._reason = "" if healthy else reason
            self._apply()
        if changed and healthy:
            logger.info("the upstream is healthy again: reporting SERVING")
        elif changed:
            logger.warning("the upstream is unhealthy: reporting NOT_SERVING", extra={"fields": {"reason": reason}})

    def attach(self, servicer: health.HealthServicer) -> None:
        """Called by ``serve()``: from now on changes reach ``servicer``."""
        with self._lock:
            self._servicer = servicer
            self._apply()

    def _apply(self) -> None:
        if self._servicer is None:
            return
        status = health_pb2.HealthCheckResponse.SERVING if self._healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in SERVICE_NAMES:
            self._servicer.set(name, status)


__all__ = ["Health", "SERVICE_NAMES"]
