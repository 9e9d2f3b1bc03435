"""The error an HTTP call raises: a :class:`~switchyard_plugin.Failure`, so the SDK maps it.

A retryable :class:`HttpError` raised from ``poll`` ends the call with
UNAVAILABLE (and ``switchyard-retry-after-ms`` when it has a ``retry_after``),
from ``handle_event`` it nacks the event for a retry, from ``configure`` it
makes Configure answer UNAVAILABLE; a permanent one is never retried.
"""

import datetime
from typing import Optional

from ..records import Failure


class HttpError(Failure):
    """An HTTP call that failed, after the retries the configuration allows.

    ``status`` is the last HTTP status (``None`` for connect errors and
    timeouts); ``code`` is one of ``connect_error``, ``timeout``,
    ``rate_limited``, ``upstream_unavailable``, ``upstream_error``,
    ``auth_failed``, ``forbidden``, ``not_found``, ``client_error``,
    ``bad_response``, ``pagination_loop``, ``token_error``. Messages never
    contain secrets (no header values, no query strings).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str,
        status: Optional[int] = None,
        retry_after: Optional[float] = None,
    ):
        super().__init__(
            message,
            retryable=retryable,
            retry_after=datetime.timedelta(seconds=retry_after) if retry_after is not None else None,
            code=code,
        )
        self.status = status

    def __repr__(self) -> str:
        return (
            f"HttpError({self.message!r}, retryable={self.retryable}, code={self.code!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r})"
        )


__all__ = ["HttpError"]
