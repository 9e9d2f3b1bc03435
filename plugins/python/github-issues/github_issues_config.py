"""The configuration of github-issues: reading and checking the ``config`` table of plugins.toml.

Every key is checked; unknown keys and bad values are :class:`ConfigError` items
naming the key. The token is read from the environment variable ``token_env``
names: a missing one is reported with the key and the variable, never a value.
"""

import dataclasses
import re
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Tuple

from switchyard_plugin import ConfigError

DEFAULT_BASE_URL = "https://api.github.com"
DEFAULT_PAGE_SIZE = 100
#: GitHub's largest ``per_page`` for the issues list.
MAX_PAGE_SIZE = 100
KNOWN_KEYS = ("base_url", "owner", "repo", "token_env", "page_size", "include_pull_requests")

# GitHub's owner (user or organisation) and repository names: letters, digits, "-", "_" and ".".
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Settings:
    """A checked configuration."""

    base_url: str
    owner: str
    repo: str
    token_env: str
    page_size: int
    include_pull_requests: bool

    @property
    def full_name(self) -> str:
        """``owner/repo``."""
        return f"{self.owner}/{self.repo}"

    @property
    def issues_path(self) -> str:
        """The list's path below ``base_url``."""
        return f"{self.base_url}/repos/{self.owner}/{self.repo}/issues"

    @property
    def repo_path(self) -> str:
        """The repository's own URL (checked once at configure)."""
        return f"{self.base_url}/repos/{self.owner}/{self.repo}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a table"


def read_settings(
    config: Mapping[str, Any], environ: Mapping[str, str]
) -> Tuple[Optional[Settings], List[ConfigError]]:
    """The settings in ``config`` (``None`` when there are errors) and every problem found."""
    errors: List[ConfigError] = []
    for key in sorted(config):
        if key not in KNOWN_KEYS:
            errors.append(ConfigError(key, f"unknown key; expected one of {', '.join(KNOWN_KEYS)}"))

    base_url = config.get("base_url", DEFAULT_BASE_URL)
    if not isinstance(base_url, str):
        errors.append(ConfigError("base_url", f"must be a string (an https:// URL), not {_kind(base_url)}"))
    else:
        parts = urllib.parse.urlsplit(base_url)
        if "@" in parts.netloc:  # a credential in the URL would reach logs and checkpoints: never echo it
            errors.append(ConfigError("base_url", "must not hold user info (user:password@); use token_env"))
        elif parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            errors.append(
                ConfigError("base_url", f"must be an http:// or https:// URL without a query, not {base_url!r}")
            )
        base_url = base_url.rstrip("/")

    names: Dict[str, str] = {}
    for key in ("owner", "repo"):
        value = config.get(key)
        if value is None:
            errors.append(ConfigError(key, "is required"))
        elif not isinstance(value, str):
            errors.append(ConfigError(key, f"must be a string, not {_kind(value)}"))
        elif not _NAME.match(value) or value in (".", ".."):
            errors.append(
                ConfigError(key, f'must be a GitHub name (letters, digits, "-", "_", "."), not {value!r}')
            )
        else:
            names[key] = value

    token_env = config.get("token_env")
    if token_env is None:
        errors.append(ConfigError("token_env", "is required: the environment variable holding the GitHub token"))
    elif not isinstance(token_env, str) or not _ENV_NAME.match(token_env):
        shown = repr(token_env) if isinstance(token_env, str) else _kind(token_env)
        errors.append(ConfigError("token_env", f"must be an environment variable name, not {shown}"))
    elif not environ.get(token_env):
        errors.append(
            ConfigError("token_env", f"the environment variable {token_env} (named by token_env) is not set or empty")
        )

    page_size = config.get("page_size", DEFAULT_PAGE_SIZE)
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        errors.append(ConfigError("page_size", f"must be an integer from 1 to {MAX_PAGE_SIZE}, not {_kind(page_size)}"))
    elif not 1 <= page_size <= MAX_PAGE_SIZE:
        errors.append(ConfigError("page_size", f"must be from 1 to {MAX_PAGE_SIZE} (GitHub's limit), not {page_size}"))

    include = config.get("include_pull_requests", False)
    if not isinstance(include, bool):
        errors.append(ConfigError("include_pull_requests", f"must be true or false, not {_kind(include)}"))

    if errors:
        return None, errors
    return (
        Settings(
            base_url=base_url,
            owner=names["owner"],
            repo=names["repo"],
            token_env=token_env,
            page_size=page_size,
            include_pull_requests=include,
        ),
        [],
    )


#: The JSON Schema GetMetadata reports.
CONFIG_SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["owner", "repo", "token_env"],
    "properties": {
        "base_url": {
            "description": "The REST API's root: https://api.github.com (https://HOST/api/v3 for GHE Server).",
            "type": "string",
            "default": DEFAULT_BASE_URL,
        },
        "owner": {"description": "The repository's owner (user or organisation).", "type": "string"},
        "repo": {"description": "The repository's name.", "type": "string"},
        "token_env": {
            "description": "The environment variable holding the token (sent as Authorization: Bearer).",
            "type": "string",
        },
        "page_size": {
            "description": "Issues per page (per_page).",
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE_SIZE,
            "default": DEFAULT_PAGE_SIZE,
        },
        "include_pull_requests": {
            "description": "Also emit the pull requests the issues list returns (type github.pull_request).",
            "type": "boolean",
            "default": False,
        },
    },
}

__all__ = ["CONFIG_SCHEMA", "KNOWN_KEYS", "MAX_PAGE_SIZE", "Settings", "read_settings"]
