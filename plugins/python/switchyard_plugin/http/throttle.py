"""Pacing outbound calls: a token bucket shared by all calls of a client, and a pause
taken when the server says its rate limit is used up (``X-RateLimit-Remaining: 0``).

Written by hand rather than taken from a package: the bucket is a dozen lines,
must share the client's (fakeable) clock, and the maintained Python rate-limit
packages are either asyncio-only or bring storage backends we do not need.
"""

import email.utils
import threading
from typing import Mapping, Optional

from .clock import Clock
from .config import RateLimitConfig

#: A reset header value above this is an epoch timestamp (GitHub), below it a number of seconds (IETF draft).
_EPOCH_THRESHOLD = 1_000_000_000


class TokenBucket:
    """``per_second`` tokens a second, at most ``burst`` saved up; each call takes one.

    A call that finds the bucket empty reserves the next token and sleeps until
    it is due, so concurrent callers are spaced out fairly and none starves.
    """

    def __init__(self, config: RateLimitConfig, clock: Clock):
        self.rate = config.per_second
        self.burst = float(config.burst)
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock.monotonic()
        self.lock = threading.Lock()

    def reserve(self) -> float:
        """Takes a token; returns how long the caller must wait before using it (0 when one was ready)."""
        with self.lock:
            now = self.clock.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= 1.0
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def acquire(self) -> None:
        """Takes a token, sleeping until it is due."""
        wait = self.reserve()
        if wait > 0:
            self.clock.sleep(wait)


class HeaderThrottle:
    """Holds every call back while the server says no requests remain until its reset time."""

    def __init__(self, clock: Clock, max_pause: float, default_pause: float):
        self.clock = clock
        self.max_pause = max_pause
        self.default_pause = default_pause
        self.paused_until = 0.0  # monotonic
        self.lock = threading.Lock()

    def exhausted_for(self, headers: Mapping[str, str]) -> Optional[float]:
        """Seconds until the server's limit resets when its headers say none remain (``None`` otherwise).

        Uncapped: the caller decides whether to wait that long or hand it on as a retry-after.
        """
        remaining = headers.get("x-ratelimit-remaining", headers.get("ratelimit-remaining"))
        if remaining is None or remaining.strip() != "0":
            return None
        reset = headers.get("x-ratelimit-reset", headers.get("ratelimit-reset"))
        pause = self._seconds_until(reset) if reset is not None else None
        return max(pause if pause is not None else self.default_pause, 0.0)

    def observe(self, headers: Mapping[str, str]) -> Optional[float]:
        """Reads a response's rate-limit headers; returns the pause started (seconds), if any."""
        pause = self.exhausted_for(headers)
        if pause is None:
            return None
        pause = min(pause, self.max_pause)
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock.monotonic() + pause)
        return pause

    def wait(self) -> None:
        """Sleeps until the current pause (if any) is over."""
        with self.lock:
            remaining = self.paused_until - self.clock.monotonic()
        if remaining > 0:
            self.clock.sleep(remaining)

    def _seconds_until(self, reset: str) -> Optional[float]:
        try:
            value = float(reset.strip())
        except ValueError:
            return None
        return value - self.clock.time() if value > _EPOCH_THRESHOLD else value


def retry_after_seconds(value: Optional[str], clock: Clock) -> Optional[float]:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (RFC 9110); ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - clock.time())


__all__ = ["HeaderThrottle", "TokenBucket", "retry_after_seconds"]
