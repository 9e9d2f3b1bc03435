"""``switchyard_plugin.http``: calling an HTTP API from a plugin, configured in plugins.toml.

One :class:`HttpClient` per plugin instance, built in ``configure`` from a
config table, does what every connector needs: a timeout on every call,
authentication (``api_key``, ``bearer``, ``basic``,
``oauth2_client_credentials``, ``oauth2_refresh_token``, ``jwt``,
``service_account``) with secrets read only from environment variables,
retries with exponential backoff and jitter honouring ``Retry-After``, a
client-side token bucket, a pause while ``X-RateLimit-Remaining`` is 0, and
pagination (``cursor``, ``offset``, ``page``, ``page_token``, RFC 8288
``link``) with positions to keep in the poll checkpoint::

    from switchyard_plugin.http import HttpClient, HttpConfigError

    def configure(self, config, instance_name):
        try:
            self.api = HttpClient.from_config(config.get("api", {}), field="api")
        except HttpConfigError as err:
            return err.errors
        return []

    def poll(self, checkpoint, max_records):
        position = json.loads(checkpoint) if checkpoint else None
        for page in self.api.pages("/items", position=position):
            yield PollBatch(records=[...], checkpoint=json.dumps(page.next_position).encode())

Failures raise :class:`HttpError`, a :class:`~switchyard_plugin.Failure`:
retryable (connect errors, timeouts, 429, 5xx, with ``retry_after`` when the
server sent one) or permanent (other 4xx, a body that is not JSON, a
pagination loop), so the SDK reports them to the hub correctly.

Why httpx: it is maintained, typed, has a synchronous client with
connection pooling (the SDK runs role methods on threads, so no event loop
is needed) and separate connect/read/write/pool timeouts, parses ``Link``
headers, and takes a pluggable transport for tests. ``requests`` has no
default timeout and no HTTP/2 path; ``urllib3`` alone is too low-level.
"""

from .auth import Auth
from .clock import SYSTEM_CLOCK, Clock
from .client import HttpClient
from .config import HttpConfigError, Secret, parse_duration
from .errors import HttpError
from .pagination import Page

__all__ = [
    "Auth",
    "Clock",
    "HttpClient",
    "HttpConfigError",
    "HttpError",
    "Page",
    "SYSTEM_CLOCK",
    "Secret",
    "parse_duration",
]
