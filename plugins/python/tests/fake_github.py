"""A fake GitHub REST API for the github-issues tests, on :class:`fake_api.FakeApi` (127.0.0.1, ephemeral port).

It speaks the wire format of the real API as documented (see
plugins/python/github-issues/README.md for the citations):

- ``GET /repos/{owner}/{repo}`` answers the repository object;
- ``GET /repos/{owner}/{repo}/issues`` (and ``/repositories/{id}/issues``, the form GitHub's
  ``Link`` URLs use) answers a JSON array of issues and pull requests (those have a
  ``pull_request`` object), filtered by ``state`` and ``since`` (updated at or after it), ordered
  by ``sort``/``direction``, paged by ``per_page`` (default 30, at most 100) and ``page``, with a
  ``Link`` header of absolute URLs (``rel="next"``, ``"last"``, ``"first"``, ``"prev"``) that keep
  the request's query;
- a missing or wrong ``Authorization: Bearer`` is 401 ``{"message": "Bad credentials", ...}``;
- every answer carries ``X-RateLimit-Limit/Remaining/Reset/Used/Resource``.

``fail_next`` queues raw answers (a 403 rate limit, a 429 with ``Retry-After``) to give
before the normal ones.
"""

import datetime
import threading
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

from fake_api import FakeApi, Seen

REPO_ID = 1296269
TOKEN = "ghp_fakeTokenForTests0123456789abcdef"


def timestamp(minute: int) -> str:
    """GitHub's timestamp format, ``minute`` minutes after a fixed start."""
    start = datetime.datetime(2026, 11, 20, 9, 0, 0, tzinfo=datetime.timezone.utc)
    return (start + datetime.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    """One repository's issues behind a fake api.github.com; use as a context manager."""

    def __init__(self, owner: str = "octo-org", repo: str = "hello-world", token: str = TOKEN):
        self.owner, self.repo, self.token = owner, repo, token
        self.issues: Dict[int, Dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.failures: List[Tuple[int, Dict[str, str], Any]] = []
        self.api = FakeApi()
        base = f"/repos/{owner}/{repo}"
        self.api.route("GET", base, self._repository)
        self.api.route("GET", base + "/issues", self._issues)
        self.api.route("GET", f"/repositories/{REPO_ID}/issues", self._issues)

    # -- test controls -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.api.url

    def add(self, number: int, updated_minute: int, title: str = "", pull_request: bool = False) -> Dict[str, Any]:
        """Adds (or replaces) issue ``number``, last updated ``updated_minute`` minutes after the start."""
        issue = {
            "id": 1_000_000 + number,
            "node_id": f"I_kwDOABCD{number:05d}",
            "url": f"{self.url}/repos/{self.owner}/{self.repo}/issues/{number}",
            "html_url": f"https://github.com/{self.owner}/{self.repo}/issues/{number}",
            "number": number,
            "state": "open",
            "title": title or f"Issue {number}",
            "body": f"Body of {number}",
            "user": {"login": "octocat", "id": 1, "type": "User"},
            "labels": [],
            "assignees": [],
            "comments": 0,
            "created_at": timestamp(0),
            "updated_at": timestamp(updated_minute),
            "closed_at": None,
            "author_association": "OWNER",
        }
        if pull_request:
            issue["pull_request"] = {
                "url": f"{self.url}/repos/{self.owner}/{self.repo}/pulls/{number}",
                "html_url": f"https://github.com/{self.owner}/{self.repo}/pull/{number}",
                "diff_url": f"https://github.com/{self.owner}/{self.repo}/pull/{number}.diff",
                "patch_url": f"https://github.com/{self.owner}/{self.repo}/pull/{number}.patch",
                "merged_at": None,
            }
        with self.lock:
            self.issues[number] = issue
        return issue

    def update(self, number: int, updated_minute: int, **fields: Any) -> None:
        """Changes issue ``number`` (moves its ``updated_at``)."""
        with self.lock:
            self.issues[number].update(fields, updated_at=timestamp(updated_minute))

    def fail_next(self, status: int, headers: Dict[str, str], body: Any) -> None:
        """Answers the next issues request with this instead."""
        with self.lock:
            self.failures.append((status, headers, body))

    def list_requests(self) -> List[Seen]:
        """The issues-list requests received, in order."""
        with self.api.lock:
            return [r for r in self.api.requests if r.path.endswith("/issues")]

    def __enter__(self) -> "FakeGitHub":
        self.api.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.api.__exit__(*exc)

    # -- the API -------------------------------------------------------------------------

    def _rate_headers(self) -> Dict[str, str]:
        reset = int(datetime.datetime.now(datetime.timezone.utc).timestamp()) + 3600
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": "2022-11-28",
        }

    def _refused(self, request: Seen) -> Optional[Tuple[int, Dict[str, str], Any]]:
        if request.header("authorization") != f"Bearer {self.token}":
            body = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}
            return 401, self._rate_headers(), body
        return None

    def _repository(self, request: Seen) -> Tuple[int, Dict[str, str], Any]:
        refused = self._refused(request)
        if refused:
            return refused
        body = {"id": REPO_ID, "name": self.repo, "full_name": f"{self.owner}/{self.repo}", "private": False}
        return 200, self._rate_headers(), body

    def _issues(self, request: Seen) -> Tuple[int, Dict[str, str], Any]:
        with self.lock:
            if self.failures:
                return self.failures.pop(0)
        refused = self._refused(request)
        if refused:
            return refused
        query = request.query
        try:
            per_page = min(int(query.get("per_page", "30")), 100)
            page = int(query.get("page", "1"))
        except ValueError:
            return 422, self._rate_headers(), {"message": "Validation Failed", "status": "422"}
        since = query.get("since")
        state = query.get("state", "open")
        with self.lock:
            items = [dict(issue) for issue in self.issues.values()]
        if state != "all":
            items = [i for i in items if i["state"] == state]
        if since:
            items = [i for i in items if i["updated_at"] >= since]  # same format: string order is time order
        key = "updated_at" if query.get("sort") == "updated" else "created_at"
        items.sort(key=lambda i: (i[key], i["number"]), reverse=query.get("direction", "desc") == "desc")
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = self._rate_headers()
        links = []

        def link(to_page: int, rel: str) -> str:
            params = dict(query, page=str(to_page))
            return f'<{self.url}/repositories/{REPO_ID}/issues?{urllib.parse.urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
            links.append(link(last, "last"))
        if page > 1:
            links.append(link(1, "first"))
        if links:
            headers["link"] = ", ".join(links)
        return 200, headers, chunk
