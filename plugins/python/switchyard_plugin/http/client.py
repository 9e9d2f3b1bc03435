"""The client: one per plugin instance, shared by all its calls (threads).

It puts together the pieces of this package: the base URL and timeout, the
auth strategy, the token bucket and the rate-limit-header pause, retries with
backoff, and pagination. Requests go through ``httpx.Client`` (connection
pooling, timeouts on connect, read, write and pool, HTTP/1.1).
"""

import json
import logging
import random
import urllib.parse
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import httpx

from .auth import Auth, Credentials, read_auth
from .clock import SYSTEM_CLOCK, Clock
from .config import HttpConfigError, RateLimitConfig, RetryConfig, Table, environ_or_default
from .errors import HttpError
from .pagination import Page, PaginationConfig, Paginator, Position, walk
from .throttle import HeaderThrottle, TokenBucket, retry_after_seconds

logger = logging.getLogger("switchyard_plugin.http")

# httpx logs every request URL at INFO (query strings included, where an api_key may be):
# only warnings and errors from it and httpcore reach the plugin's log.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

#: Statuses tried again (with backoff, honouring Retry-After).
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = 30.0


class HttpClient:
    """Calls one HTTP API as configured by a table like::

        base_url = "https://api.example.com/v1"
        timeout = "30s"
        [auth]        # kind = api_key | bearer | basic | oauth2_client_credentials | ...
        [retry]       # max_attempts, initial_backoff, max_backoff, max_retry_after, server_errors
        [rate_limit]  # per_second, burst
        [pagination]  # kind = cursor | offset | page | page_token | link, records_path, ...

    Build it with :meth:`from_config` in ``configure``; failures raise
    :class:`HttpError` (a :class:`~switchyard_plugin.Failure`), so role methods
    can let them propagate. Thread-safe; call :meth:`close` in ``close()``.
    """

    def __init__(
        self,
        *,
        base_url: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        auth: Optional[Auth] = None,
        retry: Optional[RetryConfig] = None,
        rate_limit: Optional[RateLimitConfig] = None,
        pagination: Optional[PaginationConfig] = None,
        clock: Clock = SYSTEM_CLOCK,
        transport: Optional[httpx.BaseTransport] = None,
    ):
        self.base_url = base_url
        self.timeout = timeout
        self.auth = auth if auth is not None else read_auth(None, clock)
        self.retry = retry if retry is not None else RetryConfig()
        self.pagination = pagination
        self.clock = clock
        self.bucket = TokenBucket(rate_limit, clock) if rate_limit is not None else None
        self.throttle = HeaderThrottle(clock, self.retry.max_retry_after, self.retry.initial_backoff)
        self.random = random.Random()
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport, follow_redirects=True)

    @classmethod
    def from_config(
        cls,
        table: Mapping[str, Any],
        *,
        field: str = "",
        environ: Optional[Mapping[str, str]] = None,
        clock: Clock = SYSTEM_CLOCK,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> "HttpClient":
        """A client configured by ``table`` (``field`` is its dotted path, for messages).

        Raises :class:`HttpConfigError` listing every problem (its ``errors`` are
        :class:`~switchyard_plugin.ConfigError` items to return from ``configure``).
        """
        errors: list = []
        root = Table(table, field, errors, environ_or_default(environ))
        base_url = root.string("base_url", "") or ""
        if base_url and urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            root.error("base_url", f"must be an http:// or https:// URL, not {base_url!r}")
        timeout = root.duration("timeout", DEFAULT_TIMEOUT)
        if timeout <= 0:
            root.error("timeout", "must be more than 0 (every call has a timeout)")
        auth = read_auth(root.table("auth"), clock)
        retry = RetryConfig.read(root.table("retry"))
        rate_limit = RateLimitConfig.read(root.table("rate_limit"))
        pagination = PaginationConfig.read(root.table("pagination"))
        root.reject_unknown()
        if errors:
            raise HttpConfigError(errors)
        return cls(
            base_url=base_url,
            timeout=timeout,
            auth=auth,
            retry=retry,
            rate_limit=rate_limit,
            pagination=pagination,
            clock=clock,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpClient(base_url={self.base_url!r}, auth={self.auth!r})"

    def close(self) -> None:
        """Closes the pooled connections."""
        self._http.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        data: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> httpx.Response:
        """Sends one request (relative ``url`` joins ``base_url``), retrying what is retryable.

        Returns the 2xx or 3xx response; raises :class:`HttpError` otherwise.
        Retries apply to every method, so a POST that creates something should
        carry the API's idempotency key (in ``headers``) when it has one.
        """
        where = f"{method} {_display(self.base_url, url)}"
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.throttle.wait()
            if self.bucket is not None:
                self.bucket.acquire()
            try:
                credentials = self.auth.credentials(self._post_form)
                response = self._send(method, url, params, json, data, headers, credentials)
            except HttpError as err:
                if err.retryable and attempt < self.retry.max_attempts:
                    self._back_off(attempt, None, where, err.message)
                    continue
                raise
            self.throttle.observe(response.headers)
            status = response.status_code
            if status < 400:
                logger.debug("http call", extra={"fields": {"call": where, "status": status, "attempt": attempt}})
                return response
            if status == 401 and self.auth.refreshable and not refreshed:
                # The token may have been revoked or expired early: get a new one, once.
                logger.info("the server refused the token; getting a new one", extra={"fields": {"call": where}})
                self.auth.invalidate(credentials.token)
                refreshed = True
                continue
            retry_after = retry_after_seconds(response.headers.get("retry-after"), self.clock)
            limit_wait = _rate_limit_wait(status, retry_after, self.throttle.exhausted_for(response.headers))
            if limit_wait is not None:
                # 429, or a 403 that is a rate limit (GitHub answers its primary and secondary
                # limits with 403 or 429, plus Retry-After or X-RateLimit-Remaining: 0 and the reset).
                wait = limit_wait if limit_wait > 0 else None
                if wait is not None and wait > self.retry.max_retry_after:
                    tail = f" (the limit resets in {wait:.0f}s, over max_retry_after)"
                    raise self._rate_limited(where, status, wait, tail)
                if attempt < self.retry.max_attempts:
                    self._back_off(attempt, wait, where, f"HTTP {status} (rate limited)")
                    continue
                raise self._rate_limited(where, status, wait, f" after {attempt} attempt(s)")
            if status in RETRY_STATUSES or (self.retry.server_errors and status >= 500):
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    raise self._status_error(
                        where, response, retry_after, f" (Retry-After {retry_after:.0f}s is over max_retry_after)"
                    )
                if attempt < self.retry.max_attempts:
                    self._back_off(attempt, retry_after, where, f"HTTP {status}")
                    continue
            raise self._status_error(
                where, response, retry_after, f" after {attempt} attempt(s)" if attempt > 1 else ""
            )

    def get(
        self, url: str, *, params: Optional[Mapping[str, Any]] = None, headers: Optional[Mapping[str, str]] = None
    ) -> httpx.Response:
        """``request("GET", ...)``."""
        return self.request("GET", url, params=params, headers=headers)

    def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """``request`` and the decoded JSON body (a body that is not JSON is a permanent ``bad_response``)."""
        return _decode(self.request(method, url, **kwargs), f"{method} {_display(self.base_url, url)}")

    def get_json(
        self, url: str, *, params: Optional[Mapping[str, Any]] = None, headers: Optional[Mapping[str, str]] = None
    ) -> Any:
        """``request_json("GET", ...)``."""
        return self.request_json("GET", url, params=params, headers=headers)

    def pages(
        self,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        position: Optional[Position] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Iterator[Page]:
        """Walks the paginated list at ``url`` as ``[pagination]`` says, from ``position`` (``None``: the start).

        Each :class:`Page` has ``records`` and ``next_position`` (store it in the
        checkpoint to resume after that page; ``None`` after the last page).
        ``headers`` go with every page's request (an API version, an ``Accept`` type).
        """
        if self.pagination is None:
            raise HttpError(
                "pages() needs a [pagination] table in the HTTP configuration", retryable=False, code="client_error"
            )
        hidden = tuple(credentials_params(self.auth))
        paginator = Paginator(self.pagination, url, dict(params or {}), hidden)

        def fetch(page_url: str, page_params: Dict[str, Any]) -> Tuple[httpx.Response, Any]:
            response = self.request("GET", page_url, params=page_params, headers=headers)
            return response, _decode(response, f"GET {_display(self.base_url, page_url)}")

        return walk(paginator, position, fetch)

    # -- internals -----------------------------------------------------------------------

    def _post_form(self, url: str, form: Dict[str, str]) -> httpx.Response:
        """POSTs a token request (no auth of ours, no retries: the caller's retry loop covers it)."""
        return self._transmit(self._http.build_request("POST", url, data=form), f"POST {_display(self.base_url, url)}")

    def _send(
        self,
        method: str,
        url: str,
        params: Optional[Mapping[str, Any]],
        body_json: Any,
        data: Optional[Mapping[str, Any]],
        headers: Optional[Mapping[str, str]],
        credentials: Credentials,
    ) -> httpx.Response:
        all_params: List[Tuple[str, Any]] = list((params or {}).items()) + list(credentials.params.items())
        all_headers = dict(headers or {})
        all_headers.update(credentials.headers)
        where = f"{method} {_display(self.base_url, url)}"
        try:
            target = httpx.URL(url)
            if all_params:
                # Merged into the URL's own query (httpx's params= would replace it, losing a Link URL's query).
                target = target.copy_merge_params(all_params)
            request = self._http.build_request(method, target, json=body_json, data=data, headers=all_headers)
        except (httpx.InvalidURL, TypeError, ValueError) as err:
            raise HttpError(
                f"{where}: cannot build the request ({type(err).__name__})", retryable=False, code="client_error"
            ) from None
        return self._transmit(request, where)

    def _transmit(self, request: httpx.Request, where: str) -> httpx.Response:
        """Sends ``request``; transport failures become retryable :class:`HttpError` (no URL, no headers)."""
        try:
            response = self._http.send(request)
            response.read()
            return response
        except httpx.TimeoutException:
            message, code = f"{where}: no answer within the timeout of {self.timeout:g}s", "timeout"
        except httpx.UnsupportedProtocol:
            raise HttpError(f"{where}: not an http:// or https:// URL", retryable=False, code="client_error") from None
        except httpx.TransportError as err:
            message, code = f"{where}: cannot reach the server ({type(err).__name__})", "connect_error"
        except (httpx.RequestError, httpx.InvalidURL) as err:  # too many redirects, an undecodable body
            raise HttpError(f"{where}: {type(err).__name__}", retryable=False, code="bad_response") from None
        raise HttpError(message, retryable=True, code=code)

    def _back_off(self, attempt: int, retry_after: Optional[float], where: str, why: str) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.retry.max_retry_after)
        else:
            base = min(self.retry.max_backoff, self.retry.initial_backoff * (2 ** (attempt - 1)))
            delay = base / 2 + self.random.uniform(0, base / 2)  # "equal jitter": at least half the backoff
        logger.info(
            "retrying an http call",
            extra={"fields": {"call": where, "reason": why, "attempt": attempt, "delay_seconds": round(delay, 3)}},
        )
        self.clock.sleep(delay)

    def _rate_limited(self, where: str, status: int, wait: Optional[float], tail: str) -> HttpError:
        return HttpError(
            f"{where} answered HTTP {status}{tail}: rate limited",
            retryable=True,
            code="rate_limited",
            status=status,
            retry_after=wait,
        )

    def _status_error(self, where: str, response: httpx.Response, retry_after: Optional[float], tail: str) -> HttpError:
        status = response.status_code
        message = f"{where} answered HTTP {status}{tail}"
        if status == 401:
            return HttpError(
                f"{message}: authentication failed; check the {self.auth.describe()}",
                retryable=False,
                code="auth_failed",
                status=status,
            )
        if status == 403:
            return HttpError(
                f"{message}: forbidden for the {self.auth.describe()}", retryable=False, code="forbidden", status=status
            )
        if status == 404:
            return HttpError(message, retryable=False, code="not_found", status=status)
        if status == 429:
            return HttpError(message, retryable=True, code="rate_limited", status=status, retry_after=retry_after)
        if status in RETRY_STATUSES:
            return HttpError(
                message, retryable=True, code="upstream_unavailable", status=status, retry_after=retry_after
            )
        if status >= 500:
            return HttpError(message, retryable=True, code="upstream_error", status=status, retry_after=retry_after)
        return HttpError(message, retryable=False, code="client_error", status=status)


def credentials_params(auth: Auth) -> List[str]:
    """The query parameters that carry ``auth``'s credentials (kept out of stored positions)."""
    query = getattr(auth, "query", None)
    return [query] if isinstance(query, str) and query else []


def _rate_limit_wait(status: int, retry_after: Optional[float], exhausted_for: Optional[float]) -> Optional[float]:
    """How long a rate-limited response asks to wait (0: no hint); ``None`` when it is no rate limit.

    A 429 always is one; a 403 only with ``Retry-After`` or a used-up ``X-RateLimit-Remaining``
    (otherwise it is a real permission problem). The longer of the two hints wins.
    """
    if status not in (403, 429):
        return None
    hints = [hint for hint in (retry_after, exhausted_for) if hint is not None]
    if not hints:
        return 0.0 if status == 429 else None
    return max(hints)


def _display(base_url: str, url: str) -> str:
    """The URL for messages: scheme, host and path only (a query string may hold a key)."""
    joined = url if "://" in url else (base_url.rstrip("/") + "/" + url.lstrip("/") if base_url else url)
    parts = urllib.parse.urlsplit(joined)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _decode(response: httpx.Response, where: str) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except (UnicodeDecodeError, ValueError) as err:
        raise HttpError(
            f"{where} answered HTTP {response.status_code} with a body that is not JSON ({type(err).__name__})",
            retryable=False,
            code="bad_response",
            status=response.status_code,
        ) from None


__all__ = ["HttpClient", "RETRY_STATUSES"]
