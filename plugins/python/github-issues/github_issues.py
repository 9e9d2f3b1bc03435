"""github-issues: a Switchyard polling input that reads a GitHub repository's issues.

Configuration (the ``config`` table in plugins.toml; see README.md)::

    owner = "octo-org"
    repo = "hello-world"
    token_env = "GITHUB_TOKEN"        # the variable holding the token; never the token itself
    page_size = 100                   # per_page, 1 to 100
    include_pull_requests = false     # the issues list returns pull requests too

Each poll asks ``GET {base_url}/repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc
&per_page=N&page=1&since=MARK`` page after page, each page ``since=`` the last ``updated_at``
read (keyset paging: an issue edited mid-walk cannot make the walk skip another, as page
numbers would), while ``Link: rel="next"`` says there is more. Every page is one batch whose
checkpoint holds the high-water ``updated_at`` (and the page number while a whole page shares
one second), so an interrupted backfill resumes where it was and later polls read only what
changed since the mark.
"""

import json
import logging
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set

import httpx
from github_issues_checkpoint import Checkpoint, parse_timestamp
from github_issues_config import CONFIG_SCHEMA, Settings, read_settings
from switchyard_plugin import ConfigError, Failure, PollBatch, PollingInput, Record, serve
from switchyard_plugin.http import SYSTEM_CLOCK, Clock, HttpClient, HttpConfigError, HttpError

logger = logging.getLogger("github-issues")

#: Sent with every call: GitHub's JSON media type and the REST API version this plugin was written against.
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
#: The longest rate-limit wait taken inside a poll; a later reset is handed to the hub as the retry-after
#: (well under the hub's default poll timeout of 5 minutes).
MAX_WAIT = "60s"
ISSUE_TYPE = "github.issue"
PULL_REQUEST_TYPE = "github.pull_request"


class GitHubIssues(PollingInput):
    """Polls one repository's issues (and, if asked, pull requests) incrementally."""

    name = "github-issues"
    version = "0.1.0"
    description = "Reads a GitHub repository's issues (REST, incremental by updated_at, resumable paging)."
    config_schema = CONFIG_SCHEMA

    def __init__(
        self,
        environ: Optional[Mapping[str, str]] = None,
        clock: Clock = SYSTEM_CLOCK,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.clock = clock
        self.transport = transport
        self.settings: Optional[Settings] = None
        self.api: Optional[HttpClient] = None

    def configure(self, config: Dict[str, Any], instance_name: str) -> List[ConfigError]:
        settings, errors = read_settings(config, self.environ)
        if settings is None:
            return errors
        try:
            # Polls wait out a rate limit up to MAX_WAIT in the plugin; the start check never waits
            # (a retryable failure makes Configure answer UNAVAILABLE and the hub restarts it later).
            api = self._client(settings, {"max_retry_after": MAX_WAIT})
            probe = self._client(settings, {"max_attempts": 1})
        except HttpConfigError as err:  # read_settings checked these keys already; name ours anyway
            return [ConfigError("token_env" if e.field.startswith("auth") else e.field, e.message) for e in err.errors]
        try:
            problem = self._check_access(probe, settings)
        except HttpError:
            api.close()
            raise
        finally:
            probe.close()
        if problem is not None:
            api.close()
            return [problem]
        if self.api is not None:
            self.api.close()
        self.settings, self.api = settings, api
        logger.info(
            "github-issues configured",
            extra={
                "fields": {
                    "instance": instance_name,
                    "repository": settings.full_name,
                    "base_url": settings.base_url,
                    "page_size": settings.page_size,
                    "include_pull_requests": settings.include_pull_requests,
                }
            },
        )
        return []

    def _client(self, settings: Settings, retry: Dict[str, Any]) -> HttpClient:
        table = {
            "base_url": settings.base_url,
            "auth": {"kind": "bearer", "token_env": settings.token_env},
            "retry": retry,
        }
        return HttpClient.from_config(table, environ=self.environ, clock=self.clock, transport=self.transport)

    def _check_access(self, api: HttpClient, settings: Settings) -> Optional[ConfigError]:
        """One cheap call at start (GET the repository) so a bad token or name fails Configure clearly.

        A retryable failure (GitHub unreachable, rate limited) is raised: Configure answers UNAVAILABLE
        and the hub tries again later.
        """
        try:
            api.get(settings.repo_path, headers=GITHUB_HEADERS)
        except HttpError as err:
            if err.retryable:
                raise
            if err.status == 401:
                # Retryable, not a config error: a token can be renewed without touching
                # plugins.toml, so the hub retries the start under the plugin's restart policy
                # and marks it failed, with this message, only once that policy gives up.
                raise Failure.transient(
                    f"token_env: GitHub refused the token in {settings.token_env} (HTTP 401, bad "
                    "credentials): check that it is valid and not expired",
                    code="auth_failed",
                ) from err
            if err.status in (403, 404):
                return ConfigError(
                    "repo",
                    f"{settings.full_name} is not readable at {settings.base_url} with the token in "
                    f"{settings.token_env} (HTTP {err.status}): check owner, repo and the token's access",
                )
            return ConfigError("", f"cannot read {settings.full_name}: {err.message}")
        return None

    def poll(self, checkpoint: Optional[bytes], max_records: int) -> Iterator[PollBatch]:
        settings, api = self.settings, self.api
        if settings is None or api is None:
            raise Failure.permanent("github-issues polled before it was configured", code="not_configured")
        state = Checkpoint.decode(checkpoint, settings.repo_path)
        if checkpoint and state is None:
            logger.warning(
                "the checkpoint belongs to another repository: starting over",
                extra={"fields": {"repository": settings.full_name}},
            )
        if state is None:
            state = Checkpoint(repo=settings.repo_path)
        mark, page = state.mark, state.page
        at_mark: Set[int] = set()  # ids already sent this poll whose updated_at is the mark
        sent = 0
        while True:
            params: Dict[str, Any] = {
                "state": "all",
                "sort": "updated",
                "direction": "asc",
                "per_page": settings.page_size,
                "page": page,
            }
            if mark is not None:
                params["since"] = mark
            since = _timestamp(mark) if mark is not None else None
            response = api.get(settings.issues_path, params=params, headers=GITHUB_HEADERS)
            items = _json_list(response, settings)
            more = bool(response.links.get("next", {}).get("url"))
            records: List[Record] = []
            skipped = 0
            last = since
            for item in items:
                record, updated = self._record_of(item, settings)
                if last is not None and updated < last:
                    raise _bad_item(settings, "the list is not in ascending updated_at order")
                if last is None or updated > last:
                    at_mark.clear()
                last, mark = updated, item["updated_at"]
                if item["id"] in at_mark:
                    continue  # read on the page before, at the same second: sent already
                at_mark.add(item["id"])
                if record is None:
                    skipped += 1
                else:
                    records.append(record)
            # The next request: since the new mark (keyset paging, immune to issues that move while we
            # page), or the next page at the same mark when this whole page shares one updated_at.
            page = page + 1 if last == since else 1
            logger.debug(
                "read a page of issues",
                extra={
                    "fields": {
                        "repository": settings.full_name,
                        "records": len(records),
                        "pull_requests_skipped": skipped,
                        "more": more,
                        "mark": mark,
                    }
                },
            )
            sent += len(records)
            state = Checkpoint(repo=settings.repo_path, mark=mark, page=page if more else 1)
            yield PollBatch(records=records, checkpoint=state.encode())
            if not more or not items:
                return
            if max_records and sent >= max_records:
                return  # the rest next poll, from the checkpoint just sent

    def _record_of(self, item: Any, settings: Settings) -> "tuple":
        """The record for one element of the list (``None`` for a skipped pull request) and its ``updated_at``."""
        if not isinstance(item, dict):
            raise _bad_item(settings, f"an element of the list is {type(item).__name__}, not an object")
        issue_id = item.get("id")
        if isinstance(issue_id, bool) or not isinstance(issue_id, int):
            raise _bad_item(settings, f"an issue has no integer id ({issue_id!r})")
        updated_at = parse_timestamp(item.get("updated_at"))
        if updated_at is None:
            raise _bad_item(settings, f"issue {issue_id} has no readable updated_at ({item.get('updated_at')!r})")
        is_pull_request = item.get("pull_request") is not None
        if is_pull_request and not settings.include_pull_requests:
            return None, updated_at
        metadata = {"repository": settings.full_name}
        number = item.get("number")
        if isinstance(number, int) and not isinstance(number, bool):
            metadata["number"] = str(number)
        record = Record(
            id=str(issue_id),
            payload=item,
            type=PULL_REQUEST_TYPE if is_pull_request else ISSUE_TYPE,
            occurred_at=updated_at,
            metadata=metadata,
        )
        return record, updated_at

    def close(self) -> None:
        if self.api is not None:
            self.api.close()


def _timestamp(value: str) -> Any:
    parsed = parse_timestamp(value)
    if parsed is None:  # marks come from parsed items or a checked checkpoint
        raise Failure.permanent(f"github-issues: the mark {value!r} is not a timestamp", code="bad_checkpoint")
    return parsed


def _json_list(response: httpx.Response, settings: Settings) -> List[Any]:
    try:
        body = json.loads(response.content)
    except (UnicodeDecodeError, ValueError) as err:
        raise _bad_item(settings, f"the body is not JSON ({type(err).__name__})") from None
    if not isinstance(body, list):
        raise _bad_item(settings, f"the body is {type(body).__name__}, not a JSON array")
    return body


def _bad_item(settings: Settings, why: str) -> Failure:
    return Failure.permanent(
        f"github-issues {settings.full_name}: GitHub's issues list is not as documented: {why}", code="bad_response"
    )


if __name__ == "__main__":
    serve(GitHubIssues())
