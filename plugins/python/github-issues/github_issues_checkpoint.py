"""The poll checkpoint of github-issues: the high-water mark and the page to read at it.

Stored as JSON::

    {"v": 1, "repo": "https://api.github.com/repos/octo/hello", "mark": "2026-11-23T18:00:00Z", "page": 1}

``mark`` is the largest ``updated_at`` read so far (issues and pull requests
alike): the next request asks ``since=mark``. ``page`` is the page of that
``since=`` list to read next: 1, except while a walk is crossing more than a
page of issues that all share the mark's second (then 2, 3, ...). A walk
interrupted between pages therefore resumes where it was, and a finished walk
leaves ``page`` at 1 for the next poll. ``repo`` ties the checkpoint to the
repository: a checkpoint of another repository (the config changed) is dropped
and the sync starts over.
"""

import dataclasses
import datetime
import json
from typing import Any, Dict, Optional

from switchyard_plugin import Failure

VERSION = 1


def parse_timestamp(value: Any) -> Optional[datetime.datetime]:
    """An aware datetime from GitHub's ``YYYY-MM-DDTHH:MM:SSZ`` (any ISO 8601 with an offset); ``None`` if not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclasses.dataclass
class Checkpoint:
    """Where the sync of one repository stands."""

    repo: str
    mark: Optional[str] = None
    page: int = 1

    def encode(self) -> bytes:
        """The bytes to hand to the hub."""
        body: Dict[str, Any] = {"v": VERSION, "repo": self.repo, "mark": self.mark, "page": self.page}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, raw: Optional[bytes], repo: str) -> "Optional[Checkpoint]":
        """The checkpoint in ``raw`` for ``repo``; ``None`` for no checkpoint or one of another repository.

        Raises a permanent :class:`Failure` (``bad_checkpoint``) for bytes this plugin did not write.
        """
        if not raw:
            return None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise _bad(f"it is not JSON ({type(err).__name__})") from None
        if not isinstance(body, dict) or body.get("v") != VERSION:
            raise _bad(f'expected an object with "v": {VERSION}')
        if body.get("repo") != repo:
            return None
        mark, page = body.get("mark"), body.get("page", 1)
        if mark is not None and parse_timestamp(mark) is None:
            raise _bad(f"mark {mark!r} is not a timestamp")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise _bad(f"page {page!r} is not a page number")
        return cls(repo=repo, mark=mark, page=page)


def _bad(why: str) -> Failure:
    return Failure.permanent(
        f"github-issues cannot read its checkpoint: {why}; was it written by another plugin?", code="bad_checkpoint"
    )


__all__ = ["Checkpoint", "parse_timestamp"]
