"""Switchyard plugin SDK for Python.

Write a class deriving from one or more roles (:class:`PollingInput`,
:class:`WebhookInput`, :class:`Enricher`, :class:`Output`), then call
:func:`serve` with an instance from ``__main__``::

    from switchyard_plugin import Enricher, serve

    class Noop(Enricher):
        name = "noop"
        version = "1.0.0"

        def enrich(self, record):
            return record

    if __name__ == "__main__":
        serve(Noop())

The SDK speaks the go-plugin protocol exactly as the hub expects (see
plugins/python/README.md), so the same plugin also runs under a Go go-plugin host,
with or without go-plugin's AutoMTLS.

A connector calls its API with :mod:`switchyard_plugin.http` (auth, retries,
rate limits, pagination, configured in plugins.toml) and reports an unreachable
upstream with ``self.health.set_upstream_healthy(False, reason)`` (:class:`Health`).
"""

from .handshake import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, NOT_LAUNCHED_BY_HUB_MESSAGE
from .hclog import TRACE
from .health import Health
from .records import (
    ConfigError,
    EventKind,
    Failure,
    HttpReply,
    InvalidWebhook,
    PollBatch,
    Record,
    RecordEvent,
    WebhookRequest,
    WebhookResult,
)
from .roles import Enricher, Output, Plugin, PollingInput, WebhookInput
from .serve import serve

__version__ = "0.1.0"

__all__ = [
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "NOT_LAUNCHED_BY_HUB_MESSAGE",
    "TRACE",
    "Health",
    "ConfigError",
    "EventKind",
    "Failure",
    "HttpReply",
    "InvalidWebhook",
    "PollBatch",
    "Record",
    "RecordEvent",
    "WebhookRequest",
    "WebhookResult",
    "Enricher",
    "Output",
    "Plugin",
    "PollingInput",
    "WebhookInput",
    "serve",
]
