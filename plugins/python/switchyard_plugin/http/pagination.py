"""Walking paginated lists: the ``[pagination]`` table and one paginator per ``kind``.

Each page is a :class:`Page`: its records and ``next_position``, a small JSON
object (``{"cursor": ...}``, ``{"offset": 40}``, ``{"page": 3}``,
``{"token": ...}`` or ``{"url": ...}``) to keep in the poll checkpoint. Passing
it back as ``position`` resumes the walk at the page after, so a backfill
interrupted by a crash continues where it was. A cursor, token or link seen
twice in one walk is a permanent ``pagination_loop`` error, never an endless loop.
"""

import dataclasses
import json
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Tuple

import httpx

from .config import Table
from .errors import HttpError

KINDS = ("cursor", "offset", "page", "page_token", "link")

#: What :meth:`Paginator.fetch` is given: GET ``url`` with ``params`` -> (response, decoded JSON body).
Position = Dict[str, Any]


@dataclasses.dataclass
class Page:
    """One page of a paginated list.

    ``position`` is where it was read from (``None`` for the first page);
    ``next_position`` is where the next page is (``None`` after the last one).
    Store ``next_position`` together with what you did with ``records``.
    """

    records: List[Any]
    position: Optional[Position]
    next_position: Optional[Position]


def resolve_pointer(document: Any, pointer: str) -> Tuple[bool, Any]:
    """RFC 6901 JSON Pointer lookup: ``(found, value)``.

    Hand-written (a dozen lines) rather than the ``jsonpointer`` package: we
    only read, and one fewer dependency for every plugin.
    """
    if pointer == "":
        return True, document
    current = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return False, None
    return True, current


def _pointer(table: Table, name: str, required: bool) -> Optional[str]:
    value = table.string(name, default="" if not required else None, required=required)
    if value and not value.startswith("/"):
        table.error(name, f'must be a JSON Pointer starting with "/" (like "/data"), not {value!r}')
        return None
    return value


@dataclasses.dataclass(frozen=True)
class PaginationConfig:
    """``[pagination]``: the paginator's kind and its parameter names."""

    kind: str
    records_path: str = ""
    param: str = ""  # cursor_param, offset_param, page_param or token_param
    path: str = ""  # cursor_path or token_path
    size_param: Optional[str] = None  # limit_param or size_param
    page_size: Optional[int] = None
    first_page: int = 1

    @classmethod
    def read(cls, table: Optional[Table]) -> Optional["PaginationConfig"]:
        """Reads the table (``None`` when absent)."""
        if table is None:
            return None
        kind = table.choice("kind", KINDS)
        records_path = _pointer(table, "records_path", required=False) or ""
        config = None
        if kind in ("cursor", "page_token"):
            prefix = "cursor" if kind == "cursor" else "token"
            param = table.string(f"{prefix}_param", required=True)
            path = _pointer(table, f"{prefix}_path", required=True)
            size_param = table.string("limit_param")
            page_size = table.number("page_size", None, minimum=1, integer=True)
            if param and path:
                config = cls(kind, records_path, param, path, size_param, page_size)
        elif kind == "offset":
            param = table.string("offset_param", "offset")
            size_param = table.string("limit_param", "limit")
            page_size = table.number("page_size", 100, minimum=1, integer=True)
            config = cls(kind, records_path, param or "offset", "", size_param, page_size)
        elif kind == "page":
            param = table.string("page_param", "page")
            first_page = table.number("first_page", 1, minimum=0, integer=True)
            size_param = table.string("size_param")
            page_size = table.number("page_size", None, minimum=1, integer=True)
            config = cls(kind, records_path, param or "page", "", size_param, page_size, first_page)
        elif kind == "link":
            config = cls(kind, records_path)
        size_key = "size_param" if kind == "page" else "limit_param"
        if config is not None and config.size_param and config.page_size is None and kind != "offset":
            table.error("page_size", f"is required with {table.key(size_key)}")
        if config is not None and kind in ("cursor", "page_token") and config.page_size and not config.size_param:
            table.error("page_size", f"needs {table.key(size_key)}: the query parameter that sends it")
        table.reject_unknown()
        return config


class Paginator:
    """Turns positions into requests and responses into the next position, for one walk."""

    def __init__(self, config: PaginationConfig, url: str, params: Dict[str, Any], hidden_params: Tuple[str, ...]):
        self.config = config
        self.url = url
        self.params = dict(params)
        self.hidden_params = hidden_params
        self.seen: set = set()

    def request_for(self, position: Optional[Position]) -> Tuple[str, Dict[str, Any]]:
        """The URL and query parameters of the page at ``position``."""
        config = self.config
        params = dict(self.params)
        if config.size_param and config.page_size is not None:
            params[config.size_param] = config.page_size
        kind = config.kind
        if kind in ("cursor", "page_token"):
            key = "cursor" if kind == "cursor" else "token"
            if position is not None:
                params[config.param] = _field(position, key, str)
        elif kind == "offset":
            params[config.param] = 0 if position is None else _field(position, "offset", int)
        elif kind == "page":
            params[config.param] = config.first_page if position is None else _field(position, "page", int)
        elif kind == "link" and position is not None:
            return _field(position, "url", str), {}
        return self.url, params

    def remember(self, position: Optional[Position]) -> None:
        """Marks a position as visited (a walk that comes back to it is a loop)."""
        if position is not None:
            self.seen.add(json.dumps(position, sort_keys=True))

    def records_of(self, body: Any, where: str) -> List[Any]:
        """The records of a page's body, at ``records_path``."""
        found, records = resolve_pointer(body, self.config.records_path)
        if not found or not isinstance(records, list):
            raise HttpError(
                f"{where}: the body has no list of records at {self.config.records_path or '(the root)'!r}",
                retryable=False,
                code="bad_response",
            )
        return records

    def next_of(
        self, position: Optional[Position], response: httpx.Response, body: Any, records: List[Any], where: str
    ) -> Optional[Position]:
        """The position of the next page, ``None`` when this one was the last."""
        config = self.config
        kind = config.kind
        following: Optional[Position] = None
        if kind in ("cursor", "page_token"):
            found, value = resolve_pointer(body, config.path)
            if found and value not in (None, "", False):
                if not isinstance(value, (str, int)) or isinstance(value, bool):
                    raise HttpError(
                        f"{where}: the value at {config.path!r} is not a string", retryable=False, code="bad_response"
                    )
                following = {"cursor" if kind == "cursor" else "token": str(value)}
        elif kind == "offset":
            if records and len(records) >= (config.page_size or 1):
                following = {"offset": (0 if position is None else position["offset"]) + len(records)}
        elif kind == "page":
            full = config.page_size is None or len(records) >= config.page_size
            if records and full:
                following = {"page": (config.first_page if position is None else position["page"]) + 1}
        elif kind == "link":
            link = response.links.get("next")
            if link and link.get("url"):
                following = {"url": self._without_hidden(urllib.parse.urljoin(str(response.url), link["url"]))}
        if following is not None and json.dumps(following, sort_keys=True) in self.seen:
            what = next(iter(following))
            raise HttpError(
                f"{where}: the server sent the same {what} twice in one walk (a pagination loop); stopping",
                retryable=False,
                code="pagination_loop",
            )
        return following

    def _without_hidden(self, url: str) -> str:
        """``url`` without the query parameters that carry credentials (they must not reach a checkpoint)."""
        if not self.hidden_params:
            return url
        parts = urllib.parse.urlsplit(url)
        query = [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k not in self.hidden_params
        ]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _field(position: Any, key: str, kind: type) -> Any:
    if not isinstance(position, dict) or not isinstance(position.get(key), kind) or isinstance(position.get(key), bool):
        raise HttpError(
            f'the pagination position {position!r} is not one this paginator made (expected {{"{key}": '
            f"{kind.__name__}}}); was the [pagination] kind changed?",
            retryable=False,
            code="bad_position",
        )
    return position[key]


def walk(paginator: Paginator, position: Optional[Position], fetch: Any) -> Iterator[Page]:
    """Yields pages from ``position`` on; ``fetch(url, params)`` returns (response, decoded body)."""
    paginator.remember(position)
    while True:
        url, params = paginator.request_for(position)
        where = f"page {json.dumps(position) if position is not None else '1'} of {paginator.url}"
        response, body = fetch(url, params)
        records = paginator.records_of(body, where)
        following = paginator.next_of(position, response, body, records, where)
        paginator.remember(following)
        yield Page(records=records, position=position, next_position=following)
        if following is None:
            return
        position = following


__all__ = ["KINDS", "Page", "PaginationConfig", "Paginator", "resolve_pointer", "walk"]
