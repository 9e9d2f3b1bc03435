"""Reading the ``[http]``-style configuration table of :mod:`switchyard_plugin.http`.

Every key is checked: unknown keys, wrong types and missing environment
variables are reported as :class:`~switchyard_plugin.ConfigError` items naming
the dotted key (and the variable, never its value). Secrets are read from the
environment variables the ``*_env`` keys name, once, and kept in
:class:`Secret` objects whose ``repr`` and ``str`` never show the value.
"""

import dataclasses
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..records import ConfigError


class HttpConfigError(ValueError):
    """The HTTP configuration is wrong; ``errors`` lists every problem as a :class:`ConfigError`."""

    def __init__(self, errors: List[ConfigError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors))
        self.errors = errors


class Secret:
    """A secret value read from an environment variable; shown only as the variable's name."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str):
        self._value = value
        #: Where it came from, for messages: ``"env MY_KEY"`` or ``"file /path"``.
        self.source = source

    def reveal(self) -> str:
        """The secret itself; pass it only to the code that sends it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"`` or a number of seconds; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "30s" or a number of seconds, not {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative ({value!r})")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f'expected a duration like "500ms", "30s" or "5m", or a number of seconds, not {value!r}')


class Table:
    """One config table being read: typed getters that record problems under dotted keys.

    Every getter marks its key as known; :meth:`reject_unknown` then reports the rest.
    """

    def __init__(self, data: Any, path: str, errors: List[ConfigError], environ: Mapping[str, str]):
        self.path = path
        self.errors = errors
        self.environ = environ
        self.known: set = set()
        if isinstance(data, dict):
            self.data: Dict[str, Any] = data
        else:
            self.data = {}
            if data is not None:
                self.error("", f"must be a table, not {type(data).__name__}")

    def key(self, name: str) -> str:
        """The dotted path of ``name`` inside this table."""
        return f"{self.path}.{name}" if self.path and name else (self.path or name)

    def error(self, name: str, message: str) -> None:
        """Records one problem with ``name`` (``""`` for the table itself)."""
        self.errors.append(ConfigError(self.key(name), message))

    def has(self, name: str) -> bool:
        """Whether ``name`` is set (and marks it known)."""
        self.known.add(name)
        return name in self.data

    def _get(self, name: str, types: Tuple[type, ...], what: str, default: Any) -> Any:
        self.known.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in types:
            self.error(name, f"must be {what}, not {value!r}")
            return default
        if not isinstance(value, types):
            self.error(name, f"must be {what}, not {type(value).__name__}")
            return default
        return value

    def string(self, name: str, default: Optional[str] = None, required: bool = False) -> Optional[str]:
        """A non-empty string."""
        if required and name not in self.data:
            self.known.add(name)
            self.error(name, "is required")
            return None
        value = self._get(name, (str,), "a string", default)
        if value is not None and name in self.data and not value.strip():
            self.error(name, "must not be empty")
            return default
        return value

    def number(self, name: str, default: Optional[float], minimum: float = 0.0, integer: bool = False) -> Any:
        """A number (an integer when ``integer``) of at least ``minimum``."""
        types: Tuple[type, ...] = (int,) if integer else (int, float)
        value = self._get(name, types, "an integer" if integer else "a number", default)
        if value is not None and name in self.data and value < minimum:
            self.error(name, f"must be at least {minimum:g}, not {value!r}")
            return default
        return value

    def duration(self, name: str, default: float) -> float:
        """A duration in seconds (see :func:`parse_duration`)."""
        self.known.add(name)
        if name not in self.data:
            return default
        try:
            return parse_duration(self.data[name])
        except ValueError as err:
            self.error(name, str(err))
            return default

    def strings(self, name: str) -> List[str]:
        """A list of strings (empty when absent)."""
        value = self._get(name, (list,), "a list of strings", [])
        if not all(isinstance(item, str) for item in value):
            self.error(name, "must be a list of strings")
            return []
        return list(value)

    def table(self, name: str) -> Optional["Table"]:
        """A sub-table, or ``None`` when absent."""
        self.known.add(name)
        if name not in self.data:
            return None
        return Table(self.data[name], self.key(name), self.errors, self.environ)

    def secret(self, env_key: str, required: bool = True) -> Optional[Secret]:
        """The secret in the environment variable named by ``env_key`` (e.g. ``key_env``)."""
        variable = self.string(env_key, required=required)
        if variable is None:
            return None
        value = self.environ.get(variable)
        if value is None or value == "":
            self.error(
                env_key, f"the environment variable {variable} (named by {self.key(env_key)}) is not set or empty"
            )
            return None
        return Secret(value, f"env {variable}")

    def plain_or_env(self, name: str, required: bool = True) -> Optional[str]:
        """A value given either as ``name`` or, not secret but from the environment, as ``name_env``."""
        env_key = f"{name}_env"
        if self.has(name) and self.has(env_key):
            self.error(name, f"set {self.key(name)} or {self.key(env_key)}, not both")
            return None
        if self.has(env_key):
            secret = self.secret(env_key)
            return secret.reveal() if secret is not None else None
        return self.string(name, required=required)

    def choice(self, name: str, choices: Tuple[str, ...], default: Optional[str] = None) -> Optional[str]:
        """One of ``choices``."""
        if default is None and name not in self.data:
            self.known.add(name)
            self.error(name, f"is required: one of {', '.join(choices)}")
            return None
        value = self.string(name, default)
        if value is not None and value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}, not {value!r}")
            return None
        return value

    def reject_unknown(self) -> None:
        """Reports every key no getter asked for."""
        for name in sorted(set(self.data) - self.known):
            self.error(name, f"unknown key (expected one of: {', '.join(sorted(self.known))})")


def environ_or_default(environ: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    """``environ``, or the process environment."""
    return os.environ if environ is None else environ


@dataclasses.dataclass(frozen=True)
class RetryConfig:
    """``[retry]``: how often and how long a retryable failure is tried again."""

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    server_errors: bool = False
    """Also retry a 500 (any 5xx) here, not only 502, 503 and 504 (the Rust toolkit's key)."""

    @classmethod
    def read(cls, table: Optional[Table]) -> "RetryConfig":
        """Reads the table (defaults when absent)."""
        if table is None:
            return cls()
        config = cls(
            max_attempts=table.number("max_attempts", 5, minimum=1, integer=True),
            initial_backoff=table.duration("initial_backoff", 0.5),
            max_backoff=table.duration("max_backoff", 30.0),
            max_retry_after=table.duration("max_retry_after", 300.0),
            server_errors=table._get("server_errors", (bool,), "true or false", False),
        )
        table.reject_unknown()
        return config


@dataclasses.dataclass(frozen=True)
class RateLimitConfig:
    """``[rate_limit]``: the client-side token bucket (``per_second`` tokens, up to ``burst``)."""

    per_second: float
    burst: int

    @classmethod
    def read(cls, table: Optional[Table]) -> Optional["RateLimitConfig"]:
        """Reads the table (``None`` when absent: no client-side limit)."""
        if table is None:
            return None
        per_second = table.number("per_second", None, minimum=0.001)
        if per_second is None and not table.has("per_second"):
            table.error("per_second", "is required (requests per second, e.g. 10.0)")
        burst = table.number("burst", None, minimum=1, integer=True)
        table.reject_unknown()
        if per_second is None:
            return None
        return cls(per_second=float(per_second), burst=burst if burst is not None else max(1, int(per_second)))


__all__ = [
    "HttpConfigError",
    "RateLimitConfig",
    "RetryConfig",
    "Secret",
    "Table",
    "parse_duration",
]
