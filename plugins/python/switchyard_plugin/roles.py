"""Base classes a Python plugin derives from: :class:`Plugin` plus one or more roles.

A plugin is one object. Its class sets the metadata attributes, overrides
:meth:`Plugin.configure` if it takes configuration, and inherits from the role
classes it serves (any combination), overriding their methods::

    class Upper(Enricher):
        name = "upper"
        version = "1.0.0"
        description = "Upper-cases payload.text."

        def enrich(self, record):
            record.payload["text"] = record.payload["text"].upper()
            return record

The SDK calls role methods from gRPC worker threads: one call at a time per
stream unless the role's ``concurrency`` attribute is raised. A plugin that
keeps state shared by several streams (or uses ``concurrency``) must lock it.
"""

from typing import Any, Dict, Iterable, List, Optional

from ._stubs import plugin_pb2
from .health import Health
from .records import (
    ConfigError,
    PollBatch,
    Record,
    RecordEvent,
    WebhookRequest,
    WebhookResult,
)


class Plugin:
    """What every plugin is: metadata and configuration."""

    #: The plugin's own name, for example ``"keyword-tagger"``.
    name: str = ""
    #: The plugin's version, semver recommended.
    version: str = "0.0.0"
    #: One line saying what the plugin does.
    description: str = ""
    #: A JSON Schema (draft 2020-12) for the ``config`` table, as a dict; ``None`` for no configuration.
    config_schema: Optional[Dict[str, Any]] = None
    #: Webhook inputs only: the hub must wait for ``handle_webhook`` and send its reply.
    webhook_sync_reply: bool = False

    def configure(self, config: Dict[str, Any], instance_name: str) -> List[ConfigError]:
        """Validates and applies the ``config`` table; returns every problem found (empty when accepted).

        Called once after every (re)start, before any role call. The default
        accepts only an empty table.
        """
        return [
            ConfigError(field=key, message="unknown key: this plugin takes no configuration") for key in sorted(config)
        ]

    @property
    def health(self) -> Health:
        """The plugin's health handle: ``self.health.set_upstream_healthy(False, reason)`` while its
        upstream is down makes the gRPC health service answer NOT_SERVING (see :mod:`switchyard_plugin.health`)."""
        handle = self.__dict__.get("_switchyard_health")
        if handle is None:
            handle = self.__dict__.setdefault("_switchyard_health", Health())
        return handle

    def close(self) -> None:
        """Called once as the plugin stops, after the gRPC server stopped; release resources here."""

    def roles(self) -> List[int]:
        """The wire roles this plugin serves, derived from the role classes it inherits."""
        roles = []
        if isinstance(self, PollingInput):
            roles.append(plugin_pb2.ROLE_POLLING_INPUT)
        if isinstance(self, WebhookInput):
            roles.append(plugin_pb2.ROLE_WEBHOOK_INPUT)
        if isinstance(self, Enricher):
            roles.append(plugin_pb2.ROLE_ENRICHMENT)
        if isinstance(self, Output):
            roles.append(plugin_pb2.ROLE_OUTPUT)
        return roles


class PollingInput(Plugin):
    """An input the hub polls on a schedule (never two polls at once)."""

    def poll(self, checkpoint: Optional[bytes], max_records: int) -> Iterable[PollBatch]:
        """Yields what is new since ``checkpoint`` (``None`` on the very first poll).

        A batch's checkpoint covers every record yielded so far; records after
        the last checkpoint are fetched again if the poll fails. ``max_records``
        is a soft limit (0 = none). Raise :class:`Failure` to fail the poll.
        """
        raise NotImplementedError


class WebhookInput(Plugin):
    """An input that receives HTTP webhooks through the hub."""

    def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        """Turns one delivery into records.

        Raise :class:`InvalidWebhook` for a malformed body (the hub answers 400,
        no retry) and :class:`Failure` for anything worth retrying.
        """
        raise NotImplementedError


class Enricher(Plugin):
    """A step that records pass through before they are stored."""

    #: How many records of one stream ``enrich`` may work on at once (threads). With 1
    #: (the default) records are handled in order; raise it for I/O-bound enrichers.
    concurrency: int = 1

    def enrich(self, record: Record) -> Record:
        """Returns the enriched record (same ``id`` and ``source``), or raises :class:`Failure`."""
        raise NotImplementedError


class Output(Plugin):
    """A destination that receives record events and acknowledges each one."""

    #: How many events of one stream ``handle_event`` may work on at once (threads).
    #: With 1 (the default) events are delivered in order.
    concurrency: int = 1

    def handle_event(self, event: RecordEvent) -> None:
        """Delivers one event; returning acks it, so return only once it is durable downstream.

        Raise :class:`Failure` to nack it (retryable or not).
        """
        raise NotImplementedError
